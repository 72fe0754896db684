#!/usr/bin/env python3
"""Benchmark: `onboard validate` on 1,000 provider manifests (no data), against
check-jsonschema (PyPI) validating the same files against the same JSON Schema.

check-jsonschema only does the structural schema check; onboard also renders provider
templates, resolves canonical fields, value sets and rules, and parses and type-checks
every SQL expression with DataFusion. The ratio is therefore conservative for onboard.

Usage: python3 benches/validate_bench.py [--onboard PATH] [--n 1000]
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INLINE = """# yaml-language-server: $schema=schemas/provider-manifest.schema.json
manifest_version: 1
provider: {{ id: trust-{i}, name: Trust {i}, setting: acute, system: sus_apc }}
sources:
  spells:
    path: "acute/t{i}/apc_*.csv"
    format: csv
    columns: [SpellID, NHSNumber, DOB, AdmissionDate, DischargeDate, AdmissionMethod, Cost]
    maps_to: care_event
    fields:
      setting: {{ const: APC }}
      start_ts: {{ from: AdmissionDate, parse_timestamp: ["%Y-%m-%d %H:%M", "%Y-%m-%d"] }}
      end_ts: {{ from: DischargeDate, parse_timestamp: "%Y-%m-%d" }}
      admission_method: {{ from: AdmissionMethod, transform: [trim, upper] }}
      cost_amount: {{ expr: "try_cast(\\"Cost\\" AS DOUBLE) * 1.0" }}
      source_record_id: {{ expr: "concat('t{i}-', \\"SpellID\\")" }}
    identity:
      nhs_number: {{ from: NHSNumber, transform: nhs_number }}
      date_of_birth: {{ from: DOB, parse_date: "%Y-%m-%d" }}
    quality:
      - {{ rule: in_value_set, field: admission_method }}
      - {{ rule: date_order, field: end_ts, after: start_ts }}
      - {{ id: cost_ok, expr: "cost_amount >= 0 AND cost_amount < 1000000" }}
"""

TEMPLATED = """manifest_version: 1
provider: {{ id: practice-{i}, name: Practice {i} }}
uses: emis_web
params: {{ ods_code: F{i:05d} }}
"""


def build_tree(n):
    d = tempfile.mkdtemp(prefix="onboard-bench-")
    shutil.copytree(os.path.join(ROOT, "templates"), os.path.join(d, "templates"))
    shutil.copytree(os.path.join(ROOT, "schemas"), os.path.join(d, "schemas"))
    prov = os.path.join(d, "providers")
    os.makedirs(prov)
    shutil.copytree(os.path.join(ROOT, "providers", "maps"), os.path.join(prov, "maps"))
    for i in range(n):
        text = INLINE.format(i=i) if i % 2 else TEMPLATED.format(i=i)
        with open(os.path.join(prov, f"p{i:05d}.yaml"), "w") as f:
            f.write(text)
    return d


def timed(cmd, cwd, runs=3):
    best = None
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        el = time.perf_counter() - t
        best = el if best is None else min(best, el)
    return best, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onboard", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "onboard"))
    ap.add_argument("--n", type=int, default=1000)
    a = ap.parse_args()
    d = build_tree(a.n)
    try:
        t_on, p = timed([a.onboard, "validate", "providers/", "--format", "json"], d)
        if p.returncode != 0:
            print(p.stdout[:2000], p.stderr[:2000])
            sys.exit("onboard validate failed on the benchmark manifests")
        print(f"onboard validate        {a.n} manifests: {t_on:.3f} s  ({a.n / t_on:,.0f} manifests/s)")
        cj = shutil.which("check-jsonschema")
        if cj is None:
            print("check-jsonschema not installed (pip install check-jsonschema); no peer ratio")
            return
        files = sorted(os.path.join("providers", f) for f in os.listdir(os.path.join(d, "providers")) if f.endswith(".yaml"))
        t_cj, p = timed([cj, "--schemafile", "schemas/provider-manifest.schema.json", *files], d, runs=1)
        print(f"check-jsonschema        {a.n} manifests: {t_cj:.3f} s  (exit {p.returncode}; schema check only)")
        print(f"ratio check-jsonschema / onboard: {t_cj / t_on:.1f}x")
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
