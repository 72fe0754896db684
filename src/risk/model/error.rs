//! Errors of fitting, importing and applying models.

/// Why a model could not be fitted, imported or applied.
#[derive(thiserror::Error, Debug)]
pub enum ModelError {
    #[error("model file is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not an XGBoost model: missing {0}")]
    NotXgboost(String),
    #[error("XGBoost model: {0}")]
    BadXgboost(String),
    #[error("objective {0} is not binary:logistic")]
    Objective(String),
    #[error("not a linear model: {0}")]
    NotLinear(String),
    #[error("design matrix: {0}")]
    Shape(String),
    #[error("training data has {positives} positive labels in {rows} rows: need both classes")]
    OneClass { rows: usize, positives: usize },
    #[error("feature `{feature}` is not finite in row {row} (infinite values are not allowed)")]
    NonFinite { feature: String, row: usize },
    #[error("feature `{feature}` is missing (NaN) in every training row")]
    AllMissing { feature: String },
    #[error("invalid parameter {name}: {reason}")]
    Param { name: &'static str, reason: String },
    #[error(
        "logistic regression did not converge in {iterations} iterations (gradient {gradient:e} > tol {tol:e})"
    )]
    NotConverged {
        iterations: usize,
        gradient: f64,
        tol: f64,
    },
    #[error("the model's features do not match the declared features: {}", mismatch(.missing, .unexpected, .hints))]
    FeatureMismatch {
        missing: Vec<String>,
        unexpected: Vec<String>,
        hints: Vec<String>,
    },
    #[error("the model's features are in a different order from the declared features: model [{}], declared [{}]", .model.join(", "), .declared.join(", "))]
    FeatureOrder {
        model: Vec<String>,
        declared: Vec<String>,
    },
}

fn mismatch(missing: &[String], unexpected: &[String], hints: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing: {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected: {}", unexpected.join(", ")));
    }
    if !hints.is_empty() {
        parts.push(format!("did you mean {}", hints.join(", ")));
    }
    parts.join("; ")
}
