//! How well scores found the people who were admitted: AUROC, Brier score, recall@k and
//! PPV@k (k = 0.5, 1, 2, 5 % of the population flagged by score), calibration by decile
//! of predicted risk, and the same by subgroup (recall of each subgroup's admitted people
//! at the overall top-k threshold, so unequal reach shows).

use serde::{Deserialize, Serialize};

pub use super::config::K_PERCENT;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AtK {
    pub k_percent: f64,
    pub flagged: usize,
    pub true_positives: usize,
    pub recall: f64,
    pub ppv: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decile {
    /// 10 = highest predicted risk.
    pub decile: u8,
    pub persons: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subgroup {
    pub breakdown: String,
    pub group: String,
    pub persons: usize,
    pub events: usize,
    pub auroc: Option<f64>,
    /// Share of this group's admitted people who were in the overall top 5 %.
    pub recall_at_5: Option<f64>,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub persons: usize,
    pub events: usize,
    pub prevalence: f64,
    pub auroc: f64,
    pub brier: f64,
    pub at_k: Vec<AtK>,
    pub calibration: Vec<Decile>,
    pub subgroups: Vec<Subgroup>,
}

/// Order of people by score, highest first (ties: lower index first).
pub fn ranking(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]).then(a.cmp(b)));
    idx
}

/// Number of people flagged at `k` % of `n`.
pub fn flagged_at(n: usize, k: f64) -> usize {
    ((n as f64 * k / 100.0).ceil() as usize).min(n)
}

/// Evaluate probabilities `p` against outcomes `y`, with breakdowns (name, group of
/// each person).
pub fn evaluate(p: &[f64], y: &[bool], breakdowns: &[(&str, Vec<String>)]) -> Evaluation {
    let n = p.len();
    let events = y.iter().filter(|v| **v).count();
    let order = ranking(p);
    let mut rank = vec![0usize; n];
    for (r, i) in order.iter().enumerate() {
        rank[*i] = r;
    }
    let at_k = K_PERCENT
        .iter()
        .map(|k| {
            let f = flagged_at(n, *k);
            let tp = order[..f].iter().filter(|i| y[**i]).count();
            AtK {
                k_percent: *k,
                flagged: f,
                true_positives: tp,
                recall: ratio(tp, events),
                ppv: ratio(tp, f),
            }
        })
        .collect();
    let top5 = flagged_at(n, 5.0);
    let subgroups = breakdowns
        .iter()
        .flat_map(|(name, groups)| subgroup_rows(name, groups, p, y, &rank, top5))
        .collect();
    Evaluation {
        persons: n,
        events,
        prevalence: ratio(events, n),
        auroc: super::model::metrics::auroc(p, y),
        brier: p
            .iter()
            .zip(y)
            .map(|(p, y)| (p - if *y { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>()
            / n.max(1) as f64,
        at_k,
        calibration: deciles(p, y, &order),
        subgroups,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Deciles of predicted risk (10 = highest), by rank.
fn deciles(p: &[f64], y: &[bool], order: &[usize]) -> Vec<Decile> {
    let n = order.len();
    (0..10u8)
        .map(|d| {
            // Decile 10 holds the first tenth of the ranking.
            let lo = n * (9 - d as usize) / 10;
            let hi = n * (10 - d as usize) / 10;
            let ids = &order[lo..hi];
            let m = ids.len().max(1) as f64;
            Decile {
                decile: d + 1,
                persons: ids.len(),
                mean_predicted: ids.iter().map(|i| p[*i]).sum::<f64>() / m,
                observed_rate: ids.iter().filter(|i| y[**i]).count() as f64 / m,
            }
        })
        .collect()
}

fn subgroup_rows(
    name: &str,
    groups: &[String],
    p: &[f64],
    y: &[bool],
    rank: &[usize],
    top5: usize,
) -> Vec<Subgroup> {
    let mut by: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, g) in groups.iter().enumerate() {
        by.entry(g.as_str()).or_default().push(i);
    }
    by.into_iter()
        .map(|(g, ids)| {
            let sp: Vec<f64> = ids.iter().map(|i| p[*i]).collect();
            let sy: Vec<bool> = ids.iter().map(|i| y[*i]).collect();
            let events = sy.iter().filter(|v| **v).count();
            let reached = ids.iter().filter(|i| y[**i] && rank[**i] < top5).count();
            let m = ids.len().max(1) as f64;
            Subgroup {
                breakdown: name.to_string(),
                group: g.to_string(),
                persons: ids.len(),
                events,
                auroc: (events > 0 && events < ids.len())
                    .then(|| super::model::metrics::auroc(&sp, &sy)),
                recall_at_5: (events > 0).then(|| ratio(reached, events)),
                mean_predicted: sp.iter().sum::<f64>() / m,
                observed_rate: events as f64 / m,
            }
        })
        .collect()
}

/// Age band of an age in years, for breakdowns.
pub fn age_band(age: f64) -> String {
    if age.is_nan() {
        return "unknown".into();
    }
    let a = age as i64;
    match a {
        i64::MIN..=17 => "0-17",
        18..=39 => "18-39",
        40..=64 => "40-64",
        65..=79 => "65-79",
        _ => "80+",
    }
    .into()
}

/// IMD quintile (1 most deprived) of a decile.
pub fn imd_quintile(decile: f64) -> String {
    if decile.is_nan() {
        "unknown".into()
    } else {
        format!("Q{}", ((decile as i64 + 1) / 2).clamp(1, 5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_and_ppv_at_k() {
        // 200 people; the 2 highest scores are admitted, plus one at the bottom.
        let mut p: Vec<f64> = (0..200).map(|i| 1.0 - i as f64 / 200.0).collect();
        p[199] = 0.0;
        let mut y = vec![false; 200];
        y[0] = true;
        y[1] = true;
        y[199] = true;
        let e = evaluate(&p, &y, &[]);
        let k1 = &e.at_k[1];
        assert_eq!(k1.flagged, 2);
        assert_eq!(k1.true_positives, 2);
        assert!((k1.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((k1.ppv - 1.0).abs() < 1e-12);
        assert_eq!(e.calibration.iter().map(|d| d.persons).sum::<usize>(), 200);
        assert_eq!(e.calibration[9].decile, 10);
        assert!((e.calibration[9].observed_rate - 0.1).abs() < 1e-12);
    }

    #[test]
    fn bands_and_quintiles() {
        assert_eq!(age_band(17.0), "0-17");
        assert_eq!(age_band(80.0), "80+");
        assert_eq!(imd_quintile(1.0), "Q1");
        assert_eq!(imd_quintile(10.0), "Q5");
    }
}
