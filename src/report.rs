//! The data-quality report of a run: JSON for machines, a static HTML page for people.
//!
//! Built from the run record: per provider and source, completeness of every mapped
//! field (ethnicity called out), rule failures with a few failing rows (identifiers
//! masked), a summary by Kahn category, and the change since the previous run (new,
//! resolved and persisting failures).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::run::record::{RunRecord, RunStatus, Sample, SourceStatus, Totals};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    pub ics: String,
    pub reference_date: String,
    pub status: RunStatus,
    pub totals: Totals,
    pub kahn: BTreeMap<String, KahnSummary>,
    pub sources: Vec<SourceReport>,
    pub ethnicity_completeness: Vec<FieldShare>,
    pub changes: Changes,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KahnSummary {
    pub rules: usize,
    pub rules_failing: usize,
    pub failed_rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldShare {
    pub provider: String,
    pub source: String,
    pub field: String,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceReport {
    pub provider: String,
    pub source: String,
    pub entity: String,
    pub status: SourceStatus,
    pub failure: Option<String>,
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rows_quarantined: u64,
    pub rows_unreadable: u64,
    pub quarantine_rate: f64,
    pub completeness: BTreeMap<String, f64>,
    pub rules: Vec<RuleReport>,
    /// Load strategy, files, duplicates, row change and carry-forward (as in run.json).
    #[serde(flatten)]
    pub delivery: crate::feeds::DeliveryRecord,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleReport {
    pub rule: String,
    pub code: String,
    pub category: String,
    pub on_fail: String,
    pub rows: u64,
    pub share: f64,
    pub description: String,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Changes {
    pub previous_run_id: Option<String>,
    pub new: Vec<Change>,
    pub resolved: Vec<Change>,
    pub persisting: Vec<Change>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub provider: String,
    pub source: String,
    pub rule: String,
    pub code: String,
    pub rows: u64,
    pub previous_rows: u64,
}

fn failing(r: &RunRecord) -> BTreeMap<(String, String, String), (String, u64)> {
    let mut m = BTreeMap::new();
    for s in &r.sources {
        for h in &s.rule_hits {
            if h.rows > 0 {
                m.insert(
                    (s.provider.clone(), s.source.clone(), h.rule.clone()),
                    (h.code.clone(), h.rows),
                );
            }
        }
        if s.rows_unreadable > 0 {
            m.insert(
                (s.provider.clone(), s.source.clone(), "unreadable".into()),
                (
                    crate::validate::rules::UNREADABLE_CODE.into(),
                    s.rows_unreadable,
                ),
            );
        }
    }
    m
}

/// Build the report of `run`, comparing with `previous` when there is one.
pub fn build(run: &RunRecord, previous: Option<&RunRecord>) -> Report {
    let mut kahn: BTreeMap<String, KahnSummary> = BTreeMap::new();
    for c in ["conformance", "completeness", "plausibility"] {
        kahn.insert(c.into(), KahnSummary::default());
    }
    let mut sources = Vec::new();
    let mut ethnicity = Vec::new();
    for s in &run.sources {
        let mut rules = Vec::new();
        for h in &s.rule_hits {
            let k = kahn.entry(h.category.clone()).or_default();
            k.rules += 1;
            if h.rows > 0 {
                k.rules_failing += 1;
                k.failed_rows += h.rows;
            }
            rules.push(RuleReport {
                rule: h.rule.clone(),
                code: h.code.clone(),
                category: h.category.clone(),
                on_fail: h.on_fail.clone(),
                rows: h.rows,
                share: if s.rows_read == 0 {
                    0.0
                } else {
                    h.rows as f64 / s.rows_read as f64
                },
                description: h.description.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|x| x.rule == h.rule)
                    .cloned()
                    .collect(),
            });
        }
        if s.rows_unreadable > 0 {
            let k = kahn.entry("conformance".into()).or_default();
            k.rules_failing += 1;
            k.failed_rows += s.rows_unreadable;
        }
        for (f, share) in &s.completeness {
            if f.ends_with("ethnic_category") {
                ethnicity.push(FieldShare {
                    provider: s.provider.clone(),
                    source: s.source.clone(),
                    field: f.clone(),
                    share: *share,
                });
            }
        }
        sources.push(SourceReport {
            provider: s.provider.clone(),
            source: s.source.clone(),
            entity: s.entity.clone(),
            status: s.status,
            failure: s.failure.clone(),
            rows_read: s.rows_read,
            rows_accepted: s.rows_accepted,
            rows_quarantined: s.rows_quarantined,
            rows_unreadable: s.rows_unreadable,
            quarantine_rate: s.quarantine_rate,
            completeness: s.completeness.clone(),
            rules,
            delivery: s.delivery.clone(),
        });
    }
    let mut changes = Changes::default();
    let now = failing(run);
    let before = previous.map(failing).unwrap_or_default();
    changes.previous_run_id = previous.map(|p| p.run_id.clone());
    if previous.is_some() {
        for ((p, s, r), (code, rows)) in &now {
            let prev = before.get(&(p.clone(), s.clone(), r.clone())).map(|x| x.1);
            let ch = Change {
                provider: p.clone(),
                source: s.clone(),
                rule: r.clone(),
                code: code.clone(),
                rows: *rows,
                previous_rows: prev.unwrap_or(0),
            };
            if prev.is_some() {
                changes.persisting.push(ch);
            } else {
                changes.new.push(ch);
            }
        }
        for ((p, s, r), (code, rows)) in &before {
            if !now.contains_key(&(p.clone(), s.clone(), r.clone())) {
                changes.resolved.push(Change {
                    provider: p.clone(),
                    source: s.clone(),
                    rule: r.clone(),
                    code: code.clone(),
                    rows: 0,
                    previous_rows: *rows,
                });
            }
        }
    }
    Report {
        run_id: run.run_id.clone(),
        ics: run.ics.clone(),
        reference_date: run.reference_date.clone(),
        status: run.status,
        totals: run.totals.clone(),
        kahn,
        sources,
        ethnicity_completeness: ethnicity,
        changes,
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Carried-forward data, skipped files, duplicates and row change of a source, for its table cell.
fn delivery_note(d: &crate::feeds::DeliveryRecord) -> String {
    let mut out = String::new();
    if let Some(c) = &d.carried_forward {
        let _ = write!(
            out,
            "<br><b>carried forward</b> from run <code>{}</code> (as of {}, {} days old, {} rows)",
            esc(&c.from_run),
            esc(&c.as_of),
            c.age_days,
            c.rows
        );
    }
    for f in &d.files_skipped {
        let _ = write!(
            out,
            "<br><span class=muted>skipped {}: {}</span>",
            esc(&f.file),
            esc(&f.detail)
        );
    }
    if d.rows_duplicate > 0 {
        let _ = write!(
            out,
            "<br><span class=muted>{} exact duplicate rows collapsed</span>",
            d.rows_duplicate
        );
    }
    if let Some(change) = d.row_change.as_ref().and_then(|r| r.change) {
        let _ = write!(
            out,
            "<br><span class=muted>rows {:+.1}% against the previous good load</span>",
            change * 100.0
        );
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn bar(x: f64) -> String {
    let w = (x.clamp(0.0, 1.0) * 100.0).round();
    format!("<span class=\"bar\"><span style=\"width:{w}%\"></span></span>")
}

/// The static HTML page of a report (no scripts, no external resources).
pub fn html(r: &Report) -> String {
    let mut h = String::new();
    html_head(&mut h, r);
    html_reconciliation(&mut h, r);
    html_categories(&mut h, r);
    html_changes(&mut h, r);
    html_sources(&mut h, r);
    h.push_str("<p class=muted>Generated by onboard. Identifiers in failing-row samples are masked; full rows are in the restricted quarantine table.</p>\n</body></html>\n");
    h
}

/// The document head with the inline style sheet.
fn html_head(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data quality: {ics} run {run}</title>\n<style>\
body{{font-family:system-ui,sans-serif;margin:2rem;color:#1d2733;max-width:1200px}}h1{{font-size:1.5rem}}h2{{margin-top:2rem;border-bottom:1px solid #ccd}}\
table{{border-collapse:collapse;margin:.5rem 0 1rem}}td,th{{border:1px solid #ccd;padding:.25rem .5rem;text-align:left;font-size:.9rem;vertical-align:top}}\
th{{background:#eef2f7}}.num{{text-align:right;font-variant-numeric:tabular-nums}}.failed{{color:#a00;font-weight:600}}.ok{{color:#060}}\
.bar{{display:inline-block;width:80px;height:8px;background:#eee;margin-left:.4rem}}.bar span{{display:block;height:8px;background:#3a7}}\
code{{background:#f3f3f3;padding:0 .2rem}}.muted{{color:#667}}</style></head><body>\n",
        ics = esc(&r.ics),
        run = esc(&r.run_id)
    );
}

/// The run summary and the reconciliation table (opened; the next section closes it).
fn html_reconciliation(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h1>Data quality report: {}</h1>\n<p>Run <code>{}</code>, reference date {}, status <b class=\"{}\">{}</b>. \
{} rows read, {} accepted, {} quarantined across {} sources ({} failed).</p>\n",
        esc(&r.ics),
        esc(&r.run_id),
        esc(&r.reference_date),
        if r.status == RunStatus::Succeeded {
            "ok"
        } else {
            "failed"
        },
        r.status,
        r.totals.rows_read,
        r.totals.rows_accepted,
        r.totals.rows_quarantined,
        r.totals.sources,
        r.totals.sources_failed
    );
    h.push_str("<h2>Reconciliation</h2>\n<table><tr><th>provider</th><th>source</th><th>entity</th><th>status</th><th class=num>read</th><th class=num>accepted</th><th class=num>quarantined</th><th class=num>unreadable</th><th class=num>quarantine rate</th></tr>\n");
    for s in &r.sources {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(&s.provider),
            esc(&s.source),
            esc(&s.entity),
            if s.status == SourceStatus::Published {
                "ok"
            } else {
                "failed"
            },
            s.status,
            s.failure
                .as_ref()
                .map(|f| format!("<br><span class=muted>{}</span>", esc(f)))
                .unwrap_or_default()
                + &delivery_note(&s.delivery),
            s.rows_read,
            s.rows_accepted,
            s.rows_quarantined,
            s.rows_unreadable,
            pct(s.quarantine_rate)
        );
    }
}

/// Failures by Kahn category and ethnicity completeness.
fn html_categories(h: &mut String, r: &Report) {
    h.push_str("</table>\n<h2>By Kahn category</h2>\n<table><tr><th>category</th><th class=num>rules</th><th class=num>rules failing</th><th class=num>failed rows</th></tr>\n");
    for (k, v) in &r.kahn {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(k),
            v.rules,
            v.rules_failing,
            v.failed_rows
        );
    }
    h.push_str("</table>\n<h2>Ethnicity completeness</h2>\n<table><tr><th>provider</th><th>source</th><th>field</th><th class=num>recorded</th></tr>\n");
    for e in &r.ethnicity_completeness {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=num>{}{}</td></tr>",
            esc(&e.provider),
            esc(&e.source),
            esc(&e.field),
            pct(e.share),
            bar(e.share)
        );
    }
}

/// New, resolved and persisting failures against the previous run.
fn html_changes(h: &mut String, r: &Report) {
    h.push_str("</table>\n<h2>Change since the previous run</h2>\n");
    match &r.changes.previous_run_id {
        None => h.push_str("<p class=muted>No previous run.</p>\n"),
        Some(p) => {
            let _ = writeln!(
                h,
                "<p>Compared with run <code>{}</code>: {} new, {} resolved, {} persisting failures.</p>",
                esc(p),
                r.changes.new.len(),
                r.changes.resolved.len(),
                r.changes.persisting.len()
            );
            h.push_str("<table><tr><th>change</th><th>provider</th><th>source</th><th>rule</th><th>code</th><th class=num>rows</th><th class=num>previous rows</th></tr>\n");
            for (label, list) in [
                ("new", &r.changes.new),
                ("resolved", &r.changes.resolved),
                ("persisting", &r.changes.persisting),
            ] {
                for c in list {
                    let _ = writeln!(
                        h,
                        "<tr><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
                        esc(&c.provider),
                        esc(&c.source),
                        esc(&c.rule),
                        esc(&c.code),
                        c.rows,
                        c.previous_rows
                    );
                }
            }
            h.push_str("</table>\n");
        }
    }
}

/// Per source: field completeness and every rule with masked failing-row samples.
fn html_sources(h: &mut String, r: &Report) {
    for s in &r.sources {
        let _ = writeln!(
            h,
            "<h2>{} / {} <span class=muted>({})</span></h2>",
            esc(&s.provider),
            esc(&s.source),
            esc(&s.entity)
        );
        h.push_str("<table><tr><th>field</th><th class=num>completeness</th></tr>\n");
        for (f, share) in &s.completeness {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=num>{}{}</td></tr>",
                esc(f),
                pct(*share),
                bar(*share)
            );
        }
        h.push_str("</table>\n<table><tr><th>code</th><th>rule</th><th>category</th><th>on fail</th><th class=num>rows</th><th class=num>share</th><th>checks</th><th>failing rows (identifiers masked)</th></tr>\n");
        for rr in &s.rules {
            let samples: Vec<String> = rr
                .samples
                .iter()
                .map(|x| {
                    let vals: Vec<String> = x
                        .values
                        .iter()
                        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
                        .collect();
                    format!(
                        "{}:{} {}",
                        esc(&x.source_file),
                        x.source_row,
                        vals.join(", ")
                    )
                })
                .collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num{}\">{}</td><td class=num>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&rr.code),
                esc(&rr.rule),
                esc(&rr.category),
                esc(&rr.on_fail),
                if rr.rows > 0 { " failed" } else { "" },
                rr.rows,
                pct(rr.share),
                esc(&rr.description),
                samples.join("<br>")
            );
        }
        if s.rows_unreadable > 0 {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>unreadable</td><td>conformance</td><td>quarantine</td><td class=\"num failed\">{}</td><td></td><td>rows that could not be read in the declared shape</td><td>see quarantine</td></tr>",
                crate::validate::rules::UNREADABLE_CODE,
                s.rows_unreadable
            );
        }
        h.push_str("</table>\n");
    }
}
