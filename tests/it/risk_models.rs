//! Risk models against the reference libraries: scikit-learn's `LogisticRegression`,
//! `xgboost` and `shap` (run by `tests/python/reference_models.py`), plus bad inputs.

use onboard::risk::model::{
    GbmParams, LogisticModel, LogisticParams, Matrix, Model, ModelError, TreeEnsemble, auroc,
    linear_from_json,
};
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;

/// The reference outputs (file name -> text), generated once per test run in a temporary
/// directory that is removed afterwards; None when the libraries are missing (and `CI` is
/// not set).
fn reference() -> Option<&'static Reference> {
    static FILES: OnceLock<Option<Reference>> = OnceLock::new();
    FILES
        .get_or_init(|| {
            let probe = Command::new("python3")
                .args(["-c", "import sklearn, xgboost, shap"])
                .output();
            if !probe.is_ok_and(|o| o.status.success()) {
                if std::env::var_os("CI").is_some() {
                    panic!("CI is set but python3 cannot import sklearn, xgboost, shap");
                }
                println!("skipped: pip install scikit-learn xgboost shap");
                return None;
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let script = super::util::root().join("tests/python/reference_models.py");
            let out = Command::new("python3")
                .arg(&script)
                .arg(dir.path())
                .output()
                .expect("run python3");
            assert!(
                out.status.success(),
                "reference_models.py failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let files = std::fs::read_dir(dir.path())
                .expect("read reference dir")
                .map(|e| {
                    let path = e.expect("entry").path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    (
                        name,
                        std::fs::read_to_string(&path).expect("read reference file"),
                    )
                })
                .collect();
            Some(Reference(files))
        })
        .as_ref()
}

struct Reference(HashMap<String, String>);

impl Reference {
    fn text(&self, name: &str) -> &str {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("reference_models.py wrote no {name}"))
    }
}

fn json(dir: &Reference, name: &str) -> Value {
    serde_json::from_str(dir.text(name)).expect(name)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("array").iter().map(floats).collect()
}

/// A CSV written by the script: features, then `y`; an empty cell is missing.
fn read_csv(dir: &Reference, name: &str) -> (Matrix, Vec<bool>) {
    let text = dir.text(name);
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(String::from)
        .collect();
    let names = header[..header.len() - 1].to_vec();
    let (mut data, mut y, mut n) = (Vec::new(), Vec::new(), 0);
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let (features, label) = cells.split_at(cells.len() - 1);
        data.extend(features.iter().map(|c| {
            if c.is_empty() {
                f64::NAN
            } else {
                c.parse().expect("number")
            }
        }));
        y.push(label[0] == "1");
        n += 1;
    }
    (
        Matrix {
            names,
            rows: n,
            data,
        },
        y,
    )
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Every row: base + sum(phi) == margin to `tol`; returns the SHAP rows.
fn additive_shap(model: &Model, x: &Matrix, tol: f64) -> (f64, Vec<Vec<f64>>) {
    let mut phi = vec![0.0; x.cols()];
    let mut all = Vec::with_capacity(x.rows);
    let mut base = f64::NAN;
    for r in 0..x.rows {
        base = model.shap_into(x.row(r), &mut phi);
        let err = (base + phi.iter().sum::<f64>() - model.margin(x.row(r))).abs();
        assert!(err <= tol, "row {r}: additivity error {err:e} > {tol:e}");
        all.push(phi.clone());
    }
    (base, all)
}

#[test]
fn logistic_regression_matches_sklearn_and_linear_explainer() {
    let Some(dir) = reference() else { return };
    let (x, y) = read_csv(dir, "train.csv");
    let (xh, _) = read_csv(dir, "holdout.csv");
    let r = json(dir, "lr.json");
    let p = LogisticParams {
        c: r["C"].as_f64().unwrap(),
        max_iter: 100,
        tol: 1e-10,
    };
    let m = LogisticModel::fit(&x, &y, &p).unwrap();
    assert!(max_diff(&m.fill, &floats(&r["fill"])) < 1e-9);
    assert!(max_diff(&m.center, &floats(&r["center"])) < 1e-9);
    assert!(max_diff(&m.scale, &floats(&r["scale"])) < 1e-9);
    let d_coef = max_diff(&m.coefficients, &floats(&r["coef"]));
    let d_int = (m.intercept - r["intercept"].as_f64().unwrap()).abs();
    println!("LR vs sklearn: max |coef diff| {d_coef:e}, |intercept diff| {d_int:e}");
    assert!(
        d_coef < 1e-4 && d_int < 1e-4,
        "coef {d_coef:e} intercept {d_int:e}"
    );
    let model = Model::Logistic(m);
    additive_shap(&model, &x, 1e-9);
    let (base, phi) = additive_shap(&model, &xh, 1e-9);
    assert!((base - r["expected_value"].as_f64().unwrap()).abs() < 1e-6);
    let reference = rows(&r["shap_values"]);
    let worst = phi
        .iter()
        .zip(&reference)
        .map(|(a, b)| max_diff(a, b))
        .fold(0.0, f64::max);
    println!("linear SHAP vs shap.LinearExplainer: max diff {worst:e}");
    assert!(worst < 1e-6, "{worst:e}");
}

#[test]
fn imported_linear_model_matches_sklearn() {
    let Some(dir) = reference() else { return };
    let (xh, _) = read_csv(dir, "holdout.csv");
    let text = dir.text("linear_import.json");
    let model = Model::Logistic(linear_from_json(text).unwrap());
    model.check_features(&xh.names).unwrap();
    let r = json(dir, "linear_import_ref.json");
    let margins: Vec<f64> = (0..xh.rows).map(|i| model.margin(xh.row(i))).collect();
    assert!(max_diff(&margins, &floats(&r["margin"])) < 1e-9);
    let (base, phi) = additive_shap(&model, &xh, 1e-9);
    assert!((base - r["expected_value"].as_f64().unwrap()).abs() < 1e-9);
    let reference = rows(&r["shap_values"]);
    let worst = phi
        .iter()
        .zip(&reference)
        .map(|(a, b)| max_diff(a, b))
        .fold(0.0, f64::max);
    assert!(worst < 1e-9, "{worst:e}");
}

#[test]
fn imported_xgboost_matches_xgboost_and_shap() {
    let Some(dir) = reference() else { return };
    let (xh, _) = read_csv(dir, "holdout.csv");
    let text = dir.text("m.json");
    let model = Model::Trees(TreeEnsemble::from_xgboost_json(text).unwrap());
    model.check_features(&xh.names).unwrap();
    let r = json(dir, "xgb_ref.json");
    let Model::Trees(trees) = &model else {
        unreachable!()
    };
    let xgb_f32 = trees.margin_xgboost_f32();
    let f32_margins: Vec<f64> = (0..xh.rows)
        .map(|i| f64::from(xgb_f32(xh.row(i))))
        .collect();
    let d_margin = max_diff(&f32_margins, &floats(&r["margin"]));
    let margins: Vec<f64> = (0..xh.rows).map(|i| model.margin(xh.row(i))).collect();
    let d_f64 = max_diff(&margins, &floats(&r["margin"]));
    let (base, phi) = additive_shap(&model, &xh, 1e-6);
    let d_base = (base - r["expected_value"].as_f64().unwrap()).abs();
    let reference = rows(&r["shap_values"]);
    let d_shap = phi
        .iter()
        .zip(&reference)
        .map(|(a, b)| max_diff(a, b))
        .fold(0.0, f64::max);
    let reference64 = rows(&r["shap_values_f64"]);
    let d_shap64 = phi
        .iter()
        .zip(&reference64)
        .map(|(a, b)| max_diff(a, b))
        .fold(0.0, f64::max);
    println!(
        "xgboost import: margin (float32 as xgboost) {d_margin:e}, margin (f64 sum) {d_f64:e}, \
         TreeSHAP vs shap (xgboost float32) {d_shap:e}, vs shap float64 {d_shap64:e}, base value {d_base:e}"
    );
    // shap's float64 TreeSHAP reads the model through its own loader (≈1e-8 apart).
    assert!(
        d_shap64 < 1e-7,
        "SHAP values differ from shap's float64 TreeSHAP by {d_shap64:e}"
    );
    assert!(d_margin < 1e-6, "margins differ by {d_margin:e}");
    // The f64 sum of the same leaves differs from xgboost's float32 sum by rounding only.
    assert!(
        d_f64 < 50.0 * 4.0 * f64::from(f32::EPSILON),
        "f64 margins differ by {d_f64:e}"
    );
    assert!(d_shap < 1e-6, "SHAP values differ by {d_shap:e}");
    assert!(d_base < 1e-6, "base values differ by {d_base:e}");
    // Values just below a threshold: xgboost rounds them to float32, where they equal the
    // threshold and go right; so does the import.
    let (edge, _) = read_csv(dir, "edge.csv");
    let e = json(dir, "edge_ref.json");
    let edge_margins: Vec<f64> = (0..edge.rows)
        .map(|i| f64::from(xgb_f32(edge.row(i))))
        .collect();
    let d_edge = max_diff(&edge_margins, &floats(&e["margin"]));
    let (_, edge_phi) = additive_shap(&model, &edge, 1e-6);
    let edge_ref = rows(&e["shap_values"]);
    let d_edge_shap = edge_phi
        .iter()
        .zip(&edge_ref)
        .map(|(a, b)| max_diff(a, b))
        .fold(0.0, f64::max);
    println!(
        "{} rows at float32 thresholds: margin {d_edge:e}, TreeSHAP {d_edge_shap:e}",
        edge.rows
    );
    assert!(
        edge.rows > 5 && d_edge < 1e-6 && d_edge_shap < 1e-6,
        "{d_edge:e} {d_edge_shap:e}"
    );
    // The batch explanation (tree by tree over blocks of rows, all cores) is the same.
    let ex = model.explain(&xh).unwrap();
    assert!((ex.base - base).abs() < 1e-12);
    assert!(max_diff(&ex.margins, &margins) < 1e-12);
    let batch_worst = (0..xh.rows)
        .map(|i| max_diff(ex.row(i), &phi[i]))
        .fold(0.0, f64::max);
    assert!(batch_worst < 1e-12, "{batch_worst:e}");
    let mut renamed = xh.clone();
    renamed.names[0] = "age_years".into();
    let err = model.explain(&renamed).unwrap_err().to_string();
    assert!(err.contains("missing: age; unexpected: age_years"), "{err}");
    // Serialised and read back, the model scores the same.
    let back: Model = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
    assert_eq!(back.margin(xh.row(3)), model.margin(xh.row(3)));
}

#[test]
fn trained_gbm_is_close_to_xgboost_and_beats_logistic_regression() {
    let Some(dir) = reference() else { return };
    let (x, y) = read_csv(dir, "train.csv");
    let (xh, yh) = read_csv(dir, "holdout.csv");
    let r = json(dir, "xgb_ref.json");
    let params = &r["params"];
    let p = GbmParams {
        trees: params["trees"].as_u64().unwrap() as usize,
        max_depth: params["max_depth"].as_u64().unwrap() as usize,
        learning_rate: params["learning_rate"].as_f64().unwrap(),
        min_child_weight: params["min_child_weight"].as_f64().unwrap(),
        lambda: params["lambda"].as_f64().unwrap(),
        subsample: 1.0,
        seed: 1,
    };
    let model = Model::Trees(TreeEnsemble::fit(&x, &y, &p).unwrap());
    let scores: Vec<f64> = (0..xh.rows).map(|i| model.margin(xh.row(i))).collect();
    let ours = auroc(&scores, &yh);
    let lr = Model::Logistic(
        LogisticModel::fit(
            &x,
            &y,
            &LogisticParams {
                c: 0.5,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let lr_scores: Vec<f64> = (0..xh.rows).map(|i| lr.margin(xh.row(i))).collect();
    let lr_auc = auroc(&lr_scores, &yh);
    let xgb_auc = r["holdout_auroc"].as_f64().unwrap();
    println!("holdout AUROC: ours {ours:.4}, xgboost {xgb_auc:.4}, logistic {lr_auc:.4}");
    assert!((lr_auc - r["lr_holdout_auroc"].as_f64().unwrap()).abs() < 1e-6);
    assert!(ours > xgb_auc - 0.01, "ours {ours} vs xgboost {xgb_auc}");
    assert!(ours > lr_auc + 0.02, "ours {ours} vs logistic {lr_auc}");
    additive_shap(&model, &xh, 1e-6);
    let again = TreeEnsemble::fit(&x, &y, &p).unwrap();
    assert_eq!(
        again.margin(xh.row(0)),
        model.margin(xh.row(0)),
        "deterministic for a seed"
    );
}

#[test]
fn bad_model_files_and_features_give_clear_errors() {
    let err = TreeEnsemble::from_xgboost_json("age,emergency_admissions_12m\n1,2\n").unwrap_err();
    assert!(
        err.to_string().starts_with("model file is not JSON"),
        "{err}"
    );
    let err = TreeEnsemble::from_xgboost_json(r#"{"learner": {"objective": {}}}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not an XGBoost model: missing learner.gradient_booster"
    );
    let err = TreeEnsemble::from_xgboost_json(
        r#"{"learner": {"gradient_booster": {}, "objective": {"name": "reg:squarederror"}}}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "objective reg:squarederror is not binary:logistic"
    );
    let err =
        linear_from_json(r#"{"intercept": 0.1, "coefficients": {"age": "old"}}"#).unwrap_err();
    assert!(err.to_string().contains("coefficients.age"), "{err}");
    let model = Model::Logistic(
        linear_from_json(r#"{"intercept": 0.1, "coefficients": {"age": 0.01, "charlson": 0.3}}"#)
            .unwrap(),
    );
    let declared = vec!["age".to_string(), "charslon".to_string(), "sex".to_string()];
    let err = model.check_features(&declared).unwrap_err();
    assert!(matches!(err, ModelError::FeatureMismatch { .. }));
    let msg = err.to_string();
    assert!(msg.contains("missing: charlson"), "{msg}");
    assert!(msg.contains("unexpected: charslon, sex"), "{msg}");
    assert!(
        msg.contains("did you mean `charslon` -> `charlson`?"),
        "{msg}"
    );
    let x = Matrix {
        names: vec!["a".into()],
        rows: 2,
        data: vec![1.0, f64::INFINITY],
    };
    let err = LogisticModel::fit(&x, &[true, false], &LogisticParams::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "feature `a` is not finite in row 1 (infinite values are not allowed)"
    );
}
