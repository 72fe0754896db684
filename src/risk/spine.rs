//! What the risk stage reads: the spine tables of a linked run (`linkage/spine/`),
//! registered in a DataFusion session with the columns the feature plans use, plus the
//! IMD lookup and the code lists. A spine entity the ICS does not supply (no medication
//! feed, say) is registered empty, so its features are zero and the data-availability
//! features say why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt8Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::codelists::Codelists;

/// A problem reading the spine.
#[derive(Debug, thiserror::Error)]
pub enum SpineError {
    #[error(
        "{dir} holds no spine: run `onboard link --out {out}` first (it writes linkage/spine/)"
    )]
    NoSpine { dir: PathBuf, out: PathBuf },
    #[error("spine table {table} ({dir}) has no column `{column}` that the risk features need")]
    MissingColumn {
        table: String,
        dir: PathBuf,
        column: String,
    },
    #[error("spine table {table}: {message}")]
    Read { table: String, message: String },
    #[error(transparent)]
    Codelist(#[from] super::codelists::CodelistError),
    #[error("{0}")]
    Reference(String),
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// The columns each spine table must offer (name, type when the table is absent).
fn contract() -> Vec<(&'static str, Vec<(&'static str, DataType)>)> {
    use DataType::{Boolean, Date32, Utf8};
    vec![
        (
            "person",
            vec![
                ("person_key", Utf8),
                ("birth_year_month", Date32),
                ("sex", Utf8),
                ("ethnic_category", Utf8),
            ],
        ),
        (
            "care_event",
            vec![
                ("person_key", Utf8),
                ("setting", Utf8),
                ("pod", Utf8),
                ("admission_method", Utf8),
                ("start_ts", ts()),
                ("provider_id", Utf8),
            ],
        ),
        (
            "observation",
            vec![
                ("person_key", Utf8),
                ("code_system", Utf8),
                ("code", Utf8),
                ("observed_date", Date32),
                ("provider_id", Utf8),
            ],
        ),
        (
            "diagnosis",
            vec![
                ("person_key", Utf8),
                ("code_normalised", Utf8),
                ("code_original", Utf8),
                ("diagnosis_date", Date32),
                ("provider_id", Utf8),
            ],
        ),
        (
            "registration",
            vec![
                ("person_key", Utf8),
                ("practice_ods", Utf8),
                ("pcn_code", Utf8),
                ("registration_start", Date32),
                ("registration_end", Date32),
            ],
        ),
        (
            "address_period",
            vec![
                ("person_key", Utf8),
                ("lsoa11", Utf8),
                ("valid_from", Date32),
                ("valid_to", Date32),
                ("current", Boolean),
            ],
        ),
        (
            "social_care_service",
            vec![
                ("person_key", Utf8),
                ("start_date", Date32),
                ("provider_id", Utf8),
            ],
        ),
        (
            "medication",
            vec![
                ("person_key", Utf8),
                ("code", Utf8),
                ("issue_date", Date32),
                ("provider_id", Utf8),
            ],
        ),
    ]
}

/// The spine directory of a run directory.
pub fn spine_dir(out: &Path) -> PathBuf {
    out.join("linkage").join("spine")
}

/// Register the spine tables, the IMD lookup and the code lists in `ctx`. Returns the
/// entities that were present.
pub async fn register(
    ctx: &SessionContext,
    out: &Path,
    codelists: &Codelists,
) -> Result<Vec<String>, SpineError> {
    let dir = spine_dir(out);
    if !dir.join("person").is_dir() {
        return Err(SpineError::NoSpine {
            dir: dir.clone(),
            out: out.to_path_buf(),
        });
    }
    let mut present = Vec::new();
    for (table, cols) in contract() {
        let tdir = dir.join(table);
        if tdir.is_dir() {
            register_present(ctx, table, &tdir, &cols).await?;
            present.push(table.to_string());
        } else {
            register_empty(ctx, table, &cols)?;
        }
    }
    register_imd(ctx)?;
    codelists.register(ctx)?;
    Ok(present)
}

async fn register_present(
    ctx: &SessionContext,
    table: &str,
    dir: &Path,
    cols: &[(&str, DataType)],
) -> Result<(), SpineError> {
    let err = |e: datafusion::error::DataFusionError| SpineError::Read {
        table: table.into(),
        message: e.to_string(),
    };
    let raw = format!("spine_{table}");
    ctx.register_parquet(
        &raw,
        dir.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(err)?;
    let schema = ctx.table(&raw).await.map_err(err)?.schema().clone();
    let mut select = Vec::new();
    for (c, ty) in cols {
        match schema.field_with_unqualified_name(c) {
            Ok(f) if f.data_type() == ty => select.push(format!("\"{c}\"")),
            Ok(_) => select.push(format!("CAST(\"{c}\" AS {}) AS \"{c}\"", sql_type(ty))),
            Err(_) if *c == "provider_id" || *c == "pcn_code" => {
                select.push(format!("CAST(NULL AS VARCHAR) AS \"{c}\""))
            }
            Err(_) => {
                return Err(SpineError::MissingColumn {
                    table: table.into(),
                    dir: dir.to_path_buf(),
                    column: c.to_string(),
                });
            }
        }
    }
    let view = ctx
        .sql(&format!("SELECT {} FROM {raw}", select.join(", ")))
        .await
        .map_err(err)?
        .into_view();
    ctx.register_table(table, view).map_err(err)?;
    Ok(())
}

fn sql_type(t: &DataType) -> &'static str {
    match t {
        DataType::Date32 => "DATE",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(..) => "TIMESTAMP",
        _ => "VARCHAR",
    }
}

fn register_empty(
    ctx: &SessionContext,
    table: &str,
    cols: &[(&str, DataType)],
) -> Result<(), SpineError> {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, t)| Field::new(*n, t.clone(), true))
        .collect();
    let batch = RecordBatch::new_empty(Arc::new(Schema::new(fields)));
    ctx.register_batch(table, batch)
        .map_err(|e| SpineError::Read {
            table: table.into(),
            message: e.to_string(),
        })?;
    Ok(())
}

/// `imd_lsoa(lsoa11, imd_decile)` from the embedded IMD 2019 table.
fn register_imd(ctx: &SessionContext) -> Result<(), SpineError> {
    let rows = crate::refdata::imd2019().map_err(SpineError::Reference)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("lsoa11", DataType::Utf8, false),
        Field::new("imd_decile", DataType::UInt8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.lsoa11.as_str()),
        )),
        Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.decile))),
    ];
    let batch =
        RecordBatch::try_new(schema, cols).map_err(|e| SpineError::Reference(e.to_string()))?;
    ctx.register_batch("imd_lsoa", batch)
        .map_err(|e| SpineError::Reference(e.to_string()))?;
    Ok(())
}

/// Run a query over the spine tables, naming them on failure.
async fn query(
    ctx: &SessionContext,
    tables: &str,
    sql: &str,
) -> Result<Vec<RecordBatch>, SpineError> {
    let err = |e: datafusion::error::DataFusionError| SpineError::Read {
        table: tables.into(),
        message: e.to_string(),
    };
    ctx.sql(sql)
        .await
        .map_err(err)?
        .collect()
        .await
        .map_err(err)
}

/// Arrow's Date32 (days since 1970-01-01) as a date.
fn day(v: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(v + 719_163)
}

/// The first care event of each setting, to check that an as-of date has the history
/// its event counts need.
pub async fn first_event_by_setting(
    ctx: &SessionContext,
) -> Result<std::collections::BTreeMap<String, NaiveDate>, SpineError> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Date32Type;
    let sql = "SELECT setting, MIN(CAST(start_ts AS DATE)) AS first FROM care_event WHERE setting IS NOT NULL GROUP BY setting";
    let mut out = std::collections::BTreeMap::new();
    for b in &query(ctx, "care_event", sql).await? {
        let s = b.column(0).as_string::<i32>();
        let d = b.column(1).as_primitive::<Date32Type>();
        for i in (0..b.num_rows()).filter(|i| !d.is_null(*i)) {
            if let Some(first) = day(d.value(i)) {
                out.insert(s.value(i).to_string(), first);
            }
        }
    }
    Ok(out)
}

/// The first and last dates with any care event, GP record or diagnosis: the span the
/// data cover.
pub async fn data_span(ctx: &SessionContext) -> Result<Option<(NaiveDate, NaiveDate)>, SpineError> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Date32Type;
    let sql = "SELECT MIN(d) AS lo, MAX(d) AS hi FROM (SELECT CAST(start_ts AS DATE) AS d FROM care_event UNION ALL SELECT observed_date AS d FROM observation UNION ALL SELECT diagnosis_date AS d FROM diagnosis)";
    let batches = query(ctx, "care_event, observation, diagnosis", sql).await?;
    let Some(b) = batches.first().filter(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let lo = b.column(0).as_primitive::<Date32Type>();
    let hi = b.column(1).as_primitive::<Date32Type>();
    if lo.is_null(0) || hi.is_null(0) {
        return Ok(None);
    }
    Ok(day(lo.value(0)).zip(day(hi.value(0))))
}
