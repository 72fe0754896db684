//! `onboard run` on the fixture ICS (three providers, known faults): reconciliation,
//! quarantine codes, identity separation, idempotent reruns, atomic publishing.

use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;

use crate::util::{code, one_source_ics, root, stdout};

fn run_into(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--ics",
        "tests/fixtures/ics/ics.yaml",
        "--out",
        out.to_str().unwrap(),
        "--demo-key",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_onboard"))
        .args(&args)
        .current_dir(root())
        .env_remove("ONBOARD_PSEUDONYMISATION_KEY")
        .output()
        .unwrap()
}

pub fn read_parquet_dir(dir: &Path) -> Vec<RecordBatch> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            out.push(b.unwrap());
        }
    }
    out
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, files);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            files.push(p);
        }
    }
}

/// All rows of a table as sorted text lines (column=value pairs), minus run-specific columns.
pub fn rows_of(dir: &Path) -> Vec<String> {
    rows(dir)
}

fn rows(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for b in read_parquet_dir(dir) {
        for r in 0..b.num_rows() {
            let mut cells = Vec::new();
            for (i, f) in b.schema().fields().iter().enumerate() {
                cells.push(format!(
                    "{}={}",
                    f.name(),
                    array_value_to_string(b.column(i), r).unwrap()
                ));
            }
            lines.push(cells.join("|"));
        }
    }
    lines.sort();
    lines
}

fn source<'a>(run: &'a serde_json::Value, provider: &str, source: &str) -> &'a serde_json::Value {
    run["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == provider && s["source"] == source)
        .unwrap()
}

fn quarantined(out: &Path, provider: &str, source: &str) -> Vec<(i64, String)> {
    let dir = out
        .join("quarantine")
        .join(format!("provider={provider}"))
        .join(format!("source={source}"));
    let mut v = Vec::new();
    for b in read_parquet_dir(&dir) {
        let s = b.schema();
        let row = b.column(s.index_of("source_row").unwrap());
        let codes = b.column(s.index_of("rule_codes").unwrap());
        for r in 0..b.num_rows() {
            v.push((
                array_value_to_string(row, r).unwrap().parse().unwrap(),
                array_value_to_string(codes, r).unwrap(),
            ));
        }
    }
    v.sort();
    v
}

#[test]
fn fixture_ics_runs_end_to_end_with_reconciliation_and_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run_into(&out, &[]);
    assert_eq!(
        code(&o),
        0,
        "{}\n{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["demo_key"], true);
    let sources = run["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 9);
    for s in sources {
        let (r, a, q) = (
            s["rows_read"].as_u64().unwrap(),
            s["rows_accepted"].as_u64().unwrap(),
            s["rows_quarantined"].as_u64().unwrap(),
        );
        assert_eq!(
            r,
            a + q,
            "reconciliation for {}/{}",
            s["provider"],
            s["source"]
        );
        assert_eq!(s["reconciled"], true);
        for key in [
            "provider",
            "source",
            "rows_read",
            "rows_accepted",
            "rows_quarantined",
            "rule_hits",
        ] {
            assert!(s.get(key).is_some(), "run.json source lacks {key}");
        }
    }
    // EMIS patients: 28 data rows; ragged row 27 unreadable; 23 (bad DOB), 24 (future),
    // 25 (no DOB), and rows 1 and 26 (duplicate PatientGuid) quarantined.
    let p = source(&run, "emis-f81001", "patients");
    assert_eq!(p["rows_read"], 28);
    assert_eq!(p["rows_unreadable"], 1);
    assert_eq!(p["rows_quarantined"], 6);
    let q = quarantined(&out, "emis-f81001", "patients");
    let rows: Vec<i64> = q.iter().map(|x| x.0).collect();
    assert_eq!(rows, vec![1, 23, 24, 25, 26, 27]);
    assert!(
        q.iter().any(|(r, c)| *r == 23 && c.contains("DQ105")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|(r, c)| *r == 24 && c.contains("DQ302")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|(r, c)| *r == 25 && c.contains("DQ201")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|(r, c)| *r == 26 && c.contains("DQ304")),
        "{q:?}"
    );
    assert!(q.iter().any(|(r, c)| *r == 27 && c == "DQ001"), "{q:?}");
    // Warnings do not quarantine: invalid/missing NHS number, pseudo-postcode.
    let hits = |s: &serde_json::Value, rule: &str| {
        s["rule_hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["rule"] == rule)
            .unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(hits(p, "nhs_number_valid_nhs_number"), 1);
    assert_eq!(hits(p, "not_null_nhs_number"), 1);
    assert_eq!(hits(p, "postcode_valid_postcode"), 1);
    // Acute spells: discharge before admission (16) and unknown admission method (17).
    let q = quarantined(&out, "acute-rxx", "spells");
    assert_eq!(
        q,
        vec![(16, "DQ303".to_string()), (17, "DQ104".to_string())]
    );
    assert_eq!(
        hits(source(&run, "acute-rxx", "spells"), "cost_not_negative"),
        1
    );
    let q = quarantined(&out, "acute-rxx", "diagnoses");
    assert_eq!(q.iter().map(|x| x.0).collect::<Vec<_>>(), vec![13, 14]);
    let q = quarantined(&out, "systmone-f81010", "patients");
    assert_eq!(q, vec![(12, "DQ201,DQ105".to_string())]);
    // Reports exist.
    assert!(out.join("reports/dq_report.html").is_file());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("reports/dq_report.json")).unwrap())
            .unwrap();
    assert!(report["ethnicity_completeness"].as_array().unwrap().len() >= 3);
}

#[test]
fn identifiers_stay_in_the_identity_zone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert_eq!(code(&run_into(&out, &[])), 0);
    let silver = read_parquet_dir(&out.join("silver"));
    assert!(!silver.is_empty());
    for b in &silver {
        for f in b.schema().fields() {
            assert!(
                ![
                    "nhs_number",
                    "given_name",
                    "family_name",
                    "date_of_birth",
                    "postcode",
                    "local_patient_id"
                ]
                .contains(&f.name().as_str()),
                "{} in silver",
                f.name()
            );
        }
        let pk = b.column(b.schema().index_of("person_key").unwrap());
        assert!(pk.null_count() < b.num_rows());
    }
    // The same person has the same person_key in the identity zone and in silver.
    let ident = rows(&out.join("identity/person_identity/provider=acute-rxx"));
    assert!(
        ident
            .iter()
            .all(|l| l.contains("person_key=") && !l.contains("person_key=|"))
    );
    // Keys are HMACs: no NHS number appears in silver.
    let all = rows(&out.join("silver"));
    let nhs = regex::Regex::new(r"=\d{10}\|").unwrap();
    assert!(!all.iter().any(|l| nhs.is_match(l)));
}

#[test]
fn refuses_to_run_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_onboard"))
        .args([
            "run",
            "--ics",
            "tests/fixtures/ics/ics.yaml",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .current_dir(root())
        .env_remove("ONBOARD_PSEUDONYMISATION_KEY")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no pseudonymisation key"));
    // A real key from the environment works, and never appears in any output.
    let secret = "correct horse battery staple, a key long enough to use";
    let out = dir.path().join("keyed");
    let o = Command::new(env!("CARGO_BIN_EXE_onboard"))
        .args([
            "run",
            "--ics",
            "tests/fixtures/ics/ics.yaml",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(root())
        .env("ONBOARD_PSEUDONYMISATION_KEY", secret)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout(&o).contains("horse") && !String::from_utf8_lossy(&o.stderr).contains("horse"));
    let mut files = Vec::new();
    collect_all(&out.join("current/"), &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(5).any(|w| w == b"horse"),
            "key material in {}",
            f.display()
        );
    }
}

fn collect_all(dir: &Path, files: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_all(&p, files);
        } else {
            files.push(p);
        }
    }
}

#[test]
fn rerun_gives_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    assert_eq!(code(&run_into(&a, &[])), 0);
    assert_eq!(code(&run_into(&b, &[])), 0);
    assert_eq!(code(&run_into(&b, &[])), 0, "rerun into the same output");
    for t in ["silver", "identity", "quarantine"] {
        assert_eq!(rows(&a.join(t)), rows(&b.join(t)), "{t} differs");
    }
    let ra: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("run.json")).unwrap()).unwrap();
    let rb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("run.json")).unwrap()).unwrap();
    assert_eq!(ra["run_id"], rb["run_id"]);
    // The second run into `b` compared itself with the first: everything persists.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("reports/dq_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["changes"]["previous_run_id"], rb["run_id"]);
    assert!(report["changes"]["new"].as_array().unwrap().is_empty());
    assert!(
        !report["changes"]["persisting"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn explain_prints_plan_and_sql() {
    let o = crate::util::onboard(&["explain", "providers/acute-rxx.yaml", "--source", "spells"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let s = stdout(&o);
    assert!(
        s.contains("-- logical plan")
            && s.contains("Projection:")
            && s.contains("TableScan: src__acute-rxx__spells"),
        "{s}"
    );
    assert!(
        s.contains("-- SQL") && s.contains("parse_timestamp(CAST(\"AdmissionDate\" AS VARCHAR)"),
        "{s}"
    );
    // The whole plan and SQL of one source, pinned.
    let o = crate::util::onboard(&[
        "explain",
        "providers/emis-f81001.yaml",
        "--source",
        "patients",
        "--as-of",
        "2026-10-31",
    ]);
    let text = stdout(&o).replace(
        &onboard_hash("providers/emis-f81001.yaml"),
        "<manifest-hash>",
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("explain__emis_patients", text));
}

/// The manifest hash of a repository manifest (it changes whenever the template does).
fn onboard_hash(path: &str) -> String {
    let opts = onboard::validate::Options::default();
    let out = onboard::validate::validate_paths(&[root().join(path)], &opts).unwrap();
    out.manifests[0].hash.clone()
}

#[test]
fn threshold_breach_fails_only_that_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_onboard"))
        .args([
            "run",
            "--ics",
            "tests/fixtures/ics/ics-strict.yaml",
            "--out",
            out.to_str().unwrap(),
            "--demo-key",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "a partial run exits 1");
    assert!(String::from_utf8_lossy(&o.stderr).contains("exceeds max_quarantine_rate"));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "partial");
    let spells = source(&run, "acute-rxx", "spells");
    assert_eq!(spells["status"], "failed");
    assert!(
        spells["failure"]
            .as_str()
            .unwrap()
            .contains("quarantine rate 11.11%")
    );
    assert!(
        !out.join("silver/care_event/provider=acute-rxx/source=spells")
            .exists(),
        "failed source not published"
    );
    assert!(
        out.join("silver/diagnosis/provider=acute-rxx/source=diagnoses")
            .exists(),
        "other sources are"
    );
    assert!(
        out.join("quarantine/provider=acute-rxx/source=spells")
            .exists(),
        "its quarantine is kept"
    );
}

/// Gzip and latin-1 extracts, a BOM, a ragged row and an undecodable row.
#[test]
fn gzip_latin1_and_unreadable_rows() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing/x");
    std::fs::create_dir_all(&landing).unwrap();
    // latin-1 file: "Zoë" is 0xEB; gzip-compressed.
    let mut text: Vec<u8> =
        b"\xef\xbb\xbfID,Name,DOB\n1,Zo\xeb,01/02/1990\n2,Ann,03/04/1991\n3,Bob\n".to_vec();
    text.extend_from_slice(b"4,Cy,05/06/1992\n");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(landing.join("people_1.csv.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&text).unwrap();
    gz.finish().unwrap();
    // A UTF-8 file with one invalid byte sequence.
    std::fs::write(
        landing.join("people_2.csv"),
        b"ID,Name,DOB\n5,Ed\xff,01/01/1980\n6,Flo,02/02/1982\n",
    )
    .unwrap();
    let manifest = dir.path().join("m.yaml");
    let m = |enc: &str, glob: &str, id: &str| {
        format!(
            "manifest_version: 1\nprovider: {{ id: {id}, name: T, setting: other, system: t }}\nsources:\n  people:\n    path: \"x/{glob}\"\n    format: csv\n    csv: {{ encoding: {enc} }}\n    columns: [ID, Name, DOB]\n    maps_to: person_identity\n    fields:\n      local_patient_id: {{ from: ID }}\n      given_name: {{ from: Name, transform: name }}\n      date_of_birth: {{ from: DOB, parse_date: \"%d/%m/%Y\" }}\n"
        )
    };
    std::fs::write(&manifest, m("latin-1", "people_*.csv.gz", "gz-latin1")).unwrap();
    let manifest2 = dir.path().join("m2.yaml");
    std::fs::write(&manifest2, m("utf-8", "people_*.csv", "utf8")).unwrap();
    let ics = dir.path().join("ics.yaml");
    std::fs::write(&ics, format!("ics: {{ id: t, name: T }}\nproviders: [\"{}\", \"{}\"]\nlanding: landing\noutput: out\nreference_date: 2026-10-31\n", manifest.display(), manifest2.display())).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_onboard"))
        .args(["run", "--ics", ics.to_str().unwrap(), "--demo-key"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = dir.path().join("out");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let gz = source(&run, "gz-latin1", "people");
    assert_eq!(
        (
            gz["rows_read"].as_u64(),
            gz["rows_accepted"].as_u64(),
            gz["rows_unreadable"].as_u64()
        ),
        (Some(4), Some(3), Some(1))
    );
    let names = rows(&out.join("identity/person_identity/provider=gz-latin1"));
    assert!(
        names.iter().any(|l| l.contains("given_name=ZOE")),
        "latin-1 decoded and standardised: {names:?}"
    );
    let u = source(&run, "utf8", "people");
    assert_eq!(
        (
            u["rows_read"].as_u64(),
            u["rows_accepted"].as_u64(),
            u["rows_unreadable"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let q = quarantined(&out, "utf8", "people");
    assert_eq!(q, vec![(1, "DQ001".to_string())]);
}

#[test]
fn validate_sample_checks_one_extract() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("SRPatient_2026.csv");
    std::fs::write(
        &f,
        "Patient ID|NHS Number|First Name|Surname|Date Of Birth|Gender|Post Code|Ethnicity\n",
    )
    .unwrap();
    let o = crate::util::onboard(&[
        "validate",
        "--format",
        "json",
        "--sample",
        f.to_str().unwrap(),
        "providers/systmone-f81010.yaml",
    ]);
    assert_eq!(code(&o), 1);
    let d: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let missing: Vec<&serde_json::Value> = d.iter().filter(|x| x["code"] == "ONB0801").collect();
    assert_eq!(missing.len(), 1, "{d:?}");
    assert!(
        missing[0]["message"]
            .as_str()
            .unwrap()
            .contains("`Postcode`")
    );
    assert_eq!(missing[0]["help"], "did you mean `Post Code`?");
}

#[test]
fn identity_rows_are_exact_when_the_identity_set_spills() {
    // A limit of 3 fingerprints makes every analytics source spill its identity set many
    // times and defer rows to the end: the identity zone must hold the same rows.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    assert_eq!(code(&run_into(&a, &[])), 0);
    let o = Command::new(env!("CARGO_BIN_EXE_onboard"))
        .args([
            "run",
            "--ics",
            "tests/fixtures/ics/ics.yaml",
            "--out",
            b.to_str().unwrap(),
            "--demo-key",
        ])
        .current_dir(root())
        .env_remove("ONBOARD_PSEUDONYMISATION_KEY")
        .env("ONBOARD_IDENTITY_SET_LIMIT", "3")
        .env("RUST_LOG", "onboard::ingest=debug")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let (ra, rb) = (rows(&a.join("identity")), rows(&b.join("identity")));
    assert!(ra.len() > 20, "{}", ra.len());
    assert_eq!(ra, rb);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.lines().any(|l| l.contains("identity set settled")
            && !l.contains("deferred_rows=0")
            && !l.contains("spills=0")),
        "some source spilled and deferred rows: {log}"
    );
}

#[test]
fn a_person_deferred_twice_far_apart_is_written_once() {
    // 30 000 people, each in two events a whole pass apart, with an identity set of 100
    // fingerprints: it spills 300 times, and the people its filter wrongly thinks it may
    // have seen are deferred at both events, thousands of deferred rows apart. Each
    // person's identity tuple must still be written exactly once.
    const MANIFEST: &str = r#"manifest_version: 1
provider: { id: gp, name: Two events each, setting: primary_care, system: emis_web }
sources:
  events:
    path: "events.csv"
    format: csv
    columns: [EventGuid, PatientGuid, EffectiveDate, Code]
    maps_to: observation
    fields:
      code_system: { const: SNOMED_CT_UK }
      code: { from: Code }
      observed_date: { from: EffectiveDate, parse_date: "%d/%m/%Y" }
      source_record_id: { from: EventGuid }
    identity:
      local_patient_id: { from: PatientGuid }
"#;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut csv = String::from("EventGuid,PatientGuid,EffectiveDate,Code\n");
    for pass in 0..2 {
        for p in 0..30_000 {
            csv.push_str(&format!("E{pass}-{p},P{p:05},01/03/2024,38341003\n"));
        }
    }
    let ics = one_source_ics(d, MANIFEST, csv, "");
    let o = Command::new(env!("CARGO_BIN_EXE_onboard"))
        .args(["run", "--ics"])
        .arg(&ics)
        .arg("--demo-key")
        .env_remove("ONBOARD_PSEUDONYMISATION_KEY")
        .env("ONBOARD_IDENTITY_SET_LIMIT", "100")
        .env("RUST_LOG", "onboard::ingest=debug")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 0, "{log}");
    let settled = log
        .lines()
        .find(|l| l.contains("identity set settled"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!settled.contains("deferred_rows=0"), "{settled}");
    let identity = rows(&d.join("out/identity"));
    let people: std::collections::BTreeSet<String> = identity
        .iter()
        .map(|r| {
            let at = r.find("local_patient_id=").unwrap();
            r[at..].split('|').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(people.len(), 30_000);
    assert_eq!(identity.len(), 30_000, "each person written once");
}

#[test]
fn warn_rules_mark_accepted_rows_and_are_counted() {
    // Two `warn` rules and one that quarantines: a row failing warn rules is accepted
    // with their ids in `dq_warnings` (in rule order), a quarantined row is neither in
    // silver nor counted as warned. Read whole and record by record (one-row batches,
    // most without a warning), the outputs agree.
    const MANIFEST: &str = r#"manifest_version: 1
provider: { id: gp, name: Warnings, setting: primary_care, system: emis_web }
sources:
  events:
    path: "events.csv"
    format: csv
    columns: [EventGuid, PatientGuid, EffectiveDate, Code, Unit]
    maps_to: observation
    fields:
      code_system: { const: SNOMED_CT_UK }
      code: { from: Code }
      observed_date: { from: EffectiveDate, parse_date: "%d/%m/%Y" }
      unit: { from: Unit }
      source_record_id: { from: EventGuid }
    identity:
      local_patient_id: { from: PatientGuid }
    quality:
      - { rule: parseable, field: observed_date }
      - { rule: in_value_set, field: unit, values: [kg], on_fail: warn }
      - { rule: matches_regex, field: code, pattern: "^[0-9]{6,18}$", on_fail: warn }
    thresholds: { max_quarantine_rate: 0.9 }
"#;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut csv = String::from("EventGuid,PatientGuid,EffectiveDate,Code,Unit\n");
    for i in 0..20 {
        csv.push_str(&format!("E-ok-{i},P{i},01/03/2024,38341003,kg\n"));
    }
    csv.push_str(
        "E-unit,P1,01/03/2024,38341003,stone\n\
         E-code,P2,01/03/2024,X1,kg\n\
         E-both,P3,01/03/2024,X1,stone\n\
         E-bad-date,P4,31/02/2024,X1,stone\n",
    );
    let ics = one_source_ics(d, MANIFEST, csv, "");
    let run = |out: &str, split: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onboard"));
        cmd.args(["run", "--ics"])
            .arg(&ics)
            .args(["--out", out, "--demo-key"])
            .current_dir(d)
            .env_remove("ONBOARD_PSEUDONYMISATION_KEY");
        if split {
            cmd.env("ONBOARD_SCAN_SPLIT_BYTES", "1");
        }
        let o = cmd.output().unwrap();
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        let run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(out).join("run.json")).unwrap())
                .unwrap();
        let s = &run["sources"][0];
        let counts = (
            s["rows_accepted"].as_u64(),
            s["rows_quarantined"].as_u64(),
            s["rows_warned"].as_u64(),
        );
        let mut warned: Vec<(String, String)> = Vec::new();
        for b in read_parquet_dir(&d.join(out).join("silver")) {
            let id = b.column_by_name("source_record_id").unwrap();
            let w = b.column_by_name("dq_warnings").unwrap();
            for r in 0..b.num_rows() {
                let v = if w.is_null(r) {
                    "-".to_string()
                } else {
                    array_value_to_string(w, r).unwrap()
                };
                warned.push((array_value_to_string(id, r).unwrap(), v));
            }
        }
        warned.sort();
        (counts, warned)
    };
    let whole = run("whole", false);
    assert_eq!(whole.0, (Some(23), Some(1), Some(3)));
    let marked: Vec<&(String, String)> = whole.1.iter().filter(|(_, w)| w != "-").collect();
    assert_eq!(
        marked,
        vec![
            &(
                "E-both".to_string(),
                "in_value_set_unit,matches_regex_code".to_string()
            ),
            &("E-code".to_string(), "matches_regex_code".to_string()),
            &("E-unit".to_string(), "in_value_set_unit".to_string()),
        ]
    );
    assert_eq!(whole.1.len(), 23);
    assert!(!whole.1.iter().any(|(id, _)| id == "E-bad-date"));
    assert_eq!(run("records", true), whole);
}
