//! One batch of a source's plan output split by its rule outcomes: accepted rows
//! projected onto the canonical entity (with `dq_warnings`), identity rows onto
//! `person_identity`, quarantined rows to the quarantine table; statistics and masked
//! samples of failing rows gathered on the way.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, StringBuilder,
    new_null_array,
};
use datafusion::arrow::compute::{self, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;

use super::identity::first_seen;
use super::outputs::{Outputs, Sink};
use super::quarantine::quarantine_batch;
use super::scan::{SOURCE_FILE, SOURCE_ROW};
use super::{IngestError, SAMPLES_PER_RULE};
use crate::canonical::{self, Entity, IDENTITY_ENTITY};
use crate::compile::{self, CompiledSource};
use crate::manifest::model::OnFail;
use crate::validate::rules;

/// Admission methods that make a spell an emergency admission (NHS Data Dictionary).
pub const EMERGENCY_ADMISSION_METHODS: &[&str] =
    &["21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D"];

/// A failing row, identifiers masked.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Sample {
    pub rule: String,
    pub source_file: String,
    pub source_row: i64,
    pub values: BTreeMap<String, String>,
}

/// Statistics gathered while streaming one source.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub rows: u64,
    pub accepted: u64,
    pub quarantined: u64,
    pub warned: u64,
    pub hits: Vec<u64>,
    pub non_null: BTreeMap<String, u64>,
    pub samples: Vec<Sample>,
    pub failed_by_rule: bool,
}

impl Stats {
    pub fn merge(&mut self, o: Stats) {
        self.rows += o.rows;
        self.accepted += o.accepted;
        self.quarantined += o.quarantined;
        self.warned += o.warned;
        if self.hits.len() < o.hits.len() {
            self.hits.resize(o.hits.len(), 0);
        }
        for (i, h) in o.hits.iter().enumerate() {
            self.hits[i] += h;
        }
        for (k, v) in o.non_null {
            *self.non_null.entry(k).or_default() += v;
        }
        self.samples.extend(o.samples);
        self.failed_by_rule |= o.failed_by_rule;
    }
}

pub(crate) fn col<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

pub(crate) fn const_array(v: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::new_repeated(v, n))
}

/// Mask an identifier for display: keep two characters.
pub fn mask(v: &str) -> String {
    let mut out = String::new();
    for (i, ch) in v.chars().enumerate() {
        out.push(if i < 2 || ch == ' ' || ch == '-' {
            ch
        } else {
            '*'
        });
    }
    out
}

pub(crate) fn split_batch(
    c: &CompiledSource,
    outputs: &Outputs,
    batch: &RecordBatch,
    stats: &mut Stats,
    silver: Option<&mut Sink>,
    identity: Option<&mut Sink>,
    quarantine: &mut Sink,
) -> Result<(), IngestError> {
    let n = batch.num_rows();
    stats.rows += n as u64;
    let model = canonical::model();
    let is_identity_entity = c.entity == IDENTITY_ENTITY;
    // Rule outcomes.
    let mut q_mask = BooleanArray::from(vec![false; n]);
    let mut fails: Vec<BooleanArray> = Vec::with_capacity(c.rules.len());
    for (i, r) in c.rules.iter().enumerate() {
        let a = col(batch, &r.column)
            .and_then(|a| a.as_any().downcast_ref::<BooleanArray>())
            .cloned()
            .unwrap_or_else(|| BooleanArray::from(vec![false; n]));
        let hits = a.true_count() as u64;
        stats.hits[i] += hits;
        if hits > 0 {
            if r.rule.on_fail == OnFail::Fail {
                stats.failed_by_rule = true;
            }
            if r.rule.on_fail != OnFail::Warn {
                q_mask = compute::or(&q_mask, &a)?;
            }
            let have = stats.samples.iter().filter(|s| s.rule == r.rule.id).count();
            if have < SAMPLES_PER_RULE {
                for row in (0..n).filter(|j| a.value(*j)).take(SAMPLES_PER_RULE - have) {
                    stats
                        .samples
                        .push(sample(c, batch, r, row, is_identity_entity));
                }
            }
        }
        fails.push(a);
    }
    // Completeness (of mapped values, over every row read).
    for f in &c.mapped {
        if let Some(a) = col(batch, f) {
            *stats.non_null.entry(f.clone()).or_default() += (n - a.null_count()) as u64;
        }
    }
    for f in &c.identity {
        let name = if is_identity_entity {
            f.clone()
        } else {
            format!("id__{f}")
        };
        if let Some(a) = col(batch, &name) {
            *stats.non_null.entry(format!("identity.{f}")).or_default() +=
                (n - a.null_count()) as u64;
        }
    }
    let keep = compute::not(&q_mask)?;
    let quarantined = q_mask.true_count();
    stats.quarantined += quarantined as u64;
    stats.accepted += (n - quarantined) as u64;

    let warn_array = warnings(c, &fails, &keep, stats);

    if n > quarantined {
        // Project first (no copies), then filter only the output columns.
        let accept = |b: RecordBatch| -> Result<RecordBatch, IngestError> {
            if quarantined == 0 {
                Ok(b)
            } else {
                Ok(filter_record_batch(&b, &keep)?)
            }
        };
        if let (Some((entity, schema)), Some(sink)) = (&outputs.silver, silver) {
            let out = project_entity(
                c,
                batch,
                (entity, schema),
                false,
                Some(warn_array.clone()),
                &outputs.extract_dates,
            )?;
            sink.write(&accept(out)?)?;
        }
        if let (Some(schema), Some(sink)) = (&outputs.identity, identity) {
            let out = project_entity(
                c,
                batch,
                (model.identity(), schema),
                !is_identity_entity,
                None,
                &outputs.extract_dates,
            )?;
            match &outputs.seen_identities {
                Some(seen) => {
                    let accepted = (quarantined > 0).then_some(&keep);
                    sink.write(&first_seen(&out, accepted, &c.identity, seen)?)?
                }
                None => sink.write(&accept(out)?)?,
            }
        }
    }
    if quarantined > 0 {
        let qb = filter_record_batch(batch, &q_mask)?;
        let qfails: Vec<ArrayRef> = fails
            .iter()
            .map(|a| compute::filter(a, &q_mask))
            .collect::<Result<_, _>>()?;
        let out = quarantine_batch(c, &qb, &qfails, &outputs.quarantine)?;
        quarantine.write(&out)?;
    }
    Ok(())
}

/// The `dq_warnings` column: the comma-separated ids of the `warn` rules each row failed,
/// null when none (all null, built at once, when no warn rule hit the batch); counts the
/// accepted rows warned.
fn warnings(
    c: &CompiledSource,
    fails: &[BooleanArray],
    keep: &BooleanArray,
    stats: &mut Stats,
) -> ArrayRef {
    let warns: Vec<(&str, &BooleanArray)> = c
        .rules
        .iter()
        .zip(fails)
        .filter(|(r, a)| r.rule.on_fail == OnFail::Warn && a.true_count() > 0)
        .map(|(r, a)| (r.rule.id.as_str(), a))
        .collect();
    let n = keep.len();
    if warns.is_empty() {
        return new_null_array(&DataType::Utf8, n);
    }
    let mut text = StringBuilder::with_capacity(n, n * 8);
    for row in 0..n {
        let ids: Vec<&str> = warns
            .iter()
            .filter(|(_, a)| a.value(row))
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            text.append_null();
        } else {
            text.append_value(ids.join(","));
            if keep.value(row) {
                stats.warned += 1;
            }
        }
    }
    Arc::new(text.finish())
}

fn sample(
    c: &CompiledSource,
    batch: &RecordBatch,
    r: &compile::CompiledRule,
    row: usize,
    is_identity_entity: bool,
) -> Sample {
    let model = canonical::model();
    let mut values = BTreeMap::new();
    for f in &r.fields {
        // A source column (rules with `column:`) may hold anything: always masked.
        if let Some(src_col) = rules::as_source_column(f) {
            if let Some(a) = col(batch, &format!("src__{src_col}")) {
                let v = array_value_to_string(a, row).unwrap_or_default();
                values.insert(f.clone(), mask(&v));
            }
            continue;
        }
        let in_identity = !c.mapped.contains(f) && c.identity.contains(f);
        let name = if in_identity && !is_identity_entity {
            format!("id__{f}")
        } else {
            f.clone()
        };
        let identifier = model.identity().field(f).is_some_and(|cf| cf.identifier)
            && (in_identity || is_identity_entity);
        let raw = batch
            .schema()
            .index_of(&format!("raw__{name}"))
            .ok()
            .and_then(|i| array_value_to_string(batch.column(i), row).ok());
        if let Some(a) = col(batch, &name) {
            let v = array_value_to_string(a, row).unwrap_or_default();
            values.insert(f.clone(), if identifier { mask(&v) } else { v });
        }
        if let Some(rv) = raw.filter(|s| !s.is_empty()) {
            values.insert(
                format!("{f} (source)"),
                if identifier { mask(&rv) } else { rv },
            );
        }
    }
    let file = col(batch, SOURCE_FILE)
        .and_then(|a| array_value_to_string(a, row).ok())
        .unwrap_or_default();
    let src_row = col(batch, SOURCE_ROW)
        .and_then(|a| {
            a.as_any()
                .downcast_ref::<Int64Array>()
                .map(|x| x.value(row))
        })
        .unwrap_or(0);
    Sample {
        rule: r.rule.id.clone(),
        source_file: file,
        source_row: src_row,
        values,
    }
}

/// Build an output batch in the canonical schema of `entity` (plus lineage).
fn project_entity(
    c: &CompiledSource,
    batch: &RecordBatch,
    (entity, schema): (&Entity, &SchemaRef),
    from_identity_block: bool,
    warnings: Option<ArrayRef>,
    extract_dates: &BTreeMap<String, chrono::NaiveDate>,
) -> Result<RecordBatch, IngestError> {
    let n = batch.num_rows();
    let own_id = entity
        .fields
        .first()
        .filter(|f| f.derived && f.name.ends_with("_id"))
        .map(|f| f.name.clone());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let mapped_name = if from_identity_block {
            format!("id__{name}")
        } else {
            name.to_string()
        };
        let source = match name {
            "provider_id" => Some(const_array(&c.provider, n)),
            "source_id" => Some(const_array(&c.source, n)),
            "manifest_hash" | "run_id" | "record_key" | "person_key" => col(batch, name).cloned(),
            "source_file" => col(batch, SOURCE_FILE).cloned(),
            "source_row" => col(batch, SOURCE_ROW).cloned(),
            "dq_warnings" => warnings.clone(),
            "extract_date" if !extract_dates.is_empty() => {
                col(batch, SOURCE_FILE).map(|a| extract_date_array(a, extract_dates))
            }
            _ if Some(name.to_string()) == own_id => col(batch, "record_key").cloned(),
            "is_emergency_admission" => col(batch, "admission_method").map(emergency),
            "nhs_number_status" if col(batch, &mapped_name).is_none() => col(
                batch,
                &if from_identity_block {
                    "id__nhs_number".to_string()
                } else {
                    "nhs_number".to_string()
                },
            )
            .map(nhs_status),
            _ => col(batch, &mapped_name).cloned(),
        };
        let array = match source {
            Some(a) if a.data_type() == field.data_type() => a,
            Some(a) => compute::cast(&a, field.data_type())?,
            None => new_null_array(field.data_type(), n),
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// The extract date of each row's file (null where the file has none).
fn extract_date_array(files: &ArrayRef, dates: &BTreeMap<String, chrono::NaiveDate>) -> ArrayRef {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let files = files.as_any().downcast_ref::<StringArray>();
    let days: datafusion::arrow::array::Date32Array = (0..files.map_or(0, |f| f.len()))
        .map(|i| {
            let f = files?;
            let d = dates.get(f.value(i))?;
            Some((*d - epoch).num_days() as i32)
        })
        .collect();
    Arc::new(days)
}

fn emergency(a: &ArrayRef) -> ArrayRef {
    let s = compute::cast(a, &DataType::Utf8).ok();
    let s = s
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<StringArray>());
    let out: BooleanArray = match s {
        Some(s) => s
            .iter()
            .map(|v| v.map(|v| EMERGENCY_ADMISSION_METHODS.contains(&v.trim())))
            .collect(),
        None => BooleanArray::from(vec![None; a.len()]),
    };
    Arc::new(out)
}

fn nhs_status(a: &ArrayRef) -> ArrayRef {
    let s = compute::cast(a, &DataType::Utf8).ok();
    let s = s
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<StringArray>());
    let out: StringArray = match s {
        Some(s) => s
            .iter()
            .map(|v| {
                Some(match v {
                    None => "missing",
                    Some(v) if crate::udf::text::nhs_number_valid(v) => "unverified",
                    Some(_) => "invalid",
                })
            })
            .collect(),
        None => StringArray::from(vec![Some("missing"); a.len()]),
    };
    Arc::new(out)
}
