//! Cost of care per person per setting per financial year: an event's cost is the cost
//! its provider supplies (`cost_amount` of the care event, ASC-CLD `unit_cost`), else the
//! declared unit cost of its setting and activity type in the tariff file (`units` ×
//! unit cost). Costed events: every care event (acute admitted by spell, outpatient,
//! A&E, community, mental health, 111, ambulance), a GP contact per day with a GP
//! record, and social care (requests, assessments, reviews once; a weekly service per
//! week it runs within the year). Outputs reconcile: per setting and year, the sum over
//! persons equals the sum over events (checked before anything is written).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;

use super::PopulationError;
use super::files::Tariff;
use super::inputs::{collect, days, epoch_day, from_epoch_day, numbers, texts};

/// The financial year (April to March) a day falls in, by its first calendar year.
pub fn financial_year(d: NaiveDate) -> i32 {
    if d.month() >= 4 {
        d.year()
    } else {
        d.year() - 1
    }
}

/// `2025/26`.
pub fn fy_label(start: i32) -> String {
    format!("{start}/{:02}", (start + 1).rem_euclid(100))
}

struct ScRow {
    person_key: String,
    activity: String,
    day: i64,
    units: f64,
    provider_cost: Option<f64>,
}

/// Social care events as costed rows: one-off events once, weekly services per week
/// within each financial year up to the as-of date.
async fn social_care_rows(
    ctx: &SessionContext,
    as_of: NaiveDate,
) -> Result<Vec<ScRow>, PopulationError> {
    let b = collect(ctx, "social care", "SELECT person_key, lower(trim(event_type)) AS t, start_date, end_date, unit_cost, lower(trim(cost_frequency)) AS f FROM pop_social_care_service WHERE person_key IS NOT NULL AND start_date IS NOT NULL").await?;
    let (k, t, s, e) = (
        texts(&b, "person_key")?,
        texts(&b, "t")?,
        days(&b, "start_date")?,
        days(&b, "end_date")?,
    );
    let (c, f) = (numbers(&b, "unit_cost")?, texts(&b, "f")?);
    let last = epoch_day(as_of);
    let mut out = Vec::new();
    for i in 0..k.len() {
        let (Some(key), Some(start)) = (k[i].clone(), s[i]) else {
            continue;
        };
        if start > last {
            continue;
        }
        let kind = t[i].clone().unwrap_or_default();
        let weekly = kind == "service" && f[i].as_deref() != Some("one-off");
        if !weekly {
            let activity = if kind.is_empty() {
                "REQUEST".into()
            } else {
                kind.to_uppercase()
            };
            out.push(ScRow {
                person_key: key,
                activity,
                day: start,
                units: 1.0,
                provider_cost: c[i],
            });
            continue;
        }
        let end = e[i].unwrap_or(last).min(last);
        let mut from = start;
        while from <= end {
            let fy = financial_year(from_epoch_day(from));
            let fy_end = NaiveDate::from_ymd_opt(fy + 1, 3, 31)
                .map(epoch_day)
                .unwrap_or(end);
            let to = end.min(fy_end);
            let weeks = (to - from + 1) as f64 / 7.0;
            out.push(ScRow {
                person_key: key.clone(),
                activity: "SERVICE_WEEK".into(),
                day: from,
                units: weeks,
                provider_cost: c[i].map(|u| u * weeks),
            });
            from = to + 1;
        }
    }
    Ok(out)
}

fn sc_batch(rows: &[ScRow]) -> Result<RecordBatch, PopulationError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_key", DataType::Utf8, false),
        Field::new("activity", DataType::Utf8, false),
        Field::new("d", DataType::Date32, false),
        Field::new("units", DataType::Float64, false),
        Field::new("provider_cost", DataType::Float64, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.person_key.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.activity.as_str()),
        )),
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|r| r.day as i32),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.units))),
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.provider_cost),
        )),
    ];
    RecordBatch::try_new(schema, cols).map_err(|e| PopulationError::Missing(e.to_string()))
}

/// Register `priced_event` (every costed event with its cost, basis and financial year),
/// refusing events whose activity type the tariff does not price.
pub async fn register(
    ctx: &SessionContext,
    tariff: &Tariff,
    as_of: NaiveDate,
    emergency_methods: &[String],
) -> Result<(), PopulationError> {
    let err = |e: datafusion::error::DataFusionError| PopulationError::Query {
        what: "cost events".into(),
        message: e.to_string(),
    };
    ctx.register_batch("tariff", tariff_batch(tariff)?)
        .map_err(err)?;
    ctx.register_batch("sc_cost", sc_batch(&social_care_rows(ctx, as_of).await?)?)
        .map_err(err)?;
    let a = as_of.format("%Y-%m-%d");
    let methods: Vec<String> = emergency_methods
        .iter()
        .map(|m| format!("'{}'", m.replace('\'', "''")))
        .collect();
    let methods = if methods.is_empty() {
        "''".to_string()
    } else {
        methods.join(", ")
    };
    let events = format!(
        "SELECT person_key, setting, CASE WHEN setting = 'APC' THEN CASE WHEN upper(trim(admission_method)) IN ({methods}) THEN 'EMERGENCY' WHEN trim(admission_method) IN ('11', '12', '13') THEN 'ELECTIVE' ELSE 'OTHER' END \
         WHEN pod IS NOT NULL THEN pod WHEN setting = 'OP' THEN 'OP_UNSPECIFIED' WHEN setting = 'ECDS' THEN 'AE_UNSPECIFIED' WHEN setting = 'AMBULANCE' THEN 'AMB_UNSPECIFIED' ELSE concat(setting, '_UNSPECIFIED') END AS activity, \
         CAST(start_ts AS DATE) AS d, CAST(1.0 AS DOUBLE) AS units, cost_amount AS provider_cost FROM pop_care_event WHERE person_key IS NOT NULL AND setting IS NOT NULL AND start_ts IS NOT NULL AND CAST(start_ts AS DATE) <= DATE '{a}' \
         UNION ALL SELECT person_key, 'GP' AS setting, 'GP_CONTACT' AS activity, observed_date AS d, CAST(1.0 AS DOUBLE) AS units, CAST(NULL AS DOUBLE) AS provider_cost FROM (SELECT DISTINCT person_key, observed_date FROM pop_observation WHERE person_key IS NOT NULL AND observed_date IS NOT NULL AND observed_date <= DATE '{a}') \
         UNION ALL SELECT person_key, 'SOCIAL_CARE' AS setting, activity, d, units, provider_cost FROM sc_cost"
    );
    let priced = format!(
        "SELECT e.person_key, e.setting, e.activity, e.d, COALESCE(e.provider_cost, e.units * t.unit_cost) AS cost, CASE WHEN e.provider_cost IS NOT NULL THEN 'provider' ELSE 'tariff' END AS basis, \
         CAST(date_part('year', e.d) AS BIGINT) - CASE WHEN date_part('month', e.d) < 4 THEN 1 ELSE 0 END AS fy \
         FROM ({events}) e LEFT JOIN tariff t ON t.t_setting = e.setting AND t.t_activity = e.activity"
    );
    let view = ctx.sql(&priced).await.map_err(err)?.into_view();
    ctx.register_table("priced_event", view).map_err(err)?;
    let missing = collect(ctx, "cost events", "SELECT setting, activity, COUNT(*) AS n FROM priced_event WHERE cost IS NULL GROUP BY setting, activity ORDER BY setting, activity").await?;
    let (s, act, n) = (
        texts(&missing, "setting")?,
        texts(&missing, "activity")?,
        numbers(&missing, "n")?,
    );
    if let Some(i) = (0..s.len()).next() {
        return Err(PopulationError::Tariff(format!(
            "tariff {} has no unit cost for activity type `{}` of setting `{}`, which {} events without a provider cost need",
            tariff.file,
            act[i].clone().unwrap_or_default(),
            s[i].clone().unwrap_or_default(),
            n[i].unwrap_or(0.0)
        )));
    }
    Ok(())
}

/// One line of the reconciliation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Reconciled {
    pub setting: String,
    pub financial_year: String,
    pub events: u64,
    pub cost_over_events: f64,
    pub cost_over_persons: f64,
    pub cost_from_provider: f64,
    pub cost_from_tariff: f64,
}

/// The person × setting × year table (`gold/population/cost_person_year/`) and the
/// reconciliation of its totals with the events'.
pub async fn person_years(
    ctx: &SessionContext,
) -> Result<(Vec<RecordBatch>, Vec<Reconciled>), PopulationError> {
    let table = collect(
        ctx,
        "cost per person",
        "SELECT person_key, fy, setting, COUNT(*) AS events, SUM(cost) AS cost, SUM(CASE WHEN basis = 'provider' THEN cost ELSE 0 END) AS cost_from_provider, SUM(CASE WHEN basis = 'tariff' THEN cost ELSE 0 END) AS cost_from_tariff FROM priced_event GROUP BY person_key, fy, setting ORDER BY person_key, fy, setting",
    )
    .await?;
    let events = collect(
        ctx,
        "cost events",
        "SELECT setting, fy, COUNT(*) AS events, SUM(cost) AS cost, SUM(CASE WHEN basis = 'provider' THEN cost ELSE 0 END) AS prov, SUM(CASE WHEN basis = 'tariff' THEN cost ELSE 0 END) AS tar FROM priced_event GROUP BY setting, fy ORDER BY setting, fy",
    )
    .await?;
    // Sum the person table in Rust: the reconciliation does not trust the engine twice.
    let (ps, pf, pc) = (
        texts(&table, "setting")?,
        numbers(&table, "fy")?,
        numbers(&table, "cost")?,
    );
    let mut by: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for i in 0..ps.len() {
        *by.entry((
            ps[i].clone().unwrap_or_default(),
            pf[i].unwrap_or(0.0) as i64,
        ))
        .or_default() += pc[i].unwrap_or(0.0);
    }
    let (s, f, n) = (
        texts(&events, "setting")?,
        numbers(&events, "fy")?,
        numbers(&events, "events")?,
    );
    let (c, prov, tar) = (
        numbers(&events, "cost")?,
        numbers(&events, "prov")?,
        numbers(&events, "tar")?,
    );
    let mut rec = Vec::new();
    for i in 0..s.len() {
        let setting = s[i].clone().unwrap_or_default();
        let fy = f[i].unwrap_or(0.0) as i64;
        rec.push(Reconciled {
            financial_year: fy_label(fy as i32),
            events: n[i].unwrap_or(0.0) as u64,
            cost_over_events: c[i].unwrap_or(0.0),
            cost_over_persons: by.get(&(setting.clone(), fy)).copied().unwrap_or(0.0),
            cost_from_provider: prov[i].unwrap_or(0.0),
            cost_from_tariff: tar[i].unwrap_or(0.0),
            setting,
        });
    }
    for r in &rec {
        let tol = 1e-6 * r.cost_over_events.abs().max(1.0);
        if (r.cost_over_events - r.cost_over_persons).abs() > tol {
            return Err(PopulationError::Reconcile(format!(
                "cost of setting {} in {} does not reconcile: {:.2} over events, {:.2} over persons",
                r.setting, r.financial_year, r.cost_over_events, r.cost_over_persons
            )));
        }
    }
    Ok((table, rec))
}

/// Each frame person's cost per setting in financial year `fy`.
pub async fn per_person(
    ctx: &SessionContext,
    fy: i32,
) -> Result<Vec<(String, String, f64)>, PopulationError> {
    let b = collect(
        ctx,
        "cost per person",
        &format!("SELECT person_key, setting, SUM(cost) AS cost FROM priced_event WHERE fy = {fy} GROUP BY person_key, setting"),
    )
    .await?;
    let (k, s, c) = (
        texts(&b, "person_key")?,
        texts(&b, "setting")?,
        numbers(&b, "cost")?,
    );
    Ok((0..k.len())
        .filter_map(|i| Some((k[i].clone()?, s[i].clone()?, c[i].unwrap_or(0.0))))
        .collect())
}

/// The tariff as a table (setting, activity, unit cost) to join the events to.
fn tariff_batch(t: &Tariff) -> Result<RecordBatch, PopulationError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t_setting", DataType::Utf8, false),
        Field::new("t_activity", DataType::Utf8, false),
        Field::new("unit_cost", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            t.rows.keys().map(|k| k.0.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            t.rows.keys().map(|k| k.1.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(t.rows.values().copied())),
    ];
    RecordBatch::try_new(schema, cols).map_err(|e| PopulationError::Missing(e.to_string()))
}
