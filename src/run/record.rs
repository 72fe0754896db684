//! `run.json` as types: the record of a run, of each source, its rule hits and masked
//! samples. The data-quality report reads these, so they depend on nothing of the run
//! (a sample of a failing row is the ingest stage's [`Sample`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::feeds;
pub use crate::feeds::outcome::SourceStatus;
pub use crate::ingest::split::Sample;

/// One rule's hits in a source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleHits {
    pub rule: String,
    pub code: String,
    pub category: String,
    pub on_fail: String,
    pub implicit: bool,
    pub rows: u64,
    pub description: String,
}

/// Per-source record in `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceRecord {
    pub provider: String,
    pub source: String,
    pub entity: String,
    pub status: SourceStatus,
    pub failure: Option<String>,
    pub files: Vec<String>,
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rows_quarantined: u64,
    /// Quarantined because the row could not be read (ragged, undecodable).
    pub rows_unreadable: u64,
    /// Accepted with at least one warning.
    pub rows_warned: u64,
    /// `rows_read == rows_accepted + rows_quarantined + rows_duplicate`.
    pub reconciled: bool,
    pub quarantine_rate: f64,
    pub rule_hits: Vec<RuleHits>,
    /// Field → share of rows read with a value (after mapping).
    pub completeness: BTreeMap<String, f64>,
    pub samples: Vec<Sample>,
    pub manifest_hash: String,
    /// Load strategy, files ingested and skipped, duplicates, row change, carry-forward.
    #[serde(flatten)]
    pub delivery: feeds::DeliveryRecord,
}

/// A run's status in `run.json` (a run that cannot publish is an error, not a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every source published.
    Succeeded,
    /// Some sources failed; the others published.
    Partial,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `run.json`: the machine-readable record of a run (see docs/run-json.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub onboard_version: String,
    pub ics: String,
    pub reference_date: String,
    pub status: RunStatus,
    pub key_fingerprint: String,
    pub demo_key: bool,
    pub started_at: String,
    pub finished_at: String,
    pub sources: Vec<SourceRecord>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rows_quarantined: u64,
    pub sources: usize,
    pub sources_failed: usize,
    /// Exact duplicate rows collapsed, over every source.
    #[serde(default)]
    pub rows_duplicate: u64,
    /// Sources with no input file.
    #[serde(default)]
    pub sources_missing: usize,
    /// Sources whose last good data was carried forward.
    #[serde(default)]
    pub sources_carried_forward: usize,
}
