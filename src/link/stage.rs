//! `onboard link` as one call: link a published run, write the linkage outputs
//! (`link_map.parquet`, `model.json`, `clerical_review.ndjson`, `summary.json`,
//! `report.html`) and build the spine. `onboard demo` and `onboard refresh` run it too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::ics::{EngineSettings, Ics, LinkageSettings};
use crate::pseudonymise::Key;
use crate::store::write_atomic;

/// Why linking a run did not complete, naming the file or setting.
#[derive(Debug, thiserror::Error)]
pub enum LinkStageError {
    #[error("linkage.postcode_lsoa11: {0}")]
    Lookup(String),
    /// Linking or building the spine failed (the message names the file or table).
    #[error("{0}")]
    Link(String),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What linking a run gave.
#[derive(Debug)]
pub struct LinkedRun {
    pub summary: super::LinkSummary,
    /// `linkage/` of the run's output directory.
    pub dir: PathBuf,
    /// Spine tables and their rows.
    pub spine: Vec<(String, usize)>,
    pub link_secs: f64,
    pub spine_secs: f64,
}

impl LinkedRun {
    pub fn link_map(&self) -> PathBuf {
        self.dir.join("link_map.parquet")
    }
    pub fn spine_dir(&self) -> PathBuf {
        self.dir.join("spine")
    }
}

/// The engine and linkage settings of an ICS file, or the defaults.
pub fn settings(ics: Option<&Ics>) -> (EngineSettings, LinkageSettings) {
    match ics {
        Some(ics) => (ics.file.engine.clone(), ics.linkage_settings()),
        None => Default::default(),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), LinkStageError> {
    write_atomic(path, bytes).map_err(|source| LinkStageError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Link the published run in `out` and build its spine.
pub async fn link_run(
    out: &Path,
    key: &Key,
    ics: Option<&Ics>,
) -> Result<LinkedRun, LinkStageError> {
    let t = Instant::now();
    let (engine, settings) = settings(ics);
    let lookup = match &settings.postcode_lsoa11 {
        Some(p) => Some(
            crate::refdata::load_postcode_lookup(Path::new(p))
                .map_err(|e| LinkStageError::Lookup(e.to_string()))?,
        ),
        None => None,
    };
    let linked = super::link(out, key, &settings, lookup.as_ref())
        .await
        .map_err(LinkStageError::Link)?;
    let dir = out.join("linkage");
    std::fs::create_dir_all(&dir).map_err(|source| LinkStageError::Write {
        path: dir.clone(),
        source,
    })?;
    let queue: String = linked
        .review
        .iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|l| l + "\n")
        .collect();
    write(&dir.join("clerical_review.ndjson"), queue.as_bytes())?;
    write(&dir.join("model.json"), json(&linked.model).as_bytes())?;
    super::write_link_map(&linked.map, &dir.join("link_map.parquet"))
        .map_err(LinkStageError::Link)?;
    let link_secs = t.elapsed().as_secs_f64();
    let spill = dir.join(".spill");
    let ctx = crate::engine::run_context(&engine, &spill, key)
        .map_err(|e| LinkStageError::Link(e.to_string()))?;
    let spine = super::build_spine(
        out,
        Arc::new(linked.map),
        &linked.persons,
        linked.addresses.as_ref(),
        &ctx,
        &settings.survivorship,
    )
    .await
    .map_err(LinkStageError::Link)?;
    let _ = std::fs::remove_dir_all(&spill);
    write(
        &dir.join("report.html"),
        super::report_html(&linked.summary, &linked.model).as_bytes(),
    )?;
    write(&dir.join("summary.json"), json(&linked.summary).as_bytes())?;
    Ok(LinkedRun {
        summary: linked.summary,
        dir,
        spine,
        link_secs,
        spine_secs: t.elapsed().as_secs_f64() - link_secs,
    })
}
