//! Deliveries of a source over time: which files a run loads, what each file is, whether
//! a delivery is complete, and what `current` holds for a source when a delivery is
//! missing or fails.
//!
//! Per source (manifest `delivery`, ICS-wide defaults in `feeds`):
//! * [`plan`] picks the files a run loads by the load strategy (`latest`, `all`,
//!   `incremental` against the [`ledger`]), with each file's content hash and extract
//!   date, and checks each delivery before it is read ([`inspect`]: header drift, a last
//!   row cut short, trailer rows and control files);
//! * [`check_counts`] and [`row_change`] check the rows read against the control totals
//!   and against the previous good load;
//! * [`outcome`] settles a source: publish, carry forward, publish empty or fail the run;
//! * [`carry`] keeps the last good data of a source in the new run when its delivery is
//!   missing or failed, and adds new files to the data of an `incremental` source.
//!
//! What this decided for a source is its [`DeliveryRecord`], part of `run.json`.

pub mod carry;
pub mod hash;
pub mod inspect;
pub mod ledger;
pub mod outcome;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ics::FeedDefaults;
use crate::manifest::model::{ControlTotals, ExtractDate, LoadStrategy, OnProblem};
use crate::validate::ResolvedSource;

pub use inspect::Inspected;
pub use ledger::{Ledger, LedgerEntry};

/// A problem with the delivery state that stops the run (nothing is published).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{path}: {message}")]
    Ledger { path: String, message: String },
    #[error("{0}")]
    Io(String),
}

/// The delivery settings of one source, ICS defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub load: LoadStrategy,
    pub extract_date: Option<ExtractDate>,
    pub on_missing: OnProblem,
    pub on_failure: OnProblem,
    pub max_carry_forward_age: Option<u32>,
    pub max_row_change: Option<f64>,
    pub control: Option<ControlTotals>,
}

impl Settings {
    pub fn of(src: &ResolvedSource, ics: &FeedDefaults) -> Settings {
        let d = &src.delivery;
        Settings {
            load: d.load.unwrap_or_default(),
            extract_date: d.extract_date.clone(),
            on_missing: d.on_missing.or(ics.on_missing).unwrap_or_default(),
            on_failure: d.on_failure.or(ics.on_failure).unwrap_or_default(),
            max_carry_forward_age: d.max_carry_forward_age.or(ics.max_carry_forward_age),
            max_row_change: d.max_row_change.or(ics.max_row_change),
            control: d.control.clone(),
        }
    }
}

/// A file of a source that a run loaded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    /// Path relative to the landing zone.
    pub file: String,
    /// SHA-256 of the file as delivered (hex).
    pub sha256: String,
    pub bytes: u64,
    /// YYYY-MM-DD, when the source declares `extract_date`.
    pub extract_date: Option<String>,
    /// Rows read from the file (unreadable rows included).
    #[serde(default)]
    pub rows: Option<u64>,
    /// Data rows the trailer row or control file says the file holds.
    #[serde(default)]
    pub expected_rows: Option<u64>,
}

/// Why a matching file was not loaded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `latest`: a newer extract of the source is in the landing zone.
    Superseded,
    /// `incremental`: the same content was ingested before (a re-sent file).
    AlreadyIngested,
    /// `incremental`: a file of this name was ingested with different content.
    ChangedSinceIngested,
}

/// A matching file a run did not load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SkippedFile {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub extract_date: Option<String>,
    pub reason: SkipReason,
    /// Human explanation (which newer file, which run ingested it).
    pub detail: String,
}

/// A load whose data a source's outputs hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoodLoad {
    pub run_id: String,
    pub reference_date: String,
    /// Newest extract date of the load's files, when known.
    pub extract_date: Option<String>,
    /// Rows the load delivered (read minus exact duplicates).
    pub rows: u64,
}

impl GoodLoad {
    /// The date the load's data is as of: its newest extract date, else its run's reference date.
    pub fn as_of(&self) -> &str {
        self.extract_date.as_deref().unwrap_or(&self.reference_date)
    }
}

/// Why a source's data was carried forward.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CarryReason {
    /// No file matched the source's path.
    Missing,
    /// The source failed (see its `failure`).
    Failed,
}

/// The last good data of a source, kept in `current` by a run that could not replace it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CarriedForward {
    /// The run that loaded the data.
    pub from_run: String,
    pub reason: CarryReason,
    /// Date the data is as of (extract date, else reference date of `from_run`).
    pub as_of: String,
    /// Days from `as_of` to this run's reference date.
    pub age_days: i64,
    /// Rows of that load.
    pub rows: u64,
    /// Parquet files linked into this run.
    pub files: usize,
}

/// The row count of a load against the previous good load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RowChange {
    pub previous_run: String,
    pub previous_rows: u64,
    pub rows: u64,
    /// (rows − previous_rows) / previous_rows; null when the previous load was empty.
    pub change: Option<f64>,
}

/// What the delivery logic decided for a source (part of its `run.json` record).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DeliveryRecord {
    /// `latest`, `all` or `incremental`.
    pub load: Option<LoadStrategy>,
    pub files_ingested: Vec<FileRecord>,
    pub files_skipped: Vec<SkippedFile>,
    /// Exact duplicate rows across files, collapsed before rules ran.
    pub rows_duplicate: u64,
    pub row_change: Option<RowChange>,
    pub carried_forward: Option<CarriedForward>,
    /// The load whose data the source's outputs in this run hold (this run's, or a
    /// carried-forward one); null when they hold nothing.
    pub good_load: Option<GoodLoad>,
    /// The previous good load this run compared with (kept so a rerun decides the same).
    pub baseline: Option<GoodLoad>,
}

impl DeliveryRecord {
    /// One line for the run summary: carried-forward data, skipped files, duplicates.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.carried_forward {
            out.push_str(&format!(
                " [carried forward from run {} ({} rows as of {}, {} days old)]",
                c.from_run, c.rows, c.as_of, c.age_days
            ));
        }
        if !self.files_skipped.is_empty() {
            out.push_str(&format!(" [{} file(s) skipped]", self.files_skipped.len()));
        }
        if self.rows_duplicate > 0 {
            out.push_str(&format!(
                " [{} duplicate rows collapsed]",
                self.rows_duplicate
            ));
        }
        out
    }
}

/// What a run does with one source, decided before reading it.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub ingest: Vec<Inspected>,
    pub skipped: Vec<SkippedFile>,
    /// No file matched the path.
    pub missing: bool,
    /// The delivery fails before it is read (drift, cut short, changed re-delivery, …).
    pub failure: Option<String>,
}

impl Plan {
    pub fn paths(&self) -> Vec<PathBuf> {
        self.ingest.iter().map(|f| f.path.clone()).collect()
    }
    /// File (display name) → extract date, for lineage.
    pub fn extract_dates(&self) -> BTreeMap<String, chrono::NaiveDate> {
        self.ingest
            .iter()
            .filter_map(|f| Some((f.file.clone(), f.extract_date?)))
            .collect()
    }
    /// Newest extract date of the files loaded.
    pub fn newest_extract_date(&self) -> Option<String> {
        self.ingest
            .iter()
            .filter_map(|f| f.extract_date)
            .max()
            .map(|d| d.to_string())
    }
    /// Whether exact duplicates across files are collapsed.
    pub fn collapses_duplicates(&self, s: &Settings) -> bool {
        s.load != LoadStrategy::Latest && self.ingest.len() > 1
    }
    /// The run.json records of the files loaded, with rows read per file. It waits for
    /// the files' hashes; a file that could no longer be read is an error.
    pub fn file_records(&self, rows: &BTreeMap<String, u64>) -> Result<Vec<FileRecord>, String> {
        self.ingest
            .iter()
            .map(|f| {
                Ok(FileRecord {
                    file: f.file.clone(),
                    sha256: f.hash.get()?,
                    bytes: f.bytes,
                    extract_date: f.extract_date.map(|d| d.to_string()),
                    rows: rows.get(&f.file).copied(),
                    expected_rows: f.expected_rows,
                })
            })
            .collect()
    }
}

/// Decide which of `files` a run loads and check each delivery before it is read.
pub fn plan(
    landing: &Path,
    src: &ResolvedSource,
    settings: &Settings,
    files: &[PathBuf],
    ledger: &[LedgerEntry],
) -> Plan {
    let mut plan = Plan {
        missing: files.is_empty(),
        ..Default::default()
    };
    let mut all = Vec::new();
    for f in files {
        match inspect::identify(landing, src, settings, f) {
            Ok(i) => all.push(i),
            Err(e) => {
                plan.failure = Some(e);
                return plan;
            }
        }
    }
    // Hashes are computed on other cores while the run goes on; only `incremental` and
    // the record of a skipped file wait for them.
    hash::in_background(all.iter().map(|f| f.hash.clone()).collect());
    let decided = match settings.load {
        LoadStrategy::All => {
            plan.ingest = all;
            Ok(())
        }
        LoadStrategy::Latest => latest(&mut plan, all),
        LoadStrategy::Incremental => incremental(&mut plan, all, ledger),
    };
    if let Err(e) = decided {
        plan.failure = Some(e);
        return plan;
    }
    for f in &mut plan.ingest {
        if let Err(e) = inspect::check_delivery(src, settings, f) {
            plan.failure = Some(e);
            break;
        }
    }
    plan
}

/// `latest`: load the newest extract, record the others as superseded.
fn latest(plan: &mut Plan, mut all: Vec<Inspected>) -> Result<(), String> {
    all.sort_by(|a, b| (a.extract_date, &a.file).cmp(&(b.extract_date, &b.file)));
    if let Some(newest) = all.pop() {
        for f in all {
            plan.skipped.push(f.skipped(
                SkipReason::Superseded,
                format!("superseded by the newer extract {}", newest.file),
            )?);
        }
        plan.ingest.push(newest);
    }
    Ok(())
}

/// `incremental`: skip files whose content was ingested; flag a known name with new content.
fn incremental(
    plan: &mut Plan,
    files: Vec<Inspected>,
    ledger: &[LedgerEntry],
) -> Result<(), String> {
    let mut flagged = Vec::new();
    for f in files {
        let sha256 = f.hash.get()?;
        if let Some(e) = ledger.iter().find(|e| e.sha256 == sha256) {
            let detail = format!("same content as {} ingested in run {}", e.file, e.run_id);
            plan.skipped
                .push(f.skipped(SkipReason::AlreadyIngested, detail)?);
        } else if let Some(e) = ledger.iter().find(|e| e.file == f.file) {
            let detail = format!(
                "{} was ingested in run {} with sha256 {}; it now has sha256 {}",
                f.file,
                e.run_id,
                short(&e.sha256),
                short(&sha256)
            );
            flagged.push(detail.clone());
            plan.skipped
                .push(f.skipped(SkipReason::ChangedSinceIngested, detail)?);
        } else {
            plan.ingest.push(f);
        }
    }
    if !flagged.is_empty() {
        plan.failure = Some(format!(
            "changed re-delivery: {}; an incremental source ingests each file once: give a new extract a new name, or remove the changed file",
            flagged.join("; ")
        ));
    }
    Ok(())
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// Rows read per file against the trailer row or control file of each file.
pub fn check_counts(plan: &Plan, rows: &BTreeMap<String, u64>) -> Option<String> {
    let wrong: Vec<String> = plan
        .ingest
        .iter()
        .filter_map(|f| {
            let expected = f.expected_rows?;
            let got = rows.get(&f.file).copied().unwrap_or(0);
            (got != expected).then(|| {
                format!(
                    "{}: {got} data rows read, the {} says {expected}",
                    f.file,
                    f.expected_from.unwrap_or("control total")
                )
            })
        })
        .collect();
    (!wrong.is_empty()).then(|| format!("control total mismatch: {}", wrong.join("; ")))
}

/// The change of `rows` against the baseline; a failure when it exceeds `max_row_change`.
pub fn row_change(
    settings: &Settings,
    baseline: Option<&GoodLoad>,
    rows: u64,
) -> (Option<RowChange>, Option<String>) {
    let Some(b) = baseline else {
        return (None, None);
    };
    let change = (b.rows > 0).then(|| (rows as f64 - b.rows as f64) / b.rows as f64);
    let rc = RowChange {
        previous_run: b.run_id.clone(),
        previous_rows: b.rows,
        rows,
        change,
    };
    let failure = match (settings.max_row_change, change) {
        (Some(max), Some(c)) if c.abs() > max => Some(format!(
            "row count changed by {:+.1}% ({rows} rows; the previous good load, run {}, had {}); max_row_change is {:.1}%",
            c * 100.0,
            b.run_id,
            b.rows,
            max * 100.0
        )),
        _ => None,
    };
    (Some(rc), failure)
}

/// Days from `as_of` to `reference_date` (both YYYY-MM-DD; 0 when either does not parse).
pub fn age_days(as_of: &str, reference_date: &str) -> i64 {
    let p = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    match (p(as_of), p(reference_date)) {
        (Some(a), Some(r)) => (r - a).num_days(),
        _ => 0,
    }
}
