//! The quarantine table: one schema for every source; a row per quarantined record with
//! its rule ids, codes and reasons and its raw source values, and a row per record the
//! scan could not read.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;

use super::scan::{Rejected, SOURCE_FILE, SOURCE_ROW};
use super::split::{col, const_array};
use crate::compile::{self, CompiledSource};
use crate::manifest::model::OnFail;
use crate::validate::rules::{self, UNREADABLE_CODE};

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

pub fn rule_reason(r: &compile::CompiledRule) -> String {
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

pub(crate) fn quarantine_batch(
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

pub(crate) fn rejected_batch(
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
