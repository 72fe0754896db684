//! Path-dependent TreeSHAP (Lundberg et al. 2020, Algorithm 2), computed per root-to-leaf
//! path: a leaf's path holds its unique split features, each with a zero fraction (the
//! product of cover ratios along the path for that feature) and a one fraction (1 when the
//! row satisfies every split on that feature along the path, else 0). The Shapley weights
//! of Algorithm 2's EXTEND/UNWIND depend only on which one fractions are 1, so for paths of
//! up to [`MAX_TABLE_DEPTH`] unique features they are tabulated once per leaf and every
//! mask (Fast TreeSHAP v2, Yang 2021); a row then costs O(leaves x depth) per tree.
//! Deeper paths are computed per row (O(depth^2) per leaf) with stack buffers.
//!
//! Cover ratios are normalised by the children's total (`cover[child] / (cover[l] +
//! cover[r])`), which is how `shap` computes the base value, so additivity is exact even when
//! a file's covers are rounded (XGBoost writes them in float32).

use super::trees::{Tree, TreeEnsemble};

/// Tabulate a leaf's weights when it has at most this many unique features on its path.
pub const MAX_TABLE_DEPTH: usize = 12;
/// Largest table (number of f64) built for one ensemble (256 MB); beyond it, per-row paths.
const TABLE_BUDGET: usize = 1 << 25;
/// Paths longer than this use a heap buffer (never in practice).
const STACK_DEPTH: usize = 64;

/// The explanation tables of one ensemble (derived from the trees; not serialised).
#[derive(Clone, Debug, Default)]
pub(crate) struct Explainer {
    pub expected_value: f64,
    /// Leaves of tree `t` are `tree_leaf_start[t]..tree_leaf_start[t + 1]`.
    tree_leaf_start: Vec<usize>,
    /// Inner nodes of tree `t` are `tree_inner_start[t]..tree_inner_start[t + 1]` when the
    /// tree has at most 64 (its directions then fit one `u64`); else the range is empty.
    tree_inner_start: Vec<usize>,
    inner_feature: Vec<u32>,
    inner_threshold: Vec<f32>,
    inner_default_left: Vec<bool>,
    leaf_value: Vec<f64>,
    /// Elements of leaf `l` are `leaf_start[l]..leaf_start[l + 1]`.
    leaf_start: Vec<usize>,
    el_feature: Vec<u32>,
    /// Satisfied when `!(x < lo) && !(x >= hi)` in f32 (NaN bound = unbounded).
    el_lo: Vec<f32>,
    el_hi: Vec<f32>,
    /// Whether a missing value satisfies every split on the path for this feature.
    el_missing: Vec<bool>,
    /// Satisfied when `directions & el_req == el_exp` (bit i: the row goes left at inner
    /// node i of the tree), for trees with at most 64 inner nodes.
    el_req: Vec<u64>,
    el_exp: Vec<u64>,
    el_zero: Vec<f64>,
    /// Table of leaf `l` at `table_start[l]`, `2^k` rows of `k` contributions; empty when
    /// the ensemble is too deep to tabulate.
    table_start: Vec<usize>,
    table: Vec<f64>,
    /// The hot loop's packed copies (tabulated ensembles only): per leaf (first element,
    /// element count, table offset), per element (required bits, expected bits, feature).
    packed_leaf: Vec<(u32, u32, u32)>,
    packed_el: Vec<(u64, u64, u32)>,
}

/// A path element while walking a tree: feature, lo, hi, missing ok, zero fraction,
/// required direction bits, expected direction bits.
type Element = (u32, f32, f32, bool, f64, u64, u64);

impl Explainer {
    pub fn new(model: &TreeEnsemble) -> Explainer {
        let mut ex = Explainer {
            expected_value: model.base_margin,
            tree_leaf_start: vec![0],
            tree_inner_start: vec![0],
            leaf_start: vec![0],
            ..Explainer::default()
        };
        for tree in &model.trees {
            ex.add_tree(tree);
        }
        ex.build_tables();
        ex
    }

    fn add_tree(&mut self, tree: &Tree) {
        let inner: Vec<usize> = (0..tree.left.len()).filter(|&n| !tree.is_leaf(n)).collect();
        let fast = inner.len() <= 64;
        let mut bit = vec![0u64; tree.left.len()];
        if fast {
            for (i, &n) in inner.iter().enumerate() {
                bit[n] = 1 << i;
                self.inner_feature.push(tree.feature[n]);
                self.inner_threshold.push(tree.threshold[n]);
                self.inner_default_left.push(tree.default_left[n]);
            }
        }
        self.tree_inner_start.push(self.inner_feature.len());
        let mut stack: Vec<(usize, Vec<Element>)> = vec![(0, Vec::new())];
        while let Some((n, path)) = stack.pop() {
            if tree.is_leaf(n) {
                self.add_leaf(tree.value[n], &path);
                continue;
            }
            let (l, r) = (tree.left[n] as usize, tree.right[n] as usize);
            let total = tree.cover[l] + tree.cover[r];
            let f = tree.feature[n];
            let t = tree.threshold[n];
            for (child, goes_left) in [(l, true), (r, false)] {
                let ratio = if total > 0.0 {
                    tree.cover[child] / total
                } else {
                    0.5
                };
                let mut p = path.clone();
                let e = match p.iter().position(|e| e.0 == f) {
                    Some(i) => &mut p[i],
                    None => {
                        p.push((f, f32::NAN, f32::NAN, true, 1.0, 0, 0));
                        p.last_mut().expect("just pushed")
                    }
                };
                if goes_left {
                    e.2 = e.2.min(t);
                    e.6 |= bit[n];
                } else {
                    e.1 = e.1.max(t);
                }
                e.3 &= tree.default_left[n] == goes_left;
                e.4 *= ratio;
                e.5 |= bit[n];
                stack.push((child, p));
            }
        }
        self.tree_leaf_start.push(self.leaf_value.len());
    }

    fn add_leaf(&mut self, v: f64, path: &[Element]) {
        self.expected_value += v * path.iter().map(|e| e.4).product::<f64>();
        for &(f, lo, hi, miss, zero, req, exp) in path {
            self.el_feature.push(f);
            self.el_lo.push(lo);
            self.el_hi.push(hi);
            self.el_missing.push(miss);
            self.el_zero.push(zero);
            self.el_req.push(req);
            self.el_exp.push(exp);
        }
        self.leaf_value.push(v);
        self.leaf_start.push(self.el_feature.len());
    }

    fn build_tables(&mut self) {
        let leaves = self.leaf_value.len();
        let mut size = 0usize;
        for l in 0..leaves {
            let k = self.leaf_start[l + 1] - self.leaf_start[l];
            if k > MAX_TABLE_DEPTH {
                return;
            }
            size += (1usize << k) * k;
        }
        if size > TABLE_BUDGET {
            return;
        }
        self.table = Vec::with_capacity(size);
        self.table_start = Vec::with_capacity(leaves);
        let mut out = [0.0; MAX_TABLE_DEPTH];
        self.packed_el = (0..self.el_feature.len())
            .map(|i| (self.el_req[i], self.el_exp[i], self.el_feature[i]))
            .collect();
        for l in 0..leaves {
            let k = self.leaf_start[l + 1] - self.leaf_start[l];
            self.packed_leaf
                .push((self.leaf_start[l] as u32, k as u32, self.table.len() as u32));
            self.table_start.push(self.table.len());
            let (s, e) = (self.leaf_start[l], self.leaf_start[l + 1]);
            let k = e - s;
            for mask in 0..(1u64 << k) {
                leaf_contributions(&self.el_zero[s..e], mask, self.leaf_value[l], &mut out[..k]);
                self.table.extend_from_slice(&out[..k]);
            }
        }
    }

    /// The directions row `x` takes at the inner nodes `s..e` of one tree (bit = left).
    #[inline]
    fn directions(&self, s: usize, e: usize, x: &[f64]) -> u64 {
        let mut dirs = 0u64;
        for (bit, i) in (s..e).enumerate() {
            let v = x[self.inner_feature[i] as usize];
            let left = if v.is_nan() {
                self.inner_default_left[i]
            } else {
                (v as f32) < self.inner_threshold[i]
            };
            dirs |= u64::from(left) << bit;
        }
        dirs
    }

    /// The mask of path elements `s..e` that row `x` satisfies, from the tree's
    /// directions when it has them, else from the elements' intervals.
    #[inline]
    fn mask(&self, s: usize, e: usize, x: &[f64], dirs: Option<u64>) -> u64 {
        let mut mask = 0u64;
        for (bit, i) in (s..e).enumerate() {
            let ok = match dirs {
                Some(d) => d & self.el_req[i] == self.el_exp[i],
                None => {
                    let v = x[self.el_feature[i] as usize];
                    if v.is_nan() {
                        self.el_missing[i]
                    } else {
                        let v = v as f32;
                        !(v < self.el_lo[i]) && !(v >= self.el_hi[i])
                    }
                }
            };
            mask |= u64::from(ok) << bit;
        }
        mask
    }

    pub fn shap_into(&self, x: &[f64], phi: &mut [f64]) -> f64 {
        phi.fill(0.0);
        for t in 0..self.tree_leaf_start.len() - 1 {
            let (s, e) = (self.tree_inner_start[t], self.tree_inner_start[t + 1]);
            let dirs = (e > s || self.tree_leaf_start[t + 1] - self.tree_leaf_start[t] == 1)
                .then(|| self.directions(s, e, x));
            self.add_tree_shap(t, x, dirs, phi);
        }
        self.expected_value
    }

    /// SHAP for rows `x` (row-major, `p` columns) into `phi` (same shape), tree by tree
    /// over blocks of rows so one tree's tables stay in cache.
    pub fn shap_rows(&self, x: &[f64], p: usize, phi: &mut [f64]) {
        const BLOCK: usize = 64;
        phi.fill(0.0);
        let mut dirs = [0u64; BLOCK];
        for (xb, pb) in x.chunks(BLOCK * p).zip(phi.chunks_mut(BLOCK * p)) {
            for t in 0..self.tree_leaf_start.len() - 1 {
                let (s, e) = (self.tree_inner_start[t], self.tree_inner_start[t + 1]);
                let has_dirs = e > s || self.tree_leaf_start[t + 1] - self.tree_leaf_start[t] == 1;
                if !has_dirs || self.packed_leaf.is_empty() {
                    for (xr, pr) in xb.chunks_exact(p).zip(pb.chunks_exact_mut(p)) {
                        let d = has_dirs.then(|| self.directions(s, e, xr));
                        self.add_tree_shap(t, xr, d, pr);
                    }
                    continue;
                }
                for (d, xr) in dirs.iter_mut().zip(xb.chunks_exact(p)) {
                    *d = self.directions(s, e, xr);
                }
                self.add_tree_block(t, &dirs[..xb.len() / p], p, pb);
            }
        }
    }

    /// Tree `t`'s contributions for a block of rows with known directions, leaf by leaf so
    /// that consecutive additions go to different rows (no dependency chain through `phi`).
    fn add_tree_block(&self, t: usize, dirs: &[u64], p: usize, phi: &mut [f64]) {
        let leaves = self.tree_leaf_start[t]..self.tree_leaf_start[t + 1];
        for &(first, k, offset) in &self.packed_leaf[leaves] {
            let els = &self.packed_el[first as usize..][..k as usize];
            let table = &self.table[offset as usize..][..(els.len() << els.len())];
            for (&d, pr) in dirs.iter().zip(phi.chunks_exact_mut(p)) {
                let mut mask = 0usize;
                for (bit, &(req, exp, _)) in els.iter().enumerate() {
                    mask |= usize::from(d & req == exp) << bit;
                }
                let row = &table[mask * els.len()..][..els.len()];
                for (&(_, _, f), c) in els.iter().zip(row) {
                    pr[f as usize] += c;
                }
            }
        }
    }

    /// Add tree `t`'s contributions for row `x` (with its directions when known).
    #[inline]
    fn add_tree_shap(&self, t: usize, x: &[f64], dirs: Option<u64>, phi: &mut [f64]) {
        let leaves = self.tree_leaf_start[t]..self.tree_leaf_start[t + 1];
        match dirs {
            Some(d) if !self.packed_leaf.is_empty() => {
                for &(first, k, offset) in &self.packed_leaf[leaves] {
                    let els = &self.packed_el[first as usize..][..k as usize];
                    let mut mask = 0usize;
                    for (bit, &(req, exp, _)) in els.iter().enumerate() {
                        mask |= usize::from(d & req == exp) << bit;
                    }
                    let row = &self.table[offset as usize + mask * els.len()..][..els.len()];
                    for (&(_, _, f), c) in els.iter().zip(row) {
                        phi[f as usize] += c;
                    }
                }
            }
            _ => {
                for l in leaves {
                    self.add_leaf_shap(l, x, dirs, phi);
                }
            }
        }
    }

    #[inline]
    fn add_leaf_shap(&self, l: usize, x: &[f64], dirs: Option<u64>, phi: &mut [f64]) {
        let (s, e) = (self.leaf_start[l], self.leaf_start[l + 1]);
        let k = e - s;
        let mask = self.mask(s, e, x, dirs);
        if !self.table_start.is_empty() {
            let row = &self.table[self.table_start[l] + mask as usize * k..][..k];
            for (i, c) in (s..e).zip(row) {
                phi[self.el_feature[i] as usize] += c;
            }
            return;
        }
        let mut buf = [0.0; STACK_DEPTH];
        let mut heap = Vec::new();
        let out = if k <= STACK_DEPTH {
            &mut buf[..k]
        } else {
            heap.resize(k, 0.0);
            &mut heap[..]
        };
        leaf_contributions(&self.el_zero[s..e], mask, self.leaf_value[l], out);
        for (i, c) in (s..e).zip(out.iter()) {
            phi[self.el_feature[i] as usize] += c;
        }
    }
}

/// One leaf's contributions to each of its path's features, given the zero fractions and
/// which one fractions are 1 (`mask` bit e): EXTEND over the path (with Algorithm 2's
/// leading dummy element), then UNWOUND_PATH_SUM per element, times `(one - zero) * value`.
fn leaf_contributions(zero: &[f64], mask: u64, value: f64, out: &mut [f64]) {
    let k = zero.len();
    let mut stack = [0.0; STACK_DEPTH + 1];
    let mut heap = Vec::new();
    let pw = if k < STACK_DEPTH {
        &mut stack[..k + 1]
    } else {
        heap.resize(k + 1, 0.0);
        &mut heap[..]
    };
    let one = |e: usize| if mask >> e & 1 == 1 { 1.0 } else { 0.0 };
    pw[0] = 1.0;
    for e in 0..k {
        let d = e + 1;
        let (z, o) = (zero[e], one(e));
        pw[d] = 0.0;
        for i in (0..d).rev() {
            pw[i + 1] += o * pw[i] * (i + 1) as f64 / (d + 1) as f64;
            pw[i] = z * pw[i] * (d - i) as f64 / (d + 1) as f64;
        }
    }
    let d = k as f64;
    for e in 0..k {
        let (z, o) = (zero[e], one(e));
        let mut total = 0.0;
        if o != 0.0 {
            let mut next = pw[k];
            for j in (0..k).rev() {
                let tmp = next * (d + 1.0) / ((j + 1) as f64 * o);
                total += tmp;
                next = pw[j] - tmp * z * (k - j) as f64 / (d + 1.0);
            }
        } else if z != 0.0 {
            for j in (0..k).rev() {
                total += pw[j] / z * (d + 1.0) / (k - j) as f64;
            }
        }
        out[e] = total * (o - z) * value;
    }
}

#[cfg(test)]
mod tests {
    use super::super::trees::{Tree, TreeEnsemble, TreeSource};
    use super::*;

    /// Exact Shapley values by enumerating coalitions with the path-dependent value
    /// function v(S) = E[f | x_S] (missing features follow the covers).
    fn brute_force(model: &TreeEnsemble, x: &[f64]) -> Vec<f64> {
        fn cond(t: &Tree, n: usize, x: &[f64], s: u32) -> f64 {
            if t.is_leaf(n) {
                return t.value[n];
            }
            let f = t.feature[n];
            if s >> f & 1 == 1 {
                return cond(t, t.child(n, x[f as usize]), x, s);
            }
            let (l, r) = (t.left[n] as usize, t.right[n] as usize);
            let tot = t.cover[l] + t.cover[r];
            (t.cover[l] * cond(t, l, x, s) + t.cover[r] * cond(t, r, x, s)) / tot
        }
        let p = x.len();
        let v = |s: u32| model.trees.iter().map(|t| cond(t, 0, x, s)).sum::<f64>();
        let fact = |n: usize| (1..=n).map(|i| i as f64).product::<f64>();
        let mut phi = vec![0.0; p];
        for (i, slot) in phi.iter_mut().enumerate() {
            for s in 0..(1u32 << p) {
                if s >> i & 1 == 1 {
                    continue;
                }
                let size = s.count_ones() as usize;
                let w = fact(size) * fact(p - size - 1) / fact(p);
                *slot += w * (v(s | 1 << i) - v(s));
            }
        }
        phi
    }

    fn model() -> TreeEnsemble {
        // Tree 1 splits on feature 0 twice on one path (tests merging) and on feature 1.
        let t1 = Tree {
            left: vec![1, 3, -1, 5, -1, -1, -1],
            right: vec![2, 4, -1, 6, -1, -1, -1],
            feature: vec![0, 1, 0, 0, 0, 0, 0],
            threshold: vec![5.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0],
            default_left: vec![true, false, false, true, false, false, false],
            value: vec![0.0, 0.0, 0.7, 0.0, -0.4, 0.3, -0.2],
            cover: vec![100.0, 70.0, 30.0, 45.0, 25.0, 20.0, 25.0],
        };
        let t2 = Tree {
            left: vec![1, -1, -1],
            right: vec![2, -1, -1],
            feature: vec![2, 0, 0],
            threshold: vec![1.5, 0.0, 0.0],
            default_left: vec![false, false, false],
            value: vec![0.0, -0.1, 0.25],
            cover: vec![100.0, 60.0, 40.0],
        };
        TreeEnsemble::new(
            vec!["a".into(), "b".into(), "c".into()],
            -1.0,
            vec![t1, t2],
            TreeSource::Xgboost {
                version: "test".into(),
                base_score: 0.27,
            },
        )
        .unwrap()
    }

    #[test]
    fn treeshap_equals_brute_force_shapley_values() {
        let m = model();
        for x in [
            [1.0, 1.0, 0.0],
            [4.0, 3.0, 2.0],
            [6.0, f64::NAN, 1.0],
            [f64::NAN, 2.0, f64::NAN],
            [3.0, 2.0, 1.5],
        ] {
            let mut phi = [0.0; 3];
            let base = m.shap_into(&x, &mut phi);
            let exact = brute_force(&m, &x);
            for (a, b) in phi.iter().zip(&exact) {
                assert!((a - b).abs() < 1e-12, "{x:?}: {phi:?} vs {exact:?}");
            }
            assert!((base + phi.iter().sum::<f64>() - m.margin(&x)).abs() < 1e-12);
            // The per-row path (no table) agrees with the table.
            let untabled = Explainer {
                table_start: vec![],
                table: vec![],
                packed_leaf: vec![],
                ..m.explainer().clone()
            };
            let mut phi2 = [0.0; 3];
            untabled.shap_into(&x, &mut phi2);
            assert!(phi.iter().zip(&phi2).all(|(a, b)| (a - b).abs() < 1e-14));
            // So does the interval test used for trees with more than 64 inner nodes.
            let intervals = Explainer {
                tree_inner_start: vec![0; untabled.tree_inner_start.len()],
                ..untabled
            };
            intervals.shap_into(&x, &mut phi2);
            assert!(phi.iter().zip(&phi2).all(|(a, b)| (a - b).abs() < 1e-14));
        }
    }
}
