//! Risk models and their exact explanations: L2-regularised logistic regression trained here
//! (standardisation and imputation inside the model), gradient-boosted trees trained here or
//! imported from XGBoost's native JSON, imported linear models, and exact SHAP values in
//! log-odds space (closed form for linear models, path-dependent TreeSHAP for trees).
//!
//! Depends on std, serde and thiserror only: the solvers (Newton/IRLS with a Cholesky
//! factorisation, histogram boosting) are small and are checked against scikit-learn,
//! xgboost and shap in `tests/it/risk_models.rs`. Every model serialises with serde and is
//! part of the model artefact.

mod error;
mod gbm;
mod linear;
pub mod metrics;
mod treeshap;
mod trees;
mod xgboost;

pub use error::ModelError;
pub use gbm::GbmParams;
pub use linear::{Imputation, LogisticModel, LogisticParams, linear_from_json};
pub use metrics::auroc;
pub use trees::{Tree, TreeEnsemble, TreeSource};

use serde::{Deserialize, Serialize};

/// Row-major design matrix; `f64::NAN` marks a missing value.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub names: Vec<String>,
    pub rows: usize,
    /// `data.len() == rows * names.len()`.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A matrix from named columns of equal length (each a feature).
    pub fn from_columns(names: Vec<String>, columns: &[Vec<f64>]) -> Result<Matrix, ModelError> {
        let rows = columns.first().map_or(0, Vec::len);
        if names.len() != columns.len() {
            return Err(ModelError::Shape(format!(
                "{} names for {} columns",
                names.len(),
                columns.len()
            )));
        }
        if let Some((i, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != rows) {
            return Err(ModelError::Shape(format!(
                "column `{}` has {} rows, expected {rows}",
                names[i],
                c.len()
            )));
        }
        let mut data = Vec::with_capacity(rows * columns.len());
        for r in 0..rows {
            data.extend(columns.iter().map(|c| c[r]));
        }
        Ok(Matrix { names, rows, data })
    }

    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.cols();
        &self.data[i * p..(i + 1) * p]
    }

    pub fn cols(&self) -> usize {
        self.names.len()
    }

    /// The columns at `indices`, in that order (e.g. from [`Model::feature_indices`]).
    pub fn select(&self, indices: &[usize]) -> Result<Matrix, ModelError> {
        self.check_shape()?;
        let p = self.cols();
        if let Some(&bad) = indices.iter().find(|&&i| i >= p) {
            return Err(ModelError::Shape(format!("column {bad} of {p}")));
        }
        let mut data = Vec::with_capacity(self.rows * indices.len());
        for r in 0..self.rows {
            let row = self.row(r);
            data.extend(indices.iter().map(|&i| row[i]));
        }
        Ok(Matrix {
            names: indices.iter().map(|&i| self.names[i].clone()).collect(),
            rows: self.rows,
            data,
        })
    }

    /// The matrix is well formed (`data.len() == rows * cols`).
    pub(crate) fn check_shape(&self) -> Result<(), ModelError> {
        if self.data.len() != self.rows * self.cols() {
            return Err(ModelError::Shape(format!(
                "data has {} values, expected {} rows x {} columns",
                self.data.len(),
                self.rows,
                self.cols()
            )));
        }
        Ok(())
    }

    /// Training data: labels match the rows, there is at least one row of each class.
    pub(crate) fn check_training(&self, y: &[bool]) -> Result<(), ModelError> {
        self.check_shape()?;
        if y.len() != self.rows {
            return Err(ModelError::Shape(format!(
                "{} labels for {} rows",
                y.len(),
                self.rows
            )));
        }
        let positives = y.iter().filter(|&&v| v).count();
        if positives == 0 || positives == y.len() {
            return Err(ModelError::OneClass {
                rows: y.len(),
                positives,
            });
        }
        if let Some(i) = self.data.iter().position(|v| v.is_infinite()) {
            return Err(ModelError::NonFinite {
                feature: self.names[i % self.cols()].clone(),
                row: i / self.cols(),
            });
        }
        Ok(())
    }
}

/// A fitted or imported model; the artefact serialises it with `"kind": "logistic" | "trees"`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    Logistic(LogisticModel),
    Trees(TreeEnsemble),
}

impl Model {
    pub fn feature_names(&self) -> &[String] {
        match self {
            Model::Logistic(m) => &m.feature_names,
            Model::Trees(m) => &m.feature_names,
        }
    }

    /// The model output in log-odds; `x` holds one value per model feature, in the order
    /// of [`Model::feature_names`] (NaN = missing).
    pub fn margin(&self, x: &[f64]) -> f64 {
        match self {
            Model::Logistic(m) => m.margin(x),
            Model::Trees(m) => m.margin(x),
        }
    }

    pub fn probability(&self, x: &[f64]) -> f64 {
        sigmoid(self.margin(x))
    }

    /// Exact SHAP in log-odds space: (base value, one contribution per feature);
    /// `base + sum(contributions) == margin(x)` to 1e-9 (linear) / 1e-6 (trees).
    pub fn shap(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut phi = vec![0.0; self.feature_names().len()];
        let base = self.shap_into(x, &mut phi);
        (base, phi)
    }

    /// As [`Model::shap`], writing the contributions into `phi` (length = number of
    /// features; overwritten) and returning the base value. No allocation per call once the
    /// model's explanation tables are built (on first use).
    pub fn shap_into(&self, x: &[f64], phi: &mut [f64]) -> f64 {
        let p = self.feature_names().len();
        assert!(
            x.len() == p && phi.len() == p,
            "shap_into: {} values and {} contributions for a model of {p} features",
            x.len(),
            phi.len()
        );
        match self {
            Model::Logistic(m) => m.shap_into(x, phi),
            Model::Trees(m) => m.shap_into(x, phi),
        }
    }

    /// Map the model's features onto declared features by name: for each model feature, its
    /// position in `declared` (any order; declared features the model does not use are
    /// allowed). Missing names are an error with did-you-mean hints.
    pub fn feature_indices(&self, declared: &[String]) -> Result<Vec<usize>, ModelError> {
        let model = self.feature_names();
        let found: Vec<Option<usize>> = model
            .iter()
            .map(|n| declared.iter().position(|d| d == n))
            .collect();
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
        let missing: Vec<String> = model
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        let unused: Vec<String> = declared
            .iter()
            .filter(|d| !model.contains(d))
            .cloned()
            .collect();
        let hints = missing
            .iter()
            .filter_map(|m| closest(m, &unused).map(|u| format!("`{u}` -> `{m}`?")))
            .collect();
        Err(ModelError::FeatureMismatch {
            missing,
            unexpected: unused,
            hints,
        })
    }

    /// Margins and SHAP values of every row of `x` (whose columns must be the model's
    /// features), on all cores; tree models are explained tree by tree over blocks of rows.
    pub fn explain(&self, x: &Matrix) -> Result<Explanations, ModelError> {
        x.check_shape()?;
        self.check_features(&x.names)?;
        let p = x.cols();
        let mut margins = vec![0.0; x.rows];
        let mut phi = vec![0.0; x.data.len()];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rows_per = x.rows.div_ceil(threads).max(1024);
        if p == 0 {
            margins.fill(self.margin(&[]));
        }
        std::thread::scope(|scope| {
            let chunks = x
                .data
                .chunks(rows_per * p.max(1))
                .zip(phi.chunks_mut(rows_per * p.max(1)))
                .zip(margins.chunks_mut(rows_per));
            for ((xs, ps), ms) in chunks {
                scope.spawn(move || self.explain_chunk(xs, p, ps, ms));
            }
        });
        Ok(Explanations {
            base: self.base_value(),
            features: p,
            margins,
            phi,
        })
    }

    fn explain_chunk(&self, x: &[f64], p: usize, phi: &mut [f64], margins: &mut [f64]) {
        match self {
            Model::Trees(m) => m.explainer().shap_rows(x, p, phi),
            Model::Logistic(m) => {
                for (xr, pr) in x.chunks_exact(p).zip(phi.chunks_exact_mut(p)) {
                    m.shap_into(xr, pr);
                }
            }
        }
        for (xr, m) in x.chunks_exact(p).zip(margins.iter_mut()) {
            *m = self.margin(xr);
        }
    }

    /// The base value of the explanations (the same for every row).
    pub fn base_value(&self) -> f64 {
        match self {
            Model::Logistic(m) => m.base_value(),
            Model::Trees(m) => m.expected_value(),
        }
    }

    /// The declared feature names (in the order of the design matrix) are exactly the
    /// model's: otherwise an error listing the missing and unexpected names.
    pub fn check_features(&self, declared: &[String]) -> Result<(), ModelError> {
        check_feature_names(self.feature_names(), declared)
    }
}

/// Margins and SHAP values of many rows (see [`Model::explain`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Explanations {
    /// The base value, the same for every row.
    pub base: f64,
    pub features: usize,
    /// Log-odds per row.
    pub margins: Vec<f64>,
    /// Row-major: the contributions of row `r` are `phi[r * features..(r + 1) * features]`.
    pub phi: Vec<f64>,
}

impl Explanations {
    pub fn row(&self, r: usize) -> &[f64] {
        &self.phi[r * self.features..(r + 1) * self.features]
    }
}

/// The logistic function, stable for large |m|.
pub fn sigmoid(m: f64) -> f64 {
    if m >= 0.0 {
        1.0 / (1.0 + (-m).exp())
    } else {
        let e = m.exp();
        e / (1.0 + e)
    }
}

/// Model features against declared features: same names in the same order.
pub fn check_feature_names(model: &[String], declared: &[String]) -> Result<(), ModelError> {
    let missing: Vec<String> = model
        .iter()
        .filter(|n| !declared.contains(n))
        .cloned()
        .collect();
    let unexpected: Vec<String> = declared
        .iter()
        .filter(|n| !model.contains(n))
        .cloned()
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        if model == declared {
            return Ok(());
        }
        return Err(ModelError::FeatureOrder {
            model: model.to_vec(),
            declared: declared.to_vec(),
        });
    }
    let hints = missing
        .iter()
        .filter_map(|m| closest(m, &unexpected).map(|u| format!("`{u}` -> `{m}`?")))
        .collect();
    Err(ModelError::FeatureMismatch {
        missing,
        unexpected,
        hints,
    })
}

/// The closest name by edit distance, when it is close enough to be a likely typo.
fn closest(name: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(name.len().max(c.len()) / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn feature_mismatch_lists_missing_unexpected_and_hints() {
        let err = check_feature_names(
            &names(&["age", "emergency_admissions_3m", "imd_decile"]),
            &names(&["age", "emergency_admisions_3m", "sex"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("missing: emergency_admissions_3m, imd_decile"),
            "{err}"
        );
        assert!(
            err.contains("unexpected: emergency_admisions_3m, sex"),
            "{err}"
        );
        assert!(
            err.contains("`emergency_admisions_3m` -> `emergency_admissions_3m`?"),
            "{err}"
        );
    }

    #[test]
    fn features_map_by_name() {
        let m = Model::Logistic(
            linear_from_json(r#"{"intercept": 0, "coefficients": {"b": 1, "a": 2}}"#).unwrap(),
        );
        let declared = names(&["a", "x", "b"]);
        let idx = m.feature_indices(&declared).unwrap();
        assert_eq!(idx, vec![2, 0]);
        let x = Matrix::from_columns(declared, &[vec![1.0], vec![9.0], vec![3.0]]).unwrap();
        let sel = x.select(&idx).unwrap();
        assert_eq!(sel.names, names(&["b", "a"]));
        assert_eq!(m.margin(sel.row(0)), 3.0 + 2.0);
        let err = m
            .feature_indices(&names(&["aa", "b"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing: a; unexpected: aa; did you mean `aa` -> `a`?"),
            "{err}"
        );
    }

    #[test]
    fn feature_order_matters() {
        let err = check_feature_names(&names(&["a", "b"]), &names(&["b", "a"])).unwrap_err();
        assert!(matches!(err, ModelError::FeatureOrder { .. }));
        assert!(check_feature_names(&names(&["a", "b"]), &names(&["a", "b"])).is_ok());
    }

    #[test]
    fn matrix_from_columns_is_row_major() {
        let m =
            Matrix::from_columns(names(&["a", "b"]), &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        assert_eq!(m.row(1), &[2.0, 4.0]);
        assert!(Matrix::from_columns(names(&["a"]), &[vec![1.0], vec![2.0]]).is_err());
    }
}
