//! `onboard monitor`: how a scored as-of date's scores did once its outcome window has
//! passed in the ingested data. The actual outcome of each person is the risk stage's
//! own (`outcome_emergency_admission` of the feature query at that as-of date, computed
//! from the spells of the latest ingested month, never from a truth file); the scores
//! are the stored ones of the model version that made them. Writes
//! `ops/monitor/as_of=<d>/monitor.json` and `monitor.html`, and the trend over every
//! monitored as-of date (`ops/monitor/trend.json`, `ops/monitor/index.html`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::drift::DriftReport;
use super::{OpsError, ScoreRow, data_end, read_scores, scoring_version, stage_at, ymd};
use crate::risk::evaluation::{self, AtK, Evaluation};
use crate::risk::features::OUTCOME;

/// One band of the risk pyramid with what happened to its people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BandOutcome {
    pub band: String,
    pub persons: usize,
    pub events: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// `monitor.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MonitorReport {
    pub as_of: String,
    pub model_version: String,
    pub horizon_days: u32,
    /// Last day of the outcome window (as-of + horizon).
    pub window_end: String,
    /// The date the ingested data run to (`run.json` reference date).
    pub data_end: String,
    pub emergency_admission_methods: Vec<String>,
    pub persons_scored: usize,
    /// Scored persons whose key is in the population now (the ones evaluated).
    pub persons_evaluated: usize,
    /// Scored persons whose key is no longer in the population (merged by linkage).
    pub persons_not_found: usize,
    /// AUROC, Brier, recall@k and PPV@k, calibration by decile, by practice.
    pub evaluation: Evaluation,
    /// Persons, events and rates per risk band, highest first.
    pub pyramid: Vec<BandOutcome>,
    /// Feature drift from the previous scored as-of date to this one.
    pub drift: Option<DriftReport>,
}

/// Where the monitoring of `as_of` is written.
pub fn monitor_dir(out: &Path, as_of: NaiveDate) -> PathBuf {
    super::ops_dir(out)
        .join("monitor")
        .join(format!("as_of={}", ymd(as_of)))
}

/// The actual outcome of every person in the population at `as_of`, from the data.
pub async fn outcomes(
    stage: &crate::risk::Stage,
    as_of: NaiveDate,
) -> Result<HashMap<String, bool>, OpsError> {
    use datafusion::arrow::array::{Array, AsArray};
    let ctx = stage.session().await?;
    let q = crate::risk::feature_query(stage, &ctx, as_of).await?;
    if !q.outcome_known {
        return Err(OpsError::Data(format!(
            "as-of {as_of}: the outcome window is not in the data"
        )));
    }
    let batches = ctx
        .sql(&q.sql)
        .await?
        .select_columns(&["person_key", OUTCOME])?
        .collect()
        .await?;
    let mut out = HashMap::new();
    for b in &batches {
        let keys = super::text_column(b, "person_key")?;
        let y = b.column(1).as_boolean();
        for (i, k) in keys.into_iter().enumerate() {
            if let Some(k) = k {
                out.insert(k, !y.is_null(i) && y.value(i));
            }
        }
    }
    Ok(out)
}

/// Monitor `as_of` (scored by `model`, default the version that scored it).
pub async fn monitor(
    out: &Path,
    ics: Option<&crate::ics::Ics>,
    as_of: NaiveDate,
    model: Option<&str>,
) -> Result<MonitorReport, OpsError> {
    let end = data_end(out)?;
    let stage = stage_at(out, ics, end)?;
    let horizon = stage.settings.horizon_days;
    let window_end = as_of + Duration::days(i64::from(horizon));
    if window_end > end {
        return Err(OpsError::TooEarly {
            as_of,
            horizon,
            window_end,
            data_end: end,
        });
    }
    let version = scoring_version(out, as_of, model)?;
    let scores = read_scores(out, as_of, &version)?;
    let actual = outcomes(&stage, as_of).await?;
    let report = assess(&stage, as_of, &version, &scores, &actual, end)?;
    let settings = ics
        .map(|i| i.file.operations.drift.clone())
        .unwrap_or_default();
    let drift = previous_drift(out, &settings, as_of)?;
    let report = MonitorReport { drift, ..report };
    let dir = monitor_dir(out, as_of);
    super::write_json(&dir.join("monitor.json"), &report)?;
    super::write_text(
        &dir.join("monitor.html"),
        &super::page::monitor_html(&report),
    )?;
    write_trend(out)?;
    Ok(report)
}

fn assess(
    stage: &crate::risk::Stage,
    as_of: NaiveDate,
    version: &str,
    scores: &[ScoreRow],
    actual: &HashMap<String, bool>,
    end: NaiveDate,
) -> Result<MonitorReport, OpsError> {
    let found: Vec<(&ScoreRow, bool)> = scores
        .iter()
        .filter_map(|s| actual.get(&s.person_key).map(|y| (s, *y)))
        .collect();
    if found.is_empty() {
        return Err(OpsError::Data(format!(
            "none of the {} persons scored at {as_of} is in the population now: was the spine rebuilt with another key?",
            scores.len()
        )));
    }
    let p: Vec<f64> = found.iter().map(|(s, _)| s.probability).collect();
    let y: Vec<bool> = found.iter().map(|(_, y)| *y).collect();
    let practice: Vec<String> = found
        .iter()
        .map(|(s, _)| s.practice.clone().unwrap_or_else(|| "unknown".into()))
        .collect();
    let evaluation = evaluation::evaluate(&p, &y, &[("practice", practice)]);
    let pyramid = stage
        .settings
        .bands
        .iter()
        .map(|b| band_outcome(&b.name, &found))
        .collect();
    Ok(MonitorReport {
        as_of: ymd(as_of),
        model_version: version.to_string(),
        horizon_days: stage.settings.horizon_days,
        window_end: ymd(as_of + Duration::days(i64::from(stage.settings.horizon_days))),
        data_end: ymd(end),
        emergency_admission_methods: stage.settings.emergency_admission_methods.clone(),
        persons_scored: scores.len(),
        persons_evaluated: found.len(),
        persons_not_found: scores.len() - found.len(),
        evaluation,
        pyramid,
        drift: None,
    })
}

fn band_outcome(band: &str, found: &[(&ScoreRow, bool)]) -> BandOutcome {
    let rows: Vec<&(&ScoreRow, bool)> = found.iter().filter(|(s, _)| s.band == band).collect();
    let n = rows.len();
    let events = rows.iter().filter(|(_, y)| *y).count();
    let m = n.max(1) as f64;
    BandOutcome {
        band: band.to_string(),
        persons: n,
        events,
        mean_predicted: rows.iter().map(|(s, _)| s.probability).sum::<f64>() / m,
        observed_rate: events as f64 / m,
    }
}

/// Drift from the scored as-of date before `as_of` (when both have features).
fn previous_drift(
    out: &Path,
    s: &super::config::DriftSettings,
    as_of: NaiveDate,
) -> Result<Option<DriftReport>, OpsError> {
    let Some(prev) = super::scored_dates(out).into_iter().rfind(|d| *d < as_of) else {
        return Ok(None);
    };
    let (a, b) = (
        crate::risk::features_dir(out, prev),
        crate::risk::features_dir(out, as_of),
    );
    if !a.is_dir() || !b.is_dir() {
        return Ok(None);
    }
    Ok(Some(super::drift::compare_dirs(
        &a,
        &b,
        (&ymd(prev), &ymd(as_of)),
        s,
    )?))
}

/// One monitored as-of date in the trend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrendPoint {
    pub as_of: String,
    pub model_version: String,
    pub persons: usize,
    pub events: usize,
    pub auroc: f64,
    pub at_k: Vec<AtK>,
    pub max_psi: Option<f64>,
}

/// `ops/monitor/trend.json`: every monitored as-of date, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Trend {
    pub points: Vec<TrendPoint>,
}

/// Rebuild the trend from every `monitor.json` written.
pub fn write_trend(out: &Path) -> Result<Trend, OpsError> {
    let root = super::ops_dir(out).join("monitor");
    let mut points = Vec::new();
    for name in super::subdirs(&root, "as_of=") {
        let p = root.join(format!("as_of={name}")).join("monitor.json");
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let r: MonitorReport = serde_json::from_str(&text).map_err(|e| OpsError::file(&p, e))?;
        points.push(TrendPoint {
            as_of: r.as_of,
            model_version: r.model_version,
            persons: r.evaluation.persons,
            events: r.evaluation.events,
            auroc: r.evaluation.auroc,
            at_k: r.evaluation.at_k,
            max_psi: r.drift.map(|d| d.max_psi),
        });
    }
    points.sort_by(|a, b| a.as_of.cmp(&b.as_of));
    let trend = Trend { points };
    super::write_json(&root.join("trend.json"), &trend)?;
    super::write_text(&root.join("index.html"), &super::page::trend_html(&trend))?;
    Ok(trend)
}

/// Human summary of a monitoring.
pub fn text(r: &MonitorReport) -> String {
    let e = &r.evaluation;
    let mut s = format!(
        "as-of {} scored by {}: {} persons ({} evaluated), {} with an emergency admission by {} ({:.2}%)\nAUROC {:.3}, Brier {:.4}\n",
        r.as_of,
        r.model_version,
        r.persons_scored,
        r.persons_evaluated,
        e.events,
        r.window_end,
        e.prevalence * 100.0,
        e.auroc,
        e.brier
    );
    for k in &e.at_k {
        s.push_str(&format!(
            "  top {:>3}%: {:>5} flagged, {:>4} admitted: recall {:.1}%, PPV {:.1}%\n",
            k.k_percent,
            k.flagged,
            k.true_positives,
            k.recall * 100.0,
            k.ppv * 100.0
        ));
    }
    if let Some(d) = &r.drift {
        s.push_str(&format!(
            "drift from {}: max PSI {:.3}{}\n",
            d.from_as_of,
            d.max_psi,
            if d.flagged.is_empty() {
                String::new()
            } else {
                format!(" (flagged: {})", d.flagged.join(", "))
            }
        ));
    }
    s
}
