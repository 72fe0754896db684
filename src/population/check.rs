//! Every problem of the `population:` settings, found without data: structure and
//! names, segment and flag rules parsed and type-checked against the feature columns
//! (ONB0942), the tariff and the ACSC list. The ICS file runs this when it is loaded, so
//! this module depends only on settings, never on the stage's data path.

use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;

use super::catalogue::{breakdown_names, condition_features, measure_names, names_of};
use super::config::{
    Catalogue, PopulationSettingError, PopulationSettings, SegmentationsFile, problem,
};
use super::files::{Tariff, parse_acsc};
use crate::diagnostics::did_you_mean;

/// Every problem of the settings (without data): structure, names, rules, tariff, ACSC.
pub fn check(
    settings: &PopulationSettings,
    dir: &Path,
    risk: &crate::risk::config::RiskSettings,
    specs: &[crate::risk::config::FeatureSpec],
    codelists: &crate::risk::codelists::Codelists,
) -> Vec<PopulationSettingError> {
    let mut out = Vec::new();
    if settings.disclosure.check().is_err() {
        out.push(problem(
            "ONB0947",
            "disclosure.round_to",
            "`round_to` must be at least 1",
        ));
    }
    if let Some(a) = &settings.as_of
        && crate::risk::config::parse_date(a).is_none()
    {
        out.push(problem(
            "ONB0940",
            "as_of",
            format!("`{a}` is not a date written YYYY-MM-DD"),
        ));
    }
    let rules = match settings.segmentations_and_flags(dir) {
        Ok(r) => r,
        Err(e) => {
            out.push(e);
            return out;
        }
    };
    out.extend(super::config::check_structure(&rules));
    let inputs = crate::risk::features::Inputs {
        settings: risk,
        codelists,
        data_end: NaiveDate::MAX,
    };
    if let Ok(q) = crate::risk::features::compile(
        specs,
        &inputs,
        NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default(),
    ) {
        out.extend(check_rules(&rules, &rule_columns(&q.columns)));
    }
    let conditions: Vec<String> = condition_features(specs).into_iter().map(|c| c.0).collect();
    let (mut seg, mut flags, mut bands) = Default::default();
    let names = names_of(&rules, &mut seg, &mut flags, risk, &mut bands);
    let cat = Catalogue {
        measures: measure_names(&conditions, &names),
        breakdowns: breakdown_names(&names),
    };
    out.extend(super::config::check_names(settings, &cat));
    match settings.tariff_text(dir) {
        Ok((name, text)) => {
            if let Err(e) = Tariff::parse(&name, &text) {
                out.push(problem("ONB0944", "tariff", e));
            }
        }
        Err(e) => out.push(e),
    }
    match settings.acsc_text(dir) {
        Ok((name, text)) => {
            if let Err(e) = parse_acsc(&name, &text) {
                out.push(problem("ONB0946", "acsc_codelist", e));
            }
        }
        Err(e) => out.push(e),
    }
    out
}

/// The columns rules may use: the features plus `risk_band` and `imd_quintile`.
pub fn rule_columns(features: &[crate::risk::features::FeatureColumn]) -> Vec<(String, DataType)> {
    let mut v: Vec<(String, DataType)> = features
        .iter()
        .map(|c| {
            let t = if c.numeric {
                DataType::Float64
            } else {
                DataType::Utf8
            };
            (c.name.clone(), t)
        })
        .collect();
    v.push(("age".into(), DataType::Float64));
    v.push(("risk_band".into(), DataType::Utf8));
    v.push(("imd_quintile".into(), DataType::Int64));
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// Check every rule against the columns: parse, names, boolean type (ONB0942).
pub fn check_rules(
    file: &SegmentationsFile,
    columns: &[(String, DataType)],
) -> Vec<PopulationSettingError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, t)| Field::new(n, t.clone(), true))
        .collect();
    let Ok(schema) = DFSchema::try_from(Schema::new(fields)) else {
        return Vec::new();
    };
    let ctx = crate::engine::planning_context();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    let mut out = Vec::new();
    for (i, s) in file.segmentations.iter().enumerate() {
        for (j, g) in s.segments.iter().enumerate() {
            if let Some(w) = &g.when {
                let at = format!("segmentations[{i}].segments[{j}].when");
                let what = format!("segment `{}` of `{}`", g.name, s.name);
                out.extend(check_one(&ctx, &schema, &names, w, &at, &what));
            }
        }
    }
    for (i, f) in file.flags.iter().enumerate() {
        let at = format!("flags[{i}].when");
        out.extend(check_one(
            &ctx,
            &schema,
            &names,
            &f.when,
            &at,
            &format!("flag `{}`", f.name),
        ));
    }
    out
}

fn check_one(
    ctx: &SessionContext,
    schema: &DFSchema,
    names: &[&str],
    sql: &str,
    at: &str,
    what: &str,
) -> Option<PopulationSettingError> {
    use datafusion::logical_expr::ExprSchemable;
    let msg = match ctx.parse_sql_expr(sql, schema) {
        Ok(e) => match e.get_type(schema) {
            Ok(DataType::Boolean) | Ok(DataType::Null) => return None,
            Ok(t) => format!("{what}: rule `{sql}` is {t}, not a condition"),
            Err(e) => format!(
                "{what}: rule `{sql}` does not type-check: {}",
                first_line(&e)
            ),
        },
        Err(e) => unknown_feature(&e, names)
            .map(|f| {
                let hint = did_you_mean(&f, names.iter().copied())
                    .unwrap_or_else(|| format!("features: {}", names.join(", ")));
                format!("{what}: rule `{sql}` uses unknown feature `{f}`; {hint}")
            })
            .unwrap_or_else(|| {
                format!("{what}: rule `{sql}` is not valid SQL: {}", first_line(&e))
            }),
    };
    Some(problem("ONB0942", at, msg))
}

fn first_line(e: &datafusion::error::DataFusionError) -> String {
    e.find_root()
        .to_string()
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn unknown_feature(e: &datafusion::error::DataFusionError, _names: &[&str]) -> Option<String> {
    use datafusion::common::{DataFusionError, SchemaError};
    if let DataFusionError::SchemaError(se, _) = e.find_root()
        && let SchemaError::FieldNotFound { field, .. } = se.as_ref()
    {
        return Some(field.name.clone());
    }
    None
}
