//! `gold/features` on disk and in memory: writing one as-of date's table atomically, and
//! reading tables back as a design matrix (model inputs), labels, breakdown columns and
//! evidence.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::RiskError;
use super::features::{FeatureColumn, OUTCOME};
use super::model::Matrix;

/// Write batches as `dir/part-0.parquet`, replacing `dir` whole: written into a sibling
/// temporary directory, then renamed over the old one.
pub fn write_dir(dir: &Path, batches: &[RecordBatch]) -> Result<(), RiskError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| RiskError::file(parent, e))?;
    let name = dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            return Err(RiskError::Data(format!(
                "no rows to write to {}",
                dir.display()
            )));
        }
    };
    crate::link::write_parquet(
        &tmp.join("part-0.parquet"),
        schema,
        batches.iter().cloned().map(Ok),
    )
    .map_err(|e| RiskError::file(&tmp, e))?;
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| RiskError::file(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| RiskError::file(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
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

/// Read `gold/features/as_of=<date>/` as a dataset over `columns`.
pub async fn load(
    ctx: &SessionContext,
    dir: &Path,
    as_of: NaiveDate,
    columns: &[FeatureColumn],
    inputs: &[String],
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
    let mut d = Dataset {
        as_of,
        person_keys: strings(&batches, "person_key", dir)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect(),
        x: Matrix {
            names: Vec::new(),
            rows: 0,
            data: Vec::new(),
        },
        numeric: BTreeMap::new(),
        y: None,
        text: BTreeMap::new(),
        evidence: BTreeMap::new(),
    };
    for c in columns {
        if c.numeric {
            d.numeric
                .insert(c.name.clone(), floats(&batches, &c.name, dir)?);
        } else {
            d.text
                .insert(c.name.clone(), strings(&batches, &c.name, dir)?);
        }
        if c.evidence {
            let ev = format!("ev_{}", c.name);
            d.evidence
                .insert(c.name.clone(), strings(&batches, &ev, dir)?);
        }
    }
    d.y = labels(&batches);
    d.x = matrix(&d, inputs, dir)?;
    Ok(d)
}

fn matrix(d: &Dataset, inputs: &[String], dir: &Path) -> Result<Matrix, RiskError> {
    let rows = d.len();
    let mut data = vec![0.0; rows * inputs.len()];
    for (j, name) in inputs.iter().enumerate() {
        let col = d.numeric.get(name).ok_or_else(|| {
            RiskError::Data(format!(
                "{}: the model needs feature `{name}`, which these features do not have",
                dir.display()
            ))
        })?;
        for (i, v) in col.iter().enumerate() {
            data[i * inputs.len() + j] = *v;
        }
    }
    Ok(Matrix {
        names: inputs.to_vec(),
        rows,
        data,
    })
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
