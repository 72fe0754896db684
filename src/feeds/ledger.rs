//! The ledger of ingested files: every file a published run loaded, by content hash,
//! kept in each run directory (`runs/<run_id>/ledger.json`, `OUT/ledger.json` through
//! `current`), so it is published atomically with the data it describes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FeedError, FileRecord};

/// File name of the ledger in a run directory.
pub const FILE: &str = "ledger.json";
/// Version of the ledger format.
pub const VERSION: u32 = 1;

/// Every file ingested into the data `current` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    pub ledger_version: u32,
    /// The ICS id the ledger belongs to.
    pub ics: String,
    /// The landing zone the files came from (absolute).
    pub landing: String,
    pub entries: Vec<LedgerEntry>,
}

/// One ingested file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    pub provider: String,
    pub source: String,
    /// Path relative to the landing zone.
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub extract_date: Option<String>,
    pub rows: Option<u64>,
    /// The run that ingested it.
    pub run_id: String,
}

fn landing_text(landing: &Path) -> String {
    std::fs::canonicalize(landing)
        .unwrap_or_else(|_| landing.to_path_buf())
        .to_string_lossy()
        .replace('\\', "/")
}

impl Ledger {
    /// The ledger of the run in `dir` (the current run), checked against this run's ICS
    /// and landing zone. Entries of `run_id` itself are dropped: a rerun of the same
    /// inputs decides as the first run did.
    ///
    /// A ledger written for another ICS or landing zone is an error only when an
    /// `incremental` source (`is_incremental(provider, source)`) has entries in it: its
    /// skip decisions would be made against other files. Otherwise it starts afresh.
    pub fn load(
        dir: Option<&Path>,
        ics: &str,
        landing: &Path,
        run_id: &str,
        is_incremental: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Ledger, FeedError> {
        let fresh = Ledger {
            ledger_version: VERSION,
            ics: ics.to_string(),
            landing: landing_text(landing),
            entries: Vec::new(),
        };
        let Some(path) = dir.map(|d| d.join(FILE)).filter(|p| p.is_file()) else {
            return Ok(fresh);
        };
        let shown = path.display().to_string();
        let err = |message: String| FeedError::Ledger {
            path: shown.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let mut l: Ledger = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "the ledger does not parse ({e}); restore it from an older runs/<id>/{FILE}, or use a new --out to start afresh"
            ))
        })?;
        if l.ledger_version != VERSION {
            return Err(err(format!(
                "ledger_version {} is not {VERSION}",
                l.ledger_version
            )));
        }
        let mismatch = if l.ics != ics {
            Some(format!(
                "the ledger belongs to ICS `{}`, this run is ICS `{ics}`; use a separate --out per ICS",
                l.ics
            ))
        } else if l.landing != fresh.landing {
            Some(format!(
                "the ledger does not match the landing zone: it records files from {}, this run reads {}; use a separate --out per landing zone",
                l.landing, fresh.landing
            ))
        } else {
            None
        };
        if let Some(m) = mismatch {
            if l.entries
                .iter()
                .any(|e| is_incremental(&e.provider, &e.source))
            {
                return Err(err(m));
            }
            return Ok(fresh);
        }
        l.entries.retain(|e| e.run_id != run_id);
        Ok(l)
    }

    /// The files ingested for one source.
    pub fn of(&self, provider: &str, source: &str) -> Vec<LedgerEntry> {
        self.entries
            .iter()
            .filter(|e| e.provider == provider && e.source == source)
            .cloned()
            .collect()
    }

    /// Record the files a published source loaded in `run_id`.
    pub fn record(&mut self, provider: &str, source: &str, files: &[FileRecord], run_id: &str) {
        for f in files {
            self.entries.retain(|e| {
                !(e.provider == provider
                    && e.source == source
                    && e.file == f.file
                    && e.sha256 == f.sha256)
            });
            self.entries.push(LedgerEntry {
                provider: provider.to_string(),
                source: source.to_string(),
                file: f.file.clone(),
                sha256: f.sha256.clone(),
                bytes: f.bytes,
                extract_date: f.extract_date.clone(),
                rows: f.rows,
                run_id: run_id.to_string(),
            });
        }
    }

    /// Forget what a source ingested (its data is no longer in `current`).
    pub fn forget(&mut self, provider: &str, source: &str) {
        self.entries
            .retain(|e| !(e.provider == provider && e.source == source));
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
