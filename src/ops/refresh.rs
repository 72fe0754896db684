//! `onboard refresh`: one month of model operations. The command line ingests the
//! month's delivery (`operations.deliveries`) with its extract date as the reference
//! date and relinks (person keys are kept from the previous link map); then [`after_link`]
//! featurises the new as-of date, monitors every scored as-of date whose outcome window
//! has now passed, retrains when the ICS file says so (schedule or recall floor) and
//! promotes the new champion only when it is not worse, scores the month with the
//! promoted model, writes the referrals and the feature drift against the previous
//! month, and records the refresh in `ops/refreshes.json`. Months are refreshed in
//! order; a month refreshed again gives the same outputs.

use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{OpsError, data_end, ops_dir, stage_at, ymd};
use crate::ics::Ics;
use crate::risk::train::{Promotion, read_registry};

/// A monitored as-of date, in brief.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Monitored {
    pub as_of: String,
    pub model_version: String,
    pub events: usize,
    pub auroc: f64,
    /// Recall at `operations.retrain.k_percent`.
    pub k_percent: f64,
    pub recall: f64,
    pub ppv: f64,
}

/// What retraining decided.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Retrained {
    /// `schedule` or `recall_floor` (with the numbers).
    pub reason: String,
    pub validation_as_of: String,
    pub trained: String,
    pub trained_auroc: f64,
    pub previous: Option<String>,
    /// The previous champion's AUROC at the same validation date.
    pub previous_auroc: Option<f64>,
    pub promoted: bool,
}

/// One refresh in `ops/refreshes.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefreshRecord {
    pub extract_date: String,
    pub landing: String,
    pub run_id: String,
    pub run_status: String,
    pub persons: u64,
    pub person_keys_kept: u64,
    pub person_keys_new: u64,
    /// The model version that scored `extract_date`.
    pub model_version: String,
    pub persons_scored: usize,
    pub referred: usize,
    pub monitored: Vec<Monitored>,
    pub retrained: Option<Retrained>,
    /// Feature drift from the previous scored as-of date.
    pub drift_from: Option<String>,
    pub max_psi: Option<f64>,
    pub drift_flagged: Vec<String>,
}

/// `ops/refreshes.json`: every refresh, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub refreshes: Vec<RefreshRecord>,
}

pub fn history_path(out: &Path) -> PathBuf {
    ops_dir(out).join("refreshes.json")
}

impl History {
    pub fn read(out: &Path) -> Result<History, OpsError> {
        let p = history_path(out);
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| OpsError::file(&p, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(OpsError::file(&p, e)),
        }
    }
    /// The model version a refresh scored `as_of` with.
    pub fn version_for(&self, as_of: NaiveDate) -> Option<String> {
        let d = ymd(as_of);
        self.refreshes
            .iter()
            .rev()
            .find(|r| r.extract_date == d)
            .map(|r| r.model_version.clone())
    }
    fn put(&mut self, r: RefreshRecord) {
        self.refreshes.retain(|x| x.extract_date != r.extract_date);
        self.refreshes.push(r);
        self.refreshes
            .sort_by(|a, b| a.extract_date.cmp(&b.extract_date));
    }
}

/// The month after `d`: the next month-end when `d` is one, else the same day.
pub fn next_month(d: NaiveDate) -> NaiveDate {
    let month_end = (d + Duration::days(1)).day() == 1;
    if month_end {
        (d + Duration::days(1))
            .checked_add_months(Months::new(1))
            .map(|x| x - Duration::days(1))
            .unwrap_or(d)
    } else {
        d.checked_add_months(Months::new(1)).unwrap_or(d)
    }
}

/// The month a refresh ingests and where its delivery is.
#[derive(Debug, Clone)]
pub struct Planned {
    pub extract_date: NaiveDate,
    pub landing: PathBuf,
    /// The previous month's extract date (the data end before this refresh).
    pub previous: NaiveDate,
}

/// Where the delivery of `d` lands.
pub fn delivery_of(ics: &Ics, d: NaiveDate) -> PathBuf {
    ics.resolve(&ics.file.operations.deliveries.replace("{date}", &ymd(d)))
}

/// Decide the month to refresh: `month`, else the one after the last ingested.
pub fn plan(out: &Path, ics: &Ics, month: Option<NaiveDate>) -> Result<Planned, OpsError> {
    let last = data_end(out).map_err(|e| {
        OpsError::Data(format!(
            "{e}: a refresh continues a published, linked and scored run (onboard run, link, risk run)"
        ))
    })?;
    let history = History::read(out)?;
    let rerun = month.is_some_and(|m| m == last && history.version_for(m).is_some());
    let expected = next_month(last);
    let target = month.unwrap_or(expected);
    let previous = if rerun {
        history
            .refreshes
            .iter()
            .rev()
            .map(|r| r.extract_date.clone())
            .find(|d| *d < ymd(target))
            .and_then(|d| crate::risk::parse_date(&d))
            .unwrap_or(target)
    } else {
        last
    };
    if !rerun && target <= last {
        return Err(OpsError::MissingMonth(format!(
            "the data already run to {last}: refresh {target} cannot go back (the next month is {expected})"
        )));
    }
    if !rerun && target > expected {
        return Err(OpsError::MissingMonth(format!(
            "refresh of {target} skips {expected}: the last month ingested is {last}; refresh {expected} first (months are refreshed in order so every as-of date is scored and monitored)"
        )));
    }
    let landing = delivery_of(ics, target);
    if !landing.is_dir() {
        return Err(OpsError::MissingMonth(format!(
            "no delivery for {target} at {} (operations.deliveries `{}`){}",
            landing.display(),
            ics.file.operations.deliveries,
            present(ics)
        )));
    }
    Ok(Planned {
        extract_date: target,
        landing,
        previous,
    })
}

/// The deliveries present, when `{date}` is the last part of the pattern.
fn present(ics: &Ics) -> String {
    let pattern = &ics.file.operations.deliveries;
    let Some(parent) = pattern.strip_suffix("{date}") else {
        return String::new();
    };
    let mut found: Vec<String> = std::fs::read_dir(ics.resolve(parent))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| crate::risk::parse_date(n).is_some())
        .collect();
    found.sort();
    if found.is_empty() {
        "; no deliveries there".into()
    } else {
        format!("; deliveries present: {}", found.join(", "))
    }
}

/// What the ingest and link steps produced, for the record.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub run_id: String,
    pub run_status: String,
}

/// Everything after ingest and link (see the module doc).
pub async fn after_link(
    out: &Path,
    ics: &Ics,
    planned: &Planned,
    ingested: &Ingested,
) -> Result<RefreshRecord, OpsError> {
    let d = planned.extract_date;
    let ops = &ics.file.operations;
    let stage = stage_at(out, Some(ics), d)?;
    crate::risk::write_features(&stage, &[d]).await?;
    let monitored = monitor_due(out, ics, planned, stage.settings.horizon_days).await?;
    let history = History::read(out)?;
    let retrained = match retrain_reason(&history, ops, &monitored, d) {
        Some(reason) => Some(retrain(out, &stage, ops, reason, d).await?),
        None => None,
    };
    let champion = read_registry(out)?.champion.ok_or_else(|| {
        OpsError::Data(format!(
            "{} has no champion: train a model first (`onboard risk train`)",
            crate::risk::train::models_dir(out).display()
        ))
    })?;
    let scored = crate::risk::score::score(&stage, Some(&champion), Some(d)).await?;
    let bands: Vec<String> = stage
        .settings
        .bands
        .iter()
        .map(|b| b.name.clone())
        .collect();
    let referrals = super::referrals::write(out, d, &champion, &ops.referral, &bands)?;
    let drift = if planned.previous < d && crate::risk::features_dir(out, planned.previous).is_dir()
    {
        Some(super::drift::between(out, planned.previous, d, &ops.drift)?)
    } else {
        None
    };
    let (persons, kept, new) = link_counts(out);
    let record = RefreshRecord {
        extract_date: ymd(d),
        landing: planned.landing.display().to_string(),
        run_id: ingested.run_id.clone(),
        run_status: ingested.run_status.clone(),
        persons,
        person_keys_kept: kept,
        person_keys_new: new,
        model_version: champion,
        persons_scored: scored.persons,
        referred: referrals.referred,
        monitored,
        retrained,
        drift_from: drift.as_ref().map(|x| x.from_as_of.clone()),
        max_psi: drift.as_ref().map(|x| x.max_psi),
        drift_flagged: drift.map(|x| x.flagged).unwrap_or_default(),
    };
    let mut history = History::read(out)?;
    history.put(record.clone());
    super::write_json(&history_path(out), &history)?;
    Ok(record)
}

fn link_counts(out: &Path) -> (u64, u64, u64) {
    let v: serde_json::Value = std::fs::read_to_string(out.join("linkage").join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    (n("persons"), n("person_keys_kept"), n("person_keys_new"))
}

/// Monitor every scored as-of date whose outcome window ended since the previous
/// month (or that was never monitored) and has ended by now.
async fn monitor_due(
    out: &Path,
    ics: &Ics,
    planned: &Planned,
    horizon: u32,
) -> Result<Vec<Monitored>, OpsError> {
    let k = ics.file.operations.retrain.k_percent;
    let mut done = Vec::new();
    for as_of in super::scored_dates(out) {
        let end = as_of + Duration::days(i64::from(horizon));
        let never = !super::monitor::monitor_dir(out, as_of)
            .join("monitor.json")
            .is_file();
        if end > planned.extract_date || (end <= planned.previous && !never) {
            continue;
        }
        let r = super::monitor::monitor(out, Some(ics), as_of, None).await?;
        let at = r.evaluation.at_k.iter().find(|a| a.k_percent == k);
        done.push(Monitored {
            as_of: r.as_of.clone(),
            model_version: r.model_version.clone(),
            events: r.evaluation.events,
            auroc: r.evaluation.auroc,
            k_percent: k,
            recall: at.map_or(0.0, |a| a.recall),
            ppv: at.map_or(0.0, |a| a.ppv),
        });
    }
    Ok(done)
}

/// Why to retrain this month, if at all.
fn retrain_reason(
    history: &History,
    ops: &super::config::OperationsSettings,
    monitored: &[Monitored],
    d: NaiveDate,
) -> Option<String> {
    let r = &ops.retrain;
    if let Some(floor) = r.recall_floor
        && let Some(m) = monitored.iter().find(|m| m.recall < floor)
    {
        return Some(format!(
            "recall_floor: recall@{}% at as-of {} was {:.3}, below {floor}",
            m.k_percent, m.as_of, m.recall
        ));
    }
    let every = r.every_months?;
    let before: Vec<&RefreshRecord> = history
        .refreshes
        .iter()
        .filter(|x| x.extract_date < ymd(d))
        .collect();
    let since = before
        .iter()
        .rev()
        .take_while(|x| x.retrained.is_none())
        .count() as u32
        + 1;
    (since >= every).then(|| {
        format!("schedule: {since} monthly refreshes since the last training (every {every})")
    })
}

/// Retrain on the as-of dates of `d`'s stage and promote when not worse.
async fn retrain(
    out: &Path,
    stage: &crate::risk::Stage,
    ops: &super::config::OperationsSettings,
    reason: String,
    d: NaiveDate,
) -> Result<Retrained, OpsError> {
    let previous = read_registry(out)?.champion;
    crate::risk::write_features(stage, &stage.all_as_of()).await?;
    let trained = crate::risk::train::train(stage).await?;
    let new = trained.champion.clone();
    let trained_auroc = trained.artefacts.first().map_or(0.0, |a| a.2.auroc);
    let previous_auroc = match &previous {
        Some(p) if *p != new => Some(auroc_at_validation(stage, p).await?),
        _ => None,
    };
    let promoted = match previous_auroc {
        Some(a) => trained_auroc >= a - ops.promotion.max_auroc_drop,
        None => true,
    };
    let why = match previous_auroc {
        Some(a) => format!(
            "retrained ({reason}); AUROC {trained_auroc:.4} against {a:.4} of the promoted model at {}",
            stage.as_of.validate
        ),
        None => format!("retrained ({reason})"),
    };
    set_champion(
        out,
        if promoted {
            &new
        } else {
            previous.as_deref().unwrap_or(&new)
        },
        previous.as_deref(),
        promoted,
        &why,
        d,
    )?;
    Ok(Retrained {
        reason,
        validation_as_of: ymd(stage.as_of.validate),
        trained: new,
        trained_auroc,
        previous,
        previous_auroc,
        promoted,
    })
}

/// AUROC of model `version` at the stage's validation as-of date.
async fn auroc_at_validation(stage: &crate::risk::Stage, version: &str) -> Result<f64, OpsError> {
    let a = crate::risk::train::read_artefact(&stage.out, Some(version))?;
    let names: Vec<String> = a.features.iter().map(|f| f.name.clone()).collect();
    let data = crate::risk::train::load_dataset(
        stage,
        stage.as_of.validate,
        &names,
        crate::risk::dataset::Need::Fitting,
    )
    .await?;
    let x = crate::risk::train::reorder(&data, a.model.feature_names())?;
    let p: Vec<f64> = (0..x.rows).map(|i| a.model.probability(x.row(i))).collect();
    let y = data.y.ok_or_else(|| {
        OpsError::Data(format!(
            "validation as-of {}: the outcome window is not in the data",
            stage.as_of.validate
        ))
    })?;
    Ok(crate::risk::model::metrics::auroc(&p, &y))
}

/// Make `champion` the version that scores; record a promotion when it changes.
fn set_champion(
    out: &Path,
    champion: &str,
    previous: Option<&str>,
    promoted: bool,
    reason: &str,
    d: NaiveDate,
) -> Result<(), OpsError> {
    let mut reg = read_registry(out)?;
    reg.champion = Some(champion.to_string());
    if promoted && previous != Some(champion) {
        reg.promotions
            .retain(|p| !(p.version == champion && p.as_of == ymd(d)));
        reg.promotions.push(Promotion {
            version: champion.to_string(),
            previous: previous.map(str::to_string),
            as_of: ymd(d),
            reason: reason.to_string(),
        });
    }
    let p = crate::risk::train::models_dir(out).join("registry.json");
    super::write_json(&p, &reg)
}

/// `onboard promote`: make an existing version the one that scores.
pub fn promote(out: &Path, version: &str, reason: &str) -> Result<Option<String>, OpsError> {
    let reg = read_registry(out)?;
    if !crate::risk::train::models_dir(out)
        .join(version)
        .join("model.json")
        .is_file()
    {
        let known: Vec<&str> = reg.versions.iter().map(|e| e.version.as_str()).collect();
        return Err(OpsError::UnknownModel(format!(
            "model version `{version}` does not exist in {} (versions: {})",
            crate::risk::train::models_dir(out).display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    }
    let d = data_end(out)?;
    let previous = reg.champion.clone();
    set_champion(out, version, previous.as_deref(), true, reason, d)?;
    Ok(previous)
}

/// One line per refresh step, for the command's output.
pub fn text(r: &RefreshRecord) -> String {
    let mut s = format!(
        "refresh {}: run {} ({}), {} persons ({} keys kept, {} new)\nscored by {}: {} persons, {} referred\n",
        r.extract_date,
        r.run_id,
        r.run_status,
        r.persons,
        r.person_keys_kept,
        r.person_keys_new,
        r.model_version,
        r.persons_scored,
        r.referred
    );
    for m in &r.monitored {
        s.push_str(&format!(
            "monitored as-of {} ({}): {} admitted, AUROC {:.3}, recall@{}% {:.1}%, PPV@{}% {:.1}%\n",
            m.as_of,
            m.model_version,
            m.events,
            m.auroc,
            m.k_percent,
            m.recall * 100.0,
            m.k_percent,
            m.ppv * 100.0
        ));
    }
    if let Some(t) = &r.retrained {
        s.push_str(&format!(
            "retrained: {} → {} (AUROC {:.3}){}\n",
            t.reason,
            t.trained,
            t.trained_auroc,
            if t.promoted {
                ", promoted"
            } else {
                ", not promoted"
            }
        ));
    }
    if let (Some(from), Some(psi)) = (&r.drift_from, r.max_psi) {
        s.push_str(&format!(
            "drift from {from}: max PSI {psi:.3}{}\n",
            if r.drift_flagged.is_empty() {
                String::new()
            } else {
                format!(" (flagged: {})", r.drift_flagged.join(", "))
            }
        ));
    }
    s
}
