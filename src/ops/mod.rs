//! Model operations: the risk model run month by month. It owns `ops/` (the refresh
//! history `ops/refreshes.json`, monitoring `ops/monitor/` with `monitor.json`, its HTML
//! page and the trend over refreshes, feature drift `ops/drift/`), the case referrals
//! `gold/referrals/` (pseudonymous), the re-identification audit log
//! `audit/reidentification.ndjson`, and the promotion of retrained models in
//! `models/registry.json`. It reads what `risk` wrote (scores, explanations, features,
//! models) and computes actual outcomes with the risk stage's own outcome definition
//! over the spine of the latest ingested month.
//!
//! * [`config`]: the `operations:` section of the ICS file.
//! * [`drift`]: population stability index of every feature between two as-of dates.
//! * [`monitor`]: recall@k, PPV@k, AUROC and calibration of a scored as-of date against
//!   the emergency admissions that followed it, with [`page`] (HTML with inline SVG).
//! * [`referrals`]: structured referral records (JSON, CSV) above the declared threshold.
//! * [`reidentify`]: controlled re-identification for a practice, with its audit log.
//! * [`refresh`]: the monthly refresh after ingest and linkage: features, monitoring,
//!   retraining and promotion, scores, referrals, drift, the refresh record.

pub mod config;
pub mod drift;
pub mod monitor;
pub mod page;
pub mod referrals;
pub mod reidentify;
pub mod refresh;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::risk::{RiskError, Stage};

/// An operations failure, naming the file, setting or date.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Risk(#[from] RiskError),
    #[error(
        "as-of {as_of}: its {horizon}-day outcome window ends on {window_end}, but the ingested data end on {data_end}; monitor it after a refresh with data to {window_end} or later"
    )]
    TooEarly {
        as_of: NaiveDate,
        horizon: u32,
        window_end: NaiveDate,
        data_end: NaiveDate,
    },
    #[error("{0}")]
    MissingMonth(String),
    #[error("{0}")]
    UnknownModel(String),
    #[error("re-identification refused: {0}")]
    Refused(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Engine(#[from] datafusion::error::DataFusionError),
}

impl OpsError {
    pub fn file(path: &Path, e: impl std::fmt::Display) -> OpsError {
        OpsError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

pub fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub fn ops_dir(out: &Path) -> PathBuf {
    out.join("ops")
}

/// The date the ingested data run to: `reference_date` of the published run.
pub fn data_end(out: &Path) -> Result<NaiveDate, OpsError> {
    let path = out.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| OpsError::file(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| OpsError::file(&path, e))?;
    v.get("reference_date")
        .and_then(|d| d.as_str())
        .and_then(crate::risk::parse_date)
        .ok_or_else(|| OpsError::file(&path, "no reference_date"))
}

/// The risk stage as of `date` (the ICS file's settings, the reference date moved to
/// `date`, so the score as-of date and the outcome windows follow the data).
pub fn stage_at(
    out: &Path,
    ics: Option<&crate::ics::Ics>,
    date: NaiveDate,
) -> Result<Stage, OpsError> {
    let mut ics = ics.cloned().unwrap_or_else(|| crate::ics::Ics {
        file: default_ics_file(out),
        dir: out.to_path_buf(),
    });
    ics.file.reference_date = Some(ymd(date));
    if ics.file.risk.as_of.score.is_some() {
        // A fixed score date belongs to one run; month by month it is the data's end.
        ics.file.risk.as_of = Default::default();
    }
    Ok(Stage::load(out, Some(&ics))?)
}

fn default_ics_file(out: &Path) -> crate::ics::IcsFile {
    crate::ics::IcsFile {
        ics: crate::ics::IcsMeta {
            id: "ics".into(),
            name: "ICS".into(),
        },
        providers: vec![],
        landing: String::new(),
        output: out.display().to_string(),
        reference_date: None,
        pseudonymisation: Default::default(),
        engine: Default::default(),
        fail_run_on_breach: false,
        linkage: Default::default(),
        risk: Default::default(),
        deploy: None,
        feeds: Default::default(),
        operations: Default::default(),
        population: Default::default(),
        serve: None,
    }
}

/// The as-of dates with scores in `gold/risk_scores/`, oldest first.
pub fn scored_dates(out: &Path) -> Vec<NaiveDate> {
    let mut v: Vec<NaiveDate> = subdirs(&out.join("gold").join("risk_scores"), "as_of=")
        .iter()
        .filter_map(|s| crate::risk::parse_date(s))
        .collect();
    v.sort();
    v
}

/// The model versions that scored `as_of`.
pub fn scored_by(out: &Path, as_of: NaiveDate) -> Vec<String> {
    let dir = out
        .join("gold")
        .join("risk_scores")
        .join(format!("as_of={}", ymd(as_of)));
    let mut v = subdirs(&dir, "model=");
    v.sort();
    v
}

fn subdirs(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .map(str::to_string)
        })
        .collect()
}

/// The model version whose scores of `as_of` count: `wanted` (which must exist and have
/// scored it), else the one the refresh history names, else the only one, else the
/// champion's.
pub fn scoring_version(
    out: &Path,
    as_of: NaiveDate,
    wanted: Option<&str>,
) -> Result<String, OpsError> {
    let by = scored_by(out, as_of);
    if let Some(v) = wanted {
        if !crate::risk::train::models_dir(out)
            .join(v)
            .join("model.json")
            .is_file()
        {
            let reg = crate::risk::train::read_registry(out)?;
            let known: Vec<&str> = reg.versions.iter().map(|e| e.version.as_str()).collect();
            return Err(OpsError::UnknownModel(format!(
                "model version `{v}` does not exist in {} (versions: {})",
                crate::risk::train::models_dir(out).display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        }
        if !by.iter().any(|b| b == v) {
            return Err(OpsError::UnknownModel(format!(
                "model version `{v}` has not scored as-of {as_of} (scored by: {})",
                if by.is_empty() {
                    "none".into()
                } else {
                    by.join(", ")
                }
            )));
        }
        return Ok(v.to_string());
    }
    if by.is_empty() {
        return Err(OpsError::Data(format!(
            "as-of {as_of} has not been scored (gold/risk_scores/as_of={as_of}/ is missing; scored as-of dates: {})",
            list_dates(&scored_dates(out))
        )));
    }
    if let Some(v) = refresh::History::read(out)?.version_for(as_of)
        && by.contains(&v)
    {
        return Ok(v);
    }
    if by.len() == 1 {
        return Ok(by[0].clone());
    }
    let champion = crate::risk::train::read_registry(out)?.champion;
    champion.filter(|c| by.contains(c)).ok_or_else(|| {
        OpsError::Data(format!(
            "as-of {as_of} was scored by several models ({}): choose one with --model",
            by.join(", ")
        ))
    })
}

pub fn list_dates(d: &[NaiveDate]) -> String {
    if d.is_empty() {
        return "none".into();
    }
    d.iter().map(|d| ymd(*d)).collect::<Vec<_>>().join(", ")
}

/// Write text atomically, creating the directory.
pub fn write_text(path: &Path, text: &str) -> Result<(), OpsError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| OpsError::file(d, e))?;
    }
    crate::store::write_atomic(path, text.as_bytes()).map_err(|e| OpsError::file(path, e))
}

pub fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<(), OpsError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| OpsError::Data(e.to_string()))?;
    write_text(path, &(text + "\n"))
}

/// Every record batch of the Parquet files in `dir` (sorted by name).
pub fn read_parquet_dir(
    dir: &Path,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, OpsError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| OpsError::file(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let f = std::fs::File::open(&p).map_err(|e| OpsError::file(&p, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.build())
            .map_err(|e| OpsError::file(&p, e))?;
        for b in reader {
            out.push(b.map_err(|e| OpsError::file(&p, e))?);
        }
    }
    Ok(out)
}

/// A text column of a batch (cast from any type), nulls as None.
pub fn text_column(
    b: &datafusion::arrow::array::RecordBatch,
    name: &str,
) -> Result<Vec<Option<String>>, OpsError> {
    use datafusion::arrow::array::{Array, AsArray};
    let c = b
        .column_by_name(name)
        .ok_or_else(|| OpsError::Data(format!("no column `{name}`")))?;
    let c = datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)
        .map_err(|e| OpsError::Data(e.to_string()))?;
    let s = c.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect())
}

/// A numeric column of a batch as f64 (nulls as NaN).
pub fn f64_column(
    b: &datafusion::arrow::array::RecordBatch,
    name: &str,
) -> Result<Vec<f64>, OpsError> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Float64Type};
    let c = b
        .column_by_name(name)
        .ok_or_else(|| OpsError::Data(format!("no column `{name}`")))?;
    let c = datafusion::arrow::compute::cast(c, &DataType::Float64)
        .map_err(|e| OpsError::Data(e.to_string()))?;
    let a = c.as_primitive::<Float64Type>();
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) })
        .collect())
}

/// One person's stored score (`gold/risk_scores`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub person_key: String,
    pub probability: f64,
    pub rank: u32,
    pub percentile: u8,
    pub band: String,
    pub practice: Option<String>,
    pub pcn: Option<String>,
}

/// The stored scores of `as_of` by `version`, by rank.
pub fn read_scores(out: &Path, as_of: NaiveDate, version: &str) -> Result<Vec<ScoreRow>, OpsError> {
    let dir = crate::risk::score::output_dir(out, "risk_scores", as_of, version);
    let mut rows = Vec::new();
    for b in read_parquet_dir(&dir)? {
        let keys = text_column(&b, "person_key")?;
        let p = f64_column(&b, "probability")?;
        let rank = f64_column(&b, "rank")?;
        let pct = f64_column(&b, "percentile")?;
        let band = text_column(&b, "band")?;
        let practice = text_column(&b, "practice")?;
        let pcn = text_column(&b, "pcn")?;
        for i in 0..b.num_rows() {
            rows.push(ScoreRow {
                person_key: keys[i].clone().unwrap_or_default(),
                probability: p[i],
                rank: rank[i] as u32,
                percentile: pct[i] as u8,
                band: band[i].clone().unwrap_or_default(),
                practice: practice[i].clone(),
                pcn: pcn[i].clone(),
            });
        }
    }
    rows.sort_by_key(|r| r.rank);
    Ok(rows)
}
