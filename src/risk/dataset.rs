//! `gold/features` on disk and in memory: writing one as-of date's table atomically, and
//! reading tables back as a design matrix (model inputs), labels, breakdown columns and
//! evidence.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::RiskError;
use super::features::{FeatureColumn, OUTCOME};
use super::model::Matrix;
use crate::store::{DirSwap, ParquetFile};

/// Write batches as `dir/part-0.parquet`, replacing `dir` whole.
pub fn write_dir(dir: &Path, batches: &[RecordBatch]) -> Result<(), RiskError> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(no_rows(dir)),
    };
    let swap = DirSwap::begin(dir)?;
    let mut f = ParquetFile::create(&swap.path().join("part-0.parquet"), schema, None)?;
    for b in batches {
        f.write(b)?;
    }
    f.finish()?;
    Ok(swap.commit()?)
}

fn no_rows(dir: &Path) -> RiskError {
    RiskError::Data(format!("no rows to write to {}", dir.display()))
}

/// What streaming one table to disk wrote.
pub struct StreamWritten {
    pub rows: usize,
    /// Rows whose outcome is true (when the table has the outcome column).
    pub outcomes: usize,
}

/// Stream a query's batches to `dir/part-0.parquet` as they come (memory bounded by the
/// plan, not by the table), replacing `dir` whole once the last batch is written.
pub async fn write_stream(
    dir: &Path,
    mut stream: SendableRecordBatchStream,
) -> Result<StreamWritten, RiskError> {
    let swap = DirSwap::begin(dir)?;
    let mut f = ParquetFile::create(&swap.path().join("part-0.parquet"), stream.schema(), None)?;
    let mut outcomes = 0;
    while let Some(b) = stream.next().await {
        let b = b?;
        outcomes += count_true(std::slice::from_ref(&b), OUTCOME);
        f.write(&b)?;
    }
    let rows = f.finish()? as usize;
    if rows == 0 {
        return Err(no_rows(dir));
    }
    swap.commit()?;
    Ok(StreamWritten { rows, outcomes })
}

/// Rows whose boolean column `name` is true.
pub fn count_true(batches: &[RecordBatch], name: &str) -> usize {
    batches
        .iter()
        .filter_map(|b| b.column_by_name(name))
        .filter_map(|c| c.as_boolean_opt().map(|a| a.true_count()))
        .sum()
}

/// One as-of date's features in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub as_of: NaiveDate,
    pub person_keys: Vec<String>,
    /// The model inputs, in the order of `columns` filtered by `model_input`.
    pub x: Matrix,
    /// Every numeric feature by name (inputs and not), for cards and breakdowns.
    pub numeric: BTreeMap<String, Vec<f64>>,
    /// The outcome, when its window has passed.
    pub y: Option<Vec<bool>>,
    pub text: BTreeMap<String, Vec<Option<String>>>,
    pub evidence: BTreeMap<String, Vec<Option<String>>>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.person_keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.person_keys.is_empty()
    }
    /// A text column (`practice`, `ethnic_group`, …) or numeric one shown as text.
    pub fn text_of(&self, name: &str, i: usize) -> Option<String> {
        self.text.get(name).and_then(|c| c[i].clone())
    }
}

/// Which columns beyond the model inputs and labels a caller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Inputs, labels and breakdown columns (training, validation).
    Fitting,
    /// Also the evidence behind each feature (scoring and explaining).
    Explaining,
}

/// Read `gold/features/as_of=<date>/` as a dataset over `columns`. Model inputs are held
/// once, in `x`; `numeric` holds the other numeric columns.
pub async fn load(
    ctx: &SessionContext,
    dir: &Path,
    as_of: NaiveDate,
    columns: &[FeatureColumn],
    inputs: &[String],
    need: Need,
) -> Result<Dataset, RiskError> {
    if !dir.is_dir() {
        return Err(RiskError::Data(format!(
            "no features for as-of {as_of} at {}: run `onboard risk features` first",
            dir.display()
        )));
    }
    let batches = ctx
        .read_parquet(
            dir.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?
        .collect()
        .await?;
    let person_keys: Vec<String> = strings(&batches, "person_key", dir)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let mut d = Dataset {
        as_of,
        x: Matrix {
            names: inputs.to_vec(),
            rows: person_keys.len(),
            data: vec![0.0; person_keys.len() * inputs.len()],
        },
        person_keys,
        numeric: BTreeMap::new(),
        y: labels(&batches),
        text: BTreeMap::new(),
        evidence: BTreeMap::new(),
    };
    for c in columns {
        read_column(&mut d, &batches, c, need, dir)?;
    }
    if let Some(missing) = inputs
        .iter()
        .find(|n| !columns.iter().any(|c| &c.name == *n && c.numeric))
    {
        return Err(RiskError::Data(format!(
            "{}: the model needs feature `{missing}`, which these features do not have",
            dir.display()
        )));
    }
    Ok(d)
}

fn read_column(
    d: &mut Dataset,
    batches: &[RecordBatch],
    c: &FeatureColumn,
    need: Need,
    dir: &Path,
) -> Result<(), RiskError> {
    if !c.numeric {
        d.text
            .insert(c.name.clone(), strings(batches, &c.name, dir)?);
    } else if let Some(j) = d.x.names.iter().position(|n| n == &c.name) {
        let k = d.x.names.len();
        for (i, v) in floats(batches, &c.name, dir)?.into_iter().enumerate() {
            d.x.data[i * k + j] = v;
        }
    } else {
        d.numeric
            .insert(c.name.clone(), floats(batches, &c.name, dir)?);
    }
    if c.evidence && need == Need::Explaining {
        let ev = format!("ev_{}", c.name);
        d.evidence
            .insert(c.name.clone(), strings(batches, &ev, dir)?);
    }
    Ok(())
}

impl Dataset {
    /// A numeric column by name, whether a model input or not.
    pub fn numeric_column(&self, name: &str) -> Option<Vec<f64>> {
        if let Some(v) = self.numeric.get(name) {
            return Some(v.clone());
        }
        let j = self.x.names.iter().position(|n| n == name)?;
        Some((0..self.x.rows).map(|i| self.x.row(i)[j]).collect())
    }
}

fn column<'a>(
    batches: &'a [RecordBatch],
    name: &str,
    dir: &Path,
) -> Result<Vec<&'a dyn Array>, RiskError> {
    batches
        .iter()
        .map(|b| {
            b.column_by_name(name).map(|c| c.as_ref()).ok_or_else(|| {
                RiskError::Data(format!(
                    "{} has no column `{name}` (written by another feature set? rerun `onboard risk features`)",
                    dir.display()
                ))
            })
        })
        .collect()
}

fn floats(batches: &[RecordBatch], name: &str, dir: &Path) -> Result<Vec<f64>, RiskError> {
    let mut out = Vec::new();
    for a in column(batches, name, dir)? {
        let a = datafusion::arrow::compute::cast(a, &DataType::Float64)
            .map_err(|e| RiskError::Data(e.to_string()))?;
        let a = a.as_primitive::<Float64Type>();
        out.extend((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }));
    }
    Ok(out)
}

fn strings(
    batches: &[RecordBatch],
    name: &str,
    dir: &Path,
) -> Result<Vec<Option<String>>, RiskError> {
    let mut out = Vec::new();
    for a in column(batches, name, dir)? {
        let a = datafusion::arrow::compute::cast(a, &DataType::Utf8)
            .map_err(|e| RiskError::Data(e.to_string()))?;
        let a = a.as_string::<i32>();
        out.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_string())));
    }
    Ok(out)
}

fn labels(batches: &[RecordBatch]) -> Option<Vec<bool>> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column_by_name(OUTCOME)?.as_boolean_opt()?;
        if a.null_count() > 0 {
            return None;
        }
        out.extend((0..a.len()).map(|i| a.value(i)));
    }
    Some(out)
}
