//! Quality rules over declared source columns that no canonical field maps (`column:`):
//! the rule quarantines exactly the rows whose column fails, the column's values are
//! masked in the report's samples, and the column counts as used (no ONB0212).

use std::path::{Path, PathBuf};

use crate::run_ics::read_parquet_dir;
use crate::util::{code, onboard, stdout};
use datafusion::arrow::util::display::array_value_to_string;

const MANIFEST: &str = r#"manifest_version: 1
provider: { id: gp-ods, name: Practice with ODS codes, setting: primary_care, system: emis_web }
sources:
  patients:
    path: "gp/patients_*.csv"
    format: csv
    columns: [PatientGuid, NHSNumber, DOB, Gender, PracticeCode]
    maps_to: person_identity
    fields:
      local_patient_id: { from: PatientGuid }
      nhs_number: { from: NHSNumber, transform: nhs_number }
      date_of_birth: { from: DOB, parse_date: ["%d/%m/%Y"] }
      sex: { from: Gender, map: { M: "1", F: "2" }, map_default: "0" }
    quality:
      - { rule: matches_regex, column: PracticeCode, pattern: "^[A-Z][0-9]{5}$" }
      - { rule: not_null, column: PracticeCode, on_fail: warn }
    thresholds: { max_quarantine_rate: 0.9 }
"#;

/// Rows 2 (lower case), 4 (too short) and 6 (a letter too many) fail the pattern; row 5
/// has no practice code, which passes the pattern and only warns.
const ROWS: &[&str] = &[
    "P1,4000079190,02/02/1951,F,F81001",
    "P2,4000158384,03/03/1952,M,f81001",
    "P3,4000237578,04/04/1953,F,F81010",
    "P4,4000316761,05/05/1954,M,F810",
    "P5,4000079190,06/06/1955,F,",
    "P6,4000158384,07/07/1956,M,FF81001",
];

fn setup(dir: &Path) -> PathBuf {
    let providers = dir.join("providers");
    std::fs::create_dir_all(&providers).unwrap();
    std::fs::write(providers.join("gp-ods.yaml"), MANIFEST).unwrap();
    let gp = dir.join("landing/gp");
    std::fs::create_dir_all(&gp).unwrap();
    let mut csv = String::from("PatientGuid,NHSNumber,DOB,Gender,PracticeCode\n");
    for r in ROWS {
        csv.push_str(r);
        csv.push('\n');
    }
    std::fs::write(gp.join("patients_20261031.csv"), csv).unwrap();
    let ics = dir.join("ics.yaml");
    std::fs::write(
        &ics,
        "ics: { id: ods, name: ODS test }\nproviders: [providers]\nlanding: landing\noutput: out\nreference_date: 2026-10-31\n",
    )
    .unwrap();
    ics
}

#[test]
fn source_column_rule_quarantines_the_failing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ics = setup(dir.path());
    let v = onboard(&[
        "validate",
        "--deny-warnings",
        dir.path().join("providers").to_str().unwrap(),
    ]);
    assert_eq!(
        code(&v),
        0,
        "the checked column counts as used: {}",
        stdout(&v)
    );

    let out = dir.path().join("out");
    let o = onboard(&[
        "run",
        "--ics",
        ics.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--demo-key",
    ]);
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );

    let mut quarantined = Vec::new();
    for b in read_parquet_dir(&out.join("quarantine")) {
        let s = b.schema();
        let (row, ids) = (
            b.column(s.index_of("source_row").unwrap()),
            b.column(s.index_of("rule_ids").unwrap()),
        );
        for r in 0..b.num_rows() {
            quarantined.push((
                array_value_to_string(row, r)
                    .unwrap()
                    .parse::<i64>()
                    .unwrap(),
                array_value_to_string(ids, r).unwrap(),
            ));
        }
    }
    quarantined.sort();
    let rule = "matches_regex_source_practicecode";
    assert_eq!(
        quarantined,
        vec![(2, rule.into()), (4, rule.into()), (6, rule.into())]
    );

    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let src = &run["sources"][0];
    assert_eq!(
        (src["rows_read"].as_u64(), src["rows_accepted"].as_u64()),
        (Some(6), Some(3))
    );
    let hit = |id: &str| {
        src["rule_hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["rule"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no hits of {id}: {src}"))
    };
    assert_eq!(hit(rule)["rows"], 3);
    assert_eq!(hit(rule)["code"], "DQ103");
    assert_eq!(hit("not_null_source_practicecode")["rows"], 1);
    // Samples show the column masked (an unmapped column may hold anything).
    let samples: Vec<&serde_json::Value> = (src["samples"].as_array().unwrap().iter())
        .filter(|s| s["rule"] == rule)
        .collect();
    assert_eq!(samples.len(), 3);
    assert!(
        samples
            .iter()
            .any(|s| s["values"]["source.PracticeCode"] == "f8****"),
        "{samples:?}"
    );
    // The column is not an output column anywhere.
    let identity = crate::run_ics::rows_of(&out.join("identity"));
    assert!(
        identity.iter().all(|r| !r.contains("F81001")),
        "{identity:?}"
    );
}
