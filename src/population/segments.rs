//! Segmentations and flags: each rule is a SQL condition over the person features,
//! checked against the feature columns before anything runs (a rule over an unknown
//! feature is refused with a did-you-mean), then evaluated in one query. Every person
//! falls in exactly one segment of each segmentation: in a priority segmentation the
//! first matching rule wins and a person no rule takes is an error (a gap) unless the
//! last segment is `otherwise`; in an exclusive one a person matching two rules is an
//! error (overlapping segments) and one matching none too.

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;

use super::PopulationError;
use super::config::{PopulationSettingError, SegmentMode, SegmentationsFile, problem};
use crate::diagnostics::did_you_mean;

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

/// Each person's segment in each segmentation and flags, with the rules that matched.
#[derive(Debug, Clone, Default)]
pub struct Assigned {
    pub person_keys: Vec<String>,
    /// `segments[s][p]`: index of person p's segment in segmentation s.
    pub segments: Vec<Vec<usize>>,
    /// `traces[s][p]`: the names of every segment whose rule person p satisfies.
    pub traces: Vec<Vec<String>>,
    /// `flags[f][p]`.
    pub flags: Vec<Vec<bool>>,
}

/// Evaluate every rule over `person_features` in one query and assign the segments.
pub async fn assign(
    ctx: &SessionContext,
    file: &SegmentationsFile,
) -> Result<Assigned, PopulationError> {
    let mut cols = vec!["person_key".to_string()];
    for (i, s) in file.segmentations.iter().enumerate() {
        for (j, g) in s.segments.iter().enumerate() {
            if let Some(w) = &g.when {
                cols.push(format!(
                    "COALESCE(CAST(({w}) AS BOOLEAN), false) AS \"m_{i}_{j}\""
                ));
            }
        }
    }
    for (k, f) in file.flags.iter().enumerate() {
        cols.push(format!(
            "COALESCE(CAST(({}) AS BOOLEAN), false) AS \"f_{k}\"",
            f.when
        ));
    }
    let sql = format!(
        "SELECT {} FROM person_features ORDER BY person_key",
        cols.join(", ")
    );
    let b = super::inputs::collect(ctx, "segment rules", &sql).await?;
    let keys: Vec<String> = super::inputs::texts(&b, "person_key")?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let mut out = Assigned {
        person_keys: keys,
        ..Default::default()
    };
    for (i, s) in file.segmentations.iter().enumerate() {
        let matched: Vec<Vec<bool>> = s
            .segments
            .iter()
            .enumerate()
            .map(|(j, g)| match g.when {
                Some(_) => bools(&b, &format!("m_{i}_{j}")),
                None => Ok(vec![true; out.person_keys.len()]),
            })
            .collect::<Result<_, _>>()?;
        let (seg, trace) = decide(s, &matched, &out.person_keys)?;
        out.segments.push(seg);
        out.traces.push(trace);
    }
    for k in 0..file.flags.len() {
        out.flags.push(bools(&b, &format!("f_{k}"))?);
    }
    Ok(out)
}

fn bools(
    b: &[datafusion::arrow::array::RecordBatch],
    name: &str,
) -> Result<Vec<bool>, PopulationError> {
    Ok(super::inputs::numbers(b, name)?
        .into_iter()
        .map(|v| v.unwrap_or(0.0) != 0.0)
        .collect())
}

/// One segmentation's assignment from its rules' matches: errors name the segments and
/// how many persons overlap or fall through.
fn decide(
    s: &super::config::Segmentation,
    matched: &[Vec<bool>],
    keys: &[String],
) -> Result<(Vec<usize>, Vec<String>), PopulationError> {
    let n = keys.len();
    let mut seg = Vec::with_capacity(n);
    let mut traces = Vec::with_capacity(n);
    let mut gaps = 0usize;
    let mut overlaps: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    for p in 0..n {
        let hits: Vec<usize> = (0..matched.len())
            .filter(|j| matched[*j][p] && s.segments[*j].when.is_some())
            .collect();
        traces.push(
            hits.iter()
                .map(|j| s.segments[*j].name.clone())
                .collect::<Vec<_>>()
                .join(";"),
        );
        if s.mode == SegmentMode::Exclusive && hits.len() > 1 {
            *overlaps.entry((hits[0], hits[1])).or_default() += 1;
        }
        match hits.first() {
            Some(j) => seg.push(*j),
            None => match s.segments.iter().position(|g| g.otherwise) {
                Some(j) => seg.push(j),
                None => {
                    gaps += 1;
                    seg.push(usize::MAX);
                }
            },
        }
    }
    if let Some(((a, b), count)) = overlaps.iter().next() {
        return Err(PopulationError::Segmentation(format!(
            "[ONB0945] segmentation `{}` is exclusive but segments `{}` and `{}` overlap: {count} persons satisfy both rules ({} persons in overlaps in all); make the rules disjoint or use `mode: priority`",
            s.name,
            s.segments[*a].name,
            s.segments[*b].name,
            overlaps.values().sum::<usize>()
        )));
    }
    if gaps > 0 {
        return Err(PopulationError::Segmentation(format!(
            "[ONB0945] segmentation `{}` leaves {gaps} of {n} persons in no segment; add a segment with `otherwise: true` (priority mode) or widen the rules",
            s.name
        )));
    }
    Ok((seg, traces))
}
