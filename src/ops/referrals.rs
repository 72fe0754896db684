//! Case referrals for community intervention teams: everyone above the declared
//! threshold (`operations.referral`: the top k % by rank, or listed bands) at a scored
//! as-of date, with the pseudonymous person key, the registered practice, the score,
//! band and the explanation (top factors with evidence). No identifier: re-identifying
//! a referred person is [`super::reidentify`]'s work. Written, per as-of date and model
//! version, to `gold/referrals/as_of=<d>/model=<v>/referrals.json` and `referrals.csv`
//! (columns in docs/operations.md; FHIR `ServiceRequest` mapping there too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{ReferralSettings, Threshold};
use super::{OpsError, ScoreRow, f64_column, read_parquet_dir, read_scores, text_column, ymd};

/// One factor behind a referral.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferralFactor {
    pub rank: u32,
    pub feature: String,
    pub label: String,
    pub value: f64,
    pub typical_value: f64,
    /// SHAP contribution in log-odds.
    pub contribution: f64,
    pub evidence: Option<String>,
}

/// One referral record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Referral {
    /// Stable id of the referral: 16 hex digits of SHA-256 over the as-of date and key.
    pub referral_id: String,
    pub person_key: String,
    pub as_of_date: String,
    pub model_version: String,
    /// Registered practice (ODS code) at the as-of date.
    pub practice: Option<String>,
    pub pcn: Option<String>,
    pub probability: f64,
    pub rank: u32,
    pub percentile: u8,
    pub band: String,
    /// `urgent` for the highest band, else `routine` (FHIR `ServiceRequest.priority`).
    pub priority: String,
    pub factors: Vec<ReferralFactor>,
    /// The factors as one sentence.
    pub explanation: String,
}

/// `referrals.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferralFile {
    pub as_of_date: String,
    pub model_version: String,
    /// `{kind: top_percent, top_percent}` or `{kind: bands, bands}`.
    pub threshold: serde_json::Value,
    pub team: String,
    pub persons_scored: usize,
    pub referred: usize,
    pub referrals: Vec<Referral>,
}

pub fn referrals_dir(out: &Path, as_of: NaiveDate, version: &str) -> PathBuf {
    crate::risk::score::output_dir(out, "referrals", as_of, version)
}

/// Whether a scored person meets the threshold.
fn referred(t: &Threshold, s: &ScoreRow, n: usize) -> bool {
    match t {
        Threshold::TopPercent { top_percent } => {
            (s.rank as usize) <= crate::risk::evaluation::flagged_at(n, *top_percent)
        }
        Threshold::Bands { bands } => bands.contains(&s.band),
    }
}

/// The explanation factors of every person at `as_of` by `version`.
fn factors(
    out: &Path,
    as_of: NaiveDate,
    version: &str,
) -> Result<BTreeMap<String, Vec<ReferralFactor>>, OpsError> {
    let dir = crate::risk::score::output_dir(out, "explanations", as_of, version);
    let mut by: BTreeMap<String, Vec<ReferralFactor>> = BTreeMap::new();
    for b in read_parquet_dir(&dir)? {
        let key = text_column(&b, "person_key")?;
        let rank = f64_column(&b, "factor_rank")?;
        let feature = text_column(&b, "feature")?;
        let label = text_column(&b, "label")?;
        let value = f64_column(&b, "value")?;
        let typical = f64_column(&b, "typical_value")?;
        let contribution = f64_column(&b, "contribution")?;
        let evidence = text_column(&b, "evidence")?;
        for i in 0..b.num_rows() {
            by.entry(key[i].clone().unwrap_or_default())
                .or_default()
                .push(ReferralFactor {
                    rank: rank[i] as u32,
                    feature: feature[i].clone().unwrap_or_default(),
                    label: label[i].clone().unwrap_or_default(),
                    value: value[i],
                    typical_value: typical[i],
                    contribution: contribution[i],
                    evidence: evidence[i].clone(),
                });
        }
    }
    for v in by.values_mut() {
        v.sort_by_key(|f| f.rank);
    }
    Ok(by)
}

fn referral_id(as_of: &str, key: &str) -> String {
    let h = Sha256::digest(format!("onboard referral|{as_of}|{key}").as_bytes());
    hex::encode(&h[..8])
}

fn explanation(f: &[ReferralFactor]) -> String {
    f.iter()
        .map(|f| match &f.evidence {
            Some(e) => format!("{}: {} ({e})", f.label, number(f.value)),
            None => format!("{}: {}", f.label, number(f.value)),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// Build and write the referrals of `as_of` scored by `version`.
pub fn write(
    out: &Path,
    as_of: NaiveDate,
    version: &str,
    settings: &ReferralSettings,
    bands: &[String],
) -> Result<ReferralFile, OpsError> {
    let scores = read_scores(out, as_of, version)?;
    let mut why = factors(out, as_of, version)?;
    let t = settings.threshold();
    let top_band = bands.first().cloned().unwrap_or_default();
    let d = ymd(as_of);
    let referrals: Vec<Referral> = scores
        .iter()
        .filter(|s| referred(&t, s, scores.len()))
        .map(|s| {
            let f = why.remove(&s.person_key).unwrap_or_default();
            Referral {
                referral_id: referral_id(&d, &s.person_key),
                person_key: s.person_key.clone(),
                as_of_date: d.clone(),
                model_version: version.to_string(),
                practice: s.practice.clone(),
                pcn: s.pcn.clone(),
                probability: s.probability,
                rank: s.rank,
                percentile: s.percentile,
                band: s.band.clone(),
                priority: if s.band == top_band {
                    "urgent"
                } else {
                    "routine"
                }
                .into(),
                explanation: explanation(&f),
                factors: f,
            }
        })
        .collect();
    let file = ReferralFile {
        as_of_date: d,
        model_version: version.to_string(),
        threshold: serde_json::to_value(&t).unwrap_or_default(),
        team: settings.team.clone(),
        persons_scored: scores.len(),
        referred: referrals.len(),
        referrals,
    };
    let dir = referrals_dir(out, as_of, version);
    super::write_json(&dir.join("referrals.json"), &file)?;
    super::write_text(&dir.join("referrals.csv"), &csv_text(&file)?)?;
    Ok(file)
}

/// Factor columns in the CSV.
pub const CSV_FACTORS: usize = 3;

/// The CSV header (docs/operations.md).
pub fn csv_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "referral_id",
        "person_key",
        "as_of_date",
        "model_version",
        "practice",
        "pcn",
        "probability",
        "rank",
        "percentile",
        "band",
        "priority",
        "team",
    ]
    .map(String::from)
    .to_vec();
    for i in 1..=CSV_FACTORS {
        for c in ["feature", "label", "value", "evidence"] {
            h.push(format!("factor_{i}_{c}"));
        }
    }
    h.push("explanation".into());
    h
}

fn csv_text(f: &ReferralFile) -> Result<String, OpsError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let bad = |e: csv::Error| OpsError::Data(e.to_string());
    w.write_record(csv_header()).map_err(bad)?;
    for r in &f.referrals {
        let mut row = vec![
            r.referral_id.clone(),
            r.person_key.clone(),
            r.as_of_date.clone(),
            r.model_version.clone(),
            r.practice.clone().unwrap_or_default(),
            r.pcn.clone().unwrap_or_default(),
            format!("{}", r.probability),
            r.rank.to_string(),
            r.percentile.to_string(),
            r.band.clone(),
            r.priority.clone(),
            f.team.clone(),
        ];
        for i in 0..CSV_FACTORS {
            match r.factors.get(i) {
                Some(x) => row.extend([
                    x.feature.clone(),
                    x.label.clone(),
                    number(x.value),
                    x.evidence.clone().unwrap_or_default(),
                ]),
                None => row.extend(std::iter::repeat_n(String::new(), 4)),
            }
        }
        row.push(r.explanation.clone());
        w.write_record(&row).map_err(bad)?;
    }
    let bytes = w.into_inner().map_err(|e| OpsError::Data(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Read the referrals of `as_of` by `version`.
pub fn read(out: &Path, as_of: NaiveDate, version: &str) -> Result<ReferralFile, OpsError> {
    let p = referrals_dir(out, as_of, version).join("referrals.json");
    let text = std::fs::read_to_string(&p).map_err(|e| {
        OpsError::file(
            &p,
            format!(
                "{e}: no referrals for as-of {as_of} by {version} (`onboard referrals` writes them)"
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| OpsError::file(&p, e))
}
