#!/usr/bin/env python3
"""Risk benchmark: onboard's risk stage against scikit-learn + shap on the same data.

`onboard demo --patients N` builds the synthetic ICS (synth → run → link → risk). Then,
on that linked run, each risk command is timed on its own (wall time and peak memory of
the process, by /usr/bin/time): `risk features` (five as-of dates featurised from the
spine), `risk train` (logistic regression, gradient-boosted trees, Charlson baseline,
with validation and model cards) and `risk score` (every person scored with exact SHAP).

The peer does the train-and-explain part on the same `gold/features` tables in the same
run: scikit-learn `LogisticRegression(C=1)` on the standardised, mean-imputed training
rows, then `shap.LinearExplainer` (independent masker, training background) over the
score date; and `xgboost` (the same tree settings as onboard's challenger) with
`shap.TreeExplainer`. It reads the features already computed, so it is given the
featurisation for free. Ratios > 1 mean onboard is faster.

    pip install scikit-learn xgboost shap pandas pyarrow
    cargo build --profile fast --bin onboard
    python3 benches/risk_bench.py --onboard $CARGO_TARGET_DIR/fast/onboard --patients 1000000
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time


def timed(cmd, cwd=None):
    """Run cmd under /usr/bin/time; return (seconds, peak MB, stdout)."""
    t = time.time()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    peak_kb = int(r.stderr.strip().splitlines()[-1])
    return time.time() - t, peak_kb / 1024, r.stdout


def peer(out, cols, dates):
    import numpy as np
    import pandas as pd
    import shap
    import xgboost
    from sklearn.linear_model import LogisticRegression

    inputs = [c["name"] for c in cols if c["model_input"]]
    load = lambda d: pd.read_parquet(os.path.join(out, "gold", "features", f"as_of={d}"))
    t0 = time.time()
    train = pd.concat([load(d) for d in dates["train"]])
    score = load(dates["score"])
    x = train[inputs].to_numpy(float)
    y = train["outcome_emergency_admission"].to_numpy(bool)
    keep = [j for j in range(x.shape[1]) if np.nanstd(x[:, j]) > 0]
    x = x[:, keep]
    mean = np.nanmean(x, axis=0)
    x = np.where(np.isnan(x), mean, x)
    sd = x.std(axis=0)
    z = (x - mean) / sd
    xs = score[inputs].to_numpy(float)[:, keep]
    zs = (np.where(np.isnan(xs), mean, xs) - mean) / sd
    t_load = time.time() - t0
    t0 = time.time()
    lr = LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(z, y)
    phi = shap.LinearExplainer(lr, shap.maskers.Independent(z, max_samples=len(z))).shap_values(zs)
    t_lr = time.time() - t0
    t0 = time.time()
    gb = xgboost.XGBClassifier(n_estimators=150, max_depth=4, learning_rate=0.08,
                               tree_method="hist", n_jobs=os.cpu_count())
    gb.fit(x, y)
    tphi = shap.TreeExplainer(gb).shap_values(np.where(np.isnan(xs), mean, xs))
    t_gb = time.time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert phi.shape[0] == len(score) and tphi.shape[0] == len(score)
    return {"load_s": t_load, "logistic_train_explain_s": t_lr, "xgboost_train_explain_s": t_gb,
            "peak_mb": peak, "train_rows": len(train), "score_rows": len(score)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onboard", required=True)
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--work", default="/tmp/onboard-risk-bench")
    ap.add_argument("--reuse", action="store_true", help="keep an existing demo output")
    a = ap.parse_args()
    onboard = os.path.abspath(a.onboard)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(a.work, f"demo-{a.patients}")
    # --reuse keeps a demo output that got as far as the spine (the risk steps rerun).
    if not (a.reuse and os.path.exists(os.path.join(out, "linkage", "spine"))):
        shutil.rmtree(out, ignore_errors=True)
        s, mb, _ = timed([onboard, "demo", "--out", out, "--patients", str(a.patients)], cwd=repo)
        print(f"demo (synth → run → link → risk), {a.patients} people: {s:.1f} s, peak {mb:.0f} MB")
    ics = os.path.join(out, "ics.yaml")
    rows = {}
    for step in ["features", "train", "score"]:
        rows[step] = timed([onboard, "risk", step, "--out", out, "--ics", ics], cwd=repo)[:2]
    cols = json.load(open(os.path.join(out, "gold", "features", "columns.json")))
    reg = json.load(open(os.path.join(out, "models", "registry.json")))
    card = json.load(open(os.path.join(out, "models", reg["champion"], "model.json")))
    dates = {"train": card["training"]["as_of"], "score": "2026-10-31"}
    p = peer(out, cols, dates)
    print(f"\n{'step':<34}{'onboard s':>11}{'peak MB':>10}")
    for step, (s, mb) in rows.items():
        print(f"{'risk ' + step:<34}{s:>11.1f}{mb:>10.0f}")
    ours = rows["train"][0] + rows["score"][0]
    theirs = p["logistic_train_explain_s"] + p["xgboost_train_explain_s"]
    print(f"\npeer on the same features ({p['train_rows']} training rows, {p['score_rows']} scored):")
    print(f"  scikit-learn LogisticRegression + shap.LinearExplainer: {p['logistic_train_explain_s']:.1f} s")
    print(f"  xgboost (150 trees, depth 4) + shap.TreeExplainer:      {p['xgboost_train_explain_s']:.1f} s")
    print(f"  reading the features: {p['load_s']:.1f} s; peak {p['peak_mb']:.0f} MB")
    print(f"\ntrain + explain: onboard {ours:.1f} s (three models, validation, cards, scores) vs peer {theirs:.1f} s "
          f"(two models, no validation): ratio {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
