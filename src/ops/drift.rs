//! Feature drift between two as-of dates: the population stability index (PSI) of every
//! numeric feature of `gold/features`, binned on the earlier date's distribution
//! (its distinct values when a feature has at most `bins` of them, else its quantiles;
//! missing values are a bin of their own):
//! `PSI = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)` over bins, `e` the earlier shares, `a` the later
//! ones, each at least 0.0001. Below `warn` (0.1) is stable, from `alert` (0.25) a major
//! shift.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use super::config::DriftSettings;
use super::{OpsError, f64_column, read_parquet_dir};

/// The drift of one feature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
    /// `stable`, `warn` or `alert`.
    pub status: String,
    pub bins: usize,
    pub mean_before: f64,
    pub mean_after: f64,
}

/// Drift of every numeric feature from one as-of date to a later one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftReport {
    pub from_as_of: String,
    pub to_as_of: String,
    pub persons_before: usize,
    pub persons_after: usize,
    pub warn: f64,
    pub alert: f64,
    pub max_psi: f64,
    /// Features at `warn` or above, highest PSI first.
    pub flagged: Vec<String>,
    pub features: Vec<FeatureDrift>,
}

const FLOOR: f64 = 1e-4;

/// Bin edges or categories of a reference distribution.
enum Bins {
    Values(Vec<f64>),
    Edges(Vec<f64>),
}

impl Bins {
    fn of(reference: &[f64], bins: usize) -> Bins {
        let mut v: Vec<f64> = reference.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let mut distinct = v.clone();
        distinct.dedup();
        if distinct.len() <= bins {
            return Bins::Values(distinct);
        }
        let mut edges: Vec<f64> = (1..bins).map(|i| v[i * v.len() / bins]).collect();
        edges.dedup();
        Bins::Edges(edges)
    }
    fn count(&self) -> usize {
        match self {
            // Each value, values not seen before, missing.
            Bins::Values(v) => v.len() + 2,
            Bins::Edges(e) => e.len() + 2,
        }
    }
    fn index(&self, x: f64) -> usize {
        let n = self.count();
        if x.is_nan() {
            return n - 1;
        }
        match self {
            Bins::Values(v) => v.binary_search_by(|p| p.total_cmp(&x)).unwrap_or(n - 2),
            Bins::Edges(e) => e.partition_point(|edge| *edge <= x),
        }
    }
    fn shares(&self, xs: &[f64]) -> Vec<f64> {
        let mut c = vec![0usize; self.count()];
        for x in xs {
            c[self.index(*x)] += 1;
        }
        let n = xs.len().max(1) as f64;
        c.into_iter().map(|k| k as f64 / n).collect()
    }
}

/// PSI of `after` against `before`, binned on `before`.
pub fn psi(before: &[f64], after: &[f64], bins: usize) -> (f64, usize) {
    let b = Bins::of(before, bins.max(2));
    let e = b.shares(before);
    let a = b.shares(after);
    let mut total = 0.0;
    for (e, a) in e.iter().zip(&a) {
        if *e == 0.0 && *a == 0.0 {
            continue;
        }
        let (e, a) = (e.max(FLOOR), a.max(FLOOR));
        total += (a - e) * (a / e).ln();
    }
    (total, b.count())
}

/// The numeric feature columns of a `gold/features` directory.
fn numeric_columns(dir: &Path) -> Result<(usize, BTreeMap<String, Vec<f64>>), OpsError> {
    let batches = read_parquet_dir(dir)?;
    let mut cols: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut rows = 0;
    for b in &batches {
        rows += b.num_rows();
        for f in b.schema().fields() {
            let name = f.name();
            let numeric = matches!(
                f.data_type(),
                DataType::Float64 | DataType::Float32 | DataType::Int64 | DataType::Int32
            );
            if !numeric || name.starts_with("ev_") || name == crate::risk::features::OUTCOME {
                continue;
            }
            cols.entry(name.clone())
                .or_default()
                .extend(f64_column(b, name)?);
        }
    }
    Ok((rows, cols))
}

fn status(psi: f64, s: &DriftSettings) -> &'static str {
    if psi >= s.alert {
        "alert"
    } else if psi >= s.warn {
        "warn"
    } else {
        "stable"
    }
}

fn mean(v: &[f64]) -> f64 {
    let x: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// Drift between two feature tables (directories of Parquet files).
pub fn compare_dirs(
    before: &Path,
    after: &Path,
    labels: (&str, &str),
    s: &DriftSettings,
) -> Result<DriftReport, OpsError> {
    let (n0, a) = numeric_columns(before)?;
    let (n1, b) = numeric_columns(after)?;
    let mut features: Vec<FeatureDrift> = a
        .iter()
        .filter_map(|(name, x)| b.get(name).map(|y| (name, x, y)))
        .map(|(name, x, y)| {
            let (p, bins) = psi(x, y, s.bins);
            let p = (p * 1e6).round() / 1e6;
            FeatureDrift {
                feature: name.clone(),
                psi: p,
                status: status(p, s).into(),
                bins,
                mean_before: mean(x),
                mean_after: mean(y),
            }
        })
        .collect();
    features.sort_by(|x, y| y.psi.total_cmp(&x.psi).then(x.feature.cmp(&y.feature)));
    Ok(DriftReport {
        from_as_of: labels.0.into(),
        to_as_of: labels.1.into(),
        persons_before: n0,
        persons_after: n1,
        warn: s.warn,
        alert: s.alert,
        max_psi: features.first().map_or(0.0, |f| f.psi),
        flagged: features
            .iter()
            .filter(|f| f.status != "stable")
            .map(|f| f.feature.clone())
            .collect(),
        features,
    })
}

/// Drift of the features of `to` against those of `from`; written to
/// `ops/drift/as_of=<to>/drift.json`.
pub fn between(
    out: &Path,
    from: NaiveDate,
    to: NaiveDate,
    s: &DriftSettings,
) -> Result<DriftReport, OpsError> {
    let dir = |d| crate::risk::features_dir(out, d);
    for d in [from, to] {
        if !dir(d).is_dir() {
            return Err(OpsError::Data(format!(
                "no features at as-of {d} ({} is missing): run `onboard risk features --as-of {d}`",
                dir(d).display()
            )));
        }
    }
    let r = compare_dirs(
        &dir(from),
        &dir(to),
        (&super::ymd(from), &super::ymd(to)),
        s,
    )?;
    super::write_json(&drift_path(out, to), &r)?;
    Ok(r)
}

pub fn drift_path(out: &Path, to: NaiveDate) -> std::path::PathBuf {
    super::ops_dir(out)
        .join("drift")
        .join(format!("as_of={}", super::ymd(to)))
        .join("drift.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_distribution_is_stable_and_a_shift_is_not() {
        let a: Vec<f64> = (0..1000).map(|i| (i % 97) as f64).collect();
        assert!(psi(&a, &a, 10).0.abs() < 1e-12);
        let shifted: Vec<f64> = a.iter().map(|x| x + 30.0).collect();
        assert!(psi(&a, &shifted, 10).0 > 0.25);
        let counts: Vec<f64> = (0..1000).map(|i| (i % 3) as f64).collect();
        let more: Vec<f64> = (0..1000)
            .map(|i| if i % 2 == 0 { 2.0 } else { 0.0 })
            .collect();
        assert!(psi(&counts, &more, 10).0 > 0.1);
    }
}
