//! Gradient-boosted trees trained here: second-order boosting of the logistic loss
//! (XGBoost's algorithm: leaf weight `-G/(H+lambda)`, split gain
//! `G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda) - G^2/(H+lambda)`), histogram splits on up to
//! 255 float32 cut points per feature (every distinct value when there are fewer), the
//! missing-value direction learned per split, depth-first growth with the histogram
//! subtraction trick, row subsampling from a seeded generator (deterministic for a seed).
//! Node covers (sums of hessians) are recorded for TreeSHAP.

use super::trees::{Tree, TreeEnsemble, TreeSource};
use super::{Matrix, ModelError};
use serde::{Deserialize, Serialize};

/// Boosting settings (XGBoost's names: `eta` = `learning_rate`, `lambda` = L2 on leaf weights).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GbmParams {
    pub trees: usize,
    pub max_depth: usize,
    pub learning_rate: f64,
    pub min_child_weight: f64,
    pub lambda: f64,
    /// Share of rows sampled (without replacement, per row) for each tree.
    pub subsample: f64,
    pub seed: u64,
}

impl Default for GbmParams {
    fn default() -> Self {
        GbmParams {
            trees: 100,
            max_depth: 4,
            learning_rate: 0.1,
            min_child_weight: 1.0,
            lambda: 1.0,
            subsample: 1.0,
            seed: 0,
        }
    }
}

/// Bin code of a missing value (cut points are at most 254, so bins are 0..=254).
const MISSING: u8 = 255;
const MAX_CUTS: usize = 254;
const BINS: usize = 256;

impl TreeEnsemble {
    /// Train on `x` (NaN = missing) against `y` with the logistic loss.
    pub fn fit(x: &Matrix, y: &[bool], p: &GbmParams) -> Result<TreeEnsemble, ModelError> {
        check_params(p)?;
        x.check_training(y)?;
        let cuts: Vec<Vec<f32>> = (0..x.cols()).map(|j| cut_points(x, j)).collect();
        let bins = bin_matrix(x, &cuts);
        let prevalence = y.iter().filter(|&&v| v).count() as f64 / y.len() as f64;
        let base_margin = (prevalence / (1.0 - prevalence)).ln();
        let mut margin = vec![base_margin; x.rows];
        let mut grad = vec![[0.0f64; 2]; x.rows];
        let mut rng = SplitMix64(p.seed);
        let mut trees = Vec::with_capacity(p.trees);
        let mut grower = Grower::new(x.cols(), &bins, &cuts, p);
        for _ in 0..p.trees {
            for ((g, &m), &yi) in grad.iter_mut().zip(&margin).zip(y) {
                let mu = super::sigmoid(m);
                *g = [mu - f64::from(u8::from(yi)), (mu * (1.0 - mu)).max(1e-16)];
            }
            let mut rows: Vec<u32> = (0..x.rows as u32)
                .filter(|_| p.subsample >= 1.0 || rng.unit() < p.subsample)
                .collect();
            let tree = grower.grow(&mut rows, &grad);
            for (r, m) in margin.iter_mut().enumerate() {
                *m += tree.value[tree.leaf(x.row(r))];
            }
            trees.push(tree);
        }
        let source = TreeSource::Trained {
            params: p.clone(),
            rows: x.rows,
        };
        TreeEnsemble::new(x.names.clone(), base_margin, trees, source)
    }
}

fn check_params(p: &GbmParams) -> Result<(), ModelError> {
    let bad = |name, reason: &str| {
        Err(ModelError::Param {
            name,
            reason: reason.into(),
        })
    };
    if p.trees == 0 {
        return bad("trees", "must be at least 1");
    }
    if p.max_depth == 0 || p.max_depth > 16 {
        return bad("max_depth", "must be 1 to 16");
    }
    if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
        return bad("learning_rate", "must be in (0, 1]");
    }
    if !(p.min_child_weight >= 0.0 && p.min_child_weight.is_finite()) {
        return bad("min_child_weight", "must be a finite number >= 0");
    }
    if !(p.lambda >= 0.0 && p.lambda.is_finite()) {
        return bad("lambda", "must be a finite number >= 0");
    }
    if !(p.subsample > 0.0 && p.subsample <= 1.0) {
        return bad("subsample", "must be in (0, 1]");
    }
    Ok(())
}

/// Cut points of feature `j` in float32: every distinct value but the smallest when there
/// are at most 255 distinct values, else 254 quantiles. Bin = number of cuts <= value.
fn cut_points(x: &Matrix, j: usize) -> Vec<f32> {
    let p = x.cols();
    let mut v: Vec<f32> = (0..x.rows)
        .map(|r| x.data[r * p + j])
        .filter(|v| !v.is_nan())
        .map(|v| v as f32)
        .collect();
    v.sort_by(f32::total_cmp);
    let mut distinct = v.clone();
    distinct.dedup();
    if distinct.len() <= MAX_CUTS + 1 {
        return distinct.into_iter().skip(1).collect();
    }
    let mut cuts: Vec<f32> = (1..=MAX_CUTS)
        .map(|q| v[q * v.len() / (MAX_CUTS + 1)])
        .filter(|&c| c > distinct[0])
        .collect();
    cuts.dedup();
    cuts
}

fn bin_matrix(x: &Matrix, cuts: &[Vec<f32>]) -> Vec<u8> {
    let p = x.cols();
    let mut bins = Vec::with_capacity(x.data.len());
    for r in 0..x.rows {
        bins.extend(x.row(r).iter().zip(cuts).map(|(&v, c)| {
            if v.is_nan() {
                MISSING
            } else {
                let v = v as f32;
                c.partition_point(|&cut| cut <= v) as u8
            }
        }));
    }
    debug_assert_eq!(bins.len(), x.rows * p);
    bins
}

/// The best split of a node.
#[derive(Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    /// Rows with bin < `bin` go left.
    bin: usize,
    missing_left: bool,
}

/// Grows one tree; owns the histogram buffers reused across trees.
struct Grower<'a> {
    p: usize,
    bins: &'a [u8],
    cuts: &'a [Vec<f32>],
    params: &'a GbmParams,
    /// Spare histograms (p x 256 of [G, H]), reused across nodes and trees.
    pool: Vec<Vec<[f64; 2]>>,
}

impl<'a> Grower<'a> {
    fn new(p: usize, bins: &'a [u8], cuts: &'a [Vec<f32>], params: &'a GbmParams) -> Self {
        Grower {
            p,
            bins,
            cuts,
            params,
            pool: Vec::new(),
        }
    }

    fn grow(&mut self, rows: &mut [u32], grad: &[[f64; 2]]) -> Tree {
        let mut tree = Tree {
            left: vec![],
            right: vec![],
            feature: vec![],
            threshold: vec![],
            default_left: vec![],
            value: vec![],
            cover: vec![],
        };
        let mut hist = self.spare();
        self.build(&mut hist, rows, grad);
        self.node(&mut tree, rows, grad, hist, 0);
        tree
    }

    fn spare(&mut self) -> Vec<[f64; 2]> {
        self.pool
            .pop()
            .unwrap_or_else(|| vec![[0.0; 2]; self.p * BINS])
    }

    /// The histogram of `rows`. Large nodes are split into a fixed number of parts built on
    /// threads and added in order, so the result does not depend on the number of cores.
    fn build(&self, hist: &mut [[f64; 2]], rows: &[u32], grad: &[[f64; 2]]) {
        const PARTS: usize = 4;
        const PARALLEL_ROWS: usize = 1 << 16;
        if rows.len() < PARALLEL_ROWS {
            self.build_part(hist, rows, grad);
            return;
        }
        let part = rows.len().div_ceil(PARTS);
        let mut partials: Vec<Vec<[f64; 2]>> =
            (1..PARTS).map(|_| vec![[0.0; 2]; hist.len()]).collect();
        std::thread::scope(|scope| {
            let mut chunks = rows.chunks(part);
            let first = chunks.next().unwrap_or(&[]);
            for (buf, chunk) in partials.iter_mut().zip(chunks) {
                scope.spawn(move || self.build_part(buf, chunk, grad));
            }
            self.build_part(hist, first, grad);
        });
        for buf in &partials {
            for (a, b) in hist.iter_mut().zip(buf) {
                a[0] += b[0];
                a[1] += b[1];
            }
        }
    }

    fn build_part(&self, hist: &mut [[f64; 2]], rows: &[u32], grad: &[[f64; 2]]) {
        hist.fill([0.0; 2]);
        let p = self.p;
        for &r in rows {
            let r = r as usize;
            let [g, h] = grad[r];
            for (j, &b) in self.bins[r * p..(r + 1) * p].iter().enumerate() {
                let cell = &mut hist[j * BINS + b as usize];
                cell[0] += g;
                cell[1] += h;
            }
        }
    }

    /// Add node(s) for `rows` (whose histogram is `hist`) at `depth`; returns the node id.
    fn node(
        &mut self,
        tree: &mut Tree,
        rows: &mut [u32],
        grad: &[[f64; 2]],
        hist: Vec<[f64; 2]>,
        depth: usize,
    ) -> usize {
        let [g, h] = hist[..BINS]
            .iter()
            .fold([0.0, 0.0], |a, c| [a[0] + c[0], a[1] + c[1]]);
        let id = tree.left.len();
        tree.left.push(-1);
        tree.right.push(-1);
        tree.feature.push(0);
        tree.threshold.push(0.0);
        tree.default_left.push(false);
        tree.value
            .push(-g / (h + self.params.lambda) * self.params.learning_rate);
        tree.cover.push(h);
        let split = if depth < self.params.max_depth {
            self.best_split(&hist, g, h)
        } else {
            None
        };
        let Some(s) = split else {
            self.pool.push(hist);
            return id;
        };
        let goes_left = |r: &u32| {
            let b = self.bins[*r as usize * self.p + s.feature];
            if b == MISSING {
                s.missing_left
            } else {
                (b as usize) < s.bin
            }
        };
        let n_left = partition(rows, goes_left);
        let (left_rows, right_rows) = rows.split_at_mut(n_left);
        // Build the smaller child's histogram; the larger one is parent minus smaller.
        let mut small = self.spare();
        let left_small = left_rows.len() <= right_rows.len();
        self.build(
            &mut small,
            if left_small { left_rows } else { right_rows },
            grad,
        );
        let mut large = hist;
        for (a, b) in large.iter_mut().zip(&small) {
            a[0] -= b[0];
            a[1] -= b[1];
        }
        let (lh, rh) = if left_small {
            (small, large)
        } else {
            (large, small)
        };
        tree.value[id] = 0.0;
        tree.feature[id] = s.feature as u32;
        tree.threshold[id] = self.cuts[s.feature][s.bin - 1];
        tree.default_left[id] = s.missing_left;
        let l = self.node(tree, left_rows, grad, lh, depth + 1);
        let r = self.node(tree, right_rows, grad, rh, depth + 1);
        tree.left[id] = l as i32;
        tree.right[id] = r as i32;
        id
    }

    fn best_split(&self, hist: &[[f64; 2]], g: f64, h: f64) -> Option<Split> {
        let (lambda, mcw) = (self.params.lambda, self.params.min_child_weight);
        let score = |g: f64, h: f64| g * g / (h + lambda);
        let parent = score(g, h);
        let mut best: Option<Split> = None;
        for j in 0..self.p {
            let cells = &hist[j * BINS..(j + 1) * BINS];
            let [gm, hm] = cells[MISSING as usize];
            let n_bins = self.cuts[j].len() + 1;
            let (mut gl, mut hl) = (0.0, 0.0);
            for k in 1..n_bins {
                gl += cells[k - 1][0];
                hl += cells[k - 1][1];
                // Missing values left, then right; with none, the larger side takes them.
                for missing_left in [true, false] {
                    let (gl2, hl2) = if missing_left {
                        (gl + gm, hl + hm)
                    } else {
                        (gl, hl)
                    };
                    let (gr2, hr2) = (g - gl2, h - hl2);
                    if hl2 < mcw || hr2 < mcw || hl2 <= 0.0 || hr2 <= 0.0 {
                        continue;
                    }
                    let gain = score(gl2, hl2) + score(gr2, hr2) - parent;
                    let missing_left = if hm > 0.0 { missing_left } else { hl2 >= hr2 };
                    if gain > 1e-12 * parent.abs().max(1e-12) && best.is_none_or(|b| gain > b.gain)
                    {
                        best = Some(Split {
                            gain,
                            feature: j,
                            bin: k,
                            missing_left,
                        });
                    }
                    if hm == 0.0 {
                        break;
                    }
                }
            }
        }
        best
    }
}

/// Move rows satisfying `pred` to the front; returns how many.
fn partition(rows: &mut [u32], pred: impl Fn(&u32) -> bool) -> usize {
    let mut i = 0;
    for k in 0..rows.len() {
        if pred(&rows[k]) {
            rows.swap(i, k);
            i += 1;
        }
    }
    i
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small deterministic generator.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Model, auroc};
    use super::*;

    /// A target that needs an interaction (XOR of two thresholds) plus a missing-value signal.
    fn xor_data(n: usize, seed: u64) -> (Matrix, Vec<bool>) {
        let mut rng = SplitMix64(seed);
        let mut cols = vec![Vec::new(), Vec::new(), Vec::new()];
        let mut y = Vec::new();
        for _ in 0..n {
            let a = rng.unit() * 2.0 - 1.0;
            let b = rng.unit() * 2.0 - 1.0;
            let c = if rng.unit() < 0.2 {
                f64::NAN
            } else {
                rng.unit()
            };
            let signal = (a > 0.0) != (b > 0.0) || c.is_nan();
            cols[0].push(a);
            cols[1].push(b);
            cols[2].push(c);
            y.push(if rng.unit() < 0.1 { !signal } else { signal });
        }
        (
            Matrix::from_columns(vec!["a".into(), "b".into(), "c".into()], &cols).unwrap(),
            y,
        )
    }

    #[test]
    fn learns_an_interaction_and_missingness_deterministically() {
        let (x, y) = xor_data(4000, 1);
        let p = GbmParams {
            trees: 30,
            max_depth: 3,
            learning_rate: 0.3,
            subsample: 0.8,
            seed: 7,
            ..Default::default()
        };
        let m = TreeEnsemble::fit(&x, &y, &p).unwrap();
        let (xt, yt) = xor_data(2000, 2);
        let scores: Vec<f64> = (0..xt.rows).map(|r| m.margin(xt.row(r))).collect();
        let auc = auroc(&scores, &yt);
        assert!(auc > 0.85, "AUROC {auc}");
        let again = TreeEnsemble::fit(&x, &y, &p).unwrap();
        assert_eq!(m.trees, again.trees);
        // Covers add up and SHAP is additive for trained trees.
        let t = &m.trees[0];
        assert!(
            (t.cover[0] - t.cover[t.left[0] as usize] - t.cover[t.right[0] as usize]).abs() < 1e-6
        );
        let model = Model::Trees(m);
        let mut phi = vec![0.0; 3];
        for r in 0..xt.rows {
            let base = model.shap_into(xt.row(r), &mut phi);
            assert!((base + phi.iter().sum::<f64>() - model.margin(xt.row(r))).abs() < 1e-9);
        }
    }

    #[test]
    fn thresholds_separate_training_values_in_f32() {
        let x = Matrix::from_columns(vec!["a".into()], &[vec![1.0, 2.0, 3.0, 4.0]]).unwrap();
        assert_eq!(cut_points(&x, 0), vec![2.0, 3.0, 4.0]);
        let bins = bin_matrix(&x, &[cut_points(&x, 0)]);
        assert_eq!(bins, vec![0, 1, 2, 3]);
        let err = TreeEnsemble::fit(&x, &[true; 4], &GbmParams::default()).unwrap_err();
        assert!(matches!(err, ModelError::OneClass { .. }));
        let err = TreeEnsemble::fit(
            &x,
            &[true, false, true, false],
            &GbmParams {
                subsample: 0.0,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("subsample"), "{err}");
    }
}
