#!/usr/bin/env python3
"""Compare two output directories of `onboard demo` (or `onboard run` + later stages).

Usage: python3 tests/python/compare_runs.py BEFORE_OUT AFTER_OUT

Behaviour-preserving changes (refactors) must leave a run's outputs as they were. This
walks both directories (following `current`, skipping `runs/` duplicates reached through
links and the `.staging/` area) and compares:

* every folder of Parquet files by its rows: the same columns and the same multiset of
  rows, order ignored (partitions are written by parallel tasks), run ids masked (a
  run's id is part of every silver row);
* every JSON file with volatile values removed: timestamps, durations, run ids and
  anything derived from them (paths under `runs/<id>`, the run's staging names);
* every other text file (HTML, CSV, NDJSON, Markdown) after the same masking.

Masked everywhere: run ids, timestamps, durations, the two output directories and the
providers folder (two checkouts); floats compared to 12 significant digits.

Exits 0 when everything matches, 1 listing each difference otherwise.
"""
import json
import os
import re
import sys

import pyarrow.parquet as pq

VOLATILE_KEYS = {
    "started_at", "finished_at", "generated_at", "created_at", "duration_ms", "seconds",
    "elapsed_ms", "elapsed_seconds", "wall_seconds", "timestamp", "at", "trained_at",
    "scored_at", "written_at", "run_started", "run_finished",
}
RUN_ID = re.compile(r"\b\d{8}T\d{6}Z?-[0-9a-f]{6,}\b|\b[0-9a-f]{8}-\d{8}T\d{6}\b")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
PROVIDERS = re.compile(r"/[^\s\"']*/providers\b")
DURATION = re.compile(r"\b\d+(\.\d+)?\s?(ms|s)\b")


def mask(text, run_ids):
    text = PROVIDERS.sub("<providers>", text)
    for r in run_ids:
        text = text.replace(r, "<run>")
    text = RUN_ID.sub("<run>", text)
    text = TIMESTAMP.sub("<time>", text)
    return DURATION.sub("<dur>", text)


def rounded(v):
    """Floats to 12 significant digits: sums are taken in parallel, in no fixed order."""
    if isinstance(v, float):
        return float(f"{v:.12g}")
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [rounded(x) for x in v]
    return v


def scrub(v, run_ids):
    if isinstance(v, float):
        return rounded(v)
    if isinstance(v, dict):
        return {k: ("<volatile>" if k in VOLATILE_KEYS else scrub(x, run_ids)) for k, x in v.items()}
    if isinstance(v, list):
        return [scrub(x, run_ids) for x in v]
    if isinstance(v, str):
        return mask(v, run_ids)
    return v


def run_ids(root):
    runs = os.path.join(root, "runs")
    return sorted(os.listdir(runs), key=len, reverse=True) if os.path.isdir(runs) else []


def files(root):
    """Relative paths of comparable items: Parquet datasets (dirs of .parquet) and files."""
    out = {}
    for d, dirs, names in os.walk(root, followlinks=False):
        rel = os.path.relpath(d, root)
        dirs[:] = [x for x in dirs if not x.startswith(".") and not (rel == "." and x == "runs")]
        parquet = [n for n in names if n.endswith(".parquet")]
        if parquet:
            out[rel] = ("parquet", d)
        for n in names:
            if not n.endswith(".parquet") and not n.startswith("."):
                out[os.path.join(rel, n)] = ("file", os.path.join(d, n))
        # Follow `current` and other links to directories once, under their own name.
        for x in list(dirs):
            p = os.path.join(d, x)
            if os.path.islink(p):
                for sub, kind in files(os.path.realpath(p)).items():
                    out[os.path.normpath(os.path.join(rel, x, sub))] = kind
                dirs.remove(x)
    return out


def table_rows(directory, ids):
    """The rows of the .parquet files directly in `directory` (one dataset per folder)."""
    parts = sorted(n for n in os.listdir(directory) if n.endswith(".parquet"))
    cols, rows = None, []
    for n in parts:
        t = pq.read_table(os.path.join(directory, n))
        c = sorted(t.column_names)
        if cols is not None and c != cols:
            return ["<parts differ>"], []
        cols = c
        rows += [mask(json.dumps([rounded(r[k]) for k in c], default=str, sort_keys=True), ids)
                 for r in t.to_pylist()]
    return cols, sorted(rows)


def compare(before, after):
    a, b = files(before), files(after)
    # The run ids, and the output directories themselves (paths in outputs name them).
    ra = run_ids(before) + [os.path.abspath(before)]
    rb = run_ids(after) + [os.path.abspath(after)]
    problems = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            problems.append(f"{k}: only in {'after' if k in b else 'before'}")
            continue
        (ka, pa), (kb, pb) = a[k], b[k]
        if ka == "parquet":
            ca, xa = table_rows(pa, ra)
            cb, xb = table_rows(pb, rb)
            if ca != cb:
                problems.append(f"{k}: columns differ: {ca} vs {cb}")
            elif xa != xb:
                diff = len(set(xa) ^ set(xb))
                problems.append(f"{k}: {len(xa)} vs {len(xb)} rows, {diff} differ")
        elif k.endswith(".json"):
            try:
                ja, jb = json.load(open(pa)), json.load(open(pb))
            except (ValueError, UnicodeDecodeError) as e:
                problems.append(f"{k}: not JSON: {e}")
                continue
            if scrub(ja, ra) != scrub(jb, rb):
                problems.append(f"{k}: JSON differs beyond timestamps and run ids")
        else:
            try:
                ta, tb = open(pa, encoding="utf-8").read(), open(pb, encoding="utf-8").read()
            except UnicodeDecodeError:
                ta, tb = open(pa, "rb").read().hex(), open(pb, "rb").read().hex()
            if k.endswith(".ndjson") or k.endswith(".csv"):
                ta = "\n".join(sorted(mask(ta, ra).splitlines()))
                tb = "\n".join(sorted(mask(tb, rb).splitlines()))
            if mask(ta, ra) != mask(tb, rb):
                problems.append(f"{k}: text differs beyond timestamps and run ids")
    return len(set(a) | set(b)), problems


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    n, problems = compare(sys.argv[1], sys.argv[2])
    for p in problems:
        print(p)
    print(f"{n} outputs compared, {len(problems)} differ")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
