//! Running an ICS: scan, map, check, split and write every source; reconcile; publish
//! atomically.
//!
//! Every row read is accounted for: accepted into silver (analytics) or identity tables,
//! or quarantined with its rule codes, reasons, file, row number and raw values
//! (`rows_read = rows_accepted + rows_quarantined` per source, recorded in `run.json`).
//! A run writes into a staging directory; publishing renames it into `runs/<run_id>`
//! and swaps the `current` symlink, so a crash at any point leaves the previous outputs
//! intact. The run id is a hash of the manifests, the input files (path, size, mtime),
//! the reference date and the key fingerprint: the same inputs give the same run id
//! and the same rows.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, StringBuilder,
    new_null_array,
};
use datafusion::arrow::compute::{self, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::canonical::{self, Entity, IDENTITY_ENTITY};
use crate::compile::{self, CompiledSource, RunContext};
use crate::feeds;
use crate::ics::Ics;
use crate::manifest::model::{LoadStrategy, OnFail};
use crate::pseudonymise::Key;
use crate::scan::{self, Rejected, SOURCE_FILE, SOURCE_ROW};
use crate::store::write_atomic;
use crate::validate::{ResolvedManifest, ResolvedSource, rules};

pub mod record;
mod seen;
pub mod staging;

pub use record::{RuleHits, RunRecord, Sample, SourceRecord, Totals};

/// Admission methods that make a spell an emergency admission (NHS Data Dictionary).
pub const EMERGENCY_ADMISSION_METHODS: &[&str] =
    &["21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D"];
/// Failing rows kept per rule for the report.
const SAMPLES_PER_RULE: usize = 5;
/// Runs kept under `runs/` after publishing.
const RUNS_KEPT: usize = 3;

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
#[derive(Debug)]
pub enum RunError {
    /// The manifests have errors: the diagnostics (sorted) and the files checked.
    Invalid(
        Vec<crate::diagnostics::Diagnostic>,
        crate::diagnostics::Summary,
    ),
    /// The run itself failed (threshold breach with fail_run, unreadable extract, …).
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Invalid(d, files) => write!(
                f,
                "manifests are invalid:\n{}",
                crate::diagnostics::render_human(d, files)
            ),
            RunError::Failed(s) => write!(f, "{s}"),
        }
    }
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
            let files = scan::source_files(&s.landing, src).map_err(fail)?;
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
    let previous = read_previous(&out);
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
    let run_dir = publish(&out, &staging, &run_id).map_err(fail)?;
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
        totals.sources_failed += usize::from(r.status == "failed");
        totals.sources_missing += usize::from(r.status == "missing");
        totals.sources_carried_forward += usize::from(r.delivery.carried_forward.is_some());
    }
    RunRecord {
        run_id,
        onboard_version: env!("CARGO_PKG_VERSION").into(),
        ics: s.ics.file.ics.id.clone(),
        reference_date: s.reference_date.clone(),
        status: if totals.sources_failed > 0 {
            "partial".into()
        } else {
            "succeeded".into()
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

/// Where every source of a run is processed.
struct SourceEnv<'a> {
    ctx: SessionContext,
    engine: &'a crate::deploy::EngineChoice,
    staging: &'a Path,
    landing: &'a Path,
    run_ctx: RunContext,
    progress: bool,
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
    let env = SourceEnv {
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
        let baseline = baseline(previous, run_id, &m.provider.id, &s.id);
        let plan = feeds::plan(
            env.landing,
            s,
            &settings,
            files,
            &ledger.of(&m.provider.id, &s.id),
        );
        let mut rec = if plan.missing || plan.failure.is_some() {
            unloaded_record(m, s, &plan)
        } else {
            process_source(&env, m, s, &plan, &settings).await?
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

/// What `current` held for a source before this run (for a rerun of the same inputs:
/// what it held before the first of them).
fn baseline(
    previous: Option<&RunRecord>,
    run_id: &str,
    provider: &str,
    source: &str,
) -> Option<feeds::GoodLoad> {
    let p = previous?;
    let r = p
        .sources
        .iter()
        .find(|r| r.provider == provider && r.source == source)?;
    if p.run_id == run_id {
        r.delivery.baseline.clone()
    } else if r.delivery.load.is_none() && r.status == "published" {
        // A run.json written before deliveries were recorded: its published data.
        Some(feeds::GoodLoad {
            run_id: p.run_id.clone(),
            reference_date: p.reference_date.clone(),
            extract_date: None,
            rows: r.rows_read,
        })
    } else {
        r.delivery.good_load.clone()
    }
}

/// The record of a source that was not read: no file, or its delivery failed its checks.
fn unloaded_record(m: &ResolvedManifest, s: &ResolvedSource, plan: &feeds::Plan) -> SourceRecord {
    let (status, failure) = match &plan.failure {
        Some(f) => ("failed", Some(f.clone())),
        None => ("missing", None),
    };
    SourceRecord {
        provider: m.provider.id.clone(),
        source: s.id.clone(),
        entity: s.entity.name.clone(),
        status: status.into(),
        failure,
        files: Vec::new(),
        rows_read: 0,
        rows_accepted: 0,
        rows_quarantined: 0,
        rows_unreadable: 0,
        rows_warned: 0,
        reconciled: true,
        quarantine_rate: 0.0,
        rule_hits: Vec::new(),
        completeness: BTreeMap::new(),
        samples: Vec::new(),
        manifest_hash: m.hash.clone(),
        delivery: feeds::DeliveryRecord {
            files_ingested: plan.file_records(&BTreeMap::new()),
            files_skipped: plan.skipped.clone(),
            ..Default::default()
        },
    }
}

/// The previous published run, for "change since the previous run".
fn read_previous(out: &Path) -> Option<RunRecord> {
    let text = std::fs::read_to_string(out.join("current").join("run.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Move the staged run into place and point `current` (and the top-level links) at it.
fn publish(out: &Path, staging: &Path, run_id: &str) -> std::io::Result<PathBuf> {
    let runs = out.join("runs");
    std::fs::create_dir_all(&runs)?;
    let target = runs.join(run_id);
    if target.exists() {
        // The same inputs ran before: replace that run's files with this identical run.
        let trash = out
            .join(".staging")
            .join(format!("replaced-{run_id}-{}", std::process::id()));
        std::fs::rename(&target, &trash)?;
        std::fs::rename(staging, &target)?;
        let _ = std::fs::remove_dir_all(&trash);
    } else {
        std::fs::rename(staging, &target)?;
    }
    swap_symlink(&out.join("current"), &Path::new("runs").join(run_id))?;
    for name in [
        "run.json",
        feeds::ledger::FILE,
        "silver",
        "identity",
        "quarantine",
        "reports",
    ] {
        let link = out.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            swap_symlink(&link, &Path::new("current").join(name))?;
        }
    }
    prune_runs(&runs, run_id);
    Ok(target)
}

#[cfg(unix)]
fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let tmp = link.with_extension(format!("tmp-link-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

#[cfg(not(unix))]
fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(link);
    std::fs::write(link, target.to_string_lossy().as_bytes())
}

fn prune_runs(runs: &Path, keep: &str) {
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort();
    while dirs.len() >= RUNS_KEPT {
        let (_, p) = dirs.remove(0);
        let _ = std::fs::remove_dir_all(p);
    }
}

/// Partition directory of one source's outputs.
fn part_dir(
    base: &Path,
    kind: &str,
    entity: Option<&str>,
    provider: &str,
    source: &str,
) -> PathBuf {
    let mut p = base.join(kind);
    if let Some(e) = entity {
        p = p.join(e);
    }
    p.join(format!("provider={provider}"))
        .join(format!("source={source}"))
}

/// Schemas of what one source writes.
/// The identity tuples a source has written, and the rows waiting for an exact
/// decision (see [`seen`]).
struct SeenState {
    set: seen::SeenSet,
    /// Rows whose tuple may have been written before a spill (Parquet in the spill dir).
    deferred: Sink,
    deferred_rows: usize,
}

/// Fingerprints kept in memory per source before the identity set spills (about 36 MB);
/// `ONBOARD_IDENTITY_SET_LIMIT` lowers it (tests, small machines).
const SEEN_IN_MEMORY: usize = 1 << 20;

fn seen_limit() -> usize {
    std::env::var("ONBOARD_IDENTITY_SET_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SEEN_IN_MEMORY)
}

impl SeenState {
    fn new(spill: &Path, c: &CompiledSource, schema: SchemaRef) -> SeenState {
        let dir = spill.join(format!("identity-{}-{}", c.provider, c.source));
        SeenState {
            set: seen::SeenSet::new(dir.join("runs"), seen_limit()),
            deferred: Sink::new(
                dir.join("deferred.parquet"),
                schema,
                WriterProperties::builder().build(),
            ),
            deferred_rows: 0,
        }
    }

    /// Decide the deferred rows and write the new ones to the identity zone.
    fn settle(self, out: &mut Sink, identity_fields: &[String]) -> datafusion::common::Result<()> {
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let SeenState {
            set,
            deferred,
            deferred_rows,
        } = self;
        let path = deferred.path.clone();
        deferred.close()?;
        tracing::debug!(deferred_rows, spills = set.spills(), "identity set settled");
        if deferred_rows == 0 {
            return Ok(());
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?.build()?;
        for batch in reader {
            let batch = batch?;
            let fps = fingerprints(&identity_columns(&batch, identity_fields), batch.num_rows())?;
            let keep: BooleanArray = set.resolve(&fps)?.into_iter().map(Some).collect();
            out.write(&filter_record_batch(&batch, &keep)?)?;
        }
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}

struct Outputs {
    /// Identity tuples already written (analytics sources write each distinct tuple
    /// once: one person has many events).
    seen_identities: Option<Mutex<SeenState>>,
    /// Analytics output (None for sources that map to person_identity).
    silver: Option<(Arc<Entity>, SchemaRef)>,
    /// Identity output (when the source carries identifiers).
    identity: Option<SchemaRef>,
    quarantine: SchemaRef,
    /// Extract date of each file (display name), for the lineage `extract_date`.
    extract_dates: BTreeMap<String, chrono::NaiveDate>,
}

fn extras() -> Vec<Field> {
    vec![
        Field::new("provider_id", DataType::Utf8, false),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("record_key", DataType::Utf8, true),
        Field::new("manifest_hash", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
    ]
}

fn entity_schema(e: &Entity, identity: bool) -> SchemaRef {
    let mut fields: Vec<Field> = e
        .fields
        .iter()
        .map(|f| Field::new(&f.name, f.ty.arrow(), true))
        .collect();
    if identity {
        fields.push(Field::new("person_key", DataType::Utf8, true));
        fields.push(Field::new("source_file", DataType::Utf8, true));
        fields.push(Field::new("source_row", DataType::Int64, true));
    }
    // An entity whose first field is its own id (event_id, …) holds the record key there.
    let own_id = e
        .fields
        .first()
        .is_some_and(|f| f.derived && f.name.ends_with("_id"));
    fields.extend(
        extras()
            .into_iter()
            .filter(|f| !(own_id && f.name() == "record_key")),
    );
    if !identity {
        fields.push(Field::new("dq_warnings", DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// The quarantine table schema (one schema for every source).
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("provider_id", DataType::Utf8, false),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_row", DataType::Int64, false),
        Field::new("rule_ids", DataType::Utf8, false),
        Field::new("rule_codes", DataType::Utf8, false),
        Field::new("reasons", DataType::Utf8, false),
        Field::new("raw_row", DataType::Utf8, true),
        Field::new("manifest_hash", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
    ]))
}

/// Columns that are (nearly) unique per row: dictionary encoding only costs time there.
const HIGH_CARDINALITY: &[&str] = &[
    "record_key",
    "person_key",
    "source_record_id",
    "source_row",
    "raw_row",
    "reasons",
    "nhs_number",
    "local_patient_id",
    "given_name",
    "family_name",
    "value_numeric",
    "event_id",
    "diagnosis_id",
    "procedure_id",
    "medication_id",
    "observation_id",
    "service_id",
    "start_ts",
    "end_ts",
    "cost_amount",
    // Free text and addresses: distinct per row in patient-level extracts, so a
    // dictionary only costs time before the writer gives it up.
    "value_text",
    "postcode",
];

fn writer_props(c: &CompiledSource, run_id: &str) -> WriterProperties {
    let mut b = WriterProperties::builder();
    for col in HIGH_CARDINALITY {
        b = b.set_column_dictionary_enabled(
            datafusion::parquet::schema::types::ColumnPath::from(*col),
            false,
        );
    }
    b.set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("onboard.manifest_hash".into(), c.manifest_hash.clone()),
            KeyValue::new("onboard.run_id".into(), run_id.to_string()),
            KeyValue::new("onboard.provider".into(), c.provider.clone()),
            KeyValue::new("onboard.source".into(), c.source.clone()),
        ]))
        .build()
}

/// Lazily-created Parquet writer.
struct Sink {
    path: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    writer: Option<ArrowWriter<File>>,
}

impl Sink {
    fn new(path: PathBuf, schema: SchemaRef, props: WriterProperties) -> Self {
        Sink {
            path,
            schema,
            props,
            writer: None,
        }
    }
    fn write(&mut self, batch: &RecordBatch) -> datafusion::common::Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            if let Some(d) = self.path.parent() {
                std::fs::create_dir_all(d)?;
            }
            let f = File::create(&self.path)?;
            self.writer = Some(ArrowWriter::try_new(
                f,
                self.schema.clone(),
                Some(self.props.clone()),
            )?);
        }
        if let Some(w) = self.writer.as_mut() {
            w.write(batch)?;
        }
        Ok(())
    }
    fn close(self) -> datafusion::common::Result<()> {
        if let Some(w) = self.writer {
            w.close()?;
        }
        Ok(())
    }
}

/// Statistics gathered while streaming one source.
#[derive(Debug, Default, Clone)]
struct Stats {
    rows: u64,
    accepted: u64,
    quarantined: u64,
    warned: u64,
    hits: Vec<u64>,
    non_null: BTreeMap<String, u64>,
    samples: Vec<Sample>,
    failed_by_rule: bool,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.rows += o.rows;
        self.accepted += o.accepted;
        self.quarantined += o.quarantined;
        self.warned += o.warned;
        if self.hits.len() < o.hits.len() {
            self.hits.resize(o.hits.len(), 0);
        }
        for (i, h) in o.hits.iter().enumerate() {
            self.hits[i] += h;
        }
        for (k, v) in o.non_null {
            *self.non_null.entry(k).or_default() += v;
        }
        self.samples.extend(o.samples);
        self.failed_by_rule |= o.failed_by_rule;
    }
}

/// What streaming a source through its plan gave.
struct Streamed {
    stats: Stats,
    rejected: Vec<Rejected>,
    /// Rows read into batches per file (before duplicates were collapsed).
    scanned: BTreeMap<String, u64>,
}

/// Scan, map, check and split one source into the staged outputs.
async fn process_source(
    env: &SourceEnv<'_>,
    m: &ResolvedManifest,
    s: &ResolvedSource,
    plan: &feeds::Plan,
    settings: &feeds::Settings,
) -> Result<SourceRecord, RunError> {
    let c = compile::compile_source(m, s, &env.run_ctx);
    let span = tracing::info_span!("source", provider = %c.provider, source = %c.source);
    let _g = span.enter();
    let dedup = plan.collapses_duplicates(settings);
    let streamed = match stream_source(env, s, &c, plan, dedup).await {
        Ok(x) => x,
        Err(e) => {
            // An extract that cannot be read fails its source, not the run.
            feeds::carry::clear_source(env.staging, &c.entity, &c.provider, &c.source);
            let mut rec = unloaded_record(m, s, plan);
            rec.status = "failed".into();
            rec.failure = Some(e);
            return Ok(rec);
        }
    };
    let Streamed {
        stats,
        rejected,
        scanned,
    } = streamed;
    write_unreadable(env, &c, &rejected)?;
    let unreadable = rejected.len() as u64;
    let scanned_rows: u64 = scanned.values().sum();
    let duplicates = scanned_rows.saturating_sub(stats.rows);
    let rows_read = scanned_rows + unreadable;
    let rows_quarantined = stats.quarantined + unreadable;
    let failure = breach(s, &c, &stats, rows_read, rows_quarantined);
    if let Some(f) = &failure {
        // Nothing of a failed source is published except its quarantine.
        feeds::carry::clear_source(env.staging, &c.entity, &c.provider, &c.source);
        tracing::warn!(provider = %c.provider, source = %c.source, "source failed: {f}");
    }
    let mut per_file = scanned;
    for r in &rejected {
        *per_file.entry(r.file.clone()).or_default() += 1;
    }
    let mut rec = source_record(&c, &stats, rows_read, rows_quarantined, unreadable, failure);
    rec.files = plan.ingest.iter().map(|f| f.file.clone()).collect();
    rec.delivery.files_ingested = plan.file_records(&per_file);
    rec.delivery.files_skipped = plan.skipped.clone();
    rec.delivery.rows_duplicate = duplicates;
    rec.reconciled = rows_read == stats.accepted + rows_quarantined + duplicates;
    Ok(rec)
}

/// Register the scan of `plan`'s files under the source's table name (exact duplicate
/// rows across files collapsed when `dedup`: the first by file and row is kept).
async fn register_scan(
    env: &SourceEnv<'_>,
    s: &ResolvedSource,
    c: &CompiledSource,
    plan: &feeds::Plan,
    dedup: bool,
) -> Result<(scan::RejectedRows, scan::RowCounts), String> {
    let rejected: scan::RejectedRows = Arc::new(Mutex::new(Vec::new()));
    let counts: scan::RowCounts = Arc::new(Mutex::new(BTreeMap::new()));
    let table = scan::table(
        env.landing,
        s,
        &plan.paths(),
        rejected.clone(),
        counts.clone(),
    )
    .map_err(|e| e.to_string())?;
    if !dedup {
        crate::deploy::register_scan(env.engine, &env.ctx, c.table.as_str(), table, env.staging)
            .await?;
        return Ok((rejected, counts));
    }
    let raw = format!("{}__files", c.table);
    crate::deploy::register_scan(env.engine, &env.ctx, raw.as_str(), table, env.staging).await?;
    let cols: Vec<String> = s.columns.iter().map(|x| compile::ident(x)).collect();
    let sql = format!(
        "SELECT {cols}, {file}, {row} FROM (SELECT *, row_number() OVER (PARTITION BY {cols} ORDER BY {file}, {row}) AS \"__copy\" FROM {raw}) AS numbered WHERE \"__copy\" = 1",
        cols = cols.join(", "),
        file = compile::ident(SOURCE_FILE),
        row = compile::ident(SOURCE_ROW),
        raw = compile::ident(&raw),
    );
    let view = env.ctx.sql(&sql).await.map_err(|e| e.to_string())?;
    env.ctx
        .register_table(c.table.as_str(), view.into_view())
        .map_err(|e| e.to_string())?;
    Ok((rejected, counts))
}

/// Stream a source through its compiled plan, one task per partition.
async fn stream_source(
    env: &SourceEnv<'_>,
    s: &ResolvedSource,
    c: &CompiledSource,
    plan: &feeds::Plan,
    dedup: bool,
) -> Result<Streamed, String> {
    let (rejected, counts) = register_scan(env, s, c, plan, dedup).await?;
    let result = stream_partitions(env, s, c, plan).await;
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
    env: &SourceEnv<'_>,
    s: &ResolvedSource,
    c: &CompiledSource,
    plan: &feeds::Plan,
) -> Result<Stats, String> {
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
        quarantine: quarantine_schema(),
        extract_dates: plan.extract_dates(),
    });
    let bar = progress_bar(
        env.progress,
        &format!("{}/{}", c.provider, c.source),
        &plan.paths(),
    );
    let df = env.ctx.sql(&c.sql).await.map_err(|e| e.to_string())?;
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(|e| e.to_string())?;
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
        return Err(e);
    }
    settle_identities(env, &c, outputs).map_err(|e| e.to_string())?;
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
    env: &SourceEnv<'_>,
    c: &CompiledSource,
    outputs: Arc<Outputs>,
) -> datafusion::common::Result<()> {
    let Ok(outputs) = Arc::try_unwrap(outputs) else {
        return Err(datafusion::common::DataFusionError::Execution(
            "identity outputs still in use".into(),
        ));
    };
    let (Some(state), Some(schema)) = (outputs.seen_identities, outputs.identity) else {
        return Ok(());
    };
    let state = state.into_inner().map_err(|_| {
        datafusion::common::DataFusionError::Execution("identity set poisoned".into())
    })?;
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
    sink.close()
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
    ) -> datafusion::common::Result<Stats> {
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
            split_batch(
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
fn write_unreadable(
    env: &SourceEnv<'_>,
    c: &CompiledSource,
    rejected: &[Rejected],
) -> Result<(), RunError> {
    if rejected.is_empty() {
        return Ok(());
    }
    let schema = quarantine_schema();
    let mut sink = Sink::new(
        part_dir(env.staging, "quarantine", None, &c.provider, &c.source)
            .join("part-unreadable.parquet"),
        schema.clone(),
        writer_props(c, &env.run_ctx.run_id),
    );
    let batch = rejected_batch(c, rejected, &schema, &env.run_ctx.run_id).map_err(fail)?;
    sink.write(&batch).map_err(fail)?;
    sink.close().map_err(fail)
}

/// Why a processed source fails its thresholds or `on_fail: fail` rules, if it does.
fn breach(
    s: &ResolvedSource,
    c: &CompiledSource,
    stats: &Stats,
    rows_read: u64,
    rows_quarantined: u64,
) -> Option<String> {
    let rate = share(rows_read, rows_quarantined);
    let mut failure = None;
    if let Some(max) = s.max_quarantine_rate
        && rate > max
    {
        failure = Some(format!(
            "quarantine rate {:.2}% exceeds max_quarantine_rate {:.2}% ({} of {} rows)",
            rate * 100.0,
            max * 100.0,
            rows_quarantined,
            rows_read
        ));
    }
    if let Some(min) = s.min_rows
        && rows_read < min
    {
        failure = Some(format!("{rows_read} rows read; min_rows is {min}"));
    }
    if stats.failed_by_rule {
        let ids: Vec<String> = c
            .rules
            .iter()
            .zip(&stats.hits)
            .filter(|(r, h)| r.rule.on_fail == OnFail::Fail && **h > 0)
            .map(|(r, h)| format!("{} ({} rows)", r.rule.id, h))
            .collect();
        failure = Some(format!(
            "rule(s) with on_fail: fail were broken: {}",
            ids.join(", ")
        ));
    }
    failure
}

/// `part / whole`, 0 when `whole` is 0.
fn share(whole: u64, part: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn source_record(
    c: &CompiledSource,
    stats: &Stats,
    rows_read: u64,
    rows_quarantined: u64,
    unreadable: u64,
    failure: Option<String>,
) -> SourceRecord {
    let rule_hits = c
        .rules
        .iter()
        .zip(&stats.hits)
        .map(|(r, h)| RuleHits {
            rule: r.rule.id.clone(),
            code: r.rule.code.to_string(),
            category: rules::category_name(r.rule.category).to_string(),
            on_fail: match r.rule.on_fail {
                OnFail::Quarantine => "quarantine",
                OnFail::Warn => "warn",
                OnFail::Fail => "fail",
            }
            .to_string(),
            implicit: r.implicit,
            rows: *h,
            description: rule_reason(r),
        })
        .collect();
    let completeness = stats
        .non_null
        .iter()
        .map(|(k, v)| (k.clone(), share(rows_read, *v)))
        .collect();
    SourceRecord {
        provider: c.provider.clone(),
        source: c.source.clone(),
        entity: c.entity.clone(),
        status: if failure.is_some() {
            "failed".into()
        } else {
            "published".into()
        },
        failure,
        files: Vec::new(),
        rows_read,
        rows_accepted: stats.accepted,
        rows_quarantined,
        rows_unreadable: unreadable,
        rows_warned: stats.warned,
        reconciled: false,
        quarantine_rate: share(rows_read, rows_quarantined),
        rule_hits,
        completeness,
        samples: stats.samples.clone(),
        manifest_hash: c.manifest_hash.clone(),
        delivery: Default::default(),
    }
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

fn rule_reason(r: &compile::CompiledRule) -> String {
    if let Some(d) = &r.rule.description {
        return d.clone();
    }
    match &r.rule.check {
        crate::validate::RuleCheck::Expr { sql } => format!("expected: {sql}"),
        _ => rules::RULES
            .iter()
            .find(|d| d.code == r.rule.code)
            .map(|d| d.summary.to_string())
            .unwrap_or_default(),
    }
}

fn col<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

fn const_array(v: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from(vec![v; n]))
}

/// Mask an identifier for display: keep two characters.
pub fn mask(v: &str) -> String {
    let mut out = String::new();
    for (i, ch) in v.chars().enumerate() {
        out.push(if i < 2 || ch == ' ' || ch == '-' {
            ch
        } else {
            '*'
        });
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn split_batch(
    c: &CompiledSource,
    outputs: &Outputs,
    batch: &RecordBatch,
    stats: &mut Stats,
    silver: Option<&mut Sink>,
    identity: Option<&mut Sink>,
    quarantine: &mut Sink,
) -> datafusion::common::Result<()> {
    let n = batch.num_rows();
    stats.rows += n as u64;
    let model = canonical::model();
    let is_identity_entity = c.entity == IDENTITY_ENTITY;
    // Rule outcomes.
    let mut q_mask = BooleanArray::from(vec![false; n]);
    let mut fails: Vec<BooleanArray> = Vec::with_capacity(c.rules.len());
    for (i, r) in c.rules.iter().enumerate() {
        let a = col(batch, &r.column)
            .and_then(|a| a.as_any().downcast_ref::<BooleanArray>())
            .cloned()
            .unwrap_or_else(|| BooleanArray::from(vec![false; n]));
        let hits = a.true_count() as u64;
        stats.hits[i] += hits;
        if hits > 0 {
            if r.rule.on_fail == OnFail::Fail {
                stats.failed_by_rule = true;
            }
            if r.rule.on_fail != OnFail::Warn {
                q_mask = compute::or(&q_mask, &a)?;
            }
            let have = stats.samples.iter().filter(|s| s.rule == r.rule.id).count();
            if have < SAMPLES_PER_RULE {
                for row in (0..n).filter(|j| a.value(*j)).take(SAMPLES_PER_RULE - have) {
                    stats
                        .samples
                        .push(sample(c, batch, r, row, is_identity_entity));
                }
            }
        }
        fails.push(a);
    }
    // Completeness (of mapped values, over every row read).
    for f in &c.mapped {
        if let Some(a) = col(batch, f) {
            *stats.non_null.entry(f.clone()).or_default() += (n - a.null_count()) as u64;
        }
    }
    for f in &c.identity {
        let name = if is_identity_entity {
            f.clone()
        } else {
            format!("id__{f}")
        };
        if let Some(a) = col(batch, &name) {
            *stats.non_null.entry(format!("identity.{f}")).or_default() +=
                (n - a.null_count()) as u64;
        }
    }
    let keep = compute::not(&q_mask)?;
    let quarantined = q_mask.true_count();
    stats.quarantined += quarantined as u64;
    stats.accepted += (n - quarantined) as u64;

    // Warnings on accepted rows.
    let mut warn_text = StringBuilder::with_capacity(n, n * 8);
    for row in 0..n {
        let ids: Vec<&str> = c
            .rules
            .iter()
            .zip(&fails)
            .filter(|(r, a)| r.rule.on_fail == OnFail::Warn && a.value(row))
            .map(|(r, _)| r.rule.id.as_str())
            .collect();
        if ids.is_empty() {
            warn_text.append_null();
        } else {
            warn_text.append_value(ids.join(","));
            if keep.value(row) {
                stats.warned += 1;
            }
        }
    }
    let warn_array: ArrayRef = Arc::new(warn_text.finish());

    if n > quarantined {
        // Project first (no copies), then filter only the output columns.
        let accept = |b: RecordBatch| -> datafusion::common::Result<RecordBatch> {
            if quarantined == 0 {
                Ok(b)
            } else {
                Ok(filter_record_batch(&b, &keep)?)
            }
        };
        if let (Some((entity, schema)), Some(sink)) = (&outputs.silver, silver) {
            let out = project_entity(
                c,
                batch,
                (entity, schema),
                false,
                Some(warn_array.clone()),
                &outputs.extract_dates,
            )?;
            sink.write(&accept(out)?)?;
        }
        if let (Some(schema), Some(sink)) = (&outputs.identity, identity) {
            let out = accept(project_entity(
                c,
                batch,
                (model.identity(), schema),
                !is_identity_entity,
                None,
                &outputs.extract_dates,
            )?)?;
            match &outputs.seen_identities {
                Some(seen) => sink.write(&first_seen(&out, &c.identity, seen)?)?,
                None => sink.write(&out)?,
            }
        }
    }
    if quarantined > 0 {
        let qb = filter_record_batch(batch, &q_mask)?;
        let qfails: Vec<ArrayRef> = fails
            .iter()
            .map(|a| compute::filter(a, &q_mask))
            .collect::<Result<_, _>>()?;
        let out = quarantine_batch(c, &qb, &qfails, &outputs.quarantine)?;
        quarantine.write(&out)?;
    }
    Ok(())
}

/// A 128-bit fingerprint of an identity tuple: two independent multiply-rotate lanes
/// over 8-byte words, each finished with the murmur3 avalanche (collisions are
/// negligible at ICS scale, and the set only decides what is written once).
struct TupleHash {
    a: u64,
    b: u64,
}

impl Default for TupleHash {
    fn default() -> Self {
        TupleHash {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
        }
    }
}

impl TupleHash {
    fn mix(&mut self, w: u64) {
        self.a = (self.a ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
        self.b = (self.b ^ w.rotate_left(32))
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            .rotate_left(31);
    }
    /// One value: its 8-byte words, then the rest with its length (so `ab`+`c` and
    /// `a`+`bc` differ).
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(last) ^ ((bytes.len() as u64) << 56) ^ 0x80);
    }
    fn finish(&self) -> u128 {
        fn fmix(mut k: u64) -> u64 {
            k ^= k >> 33;
            k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
            k ^= k >> 33;
            k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            k ^ (k >> 33)
        }
        ((fmix(self.a) as u128) << 64) | fmix(self.b ^ self.a.rotate_left(17)) as u128
    }
}

/// The 128-bit fingerprint of each row's values in `cols` (nulls and value boundaries
/// marked). Text is hashed as bytes and dates and integers as their binary values, so
/// nothing is formatted per row.
fn fingerprints(cols: &[ArrayRef], n: usize) -> datafusion::common::Result<Vec<u128>> {
    use datafusion::arrow::array::Date32Array;
    let mut hs: Vec<TupleHash> = (0..n).map(|_| TupleHash::default()).collect();
    for a in cols {
        let text = match a.data_type() {
            DataType::Utf8 | DataType::Date32 | DataType::Int64 => a.clone(),
            _ => compute::cast(a, &DataType::Utf8)?,
        };
        let any = text.as_any();
        let value: Box<dyn Fn(usize, &mut TupleHash)> =
            if let Some(t) = any.downcast_ref::<StringArray>() {
                Box::new(move |r, h| h.write(t.value(r).as_bytes()))
            } else if let Some(d) = any.downcast_ref::<Date32Array>() {
                Box::new(move |r, h| h.write(&d.value(r).to_le_bytes()))
            } else if let Some(i) = any.downcast_ref::<Int64Array>() {
                Box::new(move |r, h| h.write(&i.value(r).to_le_bytes()))
            } else {
                continue;
            };
        for (row, h) in hs.iter_mut().enumerate() {
            if text.is_null(row) {
                // A null is no value at all (values are length-delimited).
                h.mix(0xff);
            } else {
                value(row, h);
            }
        }
    }
    Ok(hs.iter().map(TupleHash::finish).collect())
}

/// Keep the rows whose identity tuple has not been written yet (per source), without
/// per-record lineage, so the result does not depend on which record came first.
fn first_seen(
    out: &RecordBatch,
    identity_fields: &[String],
    seen: &Mutex<SeenState>,
) -> datafusion::common::Result<RecordBatch> {
    let hashes = fingerprints(&identity_columns(out, identity_fields), out.num_rows())?;
    let mut state = seen.lock().map_err(|_| {
        datafusion::common::DataFusionError::Execution("identity set poisoned".into())
    })?;
    let mut keep = Vec::with_capacity(hashes.len());
    let mut maybe = Vec::with_capacity(hashes.len());
    for h in &hashes {
        let v = state.set.check(*h)?;
        keep.push(Some(v == seen::Verdict::New));
        maybe.push(Some(v == seen::Verdict::Maybe));
    }
    let maybe = BooleanArray::from(maybe);
    if maybe.true_count() > 0 {
        let rows = without_lineage(filter_record_batch(out, &maybe)?)?;
        state.deferred_rows += rows.num_rows();
        state.deferred.write(&rows)?;
    }
    drop(state);
    without_lineage(filter_record_batch(out, &BooleanArray::from(keep))?)
}

/// The columns of an identity tuple: the identity fields and the person key.
fn identity_columns(out: &RecordBatch, identity_fields: &[String]) -> Vec<ArrayRef> {
    identity_fields
        .iter()
        .map(String::as_str)
        .chain(std::iter::once("person_key"))
        .filter_map(|f| col(out, f).cloned())
        .collect()
}

/// Drop per-record lineage: the row stands for every record carrying the tuple.
fn without_lineage(kept: RecordBatch) -> datafusion::common::Result<RecordBatch> {
    let schema = kept.schema();
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if matches!(
                f.name().as_str(),
                "source_file" | "source_row" | "record_key"
            ) {
                new_null_array(f.data_type(), kept.num_rows())
            } else {
                kept.column(i).clone()
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn sample(
    c: &CompiledSource,
    batch: &RecordBatch,
    r: &compile::CompiledRule,
    row: usize,
    is_identity_entity: bool,
) -> Sample {
    let model = canonical::model();
    let mut values = BTreeMap::new();
    for f in &r.fields {
        // A source column (rules with `column:`) may hold anything: always masked.
        if let Some(src_col) = rules::as_source_column(f) {
            if let Some(a) = col(batch, &format!("src__{src_col}")) {
                let v = array_value_to_string(a, row).unwrap_or_default();
                values.insert(f.clone(), mask(&v));
            }
            continue;
        }
        let in_identity = !c.mapped.contains(f) && c.identity.contains(f);
        let name = if in_identity && !is_identity_entity {
            format!("id__{f}")
        } else {
            f.clone()
        };
        let identifier = model.identity().field(f).is_some_and(|cf| cf.identifier)
            && (in_identity || is_identity_entity);
        let raw = batch
            .schema()
            .index_of(&format!("raw__{name}"))
            .ok()
            .and_then(|i| array_value_to_string(batch.column(i), row).ok());
        if let Some(a) = col(batch, &name) {
            let v = array_value_to_string(a, row).unwrap_or_default();
            values.insert(f.clone(), if identifier { mask(&v) } else { v });
        }
        if let Some(rv) = raw.filter(|s| !s.is_empty()) {
            values.insert(
                format!("{f} (source)"),
                if identifier { mask(&rv) } else { rv },
            );
        }
    }
    let file = col(batch, SOURCE_FILE)
        .and_then(|a| array_value_to_string(a, row).ok())
        .unwrap_or_default();
    let src_row = col(batch, SOURCE_ROW)
        .and_then(|a| {
            a.as_any()
                .downcast_ref::<Int64Array>()
                .map(|x| x.value(row))
        })
        .unwrap_or(0);
    Sample {
        rule: r.rule.id.clone(),
        source_file: file,
        source_row: src_row,
        values,
    }
}

/// Build an output batch in the canonical schema of `entity` (plus lineage).
fn project_entity(
    c: &CompiledSource,
    batch: &RecordBatch,
    (entity, schema): (&Entity, &SchemaRef),
    from_identity_block: bool,
    warnings: Option<ArrayRef>,
    extract_dates: &BTreeMap<String, chrono::NaiveDate>,
) -> datafusion::common::Result<RecordBatch> {
    let n = batch.num_rows();
    let own_id = entity
        .fields
        .first()
        .filter(|f| f.derived && f.name.ends_with("_id"))
        .map(|f| f.name.clone());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let mapped_name = if from_identity_block {
            format!("id__{name}")
        } else {
            name.to_string()
        };
        let source = match name {
            "provider_id" => Some(const_array(&c.provider, n)),
            "source_id" => Some(const_array(&c.source, n)),
            "manifest_hash" | "run_id" | "record_key" | "person_key" => col(batch, name).cloned(),
            "source_file" => col(batch, SOURCE_FILE).cloned(),
            "source_row" => col(batch, SOURCE_ROW).cloned(),
            "dq_warnings" => warnings.clone(),
            "extract_date" if !extract_dates.is_empty() => {
                col(batch, SOURCE_FILE).map(|a| extract_date_array(a, extract_dates))
            }
            _ if Some(name.to_string()) == own_id => col(batch, "record_key").cloned(),
            "is_emergency_admission" => col(batch, "admission_method").map(|a| emergency(a)),
            "nhs_number_status" if col(batch, &mapped_name).is_none() => col(
                batch,
                &if from_identity_block {
                    "id__nhs_number".to_string()
                } else {
                    "nhs_number".to_string()
                },
            )
            .map(|a| nhs_status(a)),
            _ => col(batch, &mapped_name).cloned(),
        };
        let array = match source {
            Some(a) if a.data_type() == field.data_type() => a,
            Some(a) => compute::cast(&a, field.data_type())?,
            None => new_null_array(field.data_type(), n),
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// The extract date of each row's file (null where the file has none).
fn extract_date_array(files: &ArrayRef, dates: &BTreeMap<String, chrono::NaiveDate>) -> ArrayRef {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let files = files.as_any().downcast_ref::<StringArray>();
    let days: datafusion::arrow::array::Date32Array = (0..files.map_or(0, |f| f.len()))
        .map(|i| {
            let f = files?;
            let d = dates.get(f.value(i))?;
            Some((*d - epoch).num_days() as i32)
        })
        .collect();
    Arc::new(days)
}

fn emergency(a: &ArrayRef) -> ArrayRef {
    let s = compute::cast(a, &DataType::Utf8).ok();
    let s = s
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<StringArray>());
    let out: BooleanArray = match s {
        Some(s) => s
            .iter()
            .map(|v| v.map(|v| EMERGENCY_ADMISSION_METHODS.contains(&v.trim())))
            .collect(),
        None => BooleanArray::from(vec![None; a.len()]),
    };
    Arc::new(out)
}

fn nhs_status(a: &ArrayRef) -> ArrayRef {
    let s = compute::cast(a, &DataType::Utf8).ok();
    let s = s
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<StringArray>());
    let out: StringArray = match s {
        Some(s) => s
            .iter()
            .map(|v| {
                Some(match v {
                    None => "missing",
                    Some(v) if crate::udf::text::nhs_number_valid(v) => "unverified",
                    Some(_) => "invalid",
                })
            })
            .collect(),
        None => StringArray::from(vec![Some("missing"); a.len()]),
    };
    Arc::new(out)
}

fn quarantine_batch(
    c: &CompiledSource,
    qb: &RecordBatch,
    fails: &[ArrayRef],
    schema: &SchemaRef,
) -> datafusion::common::Result<RecordBatch> {
    let n = qb.num_rows();
    let mut ids = StringBuilder::new();
    let mut codes = StringBuilder::new();
    let mut reasons = StringBuilder::new();
    let mut raw = StringBuilder::new();
    let src_cols: Vec<(String, ArrayRef)> = qb
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            f.name()
                .strip_prefix("src__")
                .map(|n| (n.to_string(), qb.column(i).clone()))
        })
        .collect();
    for row in 0..n {
        let mut r_ids = Vec::new();
        let mut r_codes = Vec::new();
        let mut r_reasons = Vec::new();
        for (r, a) in c.rules.iter().zip(fails) {
            let hit = a
                .as_any()
                .downcast_ref::<BooleanArray>()
                .is_some_and(|b| b.value(row));
            if hit && r.rule.on_fail != OnFail::Warn {
                r_ids.push(r.rule.id.clone());
                r_codes.push(r.rule.code.to_string());
                r_reasons.push(format!("{} {}: {}", r.rule.code, r.rule.id, rule_reason(r)));
            }
        }
        ids.append_value(r_ids.join(","));
        codes.append_value(r_codes.join(","));
        reasons.append_value(r_reasons.join("; "));
        let mut obj = serde_json::Map::new();
        for (name, a) in &src_cols {
            let v = if a.is_null(row) {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(array_value_to_string(a, row).unwrap_or_default())
            };
            obj.insert(name.clone(), v);
        }
        raw.append_value(serde_json::Value::Object(obj).to_string());
    }
    let arrays: Vec<ArrayRef> = vec![
        const_array(&c.provider, n),
        const_array(&c.source, n),
        col(qb, SOURCE_FILE)
            .cloned()
            .unwrap_or_else(|| const_array("", n)),
        col(qb, SOURCE_ROW)
            .cloned()
            .unwrap_or_else(|| Arc::new(Int64Array::from(vec![0; n]))),
        Arc::new(ids.finish()),
        Arc::new(codes.finish()),
        Arc::new(reasons.finish()),
        Arc::new(raw.finish()),
        col(qb, "manifest_hash")
            .cloned()
            .unwrap_or_else(|| const_array(&c.manifest_hash, n)),
        col(qb, "run_id")
            .cloned()
            .unwrap_or_else(|| const_array("", n)),
    ];
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

use crate::validate::rules::UNREADABLE_CODE;

fn rejected_batch(
    c: &CompiledSource,
    rows: &[Rejected],
    schema: &SchemaRef,
    run_id: &str,
) -> datafusion::common::Result<RecordBatch> {
    let n = rows.len();
    let arrays: Vec<ArrayRef> = vec![
        const_array(&c.provider, n),
        const_array(&c.source, n),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.file.as_str()).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.row).collect::<Vec<_>>(),
        )),
        const_array("unreadable", n),
        const_array(UNREADABLE_CODE, n),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| format!("{UNREADABLE_CODE} unreadable: {}", r.reason))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| Some(r.raw.as_str()))
                .collect::<Vec<_>>(),
        )),
        const_array(&c.manifest_hash, n),
        const_array(run_id, n),
    ];
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}
