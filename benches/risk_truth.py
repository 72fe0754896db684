#!/usr/bin/env python3
"""How close the risk model gets to the best possible on the synthetic ICS.

For a demo output (`onboard demo --out DIR`): maps every spine person to its synthetic
true person (the majority true id of the person's published records, through the link
map and truth/person_records.csv), then at the validation as-of date compares, on the
same population and against the same outcome computed from the ingested spells:
the truth's own risk_probability (the process that generated the admissions: the best
any model can do on this data), the champion, and the other trained models.

    python3 benches/risk_truth.py DIR
"""
import glob
import json
import os
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def auroc(p, y):
    """Mann-Whitney AUROC, ties by midrank."""
    ranks = pd.Series(p).rank(method="average").to_numpy()
    pos = y.sum()
    return (ranks[y].sum() - pos * (pos + 1) / 2) / (pos * (len(y) - pos))


def recall_at(p, y, k):
    n = int(np.ceil(len(p) * k / 100))
    top = np.argsort(-p, kind="mergesort")[:n]
    return y[top].sum() / y.sum()


def main(out):
    reg = json.load(open(os.path.join(out, "models", "registry.json")))
    champ = json.load(open(os.path.join(out, "models", reg["champion"], "model.json")))
    as_of = champ["validation"]["as_of"]
    truth = pd.read_csv(os.path.join(out, "truth", "person_records.csv"), dtype=str)
    recs = []
    for d in glob.glob(os.path.join(out, "silver", "*")) + [os.path.join(out, "identity", "person_identity")]:
        if not os.path.isdir(d):
            continue
        t = pq.read_table(d, columns=["provider_id", "source_id", "source_record_id", "person_key"]).to_pandas()
        recs.append(t.dropna(subset=["source_record_id"]))
    recs = pd.concat(recs)
    recs["source_record_id"] = recs["source_record_id"].astype(str)
    lm = pq.read_table(os.path.join(out, "linkage", "link_map.parquet")).to_pandas()
    recs = recs.merge(lm.rename(columns={"candidate_key": "person_key", "person_key": "linked"}), on="person_key", how="left")
    recs["linked"] = recs["linked"].fillna(recs["person_key"])
    j = recs.merge(truth, left_on=["provider_id", "source_id", "source_record_id"], right_on=["provider_id", "source", "source_record_id"])
    major = j.groupby(["linked", "true_person_id"]).size().reset_index(name="n").sort_values("n").drop_duplicates("linked", keep="last")
    feats = pq.read_table(os.path.join(out, "gold", "features", f"as_of={as_of}")).to_pandas()
    feats = feats.merge(major[["linked", "true_person_id"]], left_on="person_key", right_on="linked", how="left")
    outc = pd.read_csv(os.path.join(out, "truth", "outcomes_90d.csv"), dtype={"true_person_id": str})
    outc = outc[outc["as_of_date"] == as_of]
    feats = feats.merge(outc[["true_person_id", "risk_probability"]], on="true_person_id", how="left")
    y = feats["outcome_emergency_admission"].to_numpy(bool)
    have = feats["risk_probability"].notna().to_numpy()
    print(f"validation as-of {as_of}: {len(feats)} persons, {y.sum()} admitted (ingested spells); "
          f"{have.sum()} mapped to a true person")
    p_truth = feats["risk_probability"].fillna(feats["risk_probability"].mean()).to_numpy()
    print(f"{'scores':<42}{'AUROC':>7}{'rec@1%':>8}{'rec@2%':>8}{'rec@5%':>8}")
    print(f"{'synthetic truth risk_probability':<42}{auroc(p_truth, y):>7.3f}"
          + "".join(f"{recall_at(p_truth, y, k) * 100:>7.1f}%" for k in (1, 2, 5)))
    for v in reg["versions"]:
        m = json.load(open(os.path.join(out, "models", v["version"], "model.json")))
        e = m["validation"]["evaluation"]
        at = {a["k_percent"]: a["recall"] for a in e["at_k"]}
        print(f"{v['role'] + ' ' + v['kind'] + ' (onboard)':<42}{e['auroc']:>7.3f}"
              + "".join(f"{at[k] * 100:>7.1f}%" for k in (1.0, 2.0, 5.0)))


if __name__ == "__main__":
    main(sys.argv[1])
