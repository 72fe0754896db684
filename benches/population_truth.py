"""Prevalence by IMD quintile recovered by `onboard population` next to the synthetic truth's.

Usage: python3 benches/population_truth.py DEMO_OUT

Recovered: the crude prevalence of each condition by IMD quintile computed from the
row-level gold/population/persons (morbidity profile, IMD quintile of the LSOA at the as-of
date), and the published (disclosure-controlled) value in gold/population/aggregates (`*`
when suppressed). Truth: truth/people.csv (conditions present at the as-of date and the IMD
decile of the true LSOA). Prints a Markdown table: recovered (published) / truth.
"""
import csv
import glob
import sys

import pyarrow.parquet as pq

FEATURE_TO_TRUTH = {
    "hypertension": "hypertension", "diabetes": "diabetes", "copd": "copd", "asthma": "asthma",
    "heart_failure": "heart_failure", "atrial_fibrillation": "atrial_fibrillation", "ckd": "ckd",
    "dementia": "dementia", "depression": "depression", "stroke_tia": "stroke", "cancer_5y": "cancer",
}


def truth(out):
    n, has = {}, {}
    with open(f"{out}/truth/people.csv", newline="") as f:
        for r in csv.DictReader(f):
            q = str((int(r["imd_decile"]) + 1) // 2) if r["imd_decile"] else "Not known"
            conds = set(filter(None, r["conditions"].split(";")))
            for g in (q, "All"):
                n[g] = n.get(g, 0) + 1
                for c in conds:
                    has[(c, g)] = has.get((c, g), 0) + 1
    return {k: 100.0 * v / n[k[1]] for k, v in has.items()}, n


def recovered(out):
    files = glob.glob(f"{out}/gold/population/aggregates/*/*.parquet")
    t = pq.read_table(files[0]).to_pylist()
    return {(r["measure"][len("prevalence_"):], r["group"]): r["value"] for r in t
            if r["measure"].startswith("prevalence_") and r["breakdown"] in ("imd_quintile", "all")
            and r["statistic"] == "crude_rate" and r["category"] is None}


def exact(out):
    files = glob.glob(f"{out}/gold/population/persons/*/*.parquet")
    rows = pq.read_table(files[0], columns=["imd_quintile", "morbidity_profile"]).to_pylist()
    n, has = {}, {}
    for r in rows:
        conds = set(r["morbidity_profile"].split(";"))
        for g in (r["imd_quintile"], "All"):
            n[g] = n.get(g, 0) + 1
            for c in conds:
                has[(c, g)] = has.get((c, g), 0) + 1
    return {k: 100.0 * v / n[k[1]] for k, v in has.items()}, n


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "demo-out"
    tru, n = truth(out)
    rec = recovered(out)
    ex, n_ex = exact(out)
    groups = ["1", "2", "3", "4", "5", "All"]
    print("| condition | " + " | ".join(f"Q{g}" if g != "All" else "All" for g in groups) + " |")
    print("|---|" + "---|" * len(groups))
    for feat, key in FEATURE_TO_TRUTH.items():
        cells = []
        for g in groups:
            r = rec.get((feat, g))
            t = tru.get((key, g), 0.0)
            e = ex.get((feat, g), 0.0)
            cells.append(f"{e:.1f} ({'*' if r is None else f'{r:.1f}'}) / {t:.1f}")
        print(f"| {feat} | " + " | ".join(cells) + " |")
    print("\nrecovered (published) / truth, in %; persons per quintile, truth: " + ", ".join(f"Q{g} {n.get(g, 0)}" for g in groups)
          + "; spine: " + ", ".join(f"Q{g} {n_ex.get(g, 0)}" for g in groups + ["Not known"]))


if __name__ == "__main__":
    main()
