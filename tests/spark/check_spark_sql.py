"""The Databricks bundle's Spark SQL, run on a real Spark, against the embedded engine.

1. `onboard run` ingests the fixture ICS (tests/fixtures/ics) on the embedded engine.
2. `onboard render --target databricks` renders the fixture ICS's bundle.
3. Every task of the bundle runs here, on pyspark in local mode, with the bundle's own
   `python/onboard_task.py` and `python/onboard_udfs.py` over the same landing zone and
   the same (demo) key.
4. Per source, the quarantined rows (file, row, rule ids) and the accepted rows (their
   keys and every mapped canonical field) must be the same on both engines.

Run from the repository root: `python3 tests/spark/check_spark_sql.py [--onboard BIN]`.
Needs `pip install pyspark` and a Java 17+ runtime; without them it prints a skip line
and exits 0, unless the environment has CI set, where it fails. Exit 1 on any difference.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "ics")
DEMO_KEY = "onboard-demo-key-for-synthetic-data-only-never-for-real-patients"
IDENTITY = "person_identity"


def skip(reason):
    if os.environ.get("CI"):
        sys.exit(f"check_spark_sql: {reason} (required in CI)")
    print(f"skipped: {reason}")
    sys.exit(0)


def onboard(binary, *args):
    r = subprocess.run([binary, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"onboard {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def spark_session():
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName("onboard-check-spark-sql")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.inferTimestampNTZ.enabled", "true")
        .getOrCreate()
    )


def run_tasks(bundle, work):
    """Run every task of the bundle as Databricks would, one after the other."""
    sys.path.insert(0, os.path.join(bundle, "python"))
    import onboard_task

    stages = []
    for path in sorted(glob.glob(os.path.join(bundle, "stages", "*.json"))):
        with open(path) as f:
            stage = json.load(f)
        sys.argv = [
            "onboard_task.py",
            "--stage", path,
            "--landing", "file://" + os.path.join(FIXTURE, "landing"),
            "--output", "file://" + os.path.join(work, "spark"),
            "--table-format", "parquet",
            "--run-id", "check",
        ]
        onboard_task.main()
        stages.append(stage)
    return stages


def as_text(df):
    from pyspark.sql import functions as F

    return df.select([F.col(c).cast("string").alias(c) for c in df.columns])


def rows(df, cols):
    return sorted(tuple(r[c] for c in cols) for r in as_text(df).select(*cols).collect())


def read(spark, pattern):
    paths = glob.glob(pattern)
    return spark.read.parquet(*paths) if paths else None


def compare(spark, stage, embedded, work):
    """Differences between the two engines for one source (empty list when equal)."""
    part = f"provider={stage['provider']}/source={stage['source']}"
    problems = []
    eq = read(spark, os.path.join(embedded, "quarantine", part, "*.parquet"))
    sq = spark.read.parquet(os.path.join(work, "spark", "quarantine", part))
    qcols = ["source_file", "source_row", "rule_ids"]
    e_q = rows(eq, qcols) if eq is not None else []
    s_q = rows(sq, qcols)
    if e_q != s_q:
        problems.append(f"quarantined rows differ:\n  embedded {e_q}\n  spark    {s_q}")

    sa = spark.read.parquet(os.path.join(work, "spark", "accepted", part))
    if stage["entity"] == IDENTITY:
        ea = read(spark, os.path.join(embedded, "identity", IDENTITY, part, "*.parquet"))
        key_e, key_s = ["source_file", "source_row", "person_key", "record_key"], ["_source_file", "_source_row", "person_key", "record_key"]
    else:
        ea = read(spark, os.path.join(embedded, "silver", stage["entity"], part, "*.parquet"))
        own = ea.columns[0] if ea is not None and ea.columns[0].endswith("_id") and "record_key" not in ea.columns else "record_key"
        key_e, key_s = [own], ["record_key"]
    if ea is None:
        return problems + ["the embedded engine accepted no rows"]
    fields = [f for f in stage["mapped"] if f in ea.columns and f in sa.columns]
    e_a = rows(ea, key_e + fields)
    s_a = rows(sa, key_s + fields)
    if e_a != s_a:
        only_e = [r for r in e_a if r not in s_a]
        only_s = [r for r in s_a if r not in e_a]
        problems.append(f"accepted rows differ on {key_e + fields}:\n  only embedded {only_e}\n  only spark    {only_s}")
    print(f"{stage['provider']}/{stage['source']}: {len(e_a)} accepted, {len(e_q)} quarantined; "
          f"{len(fields)} fields compared{'' if not problems else ' — DIFFERENT'}")
    return problems


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--onboard", default=os.environ.get("ONBOARD_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "onboard"))
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args()
    try:
        import pyspark  # noqa: F401
    except ImportError:
        skip("pip install pyspark")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        skip("apt-get install openjdk-17-jre-headless")
    if not os.path.exists(a.onboard):
        sys.exit(f"no onboard binary at {a.onboard} (cargo build first, or --onboard)")
    os.environ["ONBOARD_PSEUDONYMISATION_KEY"] = DEMO_KEY
    work = tempfile.mkdtemp(prefix="onboard-spark-")
    try:
        embedded = os.path.join(work, "embedded")
        bundle = os.path.join(work, "bundle")
        ics = os.path.join("tests", "fixtures", "ics", "ics.yaml")
        # The same key on both engines: the demo key, given the same way.
        onboard(a.onboard, "run", "--ics", ics, "--out", embedded)
        onboard(a.onboard, "render", "--ics", ics, "--target", "databricks", "--out", bundle)
        spark = spark_session()
        spark.sparkContext.setLogLevel("ERROR")
        stages = run_tasks(bundle, work)
        problems = []
        for stage in stages:
            for pr in compare(spark, stage, os.path.join(embedded, "current"), work):
                problems.append(f"{stage['provider']}/{stage['source']}: {pr}")
        spark.stop()
        if not stages:
            sys.exit("the bundle has no tasks")
        if problems:
            print("\n".join(problems))
            sys.exit(1)
        print(f"Spark SQL matches the embedded engine on {len(stages)} sources")
    finally:
        if a.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
