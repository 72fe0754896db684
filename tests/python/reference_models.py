#!/usr/bin/env python3
"""Reference models for tests/it/risk_models.rs (scikit-learn, xgboost, shap).

Usage: reference_models.py OUTDIR

Writes, from a seeded synthetic data set with missing values and a nonlinear target:
  train.csv, holdout.csv   features then `y` (0/1); an empty cell is a missing value
  lr.json                  LogisticRegression(C) on the mean-imputed, standardised design:
                           C, names, fill, center, scale, intercept, coef, and
                           shap.LinearExplainer(maskers.Independent(train)) expected_value
                           and shap_values on the holdout
  linear_import.json       a LogisticRegression fitted on the raw imputed design, in the
                           linear-model import format {"intercept", "coefficients", "means"}
  linear_import_ref.json   its decision_function and LinearExplainer values on the holdout
  m.json                   xgboost binary:logistic Booster.save_model
  edge.csv, edge_ref.json  rows with age just below an age threshold (float32 rounding)
                           and xgboost's margins and shap's values for them
  xgb_ref.json             xgboost margins (output_margin=True) and
                           shap.TreeExplainer(feature_perturbation="tree_path_dependent")
                           shap_values and expected_value on the holdout (and shap's
                           float64 TreeSHAP, shap_values_f64); holdout AUROC
                           of xgboost and of the logistic regression; library versions
"""

import json
import os
import sys

import numpy as np
import shap
import sklearn
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

NAMES = ["age", "emergency_admissions_12m", "ae_attendances_3m", "charlson", "imd_decile", "gp_contacts_12m"]
C = 0.5
GBM = {"trees": 50, "max_depth": 4, "learning_rate": 0.1, "min_child_weight": 1.0, "lambda": 1.0}


def dataset(rng, n):
    age = rng.uniform(18, 95, n)
    em = rng.poisson(0.4, n).astype(float)
    ae = rng.poisson(0.6, n).astype(float)
    charlson = rng.poisson(1.0, n).astype(float)
    imd = rng.integers(1, 11, n).astype(float)
    gp = rng.poisson(6.0, n).astype(float)
    # Thresholds and interactions a linear model cannot represent.
    logit = (
        -3.0
        + 2.0 * (age > 75)
        + 1.5 * (em >= 2)
        + 2.0 * ((ae > 0) & (charlson >= 2))
        - 1.5 * (imd > 6) * (age < 50)
        + 1.0 * ((gp > 9) | (gp < 2))
    )
    y = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))
    x = np.column_stack([age, em, ae, charlson, imd, gp])
    # Missing values: no GP feed for some people, unknown IMD for others.
    x[rng.uniform(size=n) < 0.10, 5] = np.nan
    x[rng.uniform(size=n) < 0.05, 4] = np.nan
    return x, y.astype(int)


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join(NAMES + ["y"]) + "\n")
        for row, label in zip(x, y):
            cells = ["" if np.isnan(v) else repr(float(v)) for v in row]
            f.write(",".join(cells + [str(label)]) + "\n")


def impute(x, fill):
    x = x.copy()
    for j in range(x.shape[1]):
        x[np.isnan(x[:, j]), j] = fill[j]
    return x


def logistic(out, xtr, ytr, xho, yho):
    fill = np.nanmean(xtr, axis=0)
    itr = impute(xtr, fill)
    center, scale = itr.mean(axis=0), itr.std(axis=0)
    scale[scale == 0] = 1.0
    ztr, zho = (itr - center) / scale, (impute(xho, fill) - center) / scale
    lr = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(ztr, ytr)
    explainer = shap.LinearExplainer(lr, shap.maskers.Independent(ztr, max_samples=len(ztr)))
    ref = {
        "C": C,
        "names": NAMES,
        "fill": fill.tolist(),
        "center": center.tolist(),
        "scale": scale.tolist(),
        "intercept": float(lr.intercept_[0]),
        "coef": lr.coef_[0].tolist(),
        "expected_value": float(np.ravel(explainer.expected_value)[0]),
        "shap_values": np.asarray(explainer.shap_values(zho)).tolist(),
        "holdout_auroc": float(roc_auc_score(yho, lr.decision_function(zho))),
    }
    json.dump(ref, open(os.path.join(out, "lr.json"), "w"))
    # A linear model fitted on the raw (imputed) design, exported in the import format.
    raw = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(itr, ytr)
    model = {
        "intercept": float(raw.intercept_[0]),
        "coefficients": dict(zip(NAMES, raw.coef_[0].tolist())),
        "means": dict(zip(NAMES, itr.mean(axis=0).tolist())),
    }
    json.dump(model, open(os.path.join(out, "linear_import.json"), "w"), indent=1)
    # The import fills missing values with `means`, which equal `fill` here (mean imputation).
    iho = impute(xho, itr.mean(axis=0))
    rexp = shap.LinearExplainer(raw, shap.maskers.Independent(itr, max_samples=len(itr)))
    json.dump(
        {
            "margin": raw.decision_function(iho).tolist(),
            "expected_value": float(np.ravel(rexp.expected_value)[0]),
            "shap_values": np.asarray(rexp.shap_values(iho)).tolist(),
        },
        open(os.path.join(out, "linear_import_ref.json"), "w"),
    )
    return ref["holdout_auroc"]


def boosted(out, xtr, ytr, xho, yho, lr_auc):
    params = {
        "objective": "binary:logistic",
        "max_depth": GBM["max_depth"],
        "eta": GBM["learning_rate"],
        "min_child_weight": GBM["min_child_weight"],
        "lambda": GBM["lambda"],
        "tree_method": "hist",
        "seed": 0,
        "nthread": 1,
    }
    dtr = xgb.DMatrix(xtr, label=ytr, feature_names=NAMES, missing=np.nan)
    dho = xgb.DMatrix(xho, feature_names=NAMES, missing=np.nan)
    booster = xgb.train(params, dtr, num_boost_round=GBM["trees"])
    booster.save_model(os.path.join(out, "m.json"))
    margin = booster.predict(dho, output_margin=True)
    edge_rows(out, booster, xho)
    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    values = explainer.shap_values(xho)
    # shap hands xgboost models to xgboost's own float32 TreeSHAP (pred_contribs); its own
    # float64 implementation of the same algorithm runs when the model is marked internal.
    explainer.model.model_type = "internal"
    values64 = explainer.shap_values(xho)
    json.dump(
        {
            "margin": margin.astype(float).tolist(),
            "shap_values": np.asarray(values, dtype=float).tolist(),
            "shap_values_f64": np.asarray(values64, dtype=float).tolist(),
            "expected_value": float(np.ravel(explainer.expected_value)[0]),
            "holdout_auroc": float(roc_auc_score(yho, margin)),
            "lr_holdout_auroc": lr_auc,
            "params": GBM,
            "versions": {"xgboost": xgb.__version__, "shap": shap.__version__, "sklearn": sklearn.__version__},
        },
        open(os.path.join(out, "xgb_ref.json"), "w"),
    )


def edge_rows(out, booster, xho):
    """Rows whose age is just below a split threshold of age (threshold - 1e-9): in float64
    they would go left, but xgboost compares in float32, where the value rounds to the
    threshold itself and goes right. Written with xgboost's margins and shap's values."""
    model = json.loads(booster.save_raw("json"))
    thresholds = sorted(
        {
            float(c)
            for t in model["learner"]["gradient_booster"]["model"]["trees"]
            for c, f, l in zip(t["split_conditions"], t["split_indices"], t["left_children"])
            if l != -1 and f == 0
        }
    )
    x = xho[: len(thresholds)].copy()
    x[:, 0] = np.array(thresholds) - 1e-9
    assert np.all(x[:, 0].astype(np.float32) == np.array(thresholds, dtype=np.float32))
    write_csv(os.path.join(out, "edge.csv"), x, np.zeros(len(x), dtype=int))
    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    json.dump(
        {
            "margin": booster.predict(xgb.DMatrix(x, feature_names=NAMES), output_margin=True).astype(float).tolist(),
            "shap_values": np.asarray(explainer.shap_values(x), dtype=float).tolist(),
        },
        open(os.path.join(out, "edge_ref.json"), "w"),
    )


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261202)
    xtr, ytr = dataset(rng, 6000)
    xho, yho = dataset(rng, 2000)
    write_csv(os.path.join(out, "train.csv"), xtr, ytr)
    write_csv(os.path.join(out, "holdout.csv"), xho, yho)
    lr_auc = logistic(out, xtr, ytr, xho, yho)
    boosted(out, xtr, ytr, xho, yho, lr_auc)


if __name__ == "__main__":
    main()
