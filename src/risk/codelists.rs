//! Code lists and morbidity-index tables: versioned CSV data files with their source and
//! licence in `#` comment lines (shipped in `reference/codelists/`, or an ICS's own
//! directory), loaded into DataFusion tables the feature plans join against.
//!
//! Files and their columns:
//! * `ltc_conditions.csv` (and any other file with the same header): `codelist, code_system,
//!   code, description`; ICD-10 codes match by prefix, others exactly.
//! * `charlson_quan2005_icd10.csv`, `elixhauser_quan2005_icd10.csv`: `category,
//!   description, code_prefix`.
//! * `charlson_weights.csv` (`category, charlson1987, quan2011`),
//!   `elixhauser_weights_vanwalraven2009.csv` (`category, weight`),
//!   `hfrs_gilbert2018_icd10.csv` (`code3, weight`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;

/// The shipped files, embedded so the binary works from any directory.
const SHIPPED: &[(&str, &str)] = &[
    (
        "ltc_conditions.csv",
        include_str!("../../reference/codelists/ltc_conditions.csv"),
    ),
    (
        "charlson_quan2005_icd10.csv",
        include_str!("../../reference/codelists/charlson_quan2005_icd10.csv"),
    ),
    (
        "charlson_weights.csv",
        include_str!("../../reference/codelists/charlson_weights.csv"),
    ),
    (
        "elixhauser_quan2005_icd10.csv",
        include_str!("../../reference/codelists/elixhauser_quan2005_icd10.csv"),
    ),
    (
        "elixhauser_weights_vanwalraven2009.csv",
        include_str!("../../reference/codelists/elixhauser_weights_vanwalraven2009.csv"),
    ),
    (
        "hfrs_gilbert2018_icd10.csv",
        include_str!("../../reference/codelists/hfrs_gilbert2018_icd10.csv"),
    ),
];

/// A problem with a code list file.
#[derive(Debug, thiserror::Error)]
pub enum CodelistError {
    #[error("cannot read code list {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("code list {file}: {message}")]
    Parse { file: String, message: String },
    #[error("code list file {file} is missing (needed by the {needed_by} features)")]
    Missing { file: String, needed_by: String },
}

/// One table of rows (header → values), with the file's `# version:` line.
#[derive(Debug, Clone)]
pub struct Table {
    pub file: String,
    pub version: Option<String>,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One category of a morbidity index with its weight and the category that overrides it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexWeight {
    pub category: String,
    pub weight: f64,
    pub excluded_by: Option<String>,
}

/// Every code list an ICS's features may use.
#[derive(Debug, Clone)]
pub struct Codelists {
    pub tables: BTreeMap<String, Table>,
}

impl Codelists {
    /// The shipped lists, or every `*.csv` of `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Codelists, CodelistError> {
        let mut tables = BTreeMap::new();
        match dir {
            None => {
                for (name, text) in SHIPPED {
                    tables.insert(name.to_string(), parse(name, text)?);
                }
            }
            Some(d) => {
                let read = |p: &Path| {
                    std::fs::read_to_string(p).map_err(|e| CodelistError::Read {
                        path: p.to_path_buf(),
                        source: e,
                    })
                };
                let entries = std::fs::read_dir(d).map_err(|e| CodelistError::Read {
                    path: d.to_path_buf(),
                    source: e,
                })?;
                let mut paths: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "csv"))
                    .collect();
                paths.sort();
                for p in paths {
                    let name = p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string();
                    tables.insert(name.clone(), parse(&p.display().to_string(), &read(&p)?)?);
                }
            }
        }
        Ok(Codelists { tables })
    }

    /// Names of the condition code lists (`codelist` column of every condition file).
    pub fn condition_lists(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .condition_tables()
            .flat_map(|t| t.rows.iter().map(|r| r[0].clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn condition_tables(&self) -> impl Iterator<Item = &Table> {
        self.tables
            .values()
            .filter(|t| t.header == ["codelist", "code_system", "code", "description"])
    }

    /// The versions of every file, for the model card (`file → version`).
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.tables
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.version.clone().unwrap_or_else(|| "unversioned".into()),
                )
            })
            .collect()
    }

    pub fn require(&self, file: &str, needed_by: &str) -> Result<&Table, CodelistError> {
        self.tables.get(file).ok_or_else(|| CodelistError::Missing {
            file: file.into(),
            needed_by: needed_by.into(),
        })
    }

    /// The weights of a morbidity index (`category → (weight, excluded_by)`), from a
    /// weights file and the name of its weight column.
    pub fn index_weights(
        &self,
        file: &str,
        column: &str,
    ) -> Result<Vec<IndexWeight>, CodelistError> {
        let t = self.require(file, "morbidity index")?;
        let col = |n: &str| t.header.iter().position(|h| h == n);
        let err = |m: String| CodelistError::Parse {
            file: file.into(),
            message: m,
        };
        let (w, ex) = (
            col(column).ok_or_else(|| err(format!("no column `{column}`")))?,
            col("excluded_by"),
        );
        t.rows
            .iter()
            .map(|r| {
                Ok(IndexWeight {
                    category: r[0].clone(),
                    weight: r[w]
                        .parse()
                        .map_err(|_| err(format!("`{}` is not a number", r[w])))?,
                    excluded_by: ex.and_then(|i| r.get(i)).filter(|v| !v.is_empty()).cloned(),
                })
            })
            .collect()
    }

    /// Register `codelist_codes(codelist, code_system, code, is_prefix)`,
    /// `charlson_map`, `elixhauser_map` (`category, code_prefix`) and `hfrs_weights`
    /// (`code3, weight`) as tables of `ctx`.
    pub fn register(&self, ctx: &SessionContext) -> Result<(), CodelistError> {
        let mut codes: Vec<Vec<String>> = Vec::new();
        for t in self.condition_tables() {
            for r in &t.rows {
                let icd = r[1].eq_ignore_ascii_case("ICD10");
                let code = if icd {
                    r[2].replace('.', "").to_ascii_uppercase()
                } else {
                    r[2].clone()
                };
                codes.push(vec![
                    r[0].clone(),
                    r[1].to_ascii_uppercase(),
                    code,
                    icd.to_string(),
                ]);
            }
        }
        let text = |n: &str| (n.to_string(), false);
        let num = |n: &str| (n.to_string(), true);
        register_rows(
            ctx,
            "codelist_codes",
            &[
                text("codelist"),
                text("code_system"),
                text("code"),
                text("is_prefix"),
            ],
            &codes,
        )?;
        let pick = |file: &str, cols: &[usize]| -> Result<Vec<Vec<String>>, CodelistError> {
            let t = self.require(file, "morbidity index")?;
            Ok(t.rows
                .iter()
                .map(|r| cols.iter().map(|c| r[*c].clone()).collect())
                .collect())
        };
        register_rows(
            ctx,
            "charlson_map",
            &[text("category"), text("code_prefix")],
            &pick("charlson_quan2005_icd10.csv", &[0, 2])?,
        )?;
        register_rows(
            ctx,
            "elixhauser_map",
            &[text("category"), text("code_prefix")],
            &pick("elixhauser_quan2005_icd10.csv", &[0, 2])?,
        )?;
        register_rows(
            ctx,
            "hfrs_weights",
            &[text("code3"), num("weight")],
            &pick("hfrs_gilbert2018_icd10.csv", &[0, 1])?,
        )?;
        Ok(())
    }
}

/// Parse one code list: `#` lines are comments (a `# version: X` line names the
/// version), then a CSV header and rows.
pub fn parse(file: &str, text: &str) -> Result<Table, CodelistError> {
    let err = |m: String| CodelistError::Parse {
        file: file.into(),
        message: m,
    };
    let mut version = None;
    let mut body = String::new();
    for line in text.lines() {
        match line.strip_prefix('#') {
            Some(c) => {
                if let Some(v) = c.trim().strip_prefix("version:") {
                    version = Some(v.trim().to_string());
                }
            }
            None if line.trim().is_empty() => {}
            None => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| err(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for (i, r) in rdr.records().enumerate() {
        let r = r.map_err(|e| err(format!("row {}: {e}", i + 1)))?;
        rows.push(r.iter().map(|v| v.trim().to_string()).collect());
    }
    Ok(Table {
        file: file.into(),
        version,
        header,
        rows,
    })
}

fn register_rows(
    ctx: &SessionContext,
    name: &str,
    columns: &[(String, bool)],
    rows: &[Vec<String>],
) -> Result<(), CodelistError> {
    let err = |m: String| CodelistError::Parse {
        file: name.into(),
        message: m,
    };
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, numeric)| {
            Field::new(
                n,
                if *numeric {
                    DataType::Float64
                } else {
                    DataType::Utf8
                },
                false,
            )
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, (col, numeric)) in columns.iter().enumerate() {
        if *numeric {
            let mut v = Vec::with_capacity(rows.len());
            for r in rows {
                v.push(
                    r[i].parse::<f64>()
                        .map_err(|_| err(format!("`{}` is not a number in column {col}", r[i])))?,
                );
            }
            arrays.push(Arc::new(Float64Array::from(v)));
        } else {
            arrays.push(Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].as_str()),
            )));
        }
    }
    let batch = RecordBatch::try_new(schema, arrays).map_err(|e| err(e.to_string()))?;
    ctx.register_batch(name, batch)
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_lists_load_with_versions() {
        let c = Codelists::load(None).unwrap();
        assert_eq!(c.tables.len(), SHIPPED.len());
        assert!(c.versions().values().all(|v| v != "unversioned"));
        assert!(
            c.condition_lists()
                .contains(&"ltc_heart_failure".to_string())
        );
        assert_eq!(c.tables["hfrs_gilbert2018_icd10.csv"].rows.len(), 109);
        assert_eq!(c.tables["charlson_weights.csv"].rows.len(), 17);
        assert_eq!(
            c.tables["elixhauser_weights_vanwalraven2009.csv"]
                .rows
                .len(),
            31
        );
    }

    #[test]
    fn a_bad_row_names_the_file() {
        let e = parse("x.csv", "a,b\n1,2,3\n").unwrap_err().to_string();
        assert!(e.contains("x.csv"), "{e}");
    }
}
