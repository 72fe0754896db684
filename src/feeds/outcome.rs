//! What happens to a source after it was processed: completeness against the previous
//! good load, then publish (recording its files in the ledger and, for `incremental`,
//! keeping the loads before), carry the last good data forward, publish it empty, or
//! fail the run.

use std::collections::BTreeMap;
use std::path::Path;

use super::{CarriedForward, CarryReason, DeliveryRecord, GoodLoad, Ledger, Plan, Settings};
use crate::manifest::model::{LoadStrategy, OnProblem};

/// A source's status in `run.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    /// Read and published (possibly with quarantined rows).
    Published,
    /// Read but failed its thresholds, its `on_fail: fail` rules or its delivery checks,
    /// or could not be read.
    Failed,
    /// No input file.
    Missing,
}

impl SourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Published => "published",
            SourceStatus::Failed => "failed",
            SourceStatus::Missing => "missing",
        }
    }
}

impl std::fmt::Display for SourceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The run a source is settled in.
pub struct Place<'a> {
    pub staging: &'a Path,
    pub run_id: &'a str,
    pub reference_date: &'a str,
}

/// The parts of a source's `run.json` record the outcome reads and decides.
pub struct SourceState<'a> {
    pub provider: &'a str,
    pub source: &'a str,
    pub entity: &'a str,
    pub status: &'a mut SourceStatus,
    pub failure: &'a mut Option<String>,
    pub rows_read: u64,
    pub delivery: &'a mut DeliveryRecord,
}

/// How one source's delivery is settled.
pub struct Outcome<'a> {
    pub settings: &'a Settings,
    pub plan: &'a Plan,
    /// What `current` held for the source before this run.
    pub baseline: Option<&'a GoodLoad>,
    /// The previous run's id and directory.
    pub previous: Option<(&'a str, &'a Path)>,
    pub fail_run_on_breach: bool,
}

impl Outcome<'_> {
    /// Check, then publish, carry forward or empty the source; `Err` fails the run.
    pub fn settle(
        &self,
        at: &Place<'_>,
        mut s: SourceState<'_>,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        if *s.status == SourceStatus::Published {
            self.check_completeness(&mut s);
        }
        if *s.status == SourceStatus::Published {
            return self.publish(at, s, ledger);
        }
        let missing = *s.status == SourceStatus::Missing;
        let (policy, key) = if missing {
            (self.settings.on_missing, "on_missing")
        } else {
            (self.settings.on_failure, "on_failure")
        };
        let what = if missing {
            "has no input file".to_string()
        } else {
            format!("failed ({})", s.failure.clone().unwrap_or_default())
        };
        if !missing && self.fail_run_on_breach {
            return Err(format!(
                "source {}/{} {what}; fail_run_on_breach is set, so nothing was published",
                s.provider, s.source
            ));
        }
        if policy == OnProblem::FailRun {
            return Err(format!(
                "source {}/{} {what}; {key} is fail_run, so nothing was published",
                s.provider, s.source
            ));
        }
        super::carry::clear_source(at.staging, s.entity, s.provider, s.source);
        if policy == OnProblem::Empty {
            ledger.forget(s.provider, s.source);
            return Ok(());
        }
        self.carry(at, s, ledger, missing)
    }

    /// Control totals, and the row-count change against the previous good load (not for
    /// `incremental` sources, whose loads are increments of any size).
    fn check_completeness(&self, s: &mut SourceState<'_>) {
        let rows = s.rows_read - s.delivery.rows_duplicate;
        let mut failure = None;
        if self.settings.load != LoadStrategy::Incremental {
            let (change, f) = super::row_change(self.settings, self.baseline, rows);
            s.delivery.row_change = change;
            failure = f;
        }
        let per_file: BTreeMap<String, u64> = s
            .delivery
            .files_ingested
            .iter()
            .map(|f| (f.file.clone(), f.rows.unwrap_or(0)))
            .collect();
        if let Some(f) = super::check_counts(self.plan, &per_file).or(failure) {
            *s.status = SourceStatus::Failed;
            *s.failure = Some(f);
        }
    }

    /// A source that loaded: its ledger entries, and for `incremental` the loads before.
    fn publish(
        &self,
        at: &Place<'_>,
        s: SourceState<'_>,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        let rows = s.rows_read - s.delivery.rows_duplicate;
        s.delivery.good_load = Some(GoodLoad {
            run_id: at.run_id.to_string(),
            reference_date: at.reference_date.to_string(),
            extract_date: self.plan.newest_extract_date(),
            rows,
        });
        if self.settings.load == LoadStrategy::Incremental {
            if self.plan.ingest.is_empty() {
                s.delivery.good_load = self.baseline.cloned();
            }
            if let (Some((from_run, dir)), Some(_)) = (self.previous, self.baseline) {
                super::carry::link_source(
                    dir, from_run, at.staging, s.entity, s.provider, s.source, at.run_id,
                )
                .map_err(|e| format!("{}/{}: carrying earlier loads: {e}", s.provider, s.source))?;
            }
        } else {
            ledger.forget(s.provider, s.source);
        }
        ledger.record(s.provider, s.source, &s.delivery.files_ingested, at.run_id);
        Ok(())
    }

    /// Keep the last good data of a missing or failed source, unless it is too old.
    fn carry(
        &self,
        at: &Place<'_>,
        s: SourceState<'_>,
        ledger: &mut Ledger,
        missing: bool,
    ) -> Result<(), String> {
        let (Some(good), Some((from_run, dir))) = (self.baseline, self.previous) else {
            ledger.forget(s.provider, s.source);
            return Ok(());
        };
        let age = super::age_days(good.as_of(), at.reference_date);
        if let Some(max) = self.settings.max_carry_forward_age
            && age > i64::from(max)
        {
            let note = format!(
                "the last good data (run {}, as of {}) is {age} days old; max_carry_forward_age is {max} days, so nothing was carried forward",
                good.run_id,
                good.as_of()
            );
            *s.status = SourceStatus::Failed;
            *s.failure = Some(match s.failure.take() {
                Some(f) => format!("{f}; {note}"),
                None => format!("no input file; {note}"),
            });
            ledger.forget(s.provider, s.source);
            return Ok(());
        }
        let files = super::carry::link_source(
            dir, from_run, at.staging, s.entity, s.provider, s.source, at.run_id,
        )
        .map_err(|e| format!("{}/{}: carrying forward: {e}", s.provider, s.source))?;
        s.delivery.carried_forward = Some(CarriedForward {
            from_run: good.run_id.clone(),
            reason: if missing {
                CarryReason::Missing
            } else {
                CarryReason::Failed
            },
            as_of: good.as_of().to_string(),
            age_days: age,
            rows: good.rows,
            files,
        });
        s.delivery.good_load = Some(good.clone());
        tracing::warn!(provider = %s.provider, source = %s.source, from_run = %good.run_id, "last good data carried forward");
        Ok(())
    }
}
