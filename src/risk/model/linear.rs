//! L2-regularised logistic regression (fitted by Newton's method on the standardised,
//! imputed design, exactly scikit-learn's `LogisticRegression(C=c)` objective), imported
//! linear models, and their closed-form interventional SHAP values.

use super::{Matrix, ModelError};
use serde::{Deserialize, Serialize};

/// How missing values are filled before standardising.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Imputation {
    /// The training mean of the observed values.
    #[default]
    Mean,
    /// The training median of the observed values.
    Median,
    /// Values given with an imported model (`means`), or 0 when none were given.
    Given,
}

/// Fitting settings: `c` is scikit-learn's `C` (inverse L2 strength; the objective is
/// `0.5*||w||^2 + C * sum(logloss)`, intercept not penalised), Newton stops when no
/// coefficient moves by more than `tol`.
#[derive(Clone, Debug)]
pub struct LogisticParams {
    pub c: f64,
    pub max_iter: usize,
    pub tol: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            c: 1.0,
            max_iter: 100,
            tol: 1e-10,
        }
    }
}

/// A logistic model on the standardised design `z_j = (fill(x_j) - center_j) / scale_j`:
/// `margin = intercept + sum_j coefficients[j] * z_j`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogisticModel {
    pub feature_names: Vec<String>,
    pub imputation: Imputation,
    /// Value used for a missing (NaN) input, in the feature's own units.
    pub fill: Vec<f64>,
    /// Standardisation: training mean of the imputed feature (0 for an imported model).
    pub center: Vec<f64>,
    /// Standardisation: training standard deviation (population, ddof 0; 1 when constant).
    pub scale: Vec<f64>,
    pub intercept: f64,
    /// One per feature, on the standardised scale.
    pub coefficients: Vec<f64>,
    /// SHAP background: the training mean of each standardised feature.
    pub background: Vec<f64>,
    /// How the model was fitted (absent for an imported model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<LogisticFit>,
}

/// The record of a fit: settings and convergence.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogisticFit {
    pub c: f64,
    pub rows: usize,
    pub iterations: usize,
    /// Largest coefficient change at the last Newton step.
    pub last_step: f64,
    /// Final objective `0.5*||w||^2 + C*sum(logloss)`.
    pub objective: f64,
}

impl LogisticModel {
    /// Fit on `x` (NaN = missing, imputed with the training mean) against labels `y`.
    pub fn fit(x: &Matrix, y: &[bool], p: &LogisticParams) -> Result<LogisticModel, ModelError> {
        Self::fit_with(x, y, p, Imputation::Mean)
    }

    /// As [`LogisticModel::fit`] with a choice of imputation (mean or median).
    pub fn fit_with(
        x: &Matrix,
        y: &[bool],
        p: &LogisticParams,
        imputation: Imputation,
    ) -> Result<LogisticModel, ModelError> {
        check_params(p)?;
        x.check_training(y)?;
        let (fill, center, scale) = preprocessing(x, imputation)?;
        let mut model = LogisticModel {
            feature_names: x.names.clone(),
            imputation,
            fill,
            center,
            scale,
            intercept: 0.0,
            coefficients: vec![0.0; x.cols()],
            background: vec![0.0; x.cols()],
            fit: None,
        };
        let z = model.standardise_all(x);
        let fit = newton(&z, x.cols(), y, p, &mut model)?;
        model.background = column_means(&z, x.cols());
        model.fit = Some(fit);
        Ok(model)
    }

    /// The standardised value of feature `j`.
    #[inline]
    fn z(&self, j: usize, v: f64) -> f64 {
        let v = if v.is_nan() { self.fill[j] } else { v };
        (v - self.center[j]) / self.scale[j]
    }

    /// The standardised design (row-major), as the model applies it.
    pub fn standardise_all(&self, x: &Matrix) -> Vec<f64> {
        let p = x.cols();
        let mut z = Vec::with_capacity(x.data.len());
        for r in 0..x.rows {
            z.extend(x.row(r).iter().enumerate().map(|(j, &v)| self.z(j, v)));
        }
        debug_assert_eq!(z.len(), x.rows * p);
        z
    }

    pub fn margin(&self, x: &[f64]) -> f64 {
        let mut m = self.intercept;
        for (j, &v) in x.iter().enumerate() {
            m += self.coefficients[j] * self.z(j, v);
        }
        m
    }

    /// `intercept + sum_j coefficients[j] * background[j]`: the mean training margin.
    pub fn base_value(&self) -> f64 {
        self.intercept
            + self
                .coefficients
                .iter()
                .zip(&self.background)
                .map(|(b, m)| b * m)
                .sum::<f64>()
    }

    /// Interventional SHAP against the training background: `phi_j = beta_j (z_j - mean z_j)`.
    pub fn shap_into(&self, x: &[f64], phi: &mut [f64]) -> f64 {
        for (j, &v) in x.iter().enumerate() {
            phi[j] = self.coefficients[j] * (self.z(j, v) - self.background[j]);
        }
        self.base_value()
    }
}

fn check_params(p: &LogisticParams) -> Result<(), ModelError> {
    if !(p.c > 0.0 && p.c.is_finite()) {
        return Err(ModelError::Param {
            name: "c",
            reason: format!("{} is not a positive number", p.c),
        });
    }
    if !(p.tol > 0.0) || p.max_iter == 0 {
        return Err(ModelError::Param {
            name: "tol/max_iter",
            reason: format!("tol {} and max_iter {} must be positive", p.tol, p.max_iter),
        });
    }
    Ok(())
}

/// Fill values, centres and scales per feature from the training data.
type Preprocessing = (Vec<f64>, Vec<f64>, Vec<f64>);

fn preprocessing(x: &Matrix, imputation: Imputation) -> Result<Preprocessing, ModelError> {
    let p = x.cols();
    let (mut fill, mut center, mut scale) = (vec![0.0; p], vec![0.0; p], vec![1.0; p]);
    let mut observed = Vec::with_capacity(x.rows);
    for j in 0..p {
        observed.clear();
        observed.extend(
            (0..x.rows)
                .map(|r| x.data[r * p + j])
                .filter(|v| !v.is_nan()),
        );
        if observed.is_empty() {
            return Err(ModelError::AllMissing {
                feature: x.names[j].clone(),
            });
        }
        let n_obs = observed.len() as f64;
        fill[j] = match imputation {
            Imputation::Median => median(&mut observed),
            _ => observed.iter().sum::<f64>() / n_obs,
        };
        let missing = (x.rows - observed.len()) as f64;
        let n = x.rows as f64;
        let mean = (observed.iter().sum::<f64>() + missing * fill[j]) / n;
        let ss = observed.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
            + missing * (fill[j] - mean).powi(2);
        let sd = (ss / n).sqrt();
        center[j] = mean;
        scale[j] = if sd > 0.0 { sd } else { 1.0 };
    }
    Ok((fill, center, scale))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn column_means(z: &[f64], p: usize) -> Vec<f64> {
    let mut m = vec![0.0; p];
    let rows = z.len() / p.max(1);
    for row in z.chunks_exact(p.max(1)) {
        for (a, v) in m.iter_mut().zip(row) {
            *a += v;
        }
    }
    m.iter_mut().for_each(|a| *a /= rows.max(1) as f64);
    m
}

/// `log(1 + exp(m))` without overflow.
fn log1pexp(m: f64) -> f64 {
    if m > 0.0 {
        m + (-m).exp().ln_1p()
    } else {
        m.exp().ln_1p()
    }
}

/// The objective `0.5*||w||^2 + C * sum(log(1+exp(eta)) - y*eta)` at `theta = (b, w)`.
fn objective(z: &[f64], p: usize, y: &[bool], c: f64, theta: &[f64]) -> f64 {
    let loss: f64 = z
        .chunks_exact(p.max(1))
        .zip(y)
        .map(|(row, &yi)| {
            let eta = linear(theta, row);
            log1pexp(eta) - if yi { eta } else { 0.0 }
        })
        .sum();
    0.5 * theta[1..].iter().map(|w| w * w).sum::<f64>() + c * loss
}

#[inline]
fn linear(theta: &[f64], row: &[f64]) -> f64 {
    theta[0] + theta[1..].iter().zip(row).map(|(w, v)| w * v).sum::<f64>()
}

/// Gradient and Hessian (dense, (p+1)^2, row-major) of the objective at `theta`.
fn gradient_hessian(
    z: &[f64],
    p: usize,
    y: &[bool],
    c: f64,
    theta: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let d = p + 1;
    let mut g = vec![0.0; d];
    let mut h = vec![0.0; d * d];
    let mut ext = vec![1.0; d];
    for (row, &yi) in z.chunks_exact(p.max(1)).zip(y) {
        let mu = super::sigmoid(linear(theta, row));
        let r = mu - if yi { 1.0 } else { 0.0 };
        let s = mu * (1.0 - mu);
        ext[1..].copy_from_slice(&row[..p]);
        for a in 0..d {
            g[a] += r * ext[a];
            let sa = s * ext[a];
            let hrow = &mut h[a * d..a * d + a + 1];
            for (hb, eb) in hrow.iter_mut().zip(&ext[..=a]) {
                *hb += sa * eb;
            }
        }
    }
    for a in 0..d {
        g[a] *= c;
        for b in 0..=a {
            let v = c * h[a * d + b];
            h[a * d + b] = v;
            h[b * d + a] = v;
        }
    }
    for a in 1..d {
        g[a] += theta[a];
        h[a * d + a] += 1.0;
    }
    (g, h)
}

/// Solve `h x = g` for symmetric positive-definite `h` (Cholesky); None if not SPD.
fn cholesky_solve(h: &[f64], g: &[f64]) -> Option<Vec<f64>> {
    let d = g.len();
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = h[i * d + i] - s;
                if !(v > 0.0) {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (h[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    let mut x = g.to_vec();
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * x[k]).sum();
        x[i] = (x[i] - s) / l[i * d + i];
    }
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * x[k]).sum();
        x[i] = (x[i] - s) / l[i * d + i];
    }
    Some(x)
}

/// Damped Newton on the standardised design; writes intercept and coefficients.
fn newton(
    z: &[f64],
    p: usize,
    y: &[bool],
    params: &LogisticParams,
    model: &mut LogisticModel,
) -> Result<LogisticFit, ModelError> {
    let c = params.c;
    let mut theta = vec![0.0; p + 1];
    let prevalence = y.iter().filter(|&&v| v).count() as f64 / y.len() as f64;
    theta[0] = (prevalence / (1.0 - prevalence)).ln();
    let mut f = objective(z, p, y, c, &theta);
    let mut last_step = f64::INFINITY;
    for iteration in 1..=params.max_iter {
        let (g, h) = gradient_hessian(z, p, y, c, &theta);
        let step = cholesky_solve(&h, &g).ok_or_else(|| ModelError::Param {
            name: "c",
            reason: "the Hessian is not positive definite (numerical breakdown)".into(),
        })?;
        let (next, f_next, t) = line_search(z, p, y, c, &theta, &step, &g, f);
        last_step = t * step.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let stalled = f_next >= f && t < 1.0;
        if !stalled {
            theta = next;
            f = f_next;
        }
        if last_step <= params.tol || (stalled && last_step <= params.tol.sqrt()) {
            model.intercept = theta[0];
            model.coefficients = theta[1..].to_vec();
            return Ok(LogisticFit {
                c,
                rows: y.len(),
                iterations: iteration,
                last_step,
                objective: f,
            });
        }
    }
    Err(ModelError::NotConverged {
        iterations: params.max_iter,
        gradient: last_step,
        tol: params.tol,
    })
}

/// Backtracking (Armijo) along `-step`: (new theta, its objective, step length).
#[allow(clippy::too_many_arguments)]
fn line_search(
    z: &[f64],
    p: usize,
    y: &[bool],
    c: f64,
    theta: &[f64],
    step: &[f64],
    g: &[f64],
    f: f64,
) -> (Vec<f64>, f64, f64) {
    let slope: f64 = g.iter().zip(step).map(|(a, b)| a * b).sum();
    let mut t = 1.0;
    loop {
        let next: Vec<f64> = theta.iter().zip(step).map(|(a, s)| a - t * s).collect();
        let f_next = objective(z, p, y, c, &next);
        if f_next <= f - 1e-4 * t * slope || t < 1e-10 {
            return (next, f_next, t);
        }
        t *= 0.5;
    }
}

/// The imported linear-model file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinearFile {
    intercept: f64,
    coefficients: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    means: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An imported linear logistic model:
/// `{"intercept": b, "coefficients": {"feature": beta, ...}, "means": {"feature": m, ...}}`
/// in the features' own units (`margin = b + sum beta_j x_j`). `means` (optional, every
/// coefficient's feature) fills missing values and is the SHAP background
/// (`phi_j = beta_j (x_j - m_j)`); without it missing values count as 0 and the base
/// value is the intercept.
pub fn linear_from_json(text: &str) -> Result<LogisticModel, ModelError> {
    let file: LinearFile = serde_json::from_str(text).map_err(|e| {
        ModelError::NotLinear(format!(
            "{e} (expected {{\"intercept\": number, \"coefficients\": {{\"feature\": number}}, \"means\": {{...}}}})"
        ))
    })?;
    if file.coefficients.is_empty() {
        return Err(ModelError::NotLinear("`coefficients` is empty".into()));
    }
    let number = |section: &str, name: &str, v: &serde_json::Value| {
        v.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
            ModelError::NotLinear(format!("{section}.{name} is {v}, not a finite number"))
        })
    };
    let names: Vec<String> = file.coefficients.keys().cloned().collect();
    let coefficients = file
        .coefficients
        .iter()
        .map(|(k, v)| number("coefficients", k, v))
        .collect::<Result<Vec<_>, _>>()?;
    let means = match &file.means {
        None => vec![0.0; names.len()],
        Some(m) => read_means(m, &names, number)?,
    };
    let p = names.len();
    Ok(LogisticModel {
        feature_names: names,
        imputation: Imputation::Given,
        fill: means.clone(),
        center: vec![0.0; p],
        scale: vec![1.0; p],
        intercept: file.intercept,
        coefficients,
        background: means,
        fit: None,
    })
}

fn read_means(
    m: &serde_json::Map<String, serde_json::Value>,
    names: &[String],
    number: impl Fn(&str, &str, &serde_json::Value) -> Result<f64, ModelError>,
) -> Result<Vec<f64>, ModelError> {
    if let Some(extra) = m.keys().find(|k| !names.contains(k)) {
        return Err(ModelError::NotLinear(format!(
            "means.{extra} has no coefficient"
        )));
    }
    names
        .iter()
        .map(|n| match m.get(n) {
            Some(v) => number("means", n, v),
            None => Err(ModelError::NotLinear(format!(
                "means is given but has no value for `{n}`"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Matrix, Vec<bool>) {
        // Two features, one with a missing value; a deterministic noisy target.
        let mut cols = vec![Vec::new(), Vec::new()];
        let mut y = Vec::new();
        for i in 0..200 {
            let a = (i as f64 * 0.37).sin() * 3.0;
            let b = if i % 17 == 0 {
                f64::NAN
            } else {
                (i % 7) as f64
            };
            cols[0].push(a);
            cols[1].push(b);
            y.push(a + 0.3 * (i % 7) as f64 + ((i * 7919) % 13) as f64 / 6.0 > 2.0);
        }
        let m = Matrix::from_columns(vec!["a".into(), "b".into()], &cols).unwrap();
        (m, y)
    }

    #[test]
    fn fit_reaches_the_optimum_of_the_sklearn_objective() {
        let (x, y) = data();
        let p = LogisticParams {
            c: 0.5,
            ..Default::default()
        };
        let m = LogisticModel::fit(&x, &y, &p).unwrap();
        let z = m.standardise_all(&x);
        let mut theta = vec![m.intercept];
        theta.extend(&m.coefficients);
        let (g, _) = gradient_hessian(&z, 2, &y, p.c, &theta);
        assert!(g.iter().all(|v| v.abs() < 1e-8), "gradient {g:?}");
        // Standardisation is recorded: the training z has mean 0.
        assert!(m.background.iter().all(|v| v.abs() < 1e-12));
        assert!((m.fill[1] - m.center[1]).abs() < 1e-12);
    }

    #[test]
    fn linear_shap_is_additive_and_centred() {
        let (x, y) = data();
        let m = LogisticModel::fit_with(&x, &y, &LogisticParams::default(), Imputation::Median)
            .unwrap();
        let mut phi = vec![0.0; 2];
        let mut mean_phi = [0.0; 2];
        for r in 0..x.rows {
            let base = m.shap_into(x.row(r), &mut phi);
            assert!((base + phi.iter().sum::<f64>() - m.margin(x.row(r))).abs() < 1e-12);
            mean_phi[0] += phi[0] / x.rows as f64;
            mean_phi[1] += phi[1] / x.rows as f64;
        }
        assert!(mean_phi.iter().all(|v| v.abs() < 1e-12), "{mean_phi:?}");
    }

    #[test]
    fn imported_linear_model() {
        let m = linear_from_json(
            r#"{"intercept": -1.0, "coefficients": {"age": 0.02, "ae_3m": 0.5}, "means": {"age": 50, "ae_3m": 0.2}}"#,
        )
        .unwrap();
        assert_eq!(m.feature_names, vec!["age", "ae_3m"]);
        assert!((m.margin(&[60.0, 1.0]) - (-1.0 + 1.2 + 0.5)).abs() < 1e-12);
        assert!((m.margin(&[f64::NAN, 0.2]) - m.base_value()).abs() < 1e-12);
        let err = linear_from_json(r#"{"intercept": 1, "coefficient": {}}"#).unwrap_err();
        assert!(err.to_string().contains("not a linear model"), "{err}");
        let err =
            linear_from_json(r#"{"intercept": 1, "coefficients": {"a": 1}, "means": {"b": 1}}"#)
                .unwrap_err();
        assert!(
            err.to_string().contains("means.b has no coefficient"),
            "{err}"
        );
    }

    #[test]
    fn bad_training_data_is_refused() {
        let x = Matrix::from_columns(vec!["a".into()], &[vec![f64::NAN, f64::NAN]]).unwrap();
        let err = LogisticModel::fit(&x, &[true, false], &LogisticParams::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`a` is missing (NaN) in every training row")
        );
        let x = Matrix::from_columns(vec!["a".into()], &[vec![1.0, 2.0]]).unwrap();
        let err = LogisticModel::fit(&x, &[true, true], &LogisticParams::default()).unwrap_err();
        assert!(matches!(err, ModelError::OneClass { .. }));
    }
}
