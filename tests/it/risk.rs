//! Risk scoring: the morbidity indices against comorbidipy on shared test cases, and the
//! whole stage (features, models, scores, explanations) on the synthetic ICS, run
//! in-process through the library's command line.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Date32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::util::root;

/// Python with the packages, or None (then the caller skips, unless CI is set).
pub fn python_with(modules: &[&str]) -> Option<&'static str> {
    let probe = format!("import {}", modules.join(", "));
    let ok = std::process::Command::new("python3")
        .args(["-c", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("python3");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs the Python packages {modules:?} (.ci/run installs them)"
    );
    eprintln!("skipped: pip install {}", modules.join(" "));
    None
}

fn write_parquet(dir: &Path, batch: RecordBatch) {
    std::fs::create_dir_all(dir).unwrap();
    let f = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn strings(v: &[String]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v.iter().map(String::as_str)))
}

/// Every code prefix of a shipped code list file (the third column).
fn prefixes(file: &str, col: usize) -> Vec<String> {
    std::fs::read_to_string(root().join("reference/codelists").join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .filter_map(|l| l.rsplit(',').nth(col).map(str::to_string))
        .collect()
}

/// Shared test cases: persons with codes drawn from the three indices' tables (with
/// longer codes under shorter prefixes, dots as extracts write them) and unrelated codes.
fn cases(n: usize) -> Vec<(String, String)> {
    let mut pool = prefixes("charlson_quan2005_icd10.csv", 0);
    pool.extend(prefixes("elixhauser_quan2005_icd10.csv", 0));
    pool.extend(prefixes("hfrs_gilbert2018_icd10.csv", 1));
    pool.extend(["Z00", "R69", "A09", "J18", "K80", "M54"].map(String::from));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    let mut out = Vec::new();
    for p in 0..n {
        for _ in 0..next(7) {
            let mut code = pool[next(pool.len())].clone();
            if code.len() == 3 && next(2) == 0 {
                code.push(char::from(b'0' + next(10) as u8));
            }
            out.push((format!("P{p:05}"), code));
        }
    }
    out
}

/// A minimal spine: persons, their diagnoses, a registration each.
fn write_spine(out: &Path, n: usize, codes: &[(String, String)]) {
    let spine = out.join("linkage/spine");
    let keys: Vec<String> = (0..n).map(|p| format!("P{p:05}")).collect();
    let s = |f: &[(&str, DataType)]| {
        Arc::new(Schema::new(
            f.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    };
    let day = |y: i32, m: u32, d: u32| {
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    let person = RecordBatch::try_new(
        s(&[
            ("person_key", DataType::Utf8),
            ("birth_year_month", DataType::Date32),
            ("sex", DataType::Utf8),
            ("ethnic_category", DataType::Utf8),
        ]),
        vec![
            strings(&keys),
            Arc::new(Date32Array::from(vec![day(1950, 3, 1); n])),
            strings(&vec!["2".to_string(); n]),
            strings(&vec!["A".to_string(); n]),
        ],
    )
    .unwrap();
    write_parquet(&spine.join("person"), person);
    let dotted: Vec<String> = codes
        .iter()
        .enumerate()
        .map(|(i, (_, c))| {
            if c.len() > 3 && i % 2 == 0 {
                format!("{}.{}", &c[..3], &c[3..])
            } else {
                c.clone()
            }
        })
        .collect();
    let diag = RecordBatch::try_new(
        s(&[
            ("person_key", DataType::Utf8),
            ("code_original", DataType::Utf8),
            ("code_normalised", DataType::Utf8),
            ("diagnosis_date", DataType::Date32),
            ("provider_id", DataType::Utf8),
        ]),
        vec![
            strings(&codes.iter().map(|c| c.0.clone()).collect::<Vec<_>>()),
            strings(&dotted),
            Arc::new(StringArray::from(vec![None::<&str>; codes.len()])),
            Arc::new(Date32Array::from(vec![day(2026, 5, 1); codes.len()])),
            strings(&vec!["acute-test".to_string(); codes.len()]),
        ],
    )
    .unwrap();
    write_parquet(&spine.join("diagnosis"), diag);
    let reg = RecordBatch::try_new(
        s(&[
            ("person_key", DataType::Utf8),
            ("practice_ods", DataType::Utf8),
            ("pcn_code", DataType::Utf8),
            ("registration_start", DataType::Date32),
            ("registration_end", DataType::Date32),
        ]),
        vec![
            strings(&keys),
            strings(&vec!["F81001".to_string(); n]),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(Date32Array::from(vec![day(2010, 1, 1); n])),
            Arc::new(Date32Array::from(vec![None; n])),
        ],
    )
    .unwrap();
    write_parquet(&spine.join("registration"), reg);
}

const INDEX_ICS: &str = "ics: { id: t, name: Test }\nproviders: []\nlanding: landing\nreference_date: 2026-10-31\nrisk:\n  as_of: { train: ['2025-12-31'], validate: '2026-04-30', score: '2026-10-31' }\n  features:\n    - { name: charlson, kind: charlson, weights: quan2011 }\n    - { name: elixhauser, kind: elixhauser }\n    - { name: hfrs, kind: hfrs }\n";

#[test]
fn charlson_elixhauser_and_hfrs_agree_with_comorbidipy() {
    let Some(py) = python_with(&["comorbidipy", "polars"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let n = 1500;
    let codes = cases(n);
    write_spine(out, n, &codes);
    let ics_path = out.join("ics.yaml");
    std::fs::write(&ics_path, INDEX_ICS).unwrap();
    let ics = onboard::ics::Ics::load(&ics_path).unwrap();
    let stage = onboard::risk::Stage::load(out, Some(&ics)).unwrap();
    let as_of = stage.as_of.score;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(onboard::risk::write_features(&stage, &[as_of]))
        .unwrap();
    let d = rt
        .block_on(onboard::risk::train::load_dataset(
            &stage,
            as_of,
            &[],
            onboard::risk::dataset::Need::Fitting,
        ))
        .unwrap();
    // comorbidipy on the same codes, written as it expects (upper case, no dots).
    let csv: String = std::iter::once("id,code".to_string())
        .chain(codes.iter().map(|(p, c)| format!("{p},{c}")))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(out.join("codes.csv"), csv + "\n").unwrap();
    let o = std::process::Command::new(py)
        .arg(root().join("tests/python/comorbidity_reference.py"))
        .arg(out.join("codes.csv"))
        .arg(out.join("reference.csv"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = std::fs::read_to_string(out.join("reference.csv")).unwrap();
    let (mut agree, mut aids_only, mut hfrs_full_codes, mut compared) = ([0usize; 3], 0, 0, 0);
    for line in reference.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        let i = d.person_keys.iter().position(|k| k == c[0]).unwrap();
        let ours = [
            d.numeric["charlson"][i],
            d.numeric["elixhauser"][i],
            d.numeric["hfrs"][i],
        ];
        let theirs: Vec<f64> = [c[1], c[3], c[4], c[5]]
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        let same = |a: f64, b: f64| (a - b).abs() < 1e-9;
        compared += 1;
        // Charlson: the one documented difference is the AIDS/HIV weight, 4 in Quan
        // 2011 and 2 in comorbidipy 0.8.
        match (
            same(ours[0], theirs[0]),
            c[2] == "1" && same(ours[0], theirs[0] + 2.0),
        ) {
            (true, _) => agree[0] += 1,
            (false, true) => aids_only += 1,
            _ => panic!(
                "{}: Charlson ours {}, comorbidipy {}",
                c[0], ours[0], theirs[0]
            ),
        }
        assert!(
            same(ours[1], theirs[1]),
            "{}: Elixhauser ours {}, comorbidipy {}",
            c[0],
            ours[1],
            theirs[1]
        );
        agree[1] += 1;
        // HFRS: each three-character code once per person (Gilbert 2018), which is
        // comorbidipy's score over codes cut to three characters; comorbidipy's own
        // score counts two codes under one category twice.
        assert!(
            same(ours[2], theirs[3]),
            "{}: HFRS ours {}, comorbidipy (3-character) {}",
            c[0],
            ours[2],
            theirs[3]
        );
        agree[2] += usize::from(same(ours[2], theirs[2]));
        hfrs_full_codes += usize::from(!same(ours[2], theirs[2]));
    }
    eprintln!(
        "comorbidipy agreement over {compared} persons with codes: Charlson {} (+{aids_only} differing only by the AIDS/HIV weight), Elixhauser {}, HFRS {} (+{hfrs_full_codes} where comorbidipy counts one category twice)",
        agree[0], agree[1], agree[2]
    );
    assert!(compared > 1000, "enough persons with codes: {compared}");
    assert_eq!(agree[0] + aids_only, compared);
    assert_eq!(agree[2] + hfrs_full_codes, compared);
    assert!(aids_only > 0, "the AIDS weight difference is exercised");
}

fn cli(args: &[&str]) -> anyhow::Result<u8> {
    use clap::Parser;
    let cli =
        onboard::cli::Cli::try_parse_from(std::iter::once("onboard").chain(args.iter().copied()))?;
    onboard::cli::run(cli)
}

fn read_dir_batches(dir: &Path) -> Vec<RecordBatch> {
    super::run_ics::read_parquet_dir(dir)
}

fn col_f64(b: &RecordBatch, name: &str) -> Vec<f64> {
    use datafusion::arrow::array::AsArray;
    let c = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    c.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .values()
        .to_vec()
}

fn col_str(b: &RecordBatch, name: &str) -> Vec<String> {
    use datafusion::arrow::array::AsArray;
    let c =
        datafusion::arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len()).map(|i| c.value(i).to_string()).collect()
}

/// Additivity of every person's SHAP row: base + Σ contributions = log-odds.
fn max_additivity_error(dir: &Path) -> (usize, f64) {
    let mut worst = 0.0f64;
    let mut rows = 0;
    for b in read_dir_batches(dir) {
        let lo = col_f64(&b, "log_odds");
        let base = col_f64(&b, "base_value");
        let shap: Vec<Vec<f64>> = b
            .schema()
            .fields()
            .iter()
            .filter(|f| f.name().starts_with("shap_"))
            .map(|f| col_f64(&b, f.name()))
            .collect();
        assert!(!shap.is_empty());
        for i in 0..b.num_rows() {
            let sum: f64 = base[i] + shap.iter().map(|c| c[i]).sum::<f64>();
            worst = worst.max((sum - lo[i]).abs());
        }
        rows += b.num_rows();
    }
    (rows, worst)
}

#[test]
fn the_synthetic_ics_is_scored_and_explained_from_its_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = out.to_str().unwrap();
    assert_eq!(cli(&["demo", "--out", o, "--patients", "2500"]).unwrap(), 0);
    let reg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("models/registry.json")).unwrap()).unwrap();
    let champion = reg["champion"].as_str().unwrap().to_string();
    let roles: Vec<&str> = reg["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["champion", "challenger", "baseline"]);
    // Labels come from the ingested spells: the validation date has outcomes, the score date none.
    let card = std::fs::read_to_string(out.join("models").join(&champion).join("card.md")).unwrap();
    assert!(
        card.contains("AUROC") && card.contains("imd_quintile") && card.contains("ethnic_group"),
        "{card}"
    );
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("models").join(&champion).join("model.json")).unwrap(),
    )
    .unwrap();
    let auroc = model["validation"]["evaluation"]["auroc"].as_f64().unwrap();
    assert!(
        auroc > 0.7,
        "the champion finds risk in the data: AUROC {auroc}"
    );
    let score_dir = |t: &str, v: &str| {
        out.join("gold")
            .join(t)
            .join("as_of=2026-10-31")
            .join(format!("model={v}"))
    };
    // Exact SHAP for the linear champion.
    let (rows, err) = max_additivity_error(&score_dir("shap", &champion));
    assert!(rows > 2000, "{rows} persons scored");
    assert!(err < 1e-9, "linear SHAP additivity error {err}");
    // Every high-risk person has three factors with labels and values.
    let scores = read_dir_batches(&score_dir("risk_scores", &champion));
    let mut high = std::collections::BTreeSet::new();
    for b in &scores {
        for (k, band) in col_str(b, "person_key").into_iter().zip(col_str(b, "band")) {
            if band == "very_high" || band == "high" {
                high.insert(k);
            }
        }
    }
    assert!(!high.is_empty());
    let mut factors: std::collections::BTreeMap<String, usize> = Default::default();
    for b in read_dir_batches(&score_dir("explanations", &champion)) {
        for k in col_str(&b, "person_key") {
            *factors.entry(k).or_default() += 1;
        }
        // No identifier leaves the identity zone: the columns are the documented ones.
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "person_key",
                "as_of_date",
                "model_version",
                "factor_rank",
                "feature",
                "label",
                "value",
                "typical_value",
                "contribution",
                "odds_ratio",
                "evidence"
            ]
        );
    }
    for k in &high {
        assert_eq!(factors.get(k), Some(&3), "{k} has three factors");
    }
    // The trees challenger scores too, with TreeSHAP additive to 1e-6.
    let challenger = reg["versions"][1]["version"].as_str().unwrap().to_string();
    assert_eq!(
        cli(&[
            "risk",
            "score",
            "--out",
            o,
            "--ics",
            out.join("ics.yaml").to_str().unwrap(),
            "--model",
            &challenger
        ])
        .unwrap(),
        0
    );
    let (_, err) = max_additivity_error(&score_dir("shap", &challenger));
    assert!(err < 1e-6, "TreeSHAP additivity error {err}");
    // One person's card, as JSON.
    let key = high.iter().next().unwrap();
    assert_eq!(
        cli(&["risk", "explain", "--out", o, key, "--format", "json"]).unwrap(),
        0
    );
    bad_inputs(&out);
}

/// Bad input gets an error naming the file or setting.
fn bad_inputs(out: &Path) {
    let o = out.to_str().unwrap();
    let ics = std::fs::read_to_string(out.join("ics.yaml")).unwrap();
    let with = |name: &str, risk: &str| {
        let p = out.join(name);
        std::fs::write(&p, format!("{ics}risk:\n{risk}")).unwrap();
        p
    };
    let err = |p: &Path, cmd: &str| {
        let e = cli(&["risk", cmd, "--out", o, "--ics", p.to_str().unwrap()]).unwrap_err();
        format!("{e:#}")
    };
    let p = with(
        "unknown-list.yaml",
        "  features:\n    - { name: chf, kind: condition, codelist: ltc_heart_failur }\n",
    );
    let e = err(&p, "features");
    assert!(
        e.contains("ltc_heart_failur") && e.contains("did you mean `ltc_heart_failure`"),
        "{e}"
    );
    let p = with(
        "unknown-kind.yaml",
        "  features:\n    - { name: x, kind: frailty_magic }\n",
    );
    let e = err(&p, "features");
    assert!(e.contains("frailty_magic"), "{e}");
    let p = with(
        "early.yaml",
        "  as_of: { train: ['2023-11-30'], validate: '2024-04-30', score: '2026-10-31' }\n",
    );
    let e = err(&p, "features");
    assert!(
        e.contains("not enough history") && e.contains("2023-11-30"),
        "{e}"
    );
    std::fs::write(out.join("not-a-model.json"), "{\"hello\": 1}").unwrap();
    let p = with(
        "bad-model.yaml",
        "  model: { kind: xgboost, path: not-a-model.json }\n",
    );
    let e = err(&p, "train");
    assert!(e.contains("not-a-model.json"), "{e}");
    std::fs::write(
        out.join("linear.json"),
        "{\"intercept\": -3, \"coefficients\": {\"age\": 0.02, \"emergency_admisions_0_3m\": 1.0}}",
    )
    .unwrap();
    let p = with(
        "mismatch.yaml",
        "  model: { kind: linear_json, path: linear.json }\n",
    );
    let e = err(&p, "train");
    assert!(e.contains("emergency_admisions_0_3m"), "{e}");
    let e = format!(
        "{:#}",
        cli(&[
            "risk",
            "score",
            "--out",
            o,
            "--model",
            "logistic-20990101-deadbeef"
        ])
        .unwrap_err()
    );
    assert!(e.contains("does not exist"), "{e}");
}
