//! Population health analytics on the synthetic ICS: every published aggregate is safe
//! (no count in 1–7, every count a multiple of 5, no suppressed cell recoverable from its
//! margins), segments partition the population, cost reconciles persons = events,
//! age-standardised rates equal an independent Python computation, prevalence by IMD
//! quintile matches the synthetic truth, and bad settings get clear errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};

use onboard::disclosure::{Cell, CellRef, Margins, ProtectedTable, Suppression, recoverable};
use onboard::population::stats;

fn cli(args: &[&str]) -> anyhow::Result<u8> {
    use clap::Parser;
    let cli =
        onboard::cli::Cli::try_parse_from(std::iter::once("onboard").chain(args.iter().copied()))?;
    onboard::cli::run(cli)
}

/// One tidy aggregate row as read back from Parquet.
#[derive(Debug, Clone)]
struct Agg {
    measure: String,
    breakdown: String,
    group: String,
    category: Option<String>,
    statistic: String,
    value: Option<f64>,
    lower: Option<f64>,
    upper: Option<f64>,
    status: String,
}

fn texts(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c =
        datafusion::arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let s = c.as_string::<i32>();
    (0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect()
}

fn floats(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = datafusion::arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Float64)
        .unwrap();
    let s = c.as_primitive::<Float64Type>();
    (0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i)))
        .collect()
}

fn read_aggregates(out: &Path) -> Vec<Agg> {
    let dir = out.join("gold/population/aggregates/as_of=2026-10-31");
    let mut rows = Vec::new();
    for b in super::run_ics::read_parquet_dir(&dir) {
        let (m, br, g, c, s, st) = (
            texts(&b, "measure"),
            texts(&b, "breakdown"),
            texts(&b, "group"),
            texts(&b, "category"),
            texts(&b, "statistic"),
            texts(&b, "status"),
        );
        let (v, lo, hi) = (
            floats(&b, "value"),
            floats(&b, "lower_95"),
            floats(&b, "upper_95"),
        );
        for i in 0..b.num_rows() {
            rows.push(Agg {
                measure: m[i].clone().unwrap(),
                breakdown: br[i].clone().unwrap(),
                group: g[i].clone().unwrap(),
                category: c[i].clone(),
                statistic: s[i].clone().unwrap(),
                value: v[i],
                lower: lo[i],
                upper: hi[i],
                status: st[i].clone().unwrap(),
            });
        }
    }
    rows
}

fn cell(r: &Agg) -> Cell {
    match r.value {
        Some(v) if r.status == "published" => Cell::Published(v as u64),
        _ => Cell::Suppressed(Suppression::Secondary),
    }
}

/// Every count is safe, and no suppressed count follows from its table's margins.
fn assert_safe(rows: &[Agg]) {
    let mut tables: BTreeMap<(String, String), Vec<&Agg>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.statistic == "count") {
        if let Some(v) = r.value {
            assert!(!(1.0..=7.0).contains(&v), "published small count {r:?}");
            assert_eq!(v % 5.0, 0.0, "count not a multiple of 5: {r:?}");
            assert_eq!(r.status, "published", "{r:?}");
        } else {
            assert!(r.status.starts_with("suppressed"), "{r:?}");
        }
        tables
            .entry((r.measure.clone(), r.breakdown.clone()))
            .or_default()
            .push(r);
    }
    let mut two_way = 0;
    for ((m, b), cells) in &tables {
        let has_cats = cells.iter().any(|r| r.category.is_some());
        if !has_cats || b == "all" {
            // One way: the cells and their total; a lone suppressed cell would be the
            // total minus the others.
            let suppressed = cells.iter().filter(|r| r.value.is_none()).count();
            assert!(
                suppressed != 1,
                "{m} by {b}: one suppressed cell is recoverable: {cells:?}"
            );
            continue;
        }
        two_way += 1;
        let cats: Vec<&str> = dedup(
            cells
                .iter()
                .filter_map(|r| r.category.as_deref())
                .filter(|c| *c != "All"),
        );
        let groups: Vec<&str> = dedup(
            cells
                .iter()
                .map(|r| r.group.as_str())
                .filter(|g| *g != "All"),
        );
        let get = |c: &str, g: &str| {
            cells
                .iter()
                .find(|r| r.category.as_deref() == Some(c) && r.group == g)
                .map(|r| cell(r))
                .unwrap_or_else(|| panic!("{m} by {b}: no cell ({c}, {g})"))
        };
        let t = ProtectedTable {
            rows: cats.len(),
            cols: groups.len(),
            margins: Margins::Both,
            cells: cats
                .iter()
                .flat_map(|c| groups.iter().map(move |g| (c, g)))
                .map(|(c, g)| get(c, g))
                .collect(),
            row_totals: cats.iter().map(|c| get(c, "All")).collect(),
            col_totals: groups.iter().map(|g| get("All", g)).collect(),
            grand: get("All", "All"),
        };
        // Independent of the library's test: every line with a suppressed cell has two.
        for r in 0..t.rows {
            let line: Vec<Cell> = (0..t.cols)
                .map(|c| t.get(CellRef::Interior(r, c)))
                .chain([t.row_totals[r]])
                .collect();
            assert!(
                line.iter().filter(|c| c.is_suppressed()).count() != 1,
                "{m} by {b}: row {r} has one suppressed cell"
            );
        }
        for c in 0..t.cols {
            let line: Vec<Cell> = (0..t.rows)
                .map(|r| t.get(CellRef::Interior(r, c)))
                .chain([t.col_totals[c]])
                .collect();
            assert!(
                line.iter().filter(|c| c.is_suppressed()).count() != 1,
                "{m} by {b}: column {c} has one suppressed cell"
            );
        }
        assert!(
            recoverable(&t).is_empty(),
            "{m} by {b}: recoverable {:?}",
            recoverable(&t)
        );
    }
    assert!(two_way > 20, "the two-way tables are checked ({two_way})");
    // Rates from suppressed counts are suppressed.
    let status: BTreeMap<(&str, &str, &str, Option<&str>), &str> = rows
        .iter()
        .filter(|r| r.statistic == "count")
        .map(|r| {
            (
                (
                    r.measure.as_str(),
                    r.breakdown.as_str(),
                    r.group.as_str(),
                    r.category.as_deref(),
                ),
                r.status.as_str(),
            )
        })
        .collect();
    for r in rows
        .iter()
        .filter(|r| matches!(r.statistic.as_str(), "crude_rate" | "dsr"))
    {
        let count = status[&(
            r.measure.as_str(),
            r.breakdown.as_str(),
            r.group.as_str(),
            None,
        )];
        if count != "published" {
            assert!(r.value.is_none(), "rate from a suppressed count: {r:?}");
        }
    }
}

fn dedup<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    it.filter(|x| seen.insert(*x)).collect()
}

fn persons(out: &Path) -> Vec<RecordBatch> {
    super::run_ics::read_parquet_dir(&out.join("gold/population/persons/as_of=2026-10-31"))
}

fn segments_partition_the_population(out: &Path) {
    let batches = persons(out);
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(n > 2000, "{n} persons");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("population/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["persons"].as_u64().unwrap() as usize, n);
    for seg in summary["segment_sizes"].as_array().unwrap() {
        let sizes = seg[1].as_array().unwrap();
        let total: u64 = sizes.iter().map(|s| s[1].as_u64().unwrap()).sum();
        assert_eq!(
            total as usize, n,
            "segmentation {} sums to the population",
            seg[0]
        );
        // The person table agrees: every person has exactly one named segment.
        let col = format!("segment_{}", seg[0].as_str().unwrap());
        let names: BTreeSet<String> = sizes
            .iter()
            .map(|s| s[0].as_str().unwrap().to_string())
            .collect();
        let mut per: BTreeMap<String, u64> = BTreeMap::new();
        for b in &batches {
            for v in texts(b, &col) {
                let v = v.unwrap();
                assert!(names.contains(&v), "{v}");
                *per.entry(v).or_default() += 1;
            }
        }
        for s in sizes {
            assert_eq!(
                per.get(s[0].as_str().unwrap()).copied().unwrap_or(0),
                s[1].as_u64().unwrap()
            );
        }
    }
}

fn cost_reconciles(out: &Path) {
    let rec: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(out.join("population/cost_reconciliation.json")).unwrap(),
    )
    .unwrap();
    let settings: BTreeSet<&str> = rec.iter().map(|r| r["setting"].as_str().unwrap()).collect();
    for s in [
        "APC",
        "OP",
        "ECDS",
        "COMMUNITY",
        "MENTAL_HEALTH",
        "NHS111",
        "AMBULANCE",
        "GP",
        "SOCIAL_CARE",
    ] {
        assert!(settings.contains(s), "setting {s} costed: {settings:?}");
    }
    // Independently: the person × setting × year table sums to the events' totals.
    let mut by: BTreeMap<(String, i64), (f64, f64)> = BTreeMap::new();
    for b in super::run_ics::read_parquet_dir(&out.join("gold/population/cost_person_year")) {
        let (s, fy, c, ev) = (
            texts(&b, "setting"),
            floats(&b, "fy"),
            floats(&b, "cost"),
            floats(&b, "events"),
        );
        for i in 0..b.num_rows() {
            let e = by
                .entry((s[i].clone().unwrap(), fy[i].unwrap() as i64))
                .or_default();
            e.0 += c[i].unwrap();
            e.1 += ev[i].unwrap();
        }
    }
    for r in &rec {
        let fy: i64 = r["financial_year"].as_str().unwrap()[..4].parse().unwrap();
        let (cost, events) = by[&(r["setting"].as_str().unwrap().to_string(), fy)];
        let over_events = r["cost_over_events"].as_f64().unwrap();
        assert!(
            (cost - over_events).abs() <= 1e-6 * over_events.max(1.0),
            "{r} vs {cost}"
        );
        assert_eq!(events as u64, r["events"].as_u64().unwrap());
        let split =
            r["cost_from_provider"].as_f64().unwrap() + r["cost_from_tariff"].as_f64().unwrap();
        assert!((split - over_events).abs() <= 1e-6 * over_events.max(1.0));
    }
}

/// The DSRs of the aggregates against tests/python/population_dsr.py over the persons.
fn dsrs_match_python(out: &Path, rows: &[Agg]) {
    let Some(py) = super::risk::python_with(&["pyarrow"]) else {
        return;
    };
    let script = super::util::root().join("tests/python/population_dsr.py");
    let dir = out.join("gold/population/persons/as_of=2026-10-31");
    let conds = ["diabetes", "hypertension", "copd", "asthma", "depression"];
    let mut args = vec![
        script.to_str().unwrap(),
        dir.to_str().unwrap(),
        "imd_quintile",
    ];
    args.extend(conds);
    let o = std::process::Command::new(py).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let mut compared = 0;
    for e in &expected {
        let (m, g) = (e["measure"].as_str().unwrap(), e["group"].as_str().unwrap());
        let b = if g == "All" { "all" } else { "imd_quintile" };
        let r = rows
            .iter()
            .find(|r| r.measure == m && r.breakdown == b && r.group == g && r.statistic == "dsr")
            .unwrap_or_else(|| panic!("no dsr row for {m} {g}"));
        match (&e["dsr"], r.value) {
            (serde_json::Value::Array(v), Some(value)) => {
                for (want, got) in v.iter().zip([Some(value), r.lower, r.upper]) {
                    let (want, got) = (want.as_f64().unwrap(), got.unwrap());
                    assert!(
                        (want - got).abs() <= 1e-9,
                        "{m} {g}: {got} vs Python {want}"
                    );
                }
                compared += 1;
            }
            (serde_json::Value::Null, v) => assert!(v.is_none(), "{m} {g}"),
            // Published by Python, suppressed by disclosure control: fine.
            (_, None) => assert_ne!(r.status, "published"),
            (other, v) => panic!("{m} {g}: {other} vs {v:?}"),
        }
    }
    assert!(compared >= 20, "compared {compared} DSRs");
}

#[test]
fn dsr_and_dobson_interval_equal_a_reference_table() {
    // Computed by tests/python/population_dsr.py's formulas (PHE Fingertips method) on
    // these numbers; per 100,000.
    let counts = [
        0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 20, 25, 30, 35, 30, 20, 0,
    ];
    let pops = [
        500, 520, 540, 560, 600, 610, 650, 700, 720, 700, 690, 650, 600, 550, 500, 400, 250, 150, 0,
    ];
    let esp =
        stats::StandardPopulation::parse("esp", onboard::population::config::ESP2013).unwrap();
    let e = stats::dsr(&counts, &pops, &esp.weights(), 100_000.0).unwrap();
    let want = [2438.9880422961323, 2142.511930121262, 2765.014314956501];
    for (got, want) in [e.value, e.lower, e.upper].iter().zip(want) {
        assert!((got - want).abs() <= 1e-9, "{got} vs {want}");
    }
    assert!(
        stats::dsr(&[9, 0], &[100, 100], &[1.0, 1.0], 1.0).is_none(),
        "fewer than 10 events"
    );
}

/// Recovered prevalence by IMD quintile next to the truth's (printed; close on the demo).
fn prevalence_matches_truth(out: &Path, rows: &[Agg]) {
    let text = std::fs::read_to_string(out.join("truth/people.csv")).unwrap();
    let mut n: BTreeMap<String, f64> = BTreeMap::new();
    let mut has: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (di, ci) = (
        header.iter().position(|h| *h == "imd_decile").unwrap(),
        header.iter().position(|h| *h == "conditions").unwrap(),
    );
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let q = f[di]
            .parse::<u32>()
            .map(|d| d.div_ceil(2).to_string())
            .unwrap_or("Not known".into());
        for g in [q, "All".to_string()] {
            *n.entry(g.clone()).or_default() += 1.0;
            for c in f[ci].split(';').filter(|c| !c.is_empty()) {
                *has.entry((c.to_string(), g.clone())).or_default() += 1.0;
            }
        }
    }
    eprintln!("prevalence (%) by IMD quintile: recovered / truth");
    for c in ["diabetes", "hypertension", "copd", "asthma", "depression"] {
        let mut line = format!("  {c:<13}");
        for g in ["1", "2", "3", "4", "5", "All"] {
            let b = if g == "All" { "all" } else { "imd_quintile" };
            let r = rows
                .iter()
                .find(|r| {
                    r.measure == format!("prevalence_{c}")
                        && r.breakdown == b
                        && r.group == g
                        && r.statistic == "crude_rate"
                })
                .and_then(|r| r.value);
            let t = 100.0
                * has
                    .get(&(c.to_string(), g.to_string()))
                    .copied()
                    .unwrap_or(0.0)
                / n[g];
            line.push_str(&format!(
                " Q{g} {} / {t:.1}",
                r.map_or("*".into(), |v| format!("{v:.1}"))
            ));
            if let Some(r) = r {
                assert!(
                    (r - t).abs() < 2.0,
                    "{c} in quintile {g}: recovered {r:.1}, truth {t:.1}"
                );
            }
        }
        eprintln!("{line}");
    }
}

fn bad_inputs(out: &Path) {
    let o = out.to_str().unwrap();
    let ics = std::fs::read_to_string(out.join("ics.yaml")).unwrap();
    let with = |name: &str, population: &str| {
        let p = out.join(name);
        std::fs::write(&p, format!("{ics}population:\n{population}")).unwrap();
        p
    };
    let err = |p: &Path| {
        let e = cli(&[
            "population",
            "run",
            "--out",
            o,
            "--ics",
            p.to_str().unwrap(),
        ])
        .unwrap_err();
        format!("{e:#}")
    };
    let e = err(&with("m.yaml", "  measures: [prevalence_diabetis]\n"));
    assert!(
        e.contains("ONB0941")
            && e.contains("unknown measure `prevalence_diabetis`")
            && e.contains("did you mean `prevalence_diabetes`"),
        "{e}"
    );
    let e = err(&with("b.yaml", "  breakdowns: [imd_quintle]\n"));
    assert!(
        e.contains("unknown breakdown `imd_quintle`") && e.contains("did you mean `imd_quintile`"),
        "{e}"
    );
    let e = err(&with(
        "r.yaml",
        "  segmentations:\n    - name: s\n      segments:\n        - { name: frail, when: \"hfrs_score >= 5\" }\n        - { name: rest, otherwise: true }\n",
    ));
    assert!(
        e.contains("ONB0942")
            && e.contains("unknown feature `hfrs_score`")
            && e.contains("did you mean `hfrs`"),
        "{e}"
    );
    let e = err(&with(
        "o.yaml",
        "  segmentations:\n    - name: s\n      mode: exclusive\n      segments:\n        - { name: older, when: \"age >= 50\" }\n        - { name: ill, when: \"ltc_count >= 1\" }\n        - { name: rest, when: \"age < 50 AND ltc_count = 0\" }\n",
    ));
    assert!(
        e.contains("overlap")
            && e.contains("`older` and `ill`")
            && e.contains("persons satisfy both"),
        "{e}"
    );
    let e = err(&with(
        "g.yaml",
        "  segmentations:\n    - name: s\n      segments:\n        - { name: older, when: \"age >= 50\" }\n",
    ));
    assert!(e.contains("leaves") && e.contains("in no segment"), "{e}");
    let tariff = onboard::population::config::DEFAULT_TARIFF
        .lines()
        .filter(|l| !l.starts_with("AMBULANCE,AMB_CONVEY"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(out.join("tariff-short.csv"), tariff).unwrap();
    let e = err(&with("t.yaml", "  tariff: tariff-short.csv\n"));
    assert!(
        e.contains("ONB0944")
            && e.contains("tariff-short.csv")
            && e.contains("`AMB_CONVEY` of setting `AMBULANCE`"),
        "{e}"
    );
}

#[test]
fn the_synthetic_ics_gets_safe_population_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = out.to_str().unwrap();
    assert_eq!(cli(&["demo", "--out", o, "--patients", "2500"]).unwrap(), 0);
    let rows = read_aggregates(&out);
    assert!(rows.len() > 10_000, "{} rows", rows.len());
    let measures: BTreeSet<&str> = rows.iter().map(|r| r.measure.as_str()).collect();
    for m in [
        "population",
        "prevalence_diabetes",
        "segment:bridges_to_health",
        "risk_band",
        "cost_per_head",
        "acsc_emergency_admissions_12m",
        "low_acuity_ae_attendances_12m",
        "ae_arrival_mode",
        "flag_core20",
        "morbidity_profile",
    ] {
        assert!(measures.contains(m), "{m} published");
    }
    assert_safe(&rows);
    for m in [
        "emergency_admissions_12m",
        "acsc_emergency_admissions_12m",
        "ae_attendances_12m",
        "low_acuity_ae_attendances_12m",
    ] {
        let total = rows
            .iter()
            .find(|r| r.measure == m && r.breakdown == "all" && r.statistic == "count")
            .and_then(|r| r.value);
        assert!(total.is_some_and(|v| v >= 10.0), "{m}: {total:?}");
    }
    let admitted = rows.iter().find(|r| {
        r.measure == "ae_departure"
            && r.breakdown == "all"
            && r.category.as_deref() == Some("admitted")
            && r.statistic == "count"
    });
    assert!(
        admitted.and_then(|r| r.value).is_some_and(|v| v > 0.0),
        "{admitted:?}"
    );
    segments_partition_the_population(&out);
    cost_reconciles(&out);
    dsrs_match_python(&out, &rows);
    prevalence_matches_truth(&out, &rows);
    let html = std::fs::read_to_string(out.join("reports/population.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("Risk pyramid"),
        "report with plots"
    );
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"),
        "static report, nothing fetched"
    );
    // Intervals bracket their values.
    for r in rows.iter().filter(|r| r.lower.is_some()) {
        let (v, lo, hi) = (r.value.unwrap(), r.lower.unwrap(), r.upper.unwrap());
        assert!(lo <= v + 1e-12 && v <= hi + 1e-12, "{r:?}");
    }
    bad_inputs(&out);
}
