//! Discrimination metrics for model cards.

/// Area under the ROC curve by the Mann–Whitney statistic, ties scored by midrank (a tied
/// positive/negative pair counts one half). NaN when `y` has only one class, when lengths
/// differ, or when a score is NaN.
pub fn auroc(scores: &[f64], y: &[bool]) -> f64 {
    if scores.len() != y.len() || scores.iter().any(|s| s.is_nan()) {
        return f64::NAN;
    }
    let positives = y.iter().filter(|&&v| v).count();
    let negatives = y.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1..=j+1 share their mean.
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        let tied_pos = order[i..=j].iter().filter(|&&k| y[k]).count();
        rank_sum += midrank * tied_pos as f64;
        i = j + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

#[cfg(test)]
mod tests {
    use super::auroc;

    #[test]
    fn auroc_with_ties_by_hand() {
        // Positives 0.8, 0.4, 0.4; negatives 0.4, 0.2.
        // Pairs: (0.8 > 0.4) 1, (0.8 > 0.2) 1, (0.4 = 0.4) 1/2 twice, (0.4 > 0.2) 1 twice:
        // (1 + 1 + 0.5 + 0.5 + 1 + 1) / 6 = 5/6.
        let s = [0.8, 0.4, 0.4, 0.4, 0.2];
        let y = [true, true, true, false, false];
        assert!((auroc(&s, &y) - 5.0 / 6.0).abs() < 1e-15);
        assert_eq!(auroc(&[0.1, 0.9], &[false, true]), 1.0);
        assert_eq!(auroc(&[0.3, 0.3], &[false, true]), 0.5);
        assert!(auroc(&[0.1, 0.2], &[true, true]).is_nan());
    }
}
