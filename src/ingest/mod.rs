//! Ingest: one source's extracts through its compiled plan into the staged outputs.
//!
//! The scan ([`scan`]) reads the files as text batches with lineage, one DataFusion
//! partition per file; the plan maps and checks them; each output partition is split
//! ([`split`]) into accepted rows (silver, in the canonical schema), identity rows (the
//! identity zone, each distinct identity tuple once: [`identity`]) and quarantined rows
//! with their rule codes and raw values ([`quarantine`]), written as Parquet through
//! [`crate::store`] ([`outputs`]). What was read, accepted, quarantined and sampled is
//! returned as [`Stats`] for the run record; the run stage decides what is
//! published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::canonical::{self, IDENTITY_ENTITY};
use crate::compile::{self, CompiledSource, RunContext};
use crate::validate::ResolvedSource;

pub mod identity;
pub mod outputs;
pub mod quarantine;
pub mod scan;
mod seen;
pub mod split;

use identity::SeenState;
use outputs::{Outputs, Sink, entity_schema, part_dir, writer_props};
use scan::{Rejected, SOURCE_FILE, SOURCE_ROW};
pub use split::{EMERGENCY_ADMISSION_METHODS, Stats, mask};

/// Why a source could not be ingested (it fails the source, not the run).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The engine could not plan or execute the source (an unreadable extract, …).
    #[error(transparent)]
    Engine(#[from] datafusion::common::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An output could not be written (names the file).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// A limit of the ingest that the environment variable `name` may lower (tests, small
/// machines): its value when it parses, else `default`.
pub(crate) fn env_limit<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Failing rows kept per rule for the report.
pub(crate) const SAMPLES_PER_RULE: usize = 5;

/// Where every source of a run is ingested.
pub struct Env<'a> {
    pub ctx: SessionContext,
    pub engine: &'a crate::deploy::EngineChoice,
    /// The run's staging directory (outputs under `silver/`, `identity/`, `quarantine/`).
    pub staging: &'a Path,
    pub landing: &'a Path,
    pub run_ctx: RunContext,
    pub progress: bool,
}

/// The files of one source to ingest.
pub struct Files {
    pub paths: Vec<PathBuf>,
    /// Extract date of each file (display name), for the lineage `extract_date`.
    pub extract_dates: BTreeMap<String, chrono::NaiveDate>,
    /// Collapse exact duplicate rows across files (the first by file and row is kept).
    pub dedup: bool,
}

/// What streaming a source through its plan gave.
pub struct Streamed {
    pub stats: Stats,
    pub rejected: Vec<Rejected>,
    /// Rows read into batches per file (before duplicates were collapsed).
    pub scanned: BTreeMap<String, u64>,
}

/// Register the scan of `plan`'s files under the source's table name (exact duplicate
/// rows across files collapsed when `dedup`: the first by file and row is kept).
async fn register_scan(
    env: &Env<'_>,
    s: &ResolvedSource,
    c: &CompiledSource,
    files: &Files,
) -> Result<(scan::RejectedRows, scan::RowCounts), IngestError> {
    let rejected: scan::RejectedRows = Arc::new(Mutex::new(Vec::new()));
    let counts: scan::RowCounts = Arc::new(Mutex::new(BTreeMap::new()));
    let table = scan::table(
        env.landing,
        s,
        &files.paths,
        rejected.clone(),
        counts.clone(),
        env.ctx.copied_config().target_partitions(),
    )?;
    if !files.dedup {
        crate::deploy::register_scan(env.engine, &env.ctx, c.table.as_str(), table, env.staging)
            .await
            .map_err(IngestError::Other)?;
        return Ok((rejected, counts));
    }
    let raw = format!("{}__files", c.table);
    crate::deploy::register_scan(env.engine, &env.ctx, raw.as_str(), table, env.staging)
        .await
        .map_err(IngestError::Other)?;
    let cols: Vec<String> = s.columns.iter().map(|x| compile::ident(x)).collect();
    let sql = format!(
        "SELECT {cols}, {file}, {row} FROM (SELECT *, row_number() OVER (PARTITION BY {cols} ORDER BY {file}, {row}) AS \"__copy\" FROM {raw}) AS numbered WHERE \"__copy\" = 1",
        cols = cols.join(", "),
        file = compile::ident(SOURCE_FILE),
        row = compile::ident(SOURCE_ROW),
        raw = compile::ident(&raw),
    );
    let view = env.ctx.sql(&sql).await?;
    env.ctx.register_table(c.table.as_str(), view.into_view())?;
    Ok((rejected, counts))
}

/// Stream a source through its compiled plan, one task per partition, into the staged
/// outputs; an error names the provider and source.
pub async fn stream_source(
    env: &Env<'_>,
    s: &ResolvedSource,
    c: &CompiledSource,
    files: &Files,
) -> Result<Streamed, String> {
    let (rejected, counts) = register_scan(env, s, c, files)
        .await
        .map_err(|e| e.to_string())?;
    let result = stream_partitions(env, s, c, files).await;
    let _ = env.ctx.deregister_table(c.table.as_str());
    let _ = env
        .ctx
        .deregister_table(format!("{}__files", c.table).as_str());
    let stats = result.map_err(|e| format!("{}/{}: {e}", c.provider, c.source))?;
    let rejected: Vec<Rejected> = rejected.lock().map(|r| r.clone()).unwrap_or_default();
    let scanned = counts.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Streamed {
        stats,
        rejected,
        scanned,
    })
}

async fn stream_partitions(
    env: &Env<'_>,
    s: &ResolvedSource,
    c: &CompiledSource,
    files: &Files,
) -> Result<Stats, IngestError> {
    let model = canonical::model();
    let is_identity_entity = s.entity.name == IDENTITY_ENTITY;
    let outputs = Arc::new(Outputs {
        seen_identities: (!is_identity_entity && !s.identity.is_empty()).then(|| {
            Mutex::new(SeenState::new(
                &env.staging.join("spill"),
                c,
                entity_schema(model.identity(), true),
            ))
        }),
        silver: (!is_identity_entity).then(|| (s.entity.clone(), entity_schema(&s.entity, false))),
        identity: (is_identity_entity || !s.identity.is_empty())
            .then(|| entity_schema(model.identity(), true)),
        quarantine: quarantine::quarantine_schema(),
        extract_dates: files.extract_dates.clone(),
    });
    let bar = progress_bar(
        env.progress,
        &format!("{}/{}", c.provider, c.source),
        &files.paths,
    );
    let df = env.ctx.sql(&c.sql).await?;
    let streams = df.execute_stream_partitioned().await?;
    let c = Arc::new(c.clone());
    let mut handles = Vec::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let job = PartitionJob {
            c: c.clone(),
            outputs: outputs.clone(),
            staging: env.staging.to_path_buf(),
            run_id: env.run_ctx.run_id.clone(),
            bar: bar.clone(),
            name: format!("part-{i:03}.parquet"),
        };
        handles.push(tokio::spawn(job.run(stream)));
    }
    let mut stats = Stats {
        hits: vec![0; c.rules.len()],
        ..Default::default()
    };
    let mut error = None;
    for h in handles {
        match h.await {
            Ok(Ok(s)) => stats.merge(s),
            Ok(Err(e)) => error = Some(e.to_string()),
            Err(e) => error = Some(e.to_string()),
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(e) = error {
        return Err(IngestError::Other(e));
    }
    settle_identities(env, &c, outputs)?;
    // Partitions each keep their first failing rows; the smallest row numbers overall
    // are among them, so sorting and keeping the first few per rule is deterministic.
    stats.samples.sort_by(|a, b| {
        (&a.rule, &a.source_file, a.source_row).cmp(&(&b.rule, &b.source_file, b.source_row))
    });
    let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
    stats.samples.retain(|x| {
        let n = per_rule.entry(x.rule.clone()).or_default();
        *n += 1;
        *n <= SAMPLES_PER_RULE
    });
    Ok(stats)
}

/// Write the identity rows whose decision was deferred (the identity set spilled).
fn settle_identities(
    env: &Env<'_>,
    c: &CompiledSource,
    outputs: Arc<Outputs>,
) -> Result<(), IngestError> {
    let Ok(outputs) = Arc::try_unwrap(outputs) else {
        return Err(IngestError::Other("identity outputs still in use".into()));
    };
    let (Some(state), Some(schema)) = (outputs.seen_identities, outputs.identity) else {
        return Ok(());
    };
    let state = state
        .into_inner()
        .map_err(|_| IngestError::Other("identity set poisoned".into()))?;
    let dir = part_dir(
        env.staging,
        "identity",
        Some(IDENTITY_ENTITY),
        &c.provider,
        &c.source,
    );
    let mut sink = Sink::new(
        dir.join("part-deferred.parquet"),
        schema,
        writer_props(c, &env.run_ctx.run_id),
    );
    state.settle(&mut sink, &c.identity)?;
    Ok(sink.close()?)
}

/// One output partition of a source: its stream split into silver, identity and quarantine.
struct PartitionJob {
    c: Arc<CompiledSource>,
    outputs: Arc<Outputs>,
    staging: PathBuf,
    run_id: String,
    bar: Option<indicatif::ProgressBar>,
    name: String,
}

impl PartitionJob {
    async fn run(
        self,
        mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    ) -> Result<Stats, IngestError> {
        let (c, outputs, staging, name) = (&self.c, &self.outputs, &self.staging, &self.name);
        let props = writer_props(c, &self.run_id);
        let mut silver = outputs.silver.as_ref().map(|(e, sc)| {
            Sink::new(
                part_dir(staging, "silver", Some(&e.name), &c.provider, &c.source).join(name),
                sc.clone(),
                props.clone(),
            )
        });
        let mut identity = outputs.identity.as_ref().map(|sc| {
            Sink::new(
                part_dir(
                    staging,
                    "identity",
                    Some(IDENTITY_ENTITY),
                    &c.provider,
                    &c.source,
                )
                .join(name),
                sc.clone(),
                props.clone(),
            )
        });
        let mut quarantine = Sink::new(
            part_dir(staging, "quarantine", None, &c.provider, &c.source).join(name),
            outputs.quarantine.clone(),
            props.clone(),
        );
        let mut stats = Stats {
            hits: vec![0; c.rules.len()],
            ..Default::default()
        };
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let n = batch.num_rows() as u64;
            split::split_batch(
                c,
                outputs,
                &batch,
                &mut stats,
                silver.as_mut(),
                identity.as_mut(),
                &mut quarantine,
            )?;
            if let Some(b) = &self.bar {
                b.inc(n);
            }
        }
        if let Some(s) = silver {
            s.close()?;
        }
        if let Some(s) = identity {
            s.close()?;
        }
        quarantine.close()?;
        Ok(stats)
    }
}

/// Unreadable rows go to quarantine too.
pub fn write_unreadable(
    env: &Env<'_>,
    c: &CompiledSource,
    rejected: &[Rejected],
) -> Result<(), IngestError> {
    if rejected.is_empty() {
        return Ok(());
    }
    let schema = quarantine::quarantine_schema();
    let mut sink = Sink::new(
        part_dir(env.staging, "quarantine", None, &c.provider, &c.source)
            .join("part-unreadable.parquet"),
        schema.clone(),
        writer_props(c, &env.run_ctx.run_id),
    );
    let batch = quarantine::rejected_batch(c, rejected, &schema, &env.run_ctx.run_id)?;
    sink.write(&batch)?;
    Ok(sink.close()?)
}

fn progress_bar(enabled: bool, name: &str, files: &[PathBuf]) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} {human_pos} rows ({per_sec}) {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(format!("{name} ({:.1} MB)", bytes as f64 / 1e6));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}
