//! Running an ICS: load and validate, work out the run id, ingest every source, settle
//! each delivery (publish, carry forward, fail), write `run.json` and the DQ report, and
//! publish the staged run atomically.
//!
//! Every row read is accounted for: accepted into silver (analytics) or identity tables,
//! or quarantined with its rule codes, reasons, file, row number and raw values
//! (`rows_read = rows_accepted + rows_quarantined` per source, recorded in `run.json`).
//! A run writes into a staging directory; publishing renames it into `runs/<run_id>`
//! and swaps the `current` symlink, so a crash at any point leaves the previous outputs
//! intact. The run id is a hash of the manifests, the input files (path, size, mtime),
//! the reference date and the key fingerprint: the same inputs give the same run id
//! and the same rows.
//!
//! * [`record`]: `run.json` as types (read by the DQ report and later stages);
//! * [`staging`]: the staging directory of a run and the removal of stale ones;
//! * `source`: one source's record (ingest, thresholds, reconciliation);
//! * `publish`: moving the staged run into place and pruning old runs.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::compile::RunContext;
use crate::feeds;
use crate::ics::Ics;
use crate::ingest;
use crate::manifest::model::LoadStrategy;
use crate::pseudonymise::Key;
use crate::store::write_atomic;
use crate::validate::{ResolvedManifest, ResolvedSource};

mod publish;
pub mod record;
mod source;
pub mod staging;

pub use record::{RuleHits, RunRecord, RunStatus, Sample, SourceRecord, SourceStatus, Totals};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub ics: PathBuf,
    pub landing: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub demo_key: bool,
    pub key_file: Option<PathBuf>,
    pub reference_date: Option<String>,
    pub progress: bool,
    /// Where the plans execute (default: embedded).
    pub engine: crate::deploy::EngineChoice,
}

/// Why a run did not publish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The manifests have errors: the diagnostics (sorted) and the files checked.
    #[error("manifests are invalid:\n{}", crate::diagnostics::render_human(.0, .1))]
    Invalid(
        Vec<crate::diagnostics::Diagnostic>,
        crate::diagnostics::Summary,
    ),
    /// The run itself failed (threshold breach with fail_run, unreadable extract, …).
    #[error("{0}")]
    Failed(String),
}

fn fail(e: impl std::fmt::Display) -> RunError {
    RunError::Failed(e.to_string())
}

/// Result of a published run.
#[derive(Debug)]
pub struct Published {
    pub record: RunRecord,
    pub out: PathBuf,
    pub run_dir: PathBuf,
}

fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What a run works on, after loading and validating its inputs.
struct Setup {
    ics: Ics,
    landing: PathBuf,
    out: PathBuf,
    outcome: crate::validate::Outcome,
    key: Key,
    reference_date: String,
    engine: crate::deploy::EngineChoice,
}

fn setup(opts: &RunOptions) -> Result<Setup, RunError> {
    let ics = Ics::load(&opts.ics).map_err(fail)?;
    let landing = opts
        .landing
        .clone()
        .unwrap_or_else(|| ics.resolve(&ics.file.landing));
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| ics.resolve(&ics.file.output));
    if !landing.is_dir() {
        return Err(fail(format!(
            "landing zone {} is not a directory",
            landing.display()
        )));
    }
    let provider_paths: Vec<PathBuf> = ics.file.providers.iter().map(|p| ics.resolve(p)).collect();
    let outcome =
        crate::validate::validate_paths(&provider_paths, &Default::default()).map_err(fail)?;
    if outcome.diagnostics.has_errors() {
        let summary = crate::diagnostics::Summary {
            files: outcome.files.clone(),
        };
        return Err(RunError::Invalid(
            outcome.diagnostics.into_sorted(),
            summary,
        ));
    }
    let key_file = opts.key_file.clone().or_else(|| {
        ics.file
            .pseudonymisation
            .key_file
            .as_ref()
            .map(|k| ics.resolve(k))
    });
    let key = Key::load(key_file.as_deref(), opts.demo_key).map_err(fail)?;
    let reference_date = opts
        .reference_date
        .clone()
        .or(ics.file.reference_date.clone())
        .unwrap_or_else(today);
    if chrono::NaiveDate::parse_from_str(&reference_date, "%Y-%m-%d").is_err() {
        return Err(fail(format!(
            "reference date `{reference_date}` is not YYYY-MM-DD"
        )));
    }
    Ok(Setup {
        ics,
        landing,
        out,
        outcome,
        key,
        reference_date,
        engine: opts.engine.clone(),
    })
}

type Work<'a> = Vec<(&'a ResolvedManifest, &'a ResolvedSource, Vec<PathBuf>)>;

/// The files of every source, and the run id: a hash of the manifests, the input files
/// (path, size, mtime), the reference date and the key fingerprint.
fn inputs(s: &Setup) -> Result<(Work<'_>, String), RunError> {
    let mut work: Work<'_> = Vec::new();
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(s.reference_date.as_bytes());
    h.update(s.key.fingerprint().as_bytes());
    for m in &s.outcome.manifests {
        h.update(m.hash.as_bytes());
        for src in &m.sources {
            let files = ingest::scan::source_files(&s.landing, src).map_err(fail)?;
            for f in &files {
                let meta = std::fs::metadata(f).map_err(fail)?;
                h.update(
                    f.strip_prefix(&s.landing)
                        .unwrap_or(f)
                        .to_string_lossy()
                        .as_bytes(),
                );
                h.update(meta.len().to_le_bytes());
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                h.update(mtime.to_le_bytes());
            }
            work.push((m, src, files));
        }
    }
    Ok((work, hex::encode(&h.finalize()[..8])))
}

/// Run an ICS end to end and publish its outputs.
pub async fn run(opts: &RunOptions) -> Result<Published, RunError> {
    let started_at = now();
    let setup = setup(opts)?;
    let (work, run_id) = inputs(&setup)?;
    let out = setup.out.clone();
    let staging = out
        .join(".staging")
        .join(format!("{run_id}-{}", std::process::id()));
    staging::remove_stale(&out);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(fail)?;
    }
    staging::create(&staging, &started_at).map_err(fail)?;
    tracing::info!(run_id = %run_id, staging = %staging.display(), "run started");
    let previous = publish::read_previous(&out);
    let result = run_sources(
        &setup,
        &work,
        &run_id,
        &staging,
        previous.as_ref(),
        opts.progress,
    )
    .await;
    let (records, ledger) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let record = run_record(&setup, run_id.clone(), started_at, records);
    write_outputs(&staging, &record, previous.as_ref(), &ledger)?;
    let _ = std::fs::remove_dir_all(staging.join("spill"));
    // Scans staged for a distributed engine hold raw extracts: never published.
    let _ = std::fs::remove_dir_all(staging.join("bronze"));
    staging::release(&staging).map_err(fail)?;
    let run_dir = publish::publish(&out, &staging, &run_id).map_err(fail)?;
    Ok(Published {
        record,
        out,
        run_dir,
    })
}

fn run_record(
    s: &Setup,
    run_id: String,
    started_at: String,
    records: Vec<SourceRecord>,
) -> RunRecord {
    let mut totals = Totals::default();
    for r in &records {
        totals.rows_read += r.rows_read;
        totals.rows_accepted += r.rows_accepted;
        totals.rows_quarantined += r.rows_quarantined;
        totals.rows_duplicate += r.delivery.rows_duplicate;
        totals.sources += 1;
        totals.sources_failed += usize::from(r.status == SourceStatus::Failed);
        totals.sources_missing += usize::from(r.status == SourceStatus::Missing);
        totals.sources_carried_forward += usize::from(r.delivery.carried_forward.is_some());
    }
    RunRecord {
        run_id,
        onboard_version: env!("CARGO_PKG_VERSION").into(),
        ics: s.ics.file.ics.id.clone(),
        reference_date: s.reference_date.clone(),
        status: if totals.sources_failed > 0 {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        },
        key_fingerprint: s.key.fingerprint(),
        demo_key: s.key.demo,
        started_at,
        finished_at: now(),
        sources: records,
        totals,
    }
}

/// run.json, the DQ report and the ledger, into the staged run.
fn write_outputs(
    staging: &Path,
    record: &RunRecord,
    previous: Option<&RunRecord>,
    ledger: &feeds::Ledger,
) -> Result<(), RunError> {
    write_atomic(&staging.join("run.json"), pretty(record).as_bytes()).map_err(fail)?;
    write_atomic(
        &staging.join(feeds::ledger::FILE),
        ledger.to_json().as_bytes(),
    )
    .map_err(fail)?;
    let reports = staging.join("reports");
    std::fs::create_dir_all(&reports).map_err(fail)?;
    let report = crate::report::build(record, previous);
    write_atomic(&reports.join("dq_report.json"), pretty(&report).as_bytes()).map_err(fail)?;
    write_atomic(
        &reports.join("dq_report.html"),
        crate::report::html(&report).as_bytes(),
    )
    .map_err(fail)
}

/// Pretty JSON of what a run writes.
fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Process every source; carry forward what failed or is missing; the new ledger.
async fn run_sources(
    setup: &Setup,
    work: &Work<'_>,
    run_id: &str,
    staging: &Path,
    previous: Option<&RunRecord>,
    progress: bool,
) -> Result<(Vec<SourceRecord>, feeds::Ledger), RunError> {
    let ctx = crate::deploy::run_context(
        &setup.engine,
        &setup.ics.file.engine,
        &staging.join("spill"),
        &setup.key,
    )
    .await
    .map_err(fail)?;
    let env = ingest::Env {
        ctx,
        engine: &setup.engine,
        staging,
        landing: &setup.landing,
        run_ctx: RunContext {
            run_id: run_id.to_string(),
            reference_date: setup.reference_date.clone(),
        },
        progress,
    };
    let previous_dir = previous.map(|p| setup.out.join("runs").join(&p.run_id));
    let incremental: Vec<(&str, &str)> = work
        .iter()
        .filter(|(_, s, _)| s.delivery.load == Some(LoadStrategy::Incremental))
        .map(|(m, s, _)| (m.provider.id.as_str(), s.id.as_str()))
        .collect();
    let mut ledger = feeds::Ledger::load(
        previous_dir.as_deref(),
        &setup.ics.file.ics.id,
        &setup.landing,
        run_id,
        &|p, s| incremental.contains(&(p, s)),
    )
    .map_err(fail)?;
    let mut records = Vec::new();
    for (m, s, files) in work {
        let settings = feeds::Settings::of(s, &setup.ics.file.feeds);
        let baseline = source::baseline(previous, run_id, &m.provider.id, &s.id);
        let plan = feeds::plan(
            env.landing,
            s,
            &settings,
            files,
            &ledger.of(&m.provider.id, &s.id),
        );
        let mut rec = if plan.missing || plan.failure.is_some() {
            source::unloaded_record(m, s, &plan)
        } else {
            source::process_source(&env, m, s, &plan, &settings).await?
        };
        rec.delivery.load = Some(settings.load);
        rec.delivery.baseline = baseline.clone();
        let prev = previous.zip(previous_dir.as_deref());
        let outcome = feeds::outcome::Outcome {
            settings: &settings,
            plan: &plan,
            baseline: baseline.as_ref(),
            previous: prev.map(|(p, d)| (p.run_id.as_str(), d)),
            fail_run_on_breach: setup.ics.file.fail_run_on_breach,
        };
        let at = feeds::outcome::Place {
            staging,
            run_id,
            reference_date: &setup.reference_date,
        };
        let state = feeds::outcome::SourceState {
            provider: &rec.provider,
            source: &rec.source,
            entity: &rec.entity,
            status: &mut rec.status,
            failure: &mut rec.failure,
            rows_read: rec.rows_read,
            delivery: &mut rec.delivery,
        };
        outcome.settle(&at, state, &mut ledger).map_err(fail)?;
        records.push(rec);
    }
    Ok((records, ledger))
}
