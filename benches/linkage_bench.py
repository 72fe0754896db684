#!/usr/bin/env python3
"""Linkage benchmark: onboard against Splink (DuckDB backend) on the same records.

Both tools link the identity rows of one published run of the synthetic ICS (the rows
`onboard link` reads): candidate key, NHS number, names, date of birth, sex, postcode,
provider-local id. Rows sharing a candidate key (one valid NHS number or one local id)
are one candidate in both. Both results are scored by the same command,
`onboard evaluate-linkage --link-map`, against the synthetic truth over every record
the run published (pairwise precision, recall, F1; cluster measures).

Splink gets a model of the same shape: names (Jaro-Winkler bands, term frequencies),
date of birth, postcode (term frequencies), sex and NHS number; u from 1M
random pairs, m by EM blocked on date of birth and on names, the probability that
two records match from the NHS-number rule; links at match probability 0.99. The
deterministic step (shared candidate keys; NHS number and local id on one row) is
applied to Splink's clusters the same way onboard applies it.

    pip install splink duckdb pandas
    cargo build --profile fast --bin onboard
    python3 benches/linkage_bench.py --onboard $CARGO_TARGET_DIR/fast/onboard --patients 20000
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def score(onboard, out, truth, link_map):
    r = sh([onboard, "evaluate-linkage", "--out", out, "--truth", truth,
            "--link-map", link_map, "--format", "json"])
    return json.loads(r.stdout)


def splink_link(out, map_path, threads):
    import duckdb
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.internals.duckdb.database_api import DuckDBAPI

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    ident = os.path.join(out, "identity", "person_identity", "**", "*.parquet")
    df = con.execute(f"""
        SELECT row_number() OVER () AS unique_id,
               person_key AS candidate_key,
               nhs_number, given_name, family_name,
               strftime(date_of_birth, '%Y-%m-%d') AS date_of_birth,
               CAST(year(date_of_birth) AS VARCHAR) AS birth_year,
               NULLIF(sex, '0') AS sex, postcode,
               regexp_extract(postcode, '^(\\S+ \\d)', 1) AS postcode_sector,
               CASE WHEN local_patient_id IS NOT NULL
                    THEN coalesce(local_id_issuer, '') || ':' || local_patient_id END AS local_id
        FROM read_parquet('{ident}', hive_partitioning = true)
        WHERE person_key IS NOT NULL""").df()
    db_api = DuckDBAPI(connection=con)
    sdf = db_api.register(df)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("given_name", jaro_winkler_thresholds=[0.92]).configure(
                term_frequency_adjustments=True),
            cl.NameComparison("family_name", jaro_winkler_thresholds=[0.92]).configure(
                term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            cl.PostcodeComparison("postcode").configure(term_frequency_adjustments=True),
            cl.ExactMatch("sex"),
            cl.ExactMatch("nhs_number"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("date_of_birth"),
            block_on("family_name", "birth_year"),
            block_on("postcode_sector", "birth_year"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(sdf, settings, log_level=30)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs_number", "date_of_birth")], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("family_name", "given_name"))
    preds = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        preds, threshold_match_probability=0.99)
    rows = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    # The deterministic step both tools share: rows sharing a candidate key (one NHS
    # number or one local id) are one candidate, and a row carrying both an NHS number
    # and a local id joins them (onboard's same-record rule).
    m = df[["unique_id", "candidate_key", "local_id"]].merge(rows, on="unique_id")
    parent = {}

    def find(x):
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def union(x, y):
        a, b = find(x), find(y)
        if a != b:
            parent[a] = b

    for key, cid, local in zip(m["candidate_key"], m["cluster_id"], m["local_id"]):
        union("k:" + key, "c:" + str(cid))
        if isinstance(local, str):
            union("k:" + key, "l:" + local)
    keys = sorted(set(m["candidate_key"]))
    table = pa.table({"candidate_key": keys,
                      "person_key": [find("k:" + k) for k in keys]})
    pq.write_table(table, map_path)
    return time.perf_counter() - t0, len(df)


def peak_rss_mb(cmd):
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, check=True)
    for line in r.stderr.splitlines():
        if "Maximum resident set size" in line:
            return r.stdout, int(line.split()[-1]) / 1024
    return r.stdout, float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onboard", required=True)
    ap.add_argument("--patients", type=int, default=20000)
    ap.add_argument("--work", default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    work = a.work or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"),
                                  f"bench-link-{a.patients}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data, out = os.path.join(work, "data"), os.path.join(work, "out")
    sh([a.onboard, "synth", "--patients", str(a.patients), "--out", data])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "examples", "northshire", "ics.yaml")) as f:
        ics = f.read()
    ics = (ics.replace("providers: [../../providers]", f"providers: [{repo}/providers]")
              .replace("landing: data/landing", f"landing: {data}/landing")
              .replace("output: data/out", f"output: {out}"))
    ics_path = os.path.join(work, "ics.yaml")
    with open(ics_path, "w") as f:
        f.write(ics)
    sh([a.onboard, "run", "--ics", ics_path, "--demo-key"])
    truth = os.path.join(data, "truth", "person_records.csv")

    t0 = time.perf_counter()
    _, onboard_rss = peak_rss_mb([a.onboard, "link", "--out", out, "--demo-key", "--ics", ics_path])
    onboard_s = time.perf_counter() - t0
    ob = score(a.onboard, out, truth, os.path.join(out, "linkage", "link_map.parquet"))

    splink_map = os.path.join(work, "splink_link_map.parquet")
    splink_s, rows = splink_link(out, splink_map, a.threads)
    sp = score(a.onboard, out, truth, splink_map)

    print(f"{a.patients} people, {ob['records']} records, {rows} identity rows, {a.threads} threads")
    print(f"{'tool':<8} {'time s':>8} {'precision':>10} {'recall':>8} {'F1':>8} {'exact':>7} {'split':>6} {'merged':>7}")
    for name, t, s in [("onboard", onboard_s, ob), ("splink", splink_s, sp)]:
        print(f"{name:<8} {t:8.2f} {s['precision']:10.5f} {s['recall']:8.5f} {s['f1']:8.5f} "
              f"{s['exact_persons']:7.4f} {s['split_persons']:6d} {s['merged_clusters']:7d}")
    print(f"onboard peak RSS {onboard_rss:.0f} MB (link and spine)")
    print(f"ratio: Splink time / onboard time = {splink_s / onboard_s:.1f}x; "
          f"F1 onboard - Splink = {ob['f1'] - sp['f1']:+.5f}")


if __name__ == "__main__":
    sys.exit(main())
