//! Tree ensembles in log-odds space: one representation for trees trained here and trees
//! imported from XGBoost, with XGBoost's decision rule (compare in float32, `x < threshold`
//! goes left, a missing value follows `default_left`).

use super::gbm::GbmParams;
use super::treeshap::Explainer;
use super::{ModelError, sigmoid};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// One regression tree as parallel arrays indexed by node id (node 0 is the root).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tree {
    /// Left child, -1 at a leaf.
    pub left: Vec<i32>,
    /// Right child, -1 at a leaf.
    pub right: Vec<i32>,
    /// Split feature (index into the ensemble's `feature_names`); 0 at a leaf.
    pub feature: Vec<u32>,
    /// Split threshold: `(x as f32) < threshold` goes left.
    pub threshold: Vec<f32>,
    /// Where a missing value goes.
    pub default_left: Vec<bool>,
    /// Leaf value (log-odds contribution); 0 at inner nodes.
    pub value: Vec<f64>,
    /// Node cover: the training sum of hessians through the node (TreeSHAP weights by it).
    pub cover: Vec<f64>,
}

impl Tree {
    pub fn is_leaf(&self, n: usize) -> bool {
        self.left[n] < 0
    }

    /// The child a value goes to at inner node `n`.
    #[inline]
    pub fn child(&self, n: usize, v: f64) -> usize {
        let left = if v.is_nan() {
            self.default_left[n]
        } else {
            (v as f32) < self.threshold[n]
        };
        if left {
            self.left[n] as usize
        } else {
            self.right[n] as usize
        }
    }

    /// The leaf a row falls into.
    #[inline]
    pub fn leaf(&self, x: &[f64]) -> usize {
        let mut n = 0;
        while self.left[n] >= 0 {
            n = self.child(n, x[self.feature[n] as usize]);
        }
        n
    }

    /// The tree's shape is sound: parallel arrays agree, children in range, every node
    /// reached exactly once from the root, features in range, covers finite and >= 0.
    pub fn validate(&self, features: usize) -> Result<(), String> {
        let n = self.left.len();
        let lens = [
            self.right.len(),
            self.feature.len(),
            self.threshold.len(),
            self.default_left.len(),
            self.value.len(),
            self.cover.len(),
        ];
        if n == 0 || lens.iter().any(|&l| l != n) {
            return Err(format!(
                "node arrays have different lengths ({n} vs {lens:?})"
            ));
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("node {i} is reached twice"));
            }
            if !(self.cover[i].is_finite() && self.cover[i] >= 0.0) || !self.value[i].is_finite() {
                return Err(format!("node {i} has a non-finite value or cover"));
            }
            if self.left[i] < 0 && self.right[i] < 0 {
                continue;
            }
            let (l, r) = (self.left[i], self.right[i]);
            if l < 0 || r < 0 || l as usize >= n || r as usize >= n {
                return Err(format!("node {i} has children {l}, {r} out of range"));
            }
            if self.feature[i] as usize >= features {
                return Err(format!(
                    "node {i} splits on feature {} of {features}",
                    self.feature[i]
                ));
            }
            if self.threshold[i].is_nan() {
                return Err(format!("node {i} has a NaN threshold"));
            }
            stack.extend([l as usize, r as usize]);
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(format!("node {i} is not reachable from the root"));
        }
        Ok(())
    }
}

/// Where an ensemble came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum TreeSource {
    /// Trained by [`TreeEnsemble::fit`].
    Trained { params: GbmParams, rows: usize },
    /// Imported from XGBoost's `Booster.save_model` JSON.
    Xgboost {
        /// The xgboost version that wrote the file, e.g. "3.2.0".
        version: String,
        /// `base_score` in probability space as written in the file.
        base_score: f64,
    },
}

/// Gradient-boosted trees for a binary outcome: `margin = base_margin + sum(leaf values)`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TreeEnsemble {
    pub feature_names: Vec<String>,
    /// The margin offset (log-odds), `logit(base_score)` for XGBoost.
    pub base_margin: f64,
    pub trees: Vec<Tree>,
    pub source: TreeSource,
    /// TreeSHAP tables, built on first use.
    #[serde(skip)]
    pub(crate) explainer: OnceLock<Explainer>,
}

impl TreeEnsemble {
    pub(crate) fn new(
        feature_names: Vec<String>,
        base_margin: f64,
        trees: Vec<Tree>,
        source: TreeSource,
    ) -> Result<TreeEnsemble, ModelError> {
        let p = feature_names.len();
        for (i, t) in trees.iter().enumerate() {
            t.validate(p)
                .map_err(|e| ModelError::BadXgboost(format!("tree {i}: {e}")))?;
        }
        if !base_margin.is_finite() {
            return Err(ModelError::BadXgboost(format!(
                "base margin {base_margin} is not finite"
            )));
        }
        Ok(TreeEnsemble {
            feature_names,
            base_margin,
            trees,
            source,
            explainer: OnceLock::new(),
        })
    }

    pub fn margin(&self, x: &[f64]) -> f64 {
        self.base_margin + self.trees.iter().map(|t| t.value[t.leaf(x)]).sum::<f64>()
    }

    pub fn probability(&self, x: &[f64]) -> f64 {
        sigmoid(self.margin(x))
    }

    /// The margin in XGBoost's own float32 arithmetic: `logit(base_score)` computed in
    /// float32, then each tree's leaf added in float32 in tree order, as XGBoost's CPU
    /// predictor does. It reproduces `predict(output_margin=True)` of an imported model;
    /// [`TreeEnsemble::margin`] sums the same float32 leaves in f64 (which SHAP adds up to
    /// exactly) and differs from it by float32 rounding only (about `trees * 6e-8 * |margin|`).
    pub fn margin_xgboost_f32(&self) -> impl Fn(&[f64]) -> f32 + '_ {
        let base = match &self.source {
            TreeSource::Xgboost { base_score, .. } => {
                let p = *base_score as f32;
                -(1.0f32 / p - 1.0f32).ln()
            }
            TreeSource::Trained { .. } => self.base_margin as f32,
        };
        move |x| {
            self.trees
                .iter()
                .fold(base, |m, t| m + t.value[t.leaf(x)] as f32)
        }
    }

    pub(crate) fn explainer(&self) -> &Explainer {
        self.explainer.get_or_init(|| Explainer::new(self))
    }

    /// The path-dependent TreeSHAP base value: the cover-weighted expected margin.
    pub fn expected_value(&self) -> f64 {
        self.explainer().expected_value
    }

    /// Path-dependent TreeSHAP (Lundberg et al. 2020): writes one value per feature into
    /// `phi` and returns the base value; `base + sum(phi) == margin(x)`.
    pub fn shap_into(&self, x: &[f64], phi: &mut [f64]) -> f64 {
        self.explainer().shap_into(x, phi)
    }

    /// The maximum depth over the trees (edges from root to deepest leaf).
    pub fn max_depth(&self) -> usize {
        self.trees.iter().map(tree_depth).max().unwrap_or(0)
    }
}

fn tree_depth(t: &Tree) -> usize {
    let mut best = 0;
    let mut stack = vec![(0usize, 0usize)];
    while let Some((n, d)) = stack.pop() {
        if t.is_leaf(n) {
            best = best.max(d);
        } else {
            stack.push((t.left[n] as usize, d + 1));
            stack.push((t.right[n] as usize, d + 1));
        }
    }
    best
}
