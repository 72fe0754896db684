//! Import of XGBoost's native JSON model (`Booster.save_model("m.json")`), `binary:logistic`,
//! `gbtree` booster, numeric splits. Leaf values and thresholds are read as float32, as
//! XGBoost stores them; `base_score` (probability space) becomes `logit(base_score)`.

use super::ModelError;
use super::trees::{Tree, TreeEnsemble, TreeSource};
use serde_json::Value;

impl TreeEnsemble {
    /// Read a `Booster.save_model` JSON text (xgboost 1.x–3.x).
    pub fn from_xgboost_json(text: &str) -> Result<TreeEnsemble, ModelError> {
        let root: Value = serde_json::from_str(text)?;
        let learner = field(&root, "learner", "learner")?;
        let booster = field(learner, "gradient_booster", "learner.gradient_booster")?;
        let objective = learner
            .pointer("/objective/name")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::NotXgboost("learner.objective.name".into()))?;
        if objective != "binary:logistic" {
            return Err(ModelError::Objective(objective.into()));
        }
        let kind = booster.get("name").and_then(Value::as_str).unwrap_or("?");
        if kind != "gbtree" {
            return Err(ModelError::BadXgboost(format!(
                "booster `{kind}` is not supported (only gbtree)"
            )));
        }
        let params = field(
            learner,
            "learner_model_param",
            "learner.learner_model_param",
        )?;
        check_single_output(params)?;
        let base_score = base_score(params)?;
        let num_feature = int_param(params, "num_feature")?;
        let names = feature_names(learner, num_feature)?;
        let trees = field(booster, "model", "learner.gradient_booster.model")?
            .get("trees")
            .and_then(Value::as_array)
            .ok_or_else(|| ModelError::NotXgboost("learner.gradient_booster.model.trees".into()))?;
        let trees = trees
            .iter()
            .enumerate()
            .map(|(i, t)| {
                read_tree(t).map_err(|e| ModelError::BadXgboost(format!("tree {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let source = TreeSource::Xgboost {
            version: version(&root),
            base_score,
        };
        let margin = (base_score / (1.0 - base_score)).ln();
        TreeEnsemble::new(names, margin, trees, source)
    }
}

fn field<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Value, ModelError> {
    v.get(key)
        .ok_or_else(|| ModelError::NotXgboost(path.into()))
}

fn version(root: &Value) -> String {
    match root.get("version").and_then(Value::as_array) {
        Some(v) => v
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("."),
        None => "unknown".into(),
    }
}

/// A number written as a number, a string ("5E-1") or a bracketed vector ("[1.01E-1]").
fn loose_number(v: &Value) -> Option<Vec<f64>> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| vec![f]),
        Value::Array(a) => a.iter().map(Value::as_f64).collect(),
        Value::String(s) => {
            let s = s.trim();
            let inner = s
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(s);
            inner
                .split(',')
                .map(|p| p.trim().parse::<f64>().ok())
                .collect()
        }
        _ => None,
    }
}

fn base_score(params: &Value) -> Result<f64, ModelError> {
    let raw = field(
        params,
        "base_score",
        "learner.learner_model_param.base_score",
    )?;
    let values = loose_number(raw)
        .ok_or_else(|| ModelError::BadXgboost(format!("base_score {raw} is not a number")))?;
    match values.as_slice() {
        [p] if *p > 0.0 && *p < 1.0 => Ok(*p),
        _ => Err(ModelError::BadXgboost(format!(
            "base_score {raw} is not one probability in (0, 1)"
        ))),
    }
}

fn int_param(params: &Value, key: &str) -> Result<usize, ModelError> {
    let path = format!("learner.learner_model_param.{key}");
    let raw = field(params, key, &path)?;
    loose_number(raw)
        .and_then(|v| v.first().copied())
        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
        .map(|f| f as usize)
        .ok_or_else(|| ModelError::BadXgboost(format!("{path} {raw} is not a count")))
}

fn check_single_output(params: &Value) -> Result<(), ModelError> {
    for key in ["num_class", "num_target"] {
        if params.get(key).is_some() && int_param(params, key)? > 1 {
            return Err(ModelError::BadXgboost(format!(
                "{key} > 1: only single-output binary models are supported"
            )));
        }
    }
    Ok(())
}

/// `learner.feature_names`, or XGBoost's default names `f0, f1, ...` when absent.
fn feature_names(learner: &Value, num_feature: usize) -> Result<Vec<String>, ModelError> {
    let names: Vec<String> = match learner.get("feature_names").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ModelError::BadXgboost("feature_names holds a non-string".into()))?,
        _ => (0..num_feature).map(|i| format!("f{i}")).collect(),
    };
    if names.len() != num_feature {
        return Err(ModelError::BadXgboost(format!(
            "{} feature names for num_feature {num_feature}",
            names.len()
        )));
    }
    if let Some(types) = learner.get("feature_types").and_then(Value::as_array)
        && let Some(i) = types.iter().position(|t| t.as_str() == Some("c"))
    {
        return Err(ModelError::BadXgboost(format!(
            "feature `{}` is categorical: only numeric features are supported",
            names[i]
        )));
    }
    Ok(names)
}

fn array<'a>(tree: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    tree.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing array `{key}`"))
}

fn ints(tree: &Value, key: &str) -> Result<Vec<i64>, String> {
    array(tree, key)?
        .iter()
        .map(|v| match v {
            Value::Bool(b) => Some(i64::from(*b)),
            _ => v.as_i64(),
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{key}` holds a non-integer"))
}

fn floats(tree: &Value, key: &str) -> Result<Vec<f64>, String> {
    array(tree, key)?
        .iter()
        .map(Value::as_f64)
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{key}` holds a non-number"))
}

fn read_tree(t: &Value) -> Result<Tree, String> {
    let left = ints(t, "left_children")?;
    let right = ints(t, "right_children")?;
    let split = ints(t, "split_indices")?;
    let cond = floats(t, "split_conditions")?;
    let default_left = ints(t, "default_left")?;
    let cover = floats(t, "sum_hessian")?;
    if let Ok(types) = ints(t, "split_type")
        && types.iter().any(|&s| s != 0)
    {
        return Err("categorical splits are not supported".into());
    }
    let n = left.len();
    if [
        right.len(),
        split.len(),
        cond.len(),
        default_left.len(),
        cover.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err("node arrays have different lengths".into());
    }
    let to_i32 = |v: i64| i32::try_from(v).map_err(|_| format!("child id {v} out of range"));
    let is_leaf: Vec<bool> = left.iter().map(|&l| l < 0).collect();
    Ok(Tree {
        left: left
            .iter()
            .map(|&v| to_i32(v.max(-1)))
            .collect::<Result<_, _>>()?,
        right: right
            .iter()
            .map(|&v| to_i32(v.max(-1)))
            .collect::<Result<_, _>>()?,
        feature: split
            .iter()
            .zip(&is_leaf)
            .map(|(&f, &leaf)| if leaf { Ok(0) } else { u32::try_from(f) })
            .collect::<Result<_, _>>()
            .map_err(|_| "negative split index".to_string())?,
        threshold: cond
            .iter()
            .zip(&is_leaf)
            .map(|(&c, &leaf)| if leaf { 0.0 } else { c as f32 })
            .collect(),
        default_left: default_left.iter().map(|&d| d != 0).collect(),
        value: cond
            .iter()
            .zip(&is_leaf)
            .map(|(&c, &leaf)| if leaf { f64::from(c as f32) } else { 0.0 })
            .collect(),
        cover,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUMP: &str = r#"{"version": [3, 2, 0], "learner": {
        "objective": {"name": "binary:logistic"},
        "learner_model_param": {"base_score": "[1.01179175E-1]", "num_feature": "2", "num_class": "0"},
        "feature_names": ["age", "ae_3m"],
        "gradient_booster": {"name": "gbtree", "model": {"trees": [{
            "left_children": [1, -1, -1], "right_children": [2, -1, -1],
            "split_indices": [1, 0, 0], "split_conditions": [0.5, -0.25, 0.75],
            "default_left": [1, 0, 0], "sum_hessian": [10.0, 7.0, 3.0], "split_type": [0, 0, 0]
        }]}}}}"#;

    #[test]
    fn imports_a_stump() {
        let m = TreeEnsemble::from_xgboost_json(STUMP).unwrap();
        let b = (0.101179175f64 / (1.0 - 0.101179175)).ln();
        assert_eq!(m.feature_names, vec!["age", "ae_3m"]);
        assert!((m.margin(&[0.0, 0.0]) - (b - 0.25)).abs() < 1e-12);
        assert!((m.margin(&[0.0, 0.5]) - (b + 0.75)).abs() < 1e-12);
        assert!((m.margin(&[0.0, f64::NAN]) - (b - 0.25)).abs() < 1e-12);
        assert!((m.expected_value() - (b + 0.7 * -0.25 + 0.3 * 0.75)).abs() < 1e-12);
    }

    #[test]
    fn base_score_forms() {
        let with = |s: &str| STUMP.replace(r#""[1.01179175E-1]""#, s);
        for form in [r#""5E-1""#, "0.5", "[0.5]", r#""[5E-1]""#] {
            let m = TreeEnsemble::from_xgboost_json(&with(form)).unwrap();
            assert!((m.base_margin).abs() < 1e-12, "{form}");
        }
        let err = TreeEnsemble::from_xgboost_json(&with(r#""[0.2,0.3]""#)).unwrap_err();
        assert!(err.to_string().contains("not one probability"), "{err}");
    }

    #[test]
    fn clear_errors() {
        let err = TreeEnsemble::from_xgboost_json(r#"{"learner": {}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not an XGBoost model: missing learner.gradient_booster"
        );
        let err =
            TreeEnsemble::from_xgboost_json(&STUMP.replace("binary:logistic", "reg:squarederror"))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "objective reg:squarederror is not binary:logistic"
        );
        let err = TreeEnsemble::from_xgboost_json("intercept,age\n1,2").unwrap_err();
        assert!(
            err.to_string().starts_with("model file is not JSON"),
            "{err}"
        );
        let bad = STUMP.replace(
            r#""split_indices": [1, 0, 0]"#,
            r#""split_indices": [5, 0, 0]"#,
        );
        let err = TreeEnsemble::from_xgboost_json(&bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("tree 0: node 0 splits on feature 5 of 2"),
            "{err}"
        );
    }
}
