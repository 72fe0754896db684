//! One source of a run: ingest it, apply its thresholds and `on_fail: fail` rules, and
//! reconcile what was read with what was written, as its record in `run.json`.

use std::collections::BTreeMap;

use super::record::{RuleHits, RunRecord, SourceRecord, SourceStatus};
use super::{RunError, fail};
use crate::compile::{self, CompiledSource};
use crate::feeds;
use crate::ingest::{self, Stats, Streamed};
use crate::manifest::model::OnFail;
use crate::validate::{ResolvedManifest, ResolvedSource, rules};

/// What `current` held for a source before this run (for a rerun of the same inputs:
/// what it held before the first of them).
pub(super) fn baseline(
    previous: Option<&RunRecord>,
    run_id: &str,
    provider: &str,
    source: &str,
) -> Option<feeds::GoodLoad> {
    let p = previous?;
    let r = p
        .sources
        .iter()
        .find(|r| r.provider == provider && r.source == source)?;
    if p.run_id == run_id {
        r.delivery.baseline.clone()
    } else if r.delivery.load.is_none() && r.status == SourceStatus::Published {
        // A run.json written before deliveries were recorded: its published data.
        Some(feeds::GoodLoad {
            run_id: p.run_id.clone(),
            reference_date: p.reference_date.clone(),
            extract_date: None,
            rows: r.rows_read,
        })
    } else {
        r.delivery.good_load.clone()
    }
}

/// The record of a source that was not read: no file, or its delivery failed its checks.
pub(super) fn unloaded_record(
    m: &ResolvedManifest,
    s: &ResolvedSource,
    plan: &feeds::Plan,
) -> SourceRecord {
    let (files_ingested, unhashed) = match plan.file_records(&BTreeMap::new()) {
        Ok(files) => (files, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let failure = match (plan.failure.clone(), unhashed) {
        (Some(f), Some(e)) => Some(format!("{f}; {e}")),
        (f, e) => f.or(e),
    };
    let status = match failure {
        Some(_) => SourceStatus::Failed,
        None => SourceStatus::Missing,
    };
    SourceRecord {
        provider: m.provider.id.clone(),
        source: s.id.clone(),
        entity: s.entity.name.clone(),
        status,
        failure,
        files: Vec::new(),
        rows_read: 0,
        rows_accepted: 0,
        rows_quarantined: 0,
        rows_unreadable: 0,
        rows_warned: 0,
        reconciled: true,
        quarantine_rate: 0.0,
        rule_hits: Vec::new(),
        completeness: BTreeMap::new(),
        samples: Vec::new(),
        manifest_hash: m.hash.clone(),
        delivery: feeds::DeliveryRecord {
            files_ingested,
            files_skipped: plan.skipped.clone(),
            ..Default::default()
        },
    }
}

/// Scan, map, check and split one source into the staged outputs.
pub(super) async fn process_source(
    env: &ingest::Env<'_>,
    m: &ResolvedManifest,
    s: &ResolvedSource,
    plan: &feeds::Plan,
    settings: &feeds::Settings,
) -> Result<SourceRecord, RunError> {
    let c = compile::compile_source(m, s, &env.run_ctx);
    let span = tracing::info_span!("source", provider = %c.provider, source = %c.source);
    let _g = span.enter();
    let files = ingest::Files {
        paths: plan.paths(),
        extract_dates: plan.extract_dates(),
        dedup: plan.collapses_duplicates(settings),
    };
    let streamed = match ingest::stream_source(env, s, &c, &files).await {
        Ok(x) => x,
        Err(e) => {
            // An extract that cannot be read fails its source, not the run.
            feeds::carry::clear_source(env.staging, &c.entity, &c.provider, &c.source);
            let mut rec = unloaded_record(m, s, plan);
            rec.status = SourceStatus::Failed;
            rec.failure = Some(e);
            return Ok(rec);
        }
    };
    let Streamed {
        stats,
        rejected,
        scanned,
    } = streamed;
    ingest::write_unreadable(env, &c, &rejected).map_err(fail)?;
    let unreadable = rejected.len() as u64;
    let scanned_rows: u64 = scanned.values().sum();
    let duplicates = scanned_rows.saturating_sub(stats.rows);
    let rows_read = scanned_rows + unreadable;
    let rows_quarantined = stats.quarantined + unreadable;
    let mut per_file = scanned;
    for r in &rejected {
        *per_file.entry(r.file.clone()).or_default() += 1;
    }
    let files_ingested = plan.file_records(&per_file);
    let failure = breach(s, &c, &stats, rows_read, rows_quarantined)
        .or_else(|| files_ingested.as_ref().err().cloned());
    if let Some(f) = &failure {
        // Nothing of a failed source is published except its quarantine.
        feeds::carry::clear_source(env.staging, &c.entity, &c.provider, &c.source);
        tracing::warn!(provider = %c.provider, source = %c.source, "source failed: {f}");
    }
    let mut rec = source_record(&c, &stats, rows_read, rows_quarantined, unreadable, failure);
    rec.files = plan.ingest.iter().map(|f| f.file.clone()).collect();
    rec.delivery.files_ingested = files_ingested.unwrap_or_default();
    rec.delivery.files_skipped = plan.skipped.clone();
    rec.delivery.rows_duplicate = duplicates;
    rec.reconciled = rows_read == stats.accepted + rows_quarantined + duplicates;
    Ok(rec)
}

/// Why a processed source fails its thresholds or `on_fail: fail` rules, if it does.
fn breach(
    s: &ResolvedSource,
    c: &CompiledSource,
    stats: &Stats,
    rows_read: u64,
    rows_quarantined: u64,
) -> Option<String> {
    let rate = share(rows_read, rows_quarantined);
    let mut failure = None;
    if let Some(max) = s.max_quarantine_rate
        && rate > max
    {
        failure = Some(format!(
            "quarantine rate {:.2}% exceeds max_quarantine_rate {:.2}% ({} of {} rows)",
            rate * 100.0,
            max * 100.0,
            rows_quarantined,
            rows_read
        ));
    }
    if let Some(min) = s.min_rows
        && rows_read < min
    {
        failure = Some(format!("{rows_read} rows read; min_rows is {min}"));
    }
    if stats.failed_by_rule {
        let ids: Vec<String> = c
            .rules
            .iter()
            .zip(&stats.hits)
            .filter(|(r, h)| r.rule.on_fail == OnFail::Fail && **h > 0)
            .map(|(r, h)| format!("{} ({} rows)", r.rule.id, h))
            .collect();
        failure = Some(format!(
            "rule(s) with on_fail: fail were broken: {}",
            ids.join(", ")
        ));
    }
    failure
}

/// `part / whole`, 0 when `whole` is 0.
fn share(whole: u64, part: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn source_record(
    c: &CompiledSource,
    stats: &Stats,
    rows_read: u64,
    rows_quarantined: u64,
    unreadable: u64,
    failure: Option<String>,
) -> SourceRecord {
    let rule_hits = c
        .rules
        .iter()
        .zip(&stats.hits)
        .map(|(r, h)| RuleHits {
            rule: r.rule.id.clone(),
            code: r.rule.code.to_string(),
            category: rules::category_name(r.rule.category).to_string(),
            on_fail: match r.rule.on_fail {
                OnFail::Quarantine => "quarantine",
                OnFail::Warn => "warn",
                OnFail::Fail => "fail",
            }
            .to_string(),
            implicit: r.implicit,
            rows: *h,
            description: ingest::quarantine::rule_reason(r),
        })
        .collect();
    let completeness = stats
        .non_null
        .iter()
        .map(|(k, v)| (k.clone(), share(rows_read, *v)))
        .collect();
    SourceRecord {
        provider: c.provider.clone(),
        source: c.source.clone(),
        entity: c.entity.clone(),
        status: if failure.is_some() {
            SourceStatus::Failed
        } else {
            SourceStatus::Published
        },
        failure,
        files: Vec::new(),
        rows_read,
        rows_accepted: stats.accepted,
        rows_quarantined,
        rows_unreadable: unreadable,
        rows_warned: stats.warned,
        reconciled: false,
        quarantine_rate: share(rows_read, rows_quarantined),
        rule_hits,
        completeness,
        samples: stats.samples.clone(),
        manifest_hash: c.manifest_hash.clone(),
        delivery: Default::default(),
    }
}
