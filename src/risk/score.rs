//! `onboard risk score`: the champion (or a named version) scores everyone in the
//! population at the score as-of date, with exact SHAP contributions in log-odds.
//! Writes, keyed by as-of date and model version:
//! * `gold/risk_scores/as_of=<d>/model=<v>/`: probability, log-odds, rank, percentile,
//!   decile, band, practice and PCN (for scoping), per person;
//! * `gold/explanations/as_of=<d>/model=<v>/`: the top factors of each person (rank,
//!   feature, plain-English label, value, typical value, contribution, odds ratio, evidence);
//! * `gold/shap/as_of=<d>/model=<v>/`: every contribution and the base value, per person.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, UInt8Array, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::config::{Band, FeatureKind};
use super::dataset::Dataset;
use super::evaluation::ranking;
use super::train::{Artefact, load_dataset, reorder};
use super::{RiskError, Stage};

/// One person's score.
#[derive(Debug, Clone)]
pub struct Scored {
    pub probability: f64,
    pub log_odds: f64,
    pub base: f64,
    pub contributions: Vec<f64>,
    pub rank: usize,
    pub percentile: u8,
    pub decile: u8,
    pub band: String,
}

/// What scoring produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoreSummary {
    #[serde(with = "super::config::ymd")]
    pub as_of: NaiveDate,
    pub model_version: String,
    pub persons: usize,
    /// Persons per band, highest first.
    pub bands: Vec<(String, usize)>,
    /// Largest |base + Σ contributions − log-odds| over everyone.
    pub max_additivity_error: f64,
    pub high_risk: usize,
    pub high_risk_with_top_factors: usize,
    pub scores: PathBuf,
    pub explanations: PathBuf,
}

pub fn output_dir(out: &Path, table: &str, as_of: NaiveDate, version: &str) -> PathBuf {
    out.join("gold")
        .join(table)
        .join(format!("as_of={}", as_of.format("%Y-%m-%d")))
        .join(format!("model={version}"))
}

/// Score `as_of` (default: the stage's score date) with `version` (default: champion).
pub async fn score(
    stage: &Stage,
    version: Option<&str>,
    as_of: Option<NaiveDate>,
) -> Result<ScoreSummary, RiskError> {
    let a = super::train::read_artefact(&stage.out, version)?;
    let as_of = as_of.unwrap_or(stage.as_of.score);
    let names: Vec<String> = a.features.iter().map(|f| f.name.clone()).collect();
    let d = load_dataset(stage, as_of, &names, super::dataset::Need::Explaining).await?;
    let x = reorder(&d, a.model.feature_names())?;
    let scored = score_rows(&a, &x, &stage.settings.bands)?;
    let max_err = scored
        .iter()
        .map(|s| (s.base + s.contributions.iter().sum::<f64>() - s.log_odds).abs())
        .fold(0.0, f64::max);
    let typical = typical_values(&x);
    let high: Vec<&str> = stage
        .settings
        .high_risk_bands
        .iter()
        .map(String::as_str)
        .collect();
    let top = stage.settings.top_factors;
    let explanations = explain_rows(&a, &d, &x, &scored, &typical, top, stage);
    let high_risk = scored
        .iter()
        .filter(|s| high.contains(&s.band.as_str()))
        .count();
    let with_top = count_with_top(&scored, &explanations, &high, top);
    let sdir = output_dir(&stage.out, "risk_scores", as_of, &a.version);
    let edir = output_dir(&stage.out, "explanations", as_of, &a.version);
    super::dataset::write_dir(&sdir, &[scores_batch(&a, &d, &scored)?])?;
    super::dataset::write_dir(&edir, &[explanations_batch(&a, &d, &explanations)?])?;
    super::dataset::write_dir(
        &output_dir(&stage.out, "shap", as_of, &a.version),
        &[shap_batch(&a, &d, &scored)?],
    )?;
    let bands = stage
        .settings
        .bands
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                scored.iter().filter(|s| s.band == b.name).count(),
            )
        })
        .collect();
    Ok(ScoreSummary {
        as_of,
        model_version: a.version.clone(),
        persons: scored.len(),
        bands,
        max_additivity_error: max_err,
        high_risk,
        high_risk_with_top_factors: with_top,
        scores: sdir,
        explanations: edir,
    })
}

/// Probabilities, SHAP, ranks, percentiles, deciles and bands of every row.
pub fn score_rows(
    a: &Artefact,
    x: &super::model::Matrix,
    bands: &[Band],
) -> Result<Vec<Scored>, RiskError> {
    let n = x.rows;
    // Margins and contributions of every row at once, on every core.
    let e = a.model.explain(x)?;
    let mut out: Vec<Scored> = (0..n)
        .map(|i| Scored {
            probability: 1.0 / (1.0 + (-e.margins[i]).exp()),
            log_odds: e.margins[i],
            base: e.base,
            contributions: e.row(i).to_vec(),
            rank: 0,
            percentile: 0,
            decile: 0,
            band: String::new(),
        })
        .collect();
    let p: Vec<f64> = out.iter().map(|s| s.probability).collect();
    for (r, i) in ranking(&p).into_iter().enumerate() {
        let s = &mut out[i];
        s.rank = r + 1;
        // Percentile 100 = the highest 1 %; decile 10 = the highest 10 %.
        s.percentile = (100 - (r * 100 / n.max(1))) as u8;
        s.decile = (10 - (r * 10 / n.max(1))) as u8;
        s.band = band_of(r, n, bands);
    }
    Ok(out)
}

fn band_of(rank0: usize, n: usize, bands: &[Band]) -> String {
    for b in bands {
        match b.top_percent {
            Some(p) if rank0 < super::evaluation::flagged_at(n, p) => return b.name.clone(),
            Some(_) => {}
            None => return b.name.clone(),
        }
    }
    bands.last().map(|b| b.name.clone()).unwrap_or_default()
}

/// The median of each column (NaN ignored), as the "typical" value on cards.
fn typical_values(x: &super::model::Matrix) -> Vec<f64> {
    (0..x.cols())
        .map(|j| {
            let mut v: Vec<f64> = (0..x.rows)
                .map(|i| x.data[i * x.cols() + j])
                .filter(|v| !v.is_nan())
                .collect();
            if v.is_empty() {
                return f64::NAN;
            }
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

/// One listed factor of one person.
#[derive(Debug, Clone)]
pub struct Factor {
    pub person: usize,
    pub rank: u32,
    pub feature: String,
    pub label: String,
    pub value: f64,
    pub typical: f64,
    pub contribution: f64,
    pub evidence: Option<String>,
}

fn explain_rows(
    a: &Artefact,
    d: &Dataset,
    x: &super::model::Matrix,
    scored: &[Scored],
    typical: &[f64],
    top: usize,
    stage: &Stage,
) -> Vec<Factor> {
    let mut out = Vec::with_capacity(scored.len() * top);
    for (i, s) in scored.iter().enumerate() {
        let mut idx: Vec<usize> = (0..s.contributions.len())
            .filter(|j| s.contributions[*j] > 0.0)
            .collect();
        idx.sort_by(|p, q| {
            s.contributions[*q]
                .total_cmp(&s.contributions[*p])
                .then(p.cmp(q))
        });
        for (r, j) in idx.into_iter().take(top).enumerate() {
            let name = &x.names[j];
            let col = a.features.iter().find(|f| &f.name == name);
            out.push(Factor {
                person: i,
                rank: r as u32 + 1,
                feature: name.clone(),
                label: col.map(|c| c.label.clone()).unwrap_or_else(|| name.clone()),
                value: x.data[i * x.cols() + j],
                typical: typical[j],
                contribution: s.contributions[j],
                evidence: evidence_text(
                    stage,
                    name,
                    d.evidence.get(name).and_then(|e| e[i].as_deref()),
                ),
            });
        }
    }
    out
}

fn count_with_top(scored: &[Scored], f: &[Factor], high: &[&str], top: usize) -> usize {
    let mut per = vec![0usize; scored.len()];
    for x in f {
        per[x.person] += 1;
    }
    scored
        .iter()
        .enumerate()
        .filter(|(i, s)| high.contains(&s.band.as_str()) && per[*i] >= top)
        .count()
}

/// Plain text of a feature's evidence column (see `features`: `date|provider`,
/// `count|date|provider`, or a `;` list of categories or codes).
pub fn evidence_text(stage: &Stage, feature: &str, ev: Option<&str>) -> Option<String> {
    let ev = ev?;
    let kind = stage
        .specs
        .iter()
        .find(|s| s.name == feature)
        .map(|s| &s.kind)?;
    let parts: Vec<&str> = ev.split('|').collect();
    Some(match (kind, parts.as_slice()) {
        (FeatureKind::Condition { .. }, [n, d, p]) => {
            format!("recorded {n} times, latest {d} ({p})")
        }
        (FeatureKind::ConditionCount { .. }, _) => {
            format!("conditions: {}", ev.replace(';', ", ").replace("ltc_", ""))
        }
        (FeatureKind::Charlson { .. } | FeatureKind::Elixhauser { .. }, _) => {
            format!("categories: {}", ev.replace(';', ", "))
        }
        (FeatureKind::Hfrs { .. }, _) => format!("ICD-10 codes: {}", ev.replace(';', ", ")),
        (_, [d, p]) => format!("latest {d} ({p})"),
        _ => ev.to_string(),
    })
}

fn strings<'a>(v: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

fn f64s(v: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(v))
}

fn keyed(a: &Artefact, d: &Dataset, rows: &[usize]) -> (Vec<Field>, Vec<ArrayRef>) {
    let as_of = d.as_of.format("%Y-%m-%d").to_string();
    (
        vec![
            Field::new("person_key", DataType::Utf8, true),
            Field::new("as_of_date", DataType::Utf8, true),
            Field::new("model_version", DataType::Utf8, true),
        ],
        vec![
            strings(rows.iter().map(|i| Some(d.person_keys[*i].as_str()))),
            strings(rows.iter().map(|_| Some(as_of.as_str()))),
            strings(rows.iter().map(|_| Some(a.version.as_str()))),
        ],
    )
}

fn batch(fields: Vec<Field>, cols: Vec<ArrayRef>) -> Result<RecordBatch, RiskError> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| RiskError::Data(e.to_string()))
}

fn scores_batch(a: &Artefact, d: &Dataset, s: &[Scored]) -> Result<RecordBatch, RiskError> {
    let rows: Vec<usize> = (0..s.len()).collect();
    let (mut f, mut c) = keyed(a, d, &rows);
    let practice: Vec<Option<String>> = rows.iter().map(|i| d.text_of("practice", *i)).collect();
    let pcn: Vec<Option<String>> = rows.iter().map(|i| d.text_of("pcn", *i)).collect();
    f.extend([
        Field::new("probability", DataType::Float64, false),
        Field::new("log_odds", DataType::Float64, false),
        Field::new("rank", DataType::UInt32, false),
        Field::new("percentile", DataType::UInt8, false),
        Field::new("decile", DataType::UInt8, false),
        Field::new("band", DataType::Utf8, true),
        Field::new("practice", DataType::Utf8, true),
        Field::new("pcn", DataType::Utf8, true),
    ]);
    c.extend([
        f64s(s.iter().map(|x| x.probability)),
        f64s(s.iter().map(|x| x.log_odds)),
        Arc::new(UInt32Array::from_iter_values(
            s.iter().map(|x| x.rank as u32),
        )) as ArrayRef,
        Arc::new(UInt8Array::from_iter_values(s.iter().map(|x| x.percentile))),
        Arc::new(UInt8Array::from_iter_values(s.iter().map(|x| x.decile))),
        strings(s.iter().map(|x| Some(x.band.as_str()))),
        strings(practice.iter().map(|p| p.as_deref())),
        strings(pcn.iter().map(|p| p.as_deref())),
    ]);
    batch(f, c)
}

fn explanations_batch(a: &Artefact, d: &Dataset, e: &[Factor]) -> Result<RecordBatch, RiskError> {
    let rows: Vec<usize> = e.iter().map(|x| x.person).collect();
    let (mut f, mut c) = keyed(a, d, &rows);
    f.extend([
        Field::new("factor_rank", DataType::UInt32, false),
        Field::new("feature", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("typical_value", DataType::Float64, false),
        Field::new("contribution", DataType::Float64, false),
        Field::new("odds_ratio", DataType::Float64, false),
        Field::new("evidence", DataType::Utf8, true),
    ]);
    c.extend([
        Arc::new(UInt32Array::from_iter_values(e.iter().map(|x| x.rank))) as ArrayRef,
        strings(e.iter().map(|x| Some(x.feature.as_str()))),
        strings(e.iter().map(|x| Some(x.label.as_str()))),
        f64s(e.iter().map(|x| x.value)),
        f64s(e.iter().map(|x| x.typical)),
        f64s(e.iter().map(|x| x.contribution)),
        f64s(e.iter().map(|x| x.contribution.exp())),
        strings(e.iter().map(|x| x.evidence.as_deref())),
    ]);
    batch(f, c)
}

fn shap_batch(a: &Artefact, d: &Dataset, s: &[Scored]) -> Result<RecordBatch, RiskError> {
    let rows: Vec<usize> = (0..s.len()).collect();
    let (mut f, mut c) = keyed(a, d, &rows);
    f.push(Field::new("log_odds", DataType::Float64, false));
    c.push(f64s(s.iter().map(|x| x.log_odds)));
    f.push(Field::new("base_value", DataType::Float64, false));
    c.push(f64s(s.iter().map(|x| x.base)));
    for (j, name) in a.model.feature_names().iter().enumerate() {
        f.push(Field::new(format!("shap_{name}"), DataType::Float64, false));
        c.push(f64s(s.iter().map(|x| x.contributions[j])));
    }
    batch(f, c)
}
