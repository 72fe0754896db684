//! A large CSV read by several partitions in chunks of whole records
//! (`src/ingest/scan/parallel.rs`) gives exactly the outputs of reading it whole: the
//! same rows, row numbers, quarantined rows and reconciliation. `ONBOARD_SCAN_SPLIT_BYTES`
//! makes every CSV "large" and every record its own chunk, the hardest case.

use std::path::Path;
use std::process::Command;

use crate::run_ics::rows_of;
use crate::util::{code, one_source_ics, root};

fn run(ics: &Path, out: &Path, split: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onboard"));
    cmd.args(["run", "--ics"])
        .arg(ics)
        .arg("--out")
        .arg(out)
        .arg("--demo-key")
        .current_dir(root())
        .env_remove("ONBOARD_PSEUDONYMISATION_KEY")
        .env("RUST_LOG", "onboard::ingest=debug");
    if split {
        cmd.env("ONBOARD_SCAN_SPLIT_BYTES", "1");
    }
    let o = cmd.output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(code(&o), 0, "{log}");
    assert_eq!(log.contains("reading in chunks"), split, "{log}");
    log
}

/// What a run wrote and counted, run-specific paths aside.
fn outputs(
    out: &Path,
) -> (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<serde_json::Value>,
) {
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let counts = run["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::json!([
                s["provider"],
                s["source"],
                s["rows_read"],
                s["rows_accepted"],
                s["rows_quarantined"],
                s["reconciled"]
            ])
        })
        .collect();
    (
        rows_of(&out.join("silver")),
        rows_of(&out.join("identity")),
        rows_of(&out.join("quarantine")),
        counts,
    )
}

#[test]
fn the_fixture_ics_read_in_chunks_gives_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let ics = root().join("tests/fixtures/ics/ics.yaml");
    run(&ics, &dir.path().join("whole"), false);
    run(&ics, &dir.path().join("chunks"), true);
    let (whole, chunks) = (
        outputs(&dir.path().join("whole")),
        outputs(&dir.path().join("chunks")),
    );
    assert!(whole.0.len() > 50 && whole.2.len() > 5, "{whole:?}");
    assert_eq!(whole, chunks);
}

/// An extract with what cuts could get wrong: a byte-order mark, `\r\n` and `\n` line
/// ends, free text with commas, doubled quotes and line breaks inside quotes, a quote
/// inside an unquoted field, ragged rows, blank lines, text that is not UTF-8 and a last
/// row without a line end.
fn awkward_extract() -> Vec<u8> {
    let mut out = b"\xEF\xBB\xBFEventGuid,NHSNumber,EffectiveDate,Code,Comment\r\n".to_vec();
    for i in 0..400u32 {
        let nhs = ["9434765919", "9434765918", "", "4010232137"][(i % 4) as usize];
        let date = if i % 13 == 0 {
            "31/02/2020".to_string()
        } else {
            format!("{:02}/03/2024", 1 + i % 28)
        };
        let comment = match i % 7 {
            0 => "\"said \"\"fine\"\", then, later\nline two\r\nline three\"".to_string(),
            1 => "5\" tall".to_string(),
            2 => "\"\"".to_string(),
            3 => format!("\"row {i}, \n\"\"quoted\"\"\n\""),
            _ => format!("plain {i}"),
        };
        let end = if i % 3 == 0 { "\r\n" } else { "\n" };
        out.extend_from_slice(
            format!("E{i:05},{nhs},{date},{},{comment}{end}", 100000 + i).as_bytes(),
        );
        match i % 50 {
            10 => out.extend_from_slice(b"E-ragged,1,2\n"),
            20 => out.extend_from_slice(b"\n\r\n"),
            30 => out.extend_from_slice(b"E-latin,9434765919,01/01/2024,123456,caf\xE9\n"),
            _ => {}
        }
    }
    out.extend_from_slice(b"E-last,9434765919,01/01/2024,123456,\"no line end\"");
    out
}

const MANIFEST: &str = r#"manifest_version: 1
provider: { id: chunky, name: Chunked reading, setting: primary_care, system: emis_web }
sources:
  events:
    path: "events.csv"
    format: csv
    columns: [EventGuid, NHSNumber, EffectiveDate, Code, Comment]
    maps_to: observation
    fields:
      code_system: { const: SNOMED_CT_UK }
      code: { from: Code }
      observed_date: { from: EffectiveDate, parse_date: "%d/%m/%Y" }
      value_text: { from: Comment }
      source_record_id: { from: EventGuid }
    identity:
      nhs_number: { from: NHSNumber }
    quality:
      - { rule: parseable, field: observed_date }
      - { rule: nhs_number_valid, field: nhs_number }
    thresholds: { max_quarantine_rate: 0.9 }
"#;

#[test]
fn free_text_with_line_breaks_is_cut_only_between_records() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ics = one_source_ics(d, MANIFEST, awkward_extract(), "{ target_partitions: 3 }");
    run(&ics, &d.join("whole"), false);
    run(&ics, &d.join("chunks"), true);
    let (whole, chunks) = (outputs(&d.join("whole")), outputs(&d.join("chunks")));
    // 400 rows, 8 ragged, 8 not UTF-8 and the last one (blank lines are not rows).
    assert_eq!(whole.3[0][2], 417, "{:?}", whole.3);
    assert!(
        whole.0.iter().any(|r| r.contains("line two\r\nline three")),
        "free text kept whole"
    );
    assert!(
        whole.2.iter().any(|r| r.contains("ragged row")),
        "{:?}",
        whole.2
    );
    assert_eq!(whole, chunks);
}
