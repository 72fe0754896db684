"""One task of an onboard Databricks job: ingest one provider source with Spark SQL.

Rendered bundles run this file as a `spark_python_task`, one task per source, in
pipeline order. It reads the source's extracts from the landing zone (every column as
text, with `_source_file` and the 1-based `_source_row` of each data row, like onboard's
scanner), runs the Spark SQL that `onboard render` unparsed from the source's compiled
DataFusion plan, and splits the rows exactly as the embedded engine does: a row failing
any rule whose `on_fail` is not `warn` is quarantined (with its rule ids), every other
row is accepted. Rows Spark cannot read as the declared shape (ragged rows) are
quarantined as `unreadable`.

Outputs under --output: `accepted/provider=<p>/source=<s>/` (the plan's output
columns without the rule and raw columns) and `quarantine/provider=<p>/source=<s>/`
(source_file, source_row, rule_ids, raw_row), as Delta or Parquet.

Usage: onboard_task.py --stage stages/<task>.json --landing URI --output URI
       [--table-format delta|parquet] [--run-id ID] [--reference-date YYYY-MM-DD]
"""

import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(globals().get("__file__") or sys.argv[0]))
sys.path.insert(0, HERE)

import onboard_udfs  # noqa: E402

CORRUPT = "_corrupt_record"


def args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", required=True)
    p.add_argument("--landing", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--table-format", default="delta", choices=["delta", "parquet"])
    p.add_argument("--run-id", default=None)
    p.add_argument("--reference-date", default=None)
    return p.parse_args()


def local_path(uri):
    return uri[len("file://") :] if uri.startswith("file://") else uri


def read_text(path):
    if path.startswith("file://") or "://" not in path:
        with open(local_path(path), encoding="utf-8") as f:
            return f.read()
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    return "\n".join(r.value for r in spark.read.text(path).collect())


def list_files(spark, landing, pattern):
    """The files matching the source's glob, sorted, with paths relative to landing."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    base = landing.rstrip("/")
    glob = jvm.org.apache.hadoop.fs.Path(base + "/" + pattern)
    fs = glob.getFileSystem(conf)
    found = fs.globStatus(glob) or []
    files = sorted(str(s.getPath().toString()) for s in found if s.isFile())
    root = str(fs.makeQualified(jvm.org.apache.hadoop.fs.Path(base)).toString()).rstrip("/")
    return [(f, f[len(root) + 1 :] if f.startswith(root + "/") else f) for f in files]


def read_csv_file(spark, path, stage):
    """One CSV file: declared columns as text by header name, plus lineage."""
    from pyspark.sql import types as T

    csv = stage["csv"]
    enc = "ISO-8859-1" if csv["encoding"] == "latin-1" else "UTF-8"
    opts = {"sep": csv["delimiter"], "quote": csv["quote"], "encoding": enc, "mode": "PERMISSIVE"}
    if csv.get("escape"):
        opts["escape"] = csv["escape"]
    else:
        opts["escape"] = csv["quote"]
    if csv["header"]:
        first = spark.read.options(**opts).option("header", False).csv(path).limit(1).collect()
        header = [(h or "").lstrip("\ufeff").strip() for h in (first[0] if first else [])]
    else:
        header = list(stage["columns"])
    missing = [c for c in stage["columns"] if c not in header]
    if missing:
        raise RuntimeError(f"{path}: header lacks declared column(s) {', '.join(missing)}")
    names = [f"_c{i}" for i in range(len(header))]
    schema = T.StructType([T.StructField(n, T.StringType()) for n in names] + [T.StructField(CORRUPT, T.StringType())])
    df = (
        spark.read.options(**opts)
        .option("header", csv["header"])
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("ignoreLeadingWhiteSpace", False)
        .option("ignoreTrailingWhiteSpace", False)
        .schema(schema)
        .csv(path)
    )
    return df, [names[header.index(c)] for c in stage["columns"]]


def scan(spark, stage, landing):
    """(rows, unreadable) with the declared columns, `_source_file`, `_source_row`."""
    from pyspark.sql import Row
    from pyspark.sql import types as T

    if stage["format"] != "csv":
        raise RuntimeError(f"format {stage['format']} is not supported by the Spark task yet")
    nulls = set(stage["csv"]["null_values"])
    cols = stage["columns"]
    out_schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in cols]
        + [T.StructField("_source_file", T.StringType()), T.StructField("_source_row", T.LongType())]
    )
    bad_schema = T.StructType(
        [T.StructField("source_file", T.StringType()), T.StructField("source_row", T.LongType()), T.StructField("raw_row", T.StringType())]
    )
    good, bad = None, None
    for path, rel in list_files(spark, landing, stage["path"]):
        df, picked = read_csv_file(spark, path, stage)
        width = len(df.columns) - 1

        def clean(v):
            if v is None or v.strip() == "" or (nulls and v.strip() in nulls):
                return None
            return v

        def split(pair, picked=picked, rel=rel, width=width):
            row, i = pair
            return (row, i + 1, rel, picked, width)

        indexed = df.rdd.zipWithIndex().map(split)
        ok = indexed.filter(lambda t: t[0][CORRUPT] is None).map(
            lambda t: Row(*([clean(t[0][c]) for c in t[3]] + [t[2], t[1]]))
        )
        ko = indexed.filter(lambda t: t[0][CORRUPT] is not None).map(lambda t: Row(t[2], t[1], t[0][CORRUPT]))
        g = spark.createDataFrame(ok, out_schema)
        b = spark.createDataFrame(ko, bad_schema)
        good = g if good is None else good.unionByName(g)
        bad = b if bad is None else bad.unionByName(b)
    if good is None:
        good = spark.createDataFrame([], out_schema)
        bad = spark.createDataFrame([], bad_schema)
    return good, bad


def spark_sql(stage, stage_dir, run_id, reference_date):
    text = read_text(os.path.join(stage_dir, stage["sql_file"]) if "://" not in stage_dir else stage_dir + "/" + stage["sql_file"])
    ph = stage["placeholders"]
    text = text.replace("'" + ph["run_id"] + "'", "'" + run_id.replace("'", "''") + "'")
    return text.replace("'" + ph["reference_date"] + "'", "'" + reference_date + "'")


def write(df, uri, fmt):
    df.write.mode("overwrite").format(fmt).save(uri)


def main():
    a = args()
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.getOrCreate()
    stage = json.loads(read_text(a.stage))
    stage_dir = os.path.dirname(os.path.dirname(a.stage))
    # The workers unpickle the functions by module: ship the module to them.
    spark.sparkContext.addPyFile(os.path.join(HERE, "onboard_udfs.py"))
    onboard_udfs.register(spark)
    rows, unreadable = scan(spark, stage, a.landing)
    rows.createOrReplaceTempView("`" + stage["table"].replace("`", "``") + "`")
    reference_date = a.reference_date or stage.get("reference_date") or datetime.date.today().isoformat()
    run_id = a.run_id or "spark"
    out = spark.sql(spark_sql(stage, stage_dir, run_id, reference_date))
    blocking = [r for r in stage["rules"] if r["on_fail"] != "warn"]
    quarantined = F.lit(False)
    for r in blocking:
        quarantined = quarantined | F.col(r["column"])
    ids = F.concat_ws(",", *[F.when(F.col(r["column"]), F.lit(r["id"])) for r in blocking]) if blocking else F.lit("")
    raw = F.to_json(F.struct(*[F.col("src__" + c).alias(c) for c in stage["columns"]]))
    keep = [c for c in out.columns if not c.startswith(("fail__", "src__", "raw__"))]
    part = f"provider={stage['provider']}/source={stage['source']}"
    base = a.output.rstrip("/")
    accepted = out.where(~quarantined).select(*keep)
    rejected = out.where(quarantined).select(
        F.col("_source_file").alias("source_file"),
        F.col("_source_row").alias("source_row"),
        ids.alias("rule_ids"),
        raw.alias("raw_row"),
    )
    rejected = rejected.unionByName(unreadable.select("source_file", "source_row", F.lit("unreadable").alias("rule_ids"), "raw_row"))
    write(accepted, f"{base}/accepted/{part}", a.table_format)
    write(rejected, f"{base}/quarantine/{part}", a.table_format)
    n_in = rows.count() + unreadable.count()
    n_ok, n_q = accepted.count(), rejected.count()
    print(json.dumps({"provider": stage["provider"], "source": stage["source"], "rows_read": n_in, "rows_accepted": n_ok, "rows_quarantined": n_q}))
    if n_in != n_ok + n_q:
        raise SystemExit(f"{part}: {n_in} rows read but {n_ok} accepted + {n_q} quarantined")


if __name__ == "__main__":
    main()
