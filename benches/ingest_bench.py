#!/usr/bin/env python3
"""Ingest benchmark: GP-event CSVs (fixed seed) checked with 9 quality rules and written to
accepted and quarantined Parquet, by onboard, DuckDB and Polars in the same run. Prints
rows/s, peak memory (max RSS) and ratios per extract, then one table of all of them.

Four extracts (``--cases``, all by default):

* ``pooled``: 5M rows drawn from a pool of 200,000 people (many events per person);
* ``distinct``: 5M rows, every row a different patient (distinct NHS numbers, dates of
  birth and patient ids, as in SUS, ECDS and other patient-level extracts), plus a
  free-text column (commas, doubled quotes, line breaks inside quotes);
* ``distinct-20m``: the distinct shape at 20M rows;
* ``pooled-1.5m``: 10M rows drawn from 1.5 million people, an ICS-wide GP extract: more
  people than onboard's identity set keeps in memory (about a million fingerprints), so
  it spills and defers repeats, the path the 200,000-person pool never takes.

The three jobs do the same checks (not null, date parse, date range, not in future,
NHS number modulus 11, regex, value set, numeric range) and write accepted and
quarantined rows to Parquet; the quarantined counts must agree. onboard does more on
top: identity-zone split, keyed person keys, lineage columns, raw-row JSON for
quarantined rows, run.json and the DQ report, so the comparison is conservative for
onboard.

Usage: python3 benches/ingest_bench.py [--cases pooled,distinct,distinct-20m,pooled-1.5m] [--scale 1.0]
                                       [--onboard PATH] [--work DIR]
Needs: pip install duckdb polars
"""
import argparse, json, os, random, re, shutil, subprocess, sys, textwrap, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261122
SNOMED = ["38341003", "44054006", "195967001", "73211009", "271649006", "27113001", "60621009", "1000731000000107"]
UNITS = ["mmHg", "kg", "cm", "mmol/L", "%"]


def nhs_check(d9):
    s = sum(int(c) * (10 - i) for i, c in enumerate(d9))
    c = 11 - s % 11
    return 0 if c == 11 else c


FREE_TEXT = [
    "",
    "BP checked",
    '"Pt reports pain, 3/10; said ""better today"""',
    '"Seen with carer, {i}.\nPlan: review in 2/52, sooner if worse"',
    '"Discussed ""red flags"", safety-netted\nline two, and ""three"""',
    "no concerns",
]


def valid_nhs_numbers():
    """Valid NHS numbers in order, each once: 9 digits plus the modulus-11 check digit."""
    d9 = 400000000
    while True:
        c = nhs_check(f"{d9:09d}")
        if c != 10:
            yield f"{d9:09d}{c}"
        d9 += 7  # spread them out a little


def generate_distinct(path, rows):
    """Every row a different patient, with a free-text column."""
    rnd = random.Random(SEED + 1)
    nhs_iter = valid_nhs_numbers()
    with open(path, "w", newline="") as f:
        f.write("EventGuid,PatientGuid,NHSNumber,DateOfBirth,EffectiveDate,SnomedCTConceptId,Value,NumericUnit,Comment\n")
        buf = []
        for i in range(rows):
            nhs = next(nhs_iter)
            dob = f"{rnd.randrange(1, 29):02d}/{rnd.randrange(1, 13):02d}/{rnd.randrange(1925, 2024)}"
            eff = f"{rnd.randrange(1, 29):02d}/{rnd.randrange(1, 13):02d}/{rnd.randrange(2015, 2026)}"
            code = SNOMED[i % len(SNOMED)]
            val = f"{rnd.uniform(1, 300):.1f}"
            unit = UNITS[i % len(UNITS)]
            r = rnd.random()
            if r < 0.010:
                nhs = nhs[:9] + str((int(nhs[9]) + 1) % 10)
            elif r < 0.015:
                eff = "31/02/2020"
            elif r < 0.018:
                eff = "01/01/2031"
            elif r < 0.020:
                code = "Xa" + code[:4]
            elif r < 0.022:
                unit = "stone"
            elif r < 0.024:
                val = "12345"
            elif r < 0.026:
                eff = ""
            text = FREE_TEXT[i % len(FREE_TEXT)].replace("{i}", str(i))
            buf.append(f"E{i:09d},P{i:09d},{nhs},{dob},{eff},{code},{val},{unit},{text}\n")
            if len(buf) >= 100_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


def generate_pooled(path, rows, pool=200_000):
    rnd = random.Random(SEED)
    # A pool of valid NHS numbers (people), reused by events.
    people = []
    while len(people) < pool:
        d9 = f"{rnd.randrange(400000000, 499999999):09d}"
        c = nhs_check(d9)
        if c != 10:
            people.append((d9 + str(c), f"{rnd.randrange(1, 29):02d}/{rnd.randrange(1, 13):02d}/{rnd.randrange(1925, 2024)}"))
    with open(path, "w", newline="") as f:
        f.write("EventGuid,PatientGuid,NHSNumber,DateOfBirth,EffectiveDate,SnomedCTConceptId,Value,NumericUnit\n")
        buf = []
        for i in range(rows):
            p = rnd.randrange(len(people))
            nhs, dob = people[p]
            r = rnd.random()
            eff = f"{rnd.randrange(1, 29):02d}/{rnd.randrange(1, 13):02d}/{rnd.randrange(2015, 2026)}"
            code = SNOMED[i % len(SNOMED)]
            val = f"{rnd.uniform(1, 300):.1f}"
            unit = UNITS[i % len(UNITS)]
            # Faults at realistic rates.
            if r < 0.010:
                nhs = nhs[:9] + str((int(nhs[9]) + 1) % 10)  # bad check digit
            elif r < 0.015:
                eff = "31/02/2020"  # unparseable
            elif r < 0.018:
                eff = "01/01/2031"  # future
            elif r < 0.020:
                code = "Xa" + code[:4]  # not a SNOMED id
            elif r < 0.022:
                unit = "stone"  # not in value set
            elif r < 0.024:
                val = "12345"  # implausible
            elif r < 0.026:
                eff = ""  # missing
            buf.append(f"E{i:09d},P{p:07d},{nhs},{dob},{eff},{code},{val},{unit}\n")
            if len(buf) >= 100_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


MANIFEST = """\
manifest_version: 1
provider: { id: bench-gp, name: Benchmark GP events, setting: primary_care, system: emis_web }
sources:
  events:
    path: "events.csv"
    format: csv
    columns: [EventGuid, PatientGuid, NHSNumber, DateOfBirth, EffectiveDate, SnomedCTConceptId, Value, NumericUnit{comment}]
    maps_to: observation
    fields:
      code_system: { const: SNOMED_CT_UK }
      code: { from: SnomedCTConceptId }
      observed_date: { from: EffectiveDate, parse_date: "%d/%m/%Y" }
      value_numeric: { from: Value }
      unit: { from: NumericUnit }
      source_record_id: { from: EventGuid }
{free_text}    identity:
      nhs_number: { from: NHSNumber }
      date_of_birth: { from: DateOfBirth, parse_date: "%d/%m/%Y" }
      local_patient_id: { from: PatientGuid }
    quality:
      - { rule: not_null, field: observed_date }
      - { rule: parseable, field: observed_date }
      - { rule: not_in_future, field: observed_date }
      - { rule: in_range, field: observed_date, min: 1900-01-01 }
      - { rule: nhs_number_valid, field: nhs_number }
      - { rule: matches_regex, field: code, pattern: "^[0-9]{6,18}$" }
      - { rule: in_value_set, field: unit, values: [mmHg, kg, cm, mmol/L, "%"] }
      - { rule: in_range, field: value_numeric, min: 0, max: 1000 }
      - { rule: not_null, field: date_of_birth }
    thresholds: { max_quarantine_rate: 0.2 }
"""

DUCKDB_JOB = r"""
import duckdb, sys
src, acc, qua = sys.argv[1:4]
con = duckdb.connect()
con.execute("PRAGMA threads=2")
con.execute(f'''
CREATE TEMP VIEW checked AS
WITH m AS (
  SELECT *, try_strptime(EffectiveDate, '%d/%m/%Y')::DATE AS observed_date,
         try_strptime(DateOfBirth, '%d/%m/%Y')::DATE AS date_of_birth,
         TRY_CAST(Value AS DOUBLE) AS value_numeric
  FROM read_csv('{src}', header=true, all_varchar=true, quote='"', escape='"')
), f AS (
  SELECT *,
    observed_date IS NULL AS f_not_null,
    (NULLIF(trim(EffectiveDate), '') IS NOT NULL AND observed_date IS NULL) AS f_parse,
    coalesce(observed_date > DATE '2026-10-31', false) AS f_future,
    coalesce(observed_date < DATE '1900-01-01', false) AS f_range,
    coalesce(NOT (regexp_full_match(NHSNumber, '[0-9]{{10}}') AND
      ((11 - ((CAST(substr(NHSNumber,1,1) AS INT)*10 + CAST(substr(NHSNumber,2,1) AS INT)*9 + CAST(substr(NHSNumber,3,1) AS INT)*8 +
              CAST(substr(NHSNumber,4,1) AS INT)*7 + CAST(substr(NHSNumber,5,1) AS INT)*6 + CAST(substr(NHSNumber,6,1) AS INT)*5 +
              CAST(substr(NHSNumber,7,1) AS INT)*4 + CAST(substr(NHSNumber,8,1) AS INT)*3 + CAST(substr(NHSNumber,9,1) AS INT)*2) % 11)) % 11)
        = CAST(substr(NHSNumber,10,1) AS INT)), false) AS f_nhs,
    coalesce(NOT regexp_full_match(SnomedCTConceptId, '[0-9]{{6,18}}'), false) AS f_code,
    coalesce(NumericUnit NOT IN ('mmHg','kg','cm','mmol/L','%'), false) AS f_unit,
    coalesce(value_numeric < 0 OR value_numeric > 1000, false) AS f_value,
    date_of_birth IS NULL AS f_dob
  FROM m
)
SELECT *, (f_not_null OR f_parse OR f_future OR f_range OR f_nhs OR f_code OR f_unit OR f_value OR f_dob) AS quarantined FROM f
''')
con.execute(f"COPY (SELECT * EXCLUDE (quarantined) FROM checked WHERE NOT quarantined) TO '{acc}' (FORMAT PARQUET, COMPRESSION ZSTD)")
con.execute(f"COPY (SELECT * FROM checked WHERE quarantined) TO '{qua}' (FORMAT PARQUET, COMPRESSION ZSTD)")
n = con.execute(f"SELECT count(*) FROM read_parquet('{qua}')").fetchone()[0]
print(n)
"""

POLARS_JOB = r"""
import polars as pl, sys, datetime
src, acc, qua = sys.argv[1:4]
lf = pl.scan_csv(src, infer_schema=False)
d = pl.col("NHSNumber")
digits = [d.str.slice(i, 1).cast(pl.Int64, strict=False) for i in range(10)]
s = sum(digits[i] * (10 - i) for i in range(9))
chk = (11 - (s % 11)) % 11
lf = lf.with_columns(
    observed_date=pl.col("EffectiveDate").str.strptime(pl.Date, "%d/%m/%Y", strict=False),
    date_of_birth=pl.col("DateOfBirth").str.strptime(pl.Date, "%d/%m/%Y", strict=False),
    value_numeric=pl.col("Value").cast(pl.Float64, strict=False),
).with_columns(
    f_not_null=pl.col("observed_date").is_null(),
    f_parse=(pl.col("EffectiveDate").str.strip_chars().str.len_chars() > 0) & pl.col("observed_date").is_null(),
    f_future=(pl.col("observed_date") > datetime.date(2026, 10, 31)).fill_null(False),
    f_range=(pl.col("observed_date") < datetime.date(1900, 1, 1)).fill_null(False),
    f_nhs=(~(d.str.contains(r"^[0-9]{10}$") & (chk == digits[9]))).fill_null(False),
    f_code=(~pl.col("SnomedCTConceptId").str.contains(r"^[0-9]{6,18}$")).fill_null(False),
    f_unit=(~pl.col("NumericUnit").is_in(["mmHg", "kg", "cm", "mmol/L", "%"])).fill_null(False),
    f_value=((pl.col("value_numeric") < 0) | (pl.col("value_numeric") > 1000)).fill_null(False),
    f_dob=pl.col("date_of_birth").is_null(),
).with_columns(
    quarantined=pl.any_horizontal("f_not_null", "f_parse", "f_future", "f_range", "f_nhs", "f_code", "f_unit", "f_value", "f_dob")
)
lf.filter(~pl.col("quarantined")).drop("quarantined").sink_parquet(acc, compression="zstd")
lf.filter(pl.col("quarantined")).sink_parquet(qua, compression="zstd")
print(pl.scan_parquet(qua).select(pl.len()).collect().item())
"""


def timed(cmd, env=None):
    """Run under /usr/bin/time -v; return (seconds, max RSS MB, stdout)."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    el = time.perf_counter() - t
    if p.returncode not in (0,):
        print(p.stdout[-3000:], p.stderr[-3000:])
        sys.exit(f"failed: {' '.join(cmd)}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return el, (int(m.group(1)) / 1024 if m else float("nan")), p.stdout


# name -> (rows at scale 1, generator, has free text)
CASES = {
    "pooled": (5_000_000, generate_pooled, False),
    "distinct": (5_000_000, generate_distinct, True),
    "distinct-20m": (20_000_000, generate_distinct, True),
    "pooled-1.5m": (10_000_000, lambda path, rows: generate_pooled(path, rows, pool=1_500_000), False),
}


def manifest(free_text):
    m = MANIFEST.replace("{comment}", ", Comment" if free_text else "")
    return m.replace("{free_text}", "      value_text: { from: Comment }\n" if free_text else "")


def run_case(a, name):
    base_rows, gen, free_text = CASES[name]
    rows = max(1000, int(base_rows * a.scale))
    work = os.path.join(a.work, name)
    landing = os.path.join(work, "landing")
    os.makedirs(landing, exist_ok=True)
    csv = os.path.join(landing, "events.csv")
    stamp = os.path.join(work, f"generated-{rows}-{SEED}-v2")
    if not os.path.exists(stamp) or not os.path.exists(csv):
        t = time.perf_counter()
        gen(csv, rows)
        open(stamp, "w").close()
        print(f"[{name}] generated {rows:,} rows ({os.path.getsize(csv) / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s", flush=True)
    size_mb = os.path.getsize(csv) / 1e6
    prov = os.path.join(work, "providers")
    os.makedirs(prov, exist_ok=True)
    with open(os.path.join(prov, "bench-gp.yaml"), "w") as f:
        f.write(manifest(free_text))
    with open(os.path.join(work, "ics.yaml"), "w") as f:
        f.write("ics: { id: bench, name: Benchmark }\nproviders: [providers]\nlanding: landing\noutput: out-onboard\n"
                "reference_date: 2026-10-31\nengine: { memory_limit: 1GiB }\n")
    os.makedirs(os.path.join(work, "templates"), exist_ok=True)
    results = {}
    out = os.path.join(work, "out-onboard")
    shutil.rmtree(out, ignore_errors=True)
    el, rss, _ = timed([a.onboard, "run", "--ics", os.path.join(work, "ics.yaml"), "--demo-key"])
    rec = json.load(open(os.path.join(out, "run.json")))
    src = rec["sources"][0]
    assert src["rows_read"] == rows, src["rows_read"]
    assert src["reconciled"], src
    results["onboard"] = (el, rss, src["rows_quarantined"])
    for tool, job in (("duckdb", DUCKDB_JOB), ("polars", POLARS_JOB)):
        script = os.path.join(work, f"{tool}_job.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent(job))
        acc = os.path.join(work, f"{tool}_accepted.parquet")
        qua = os.path.join(work, f"{tool}_quarantined.parquet")
        try:
            el, rss, stdout = timed([sys.executable, script, csv, acc, qua])
            results[tool] = (el, rss, int(stdout.strip().splitlines()[-1]))
        except SystemExit as e:
            print(f"{tool}: {e}")
        for p in (acc, qua):
            if os.path.exists(p):
                os.remove(p)
    print(f"\n[{name}] {rows:,} rows, {size_mb:.0f} MB CSV, 9 rules, {os.cpu_count()} cores")
    print(f"{'tool':<10} {'seconds':>8} {'rows/s':>12} {'peak RSS MB':>12} {'quarantined':>12}")
    for k, (el, rss, q) in results.items():
        print(f"{k:<10} {el:>8.2f} {rows / el:>12,.0f} {rss:>12,.0f} {q:>12,}")
    on = results["onboard"][0]
    for k in ("duckdb", "polars"):
        if k in results:
            agree = "counts agree" if results[k][2] == results["onboard"][2] else "COUNTS DIFFER"
            print(f"throughput onboard / {k}: {results[k][0] / on:.2f}x; peak memory onboard / {k}: "
                  f"{results['onboard'][1] / results[k][1]:.2f}x; {agree}")
    return rows, results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every case's rows (e.g. 0.01 for a smoke run)")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--onboard", default=os.path.join(target, "fast", "onboard"))
    ap.add_argument("--work", default=os.path.join(target, "bench-ingest"))
    a = ap.parse_args()
    names = [c.strip() for c in a.cases.split(",") if c.strip()]
    for n in names:
        if n not in CASES:
            sys.exit(f"unknown case {n!r}; choose from {', '.join(CASES)}")
    table = [(n, *run_case(a, n)) for n in names]
    print("\nsummary (one run)")
    print(f"{'extract':<14} {'rows':>11} | " + " | ".join(f"{t + ' rows/s':>15} {'MB':>6}" for t in ("onboard", "duckdb", "polars"))
          + " | onboard/duckdb onboard/polars")
    for n, rows, res in table:
        cells = []
        for t in ("onboard", "duckdb", "polars"):
            el, rss, _ = res.get(t, (float("nan"), float("nan"), 0))
            cells.append(f"{rows / el:>15,.0f} {rss:>6,.0f}")
        on = res["onboard"][0]
        ratios = "  ".join(f"{res[t][0] / on:>13.2f}x" if t in res else f"{'-':>14}" for t in ("duckdb", "polars"))
        print(f"{n:<14} {rows:>11,} | " + " | ".join(cells) + " | " + ratios)


if __name__ == "__main__":
    main()
