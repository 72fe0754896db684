"""Independent check of onboard's age-standardised rates (tests/it/population.rs).

Usage: python3 population_dsr.py PERSONS_DIR BREAKDOWN_COLUMN CONDITION...

Reads gold/population/persons (one row per person: age, the breakdown column and the
morbidity profile) and prints, as JSON, for each condition and group (and "All"), the
directly age-standardised prevalence per 100 over the 2013 European Standard Population
with the Dobson interval on Byar's limits, as PHE's Fingertips / PHEindicatormethods
compute it: DSR = sum(w_i * O_i / n_i) / sum(w) ; var = sum(w_i^2 O_i / n_i^2) / sum(w)^2 ;
limits DSR + sqrt(var / O) * (O_lim - O), O_lim Byar's limits of O; none under 10 events.
Written from the formulas, sharing no code with onboard.
"""
import glob
import json
import sys
from statistics import NormalDist

import pyarrow.parquet as pq

ESP2013 = [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000, 7000, 6500, 6000,
           5500, 5000, 4000, 2500, 1500, 1000]
Z = NormalDist().inv_cdf(0.975)


def byar_lower(o):
    return o * (1 - 1 / (9 * o) - Z / (3 * o ** 0.5)) ** 3


def byar_upper(o):
    o1 = o + 1
    return o1 * (1 - 1 / (9 * o1) + Z / (3 * o1 ** 0.5)) ** 3


def dsr(rows, has, multiplier=100.0):
    num, den = [0] * 19, [0] * 19
    for r in rows:
        b = min(int(r["age"]) // 5, 18)
        den[b] += 1
        num[b] += 1 if has(r) else 0
    total = sum(num)
    if total < 10:
        return None
    w = sum(ESP2013)
    rate = sum(wi * o / n for wi, o, n in zip(ESP2013, num, den) if n) / w * multiplier
    var = sum(wi * wi * o / (n * n) for wi, o, n in zip(ESP2013, num, den) if n) / (w * w)
    var *= multiplier * multiplier
    k = (var / total) ** 0.5
    return [rate, rate + k * (byar_lower(total) - total), rate + k * (byar_upper(total) - total)]


def main():
    persons_dir, column, conditions = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows = []
    for f in sorted(glob.glob(f"{persons_dir}/*.parquet")):
        rows.extend(pq.read_table(f, columns=["age", column, "morbidity_profile"]).to_pylist())
    groups = sorted({r[column] for r in rows})
    out = []
    for c in conditions:
        has = lambda r, c=c: c in r["morbidity_profile"].split(";")
        for g in groups + ["All"]:
            sel = rows if g == "All" else [r for r in rows if r[column] == g]
            out.append({"measure": f"prevalence_{c}", "group": g, "dsr": dsr(sel, has)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
