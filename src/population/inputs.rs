//! What the population stage reads: the score-date features (`gold/features`), the
//! champion's scores (`gold/risk_scores`) and the spine tables with the columns costs and
//! urgent care need (`pop_care_event`, `pop_diagnosis`, `pop_observation`,
//! `pop_social_care_service`, `pop_person`). A column a table lacks is NULL; a table the
//! ICS does not supply is empty. Also the small helpers that turn query results into
//! Rust values.

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::PopulationError;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// The spine columns this stage reads, per table.
fn contract() -> Vec<(&'static str, Vec<(&'static str, DataType)>)> {
    use DataType::{Date32, Float64, Utf8};
    vec![
        (
            "care_event",
            vec![
                ("person_key", Utf8),
                ("setting", Utf8),
                ("pod", Utf8),
                ("admission_method", Utf8),
                ("start_ts", ts()),
                ("acuity", Utf8),
                ("arrival_mode", Utf8),
                ("discharge_destination", Utf8),
                ("cost_amount", Float64),
            ],
        ),
        (
            "diagnosis",
            vec![
                ("person_key", Utf8),
                ("code_normalised", Utf8),
                ("code_original", Utf8),
                ("position", Utf8),
                ("diagnosis_date", Date32),
            ],
        ),
        (
            "observation",
            vec![("person_key", Utf8), ("observed_date", Date32)],
        ),
        (
            "social_care_service",
            vec![
                ("person_key", Utf8),
                ("event_type", Utf8),
                ("start_date", Date32),
                ("end_date", Date32),
                ("unit_cost", Float64),
                ("cost_frequency", Utf8),
            ],
        ),
        ("person", vec![("person_key", Utf8), ("sex", Utf8)]),
    ]
}

fn sql_type(t: &DataType) -> &'static str {
    match t {
        DataType::Date32 => "DATE",
        DataType::Float64 => "DOUBLE",
        DataType::Timestamp(..) => "TIMESTAMP",
        _ => "VARCHAR",
    }
}

fn engine(what: &str) -> impl Fn(datafusion::error::DataFusionError) -> PopulationError + '_ {
    move |e| PopulationError::Query {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// Register `pop_<table>` for every spine table of the contract.
pub async fn register_spine(ctx: &SessionContext, out: &Path) -> Result<(), PopulationError> {
    let spine = crate::risk::spine::spine_dir(out);
    for (table, cols) in contract() {
        let dir = spine.join(table);
        let name = format!("pop_{table}");
        if !dir.is_dir() {
            let fields: Vec<Field> = cols
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect();
            let empty = RecordBatch::new_empty(Arc::new(Schema::new(fields)));
            ctx.register_batch(&name, empty).map_err(engine(table))?;
            continue;
        }
        let raw = format!("pop_raw_{table}");
        ctx.register_parquet(
            &raw,
            dir.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(engine(table))?;
        let schema = ctx
            .table(&raw)
            .await
            .map_err(engine(table))?
            .schema()
            .clone();
        let select: Vec<String> = cols
            .iter()
            .map(|(c, t)| match schema.field_with_unqualified_name(c) {
                Ok(_) => format!("CAST(\"{c}\" AS {}) AS \"{c}\"", sql_type(t)),
                Err(_) => format!("CAST(NULL AS {}) AS \"{c}\"", sql_type(t)),
            })
            .collect();
        let view = ctx
            .sql(&format!("SELECT {} FROM {raw}", select.join(", ")))
            .await
            .map_err(engine(table))?
            .into_view();
        ctx.register_table(&name, view).map_err(engine(table))?;
    }
    Ok(())
}

/// Register `features` (the as-of date's `gold/features`) and `scores` (the champion's
/// `gold/risk_scores` at that date; empty when the date was not scored).
pub async fn register_features(
    ctx: &SessionContext,
    out: &Path,
    as_of: NaiveDate,
) -> Result<String, PopulationError> {
    let dir = crate::risk::features_dir(out, as_of);
    if !dir.is_dir() {
        return Err(PopulationError::Missing(format!(
            "{} does not exist: run `onboard risk run --out {}` first (or `onboard risk features --as-of {as_of}`)",
            dir.display(),
            out.display()
        )));
    }
    ctx.register_parquet(
        "features",
        dir.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(engine("gold/features"))?;
    let version = crate::risk::train::read_artefact(out, None)
        .map(|a| a.version)
        .ok();
    let scores = version
        .as_deref()
        .map(|v| crate::risk::score::output_dir(out, "risk_scores", as_of, v))
        .filter(|d| d.is_dir());
    match scores {
        Some(d) => {
            ctx.register_parquet(
                "scores",
                d.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(engine("gold/risk_scores"))?;
        }
        None => {
            let s = Schema::new(vec![
                Field::new("person_key", DataType::Utf8, true),
                Field::new("band", DataType::Utf8, true),
            ]);
            ctx.register_batch("scores", RecordBatch::new_empty(Arc::new(s)))
                .map_err(engine("gold/risk_scores"))?;
        }
    }
    Ok(version.unwrap_or_default())
}

/// Run a query and collect it.
pub async fn collect(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
) -> Result<Vec<RecordBatch>, PopulationError> {
    ctx.sql(sql)
        .await
        .map_err(engine(what))?
        .collect()
        .await
        .map_err(engine(what))
}

fn column(b: &RecordBatch, name: &str) -> Result<ArrayRef, PopulationError> {
    b.column_by_name(name)
        .cloned()
        .ok_or_else(|| PopulationError::Missing(format!("query result has no column `{name}`")))
}

/// A column as text (NULL → None).
pub fn texts(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<String>>, PopulationError> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(&column(b, name)?, &DataType::Utf8).map_err(arrow(name))?;
        let s = c.as_string::<i32>();
        out.extend((0..s.len()).map(|i| (!s.is_null(i)).then(|| s.value(i).to_string())));
    }
    Ok(out)
}

/// A column as numbers (NULL → None).
pub fn numbers(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<f64>>, PopulationError> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(&column(b, name)?, &DataType::Float64).map_err(arrow(name))?;
        let s = c.as_primitive::<Float64Type>();
        out.extend((0..s.len()).map(|i| (!s.is_null(i)).then(|| s.value(i))));
    }
    Ok(out)
}

/// A date column as days since 1970-01-01 (NULL → None).
pub fn days(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<i64>>, PopulationError> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(&column(b, name)?, &DataType::Date32).map_err(arrow(name))?;
        let c = cast(&c, &DataType::Int32).map_err(arrow(name))?;
        let c = cast(&c, &DataType::Int64).map_err(arrow(name))?;
        let s = c.as_primitive::<Int64Type>();
        out.extend((0..s.len()).map(|i| (!s.is_null(i)).then(|| s.value(i))));
    }
    Ok(out)
}

fn arrow(name: &str) -> impl Fn(datafusion::arrow::error::ArrowError) -> PopulationError + '_ {
    move |e| PopulationError::Missing(format!("column `{name}`: {e}"))
}

/// Days since 1970-01-01 of a date.
pub fn epoch_day(d: NaiveDate) -> i64 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days()
}

/// The date of a day number.
pub fn from_epoch_day(d: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default() + chrono::Duration::days(d)
}
