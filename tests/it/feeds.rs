//! Monthly deliveries that go wrong the way real feeds do (issue 16), on the fixture ICS
//! `tests/fixtures/feeds/ics.yaml` over a copy of `tests/fixtures/ics/landing`: month one
//! publishes everything; month two breaks one feed, and that feed's last good rows stay
//! in `current`, marked carried forward in run.json and the DQ report, while the other
//! sources publish.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::run_ics::rows_of;
use crate::util::{code, root, stdout};

const EMIS: &str = "gp/emis/F81001";
const S1: &str = "gp/systmone/F81010";
const RXX: &str = "acute/RXX";

/// A landing zone and output directory that live for one test.
pub struct Feed {
    _dir: tempfile::TempDir,
    pub landing: PathBuf,
    pub out: PathBuf,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

impl Feed {
    /// The fixture landing zone, plus the control file of the SystmOne patient extract.
    pub fn new() -> Feed {
        let dir = tempfile::tempdir().unwrap();
        let landing = dir.path().join("landing");
        copy_tree(&root().join("tests/fixtures/ics/landing"), &landing);
        std::fs::write(landing.join(S1).join("SRPatient_20261031.ctl"), "rows=12\n").unwrap();
        let out = dir.path().join("out");
        Feed {
            _dir: dir,
            landing,
            out,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.landing.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn run_with(&self, as_of: &str, landing: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_onboard"))
            .args([
                "run",
                "--ics",
                "tests/fixtures/feeds/ics.yaml",
                "--landing",
                landing.to_str().unwrap(),
                "--out",
                self.out.to_str().unwrap(),
                "--demo-key",
                "--as-of",
                as_of,
            ])
            .current_dir(root())
            .env_remove("ONBOARD_PSEUDONYMISATION_KEY")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    pub fn run(&self, as_of: &str) -> Output {
        self.run_with(as_of, &self.landing)
    }

    /// Month one: everything publishes.
    pub fn first_month(&self) -> Value {
        let o = self.run("2026-10-31");
        assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
        let run = self.run_json();
        assert_eq!(run["status"], "succeeded");
        run
    }

    pub fn run_json(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.out.join("current/run.json")).unwrap()).unwrap()
    }

    pub fn report(&self) -> Value {
        serde_json::from_slice(
            &std::fs::read(self.out.join("current/reports/dq_report.json")).unwrap(),
        )
        .unwrap()
    }

    /// Rows of one source's partition in `current` (`silver/<entity>` or `identity/person_identity`).
    pub fn rows(&self, table: &str, provider: &str, source: &str) -> Vec<String> {
        rows_of(
            &self
                .out
                .join("current")
                .join(table)
                .join(format!("provider={provider}"))
                .join(format!("source={source}")),
        )
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn source<'a>(run: &'a Value, provider: &str, source: &str) -> &'a Value {
    run["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == provider && s["source"] == source)
        .unwrap_or_else(|| panic!("{provider}/{source} not in run.json"))
}

/// Every source reconciles: read = accepted + quarantined + exact duplicates.
fn assert_reconciled(run: &Value) {
    for s in run["sources"].as_array().unwrap() {
        let n = |k: &str| s[k].as_u64().unwrap();
        assert_eq!(
            n("rows_read"),
            n("rows_accepted") + n("rows_quarantined") + n("rows_duplicate"),
            "{}/{}",
            s["provider"],
            s["source"]
        );
        assert_eq!(s["reconciled"], true);
    }
}

/// The source is carried forward from `from_run` for `reason`, in run.json and the report,
/// and every other source published.
fn assert_carried(f: &Feed, provider: &str, src: &str, from_run: &Value, reason: &str) {
    let run = f.run_json();
    assert_reconciled(&run);
    let s = source(&run, provider, src);
    let c = &s["carried_forward"];
    assert_eq!(c["from_run"], *from_run, "{s:#}");
    assert_eq!(c["reason"], reason);
    assert_eq!(c["as_of"].as_str().unwrap().len(), 10);
    assert!(c["files"].as_u64().unwrap() > 0, "{s:#}");
    assert_eq!(run["totals"]["sources_carried_forward"], 1);
    let r = source(&f.report(), provider, src).clone();
    assert_eq!(r["carried_forward"]["from_run"], *from_run);
    let html = std::fs::read_to_string(f.out.join("current/reports/dq_report.html")).unwrap();
    assert!(html.contains("carried forward"), "HTML report marks it");
    for o in run["sources"].as_array().unwrap() {
        if !(o["provider"] == provider && o["source"] == src) {
            assert_eq!(
                o["status"], "published",
                "{}/{}: {}",
                o["provider"], o["source"], o["failure"]
            );
            assert!(o["carried_forward"].is_null());
        }
    }
}

fn snapshot(f: &Feed) -> Vec<(String, Vec<String>)> {
    [
        ("identity/person_identity", "emis-f81001", "patients"),
        ("silver/registration", "emis-f81001", "registrations"),
        ("identity/person_identity", "systmone-f81010", "patients"),
        ("silver/care_event", "acute-rxx", "spells"),
        ("silver/diagnosis", "acute-rxx", "diagnoses"),
    ]
    .iter()
    .map(|(t, p, s)| (format!("{t}/{p}/{s}"), f.rows(t, p, s)))
    .collect()
}

fn rows_at<'a>(snap: &'a [(String, Vec<String>)], key: &str) -> &'a Vec<String> {
    &snap.iter().find(|(k, _)| k == key).unwrap().1
}

#[test]
fn missing_feed_keeps_its_last_good_data() {
    let f = Feed::new();
    let m1 = f.first_month();
    let before = snapshot(&f);
    assert!(!rows_at(&before, "identity/person_identity/systmone-f81010/patients").is_empty());
    std::fs::remove_file(f.path(&format!("{S1}/SRPatient_20261031.csv"))).unwrap();
    let o = f.run("2026-11-30");
    assert_eq!(
        code(&o),
        0,
        "a missing feed carried forward is not a failure: {}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("carried forward from run"),
        "{}",
        stdout(&o)
    );
    let run = f.run_json();
    let s = source(&run, "systmone-f81010", "patients");
    assert_eq!(s["status"], "missing");
    assert_eq!(s["carried_forward"]["age_days"], 30);
    assert_eq!(run["totals"]["sources_missing"], 1);
    assert_carried(&f, "systmone-f81010", "patients", &m1["run_id"], "missing");
    let key = "identity/person_identity/systmone-f81010/patients";
    let after = snapshot(&f);
    assert_eq!(rows_at(&before, key), rows_at(&after, key), "the same rows");
    let of_run = |l: &String, r: &Value| l.contains(&format!("run_id={}", r.as_str().unwrap()));
    assert!(
        rows_at(&after, key)
            .iter()
            .all(|l| of_run(l, &m1["run_id"])),
        "of month one's run"
    );
    assert_ne!(run["run_id"], m1["run_id"]);
    // The other sources were loaded again by this run.
    let emis = rows_at(&after, "identity/person_identity/emis-f81001/patients");
    assert!(emis.iter().all(|l| of_run(l, &run["run_id"])));
}

#[test]
fn failing_source_keeps_its_last_good_data() {
    let f = Feed::new();
    let m1 = f.first_month();
    let before = snapshot(&f);
    // Next month's spells: most admission methods unknown: the quarantine rate breaches.
    let spells = f.read(&format!("{RXX}/apc_spells_2025.csv"));
    let mut lines: Vec<String> = spells.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let am = header.iter().position(|h| *h == "AdmissionMethod").unwrap();
    for l in lines.iter_mut().skip(1) {
        let mut cells: Vec<String> = l.split(',').map(str::to_string).collect();
        if cells.len() > am {
            cells[am] = "X9".into();
        }
        *l = cells.join(",");
    }
    f.write(
        &format!("{RXX}/apc_spells_2025_11.csv"),
        &(lines.join("\n") + "\n"),
    );
    let o = f.run("2026-11-30");
    assert_eq!(
        code(&o),
        1,
        "a failed source makes a partial run: {}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("exceeds max_quarantine_rate"),
        "{}",
        stdout(&o)
    );
    let run = f.run_json();
    assert_eq!(run["status"], "partial");
    let s = source(&run, "acute-rxx", "spells");
    assert_eq!(s["status"], "failed");
    assert_carried(&f, "acute-rxx", "spells", &m1["run_id"], "failed");
    assert_eq!(
        rows_at(&snapshot(&f), "silver/care_event/acute-rxx/spells"),
        rows_at(&before, "silver/care_event/acute-rxx/spells")
    );
}

#[test]
fn two_monthly_extracts_with_latest_load_the_newest() {
    let f = Feed::new();
    f.first_month();
    // November's extract arrives; October's is not archived yet. One patient moved.
    let oct = f.read(&format!("{EMIS}/patients_20261031.csv"));
    f.write(
        &format!("{EMIS}/patients_20261130.csv"),
        &oct.replace("LS2 1AB", "LS9 9ZZ"),
    );
    let regs = f.read(&format!("{EMIS}/registrations_20261031.csv"));
    f.write(&format!("{EMIS}/registrations_20261130.csv"), &regs);
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let run = f.run_json();
    assert_reconciled(&run);
    let p = source(&run, "emis-f81001", "patients");
    assert_eq!(p["load"], "latest");
    assert_eq!(
        p["files"],
        serde_json::json!([format!("{EMIS}/patients_20261130.csv")])
    );
    let ingested = &p["files_ingested"][0];
    assert_eq!(ingested["extract_date"], "2026-11-30");
    assert_eq!(ingested["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(ingested["rows"], 28);
    let skipped = &p["files_skipped"][0];
    assert_eq!(skipped["file"], format!("{EMIS}/patients_20261031.csv"));
    assert_eq!(skipped["reason"], "superseded");
    assert_eq!(skipped["extract_date"], "2026-10-31");
    // Not 28 of 28 quarantined by `unique`: the same 6 faulty rows as one extract alone.
    assert_eq!(p["rows_quarantined"], 6);
    let ids = f.rows("identity/person_identity", "emis-f81001", "patients");
    assert!(
        ids.iter().any(|l| l.contains("LS9 9ZZ")) && !ids.iter().any(|l| l.contains("LS2 1AB"))
    );
    // The extract date is the lineage `extract_date` of every row.
    let regs = f.rows("silver/registration", "emis-f81001", "registrations");
    assert!(!regs.is_empty());
    assert!(
        regs.iter().all(|l| l.contains("extract_date=2026-11-30")),
        "{:?}",
        regs[0]
    );
    assert_eq!(p["row_change"]["previous_rows"], 28);
    assert_eq!(p["row_change"]["change"], 0.0);
}

#[test]
fn resent_identical_file_is_skipped_by_incremental() {
    let f = Feed::new();
    let m1 = f.first_month();
    let before = f.rows("silver/care_event", "acute-rxx", "spells");
    std::fs::copy(
        f.path(&format!("{RXX}/apc_spells_2025.csv")),
        f.path(&format!("{RXX}/apc_spells_2025_resent.csv")),
    )
    .unwrap();
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let run = f.run_json();
    assert_reconciled(&run);
    let s = source(&run, "acute-rxx", "spells");
    assert_eq!(s["load"], "incremental");
    assert_eq!(s["status"], "published");
    assert_eq!(s["rows_read"], 0, "nothing new was read");
    let skipped = s["files_skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().all(|x| x["reason"] == "already_ingested"));
    assert!(skipped.iter().any(|x| {
        x["file"] == format!("{RXX}/apc_spells_2025_resent.csv")
            && x["detail"]
                .as_str()
                .unwrap()
                .contains(m1["run_id"].as_str().unwrap())
    }));
    assert_eq!(
        s["good_load"]["run_id"], m1["run_id"],
        "current holds month one's load"
    );
    assert_eq!(f.rows("silver/care_event", "acute-rxx", "spells"), before);
    // The ledger remembers the file by content hash, from month one.
    let ledger: Value =
        serde_json::from_slice(&std::fs::read(f.out.join("ledger.json")).unwrap()).unwrap();
    let e: Vec<&Value> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "spells")
        .collect();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["run_id"], m1["run_id"]);
    // A genuinely new increment is added to what is there.
    let spells = f.read(&format!("{RXX}/apc_spells_2025.csv"));
    let header = spells.lines().next().unwrap();
    let row = spells
        .lines()
        .nth(1)
        .unwrap()
        .replacen("S00001", "S09999", 1);
    f.write(
        &format!("{RXX}/apc_spells_2025_12.csv"),
        &format!("{header}\n{row}\n"),
    );
    let o = f.run("2026-12-31");
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let s = source(&f.run_json(), "acute-rxx", "spells").clone();
    assert_eq!(s["rows_read"], 1);
    assert_eq!(
        f.rows("silver/care_event", "acute-rxx", "spells").len(),
        before.len() + 1
    );
}

#[test]
fn same_name_with_different_content_is_flagged() {
    let f = Feed::new();
    let m1 = f.first_month();
    let before = f.rows("silver/care_event", "acute-rxx", "spells");
    let rel = format!("{RXX}/apc_spells_2025.csv");
    let spells = f.read(&rel);
    let row = spells
        .lines()
        .nth(1)
        .unwrap()
        .replacen("S00001", "S08888", 1);
    f.write(&rel, &format!("{spells}{row}\n"));
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let run = f.run_json();
    let s = source(&run, "acute-rxx", "spells");
    assert_eq!(s["status"], "failed");
    let msg = s["failure"].as_str().unwrap();
    assert!(
        msg.contains("changed re-delivery") && msg.contains(&rel),
        "{msg}"
    );
    assert!(msg.contains(m1["run_id"].as_str().unwrap()), "{msg}");
    assert_eq!(s["files_skipped"][0]["reason"], "changed_since_ingested");
    assert_carried(&f, "acute-rxx", "spells", &m1["run_id"], "failed");
    assert_eq!(f.rows("silver/care_event", "acute-rxx", "spells"), before);
}

#[test]
fn cut_short_extract_fails_and_keeps_last_month() {
    let f = Feed::new();
    let m1 = f.first_month();
    let before = f.rows("identity/person_identity", "emis-f81001", "patients");
    // November's extract ends mid-row, half way through (in the third field of row 14).
    let oct = f.read(&format!("{EMIS}/patients_20261031.csv"));
    let lines: Vec<&str> = oct.lines().collect();
    let partial: Vec<&str> = lines[14].split(',').take(3).collect();
    let cut = format!("{}\n{}", lines[..14].join("\n"), partial.join(","));
    f.write(&format!("{EMIS}/patients_20261130.csv"), &cut);
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1);
    let run = f.run_json();
    let s = source(&run, "emis-f81001", "patients");
    let msg = s["failure"].as_str().unwrap();
    assert!(
        msg.contains("patients_20261130.csv: the last row is cut short"),
        "{msg}"
    );
    assert_carried(&f, "emis-f81001", "patients", &m1["run_id"], "failed");
    assert_eq!(
        f.rows("identity/person_identity", "emis-f81001", "patients"),
        before
    );
    // Cut at a line break instead: the row count against last month catches it.
    f.write(
        &format!("{EMIS}/patients_20261130.csv"),
        &(lines[..12].join("\n") + "\n"),
    );
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1);
    let run = f.run_json();
    let s = source(&run, "emis-f81001", "patients");
    let msg = s["failure"].as_str().unwrap();
    assert!(
        msg.contains("row count changed by -60.7% (11 rows; the previous good load")
            && msg.contains("had 28); max_row_change is 40.0%"),
        "{msg}"
    );
    assert_eq!(s["row_change"]["previous_rows"], 28);
    assert_eq!(s["carried_forward"]["from_run"], m1["run_id"]);
    assert_eq!(
        f.rows("identity/person_identity", "emis-f81001", "patients"),
        before
    );
}

#[test]
fn control_total_mismatch_fails_the_source() {
    let f = Feed::new();
    let m1 = f.first_month();
    let s = source(&m1, "systmone-f81010", "patients");
    assert_eq!(s["files_ingested"][0]["expected_rows"], 12);
    let before = f.rows("identity/person_identity", "systmone-f81010", "patients");
    let text = f.read(&format!("{S1}/SRPatient_20261031.csv"));
    f.write(&format!("{S1}/SRPatient_20261130.csv"), &text);
    f.write(&format!("{S1}/SRPatient_20261130.ctl"), "rows=13\n");
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1);
    let run = f.run_json();
    let s = source(&run, "systmone-f81010", "patients");
    assert_eq!(
        s["failure"],
        format!(
            "control total mismatch: {S1}/SRPatient_20261130.csv: 12 data rows read, the control file says 13"
        )
    );
    assert_carried(&f, "systmone-f81010", "patients", &m1["run_id"], "failed");
    assert_eq!(
        f.rows("identity/person_identity", "systmone-f81010", "patients"),
        before
    );
}

#[test]
fn renamed_header_column_fails_only_its_source() {
    let f = Feed::new();
    let m1 = f.first_month();
    let before = f.rows("silver/registration", "emis-f81001", "registrations");
    let regs = f.read(&format!("{EMIS}/registrations_20261031.csv"));
    f.write(
        &format!("{EMIS}/registrations_20261130.csv"),
        &regs.replacen("RegisteredDate", "RegistrationDate", 1),
    );
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1, "partial, not a stopped run: {}", stderr(&o));
    let run = f.run_json();
    let s = source(&run, "emis-f81001", "registrations");
    assert_eq!(
        s["failure"],
        format!(
            "schema drift in {EMIS}/registrations_20261130.csv: the header lacks declared column(s) `RegisteredDate` (did you mean `RegistrationDate`?); unexpected column(s): `RegistrationDate`"
        )
    );
    assert_carried(&f, "emis-f81001", "registrations", &m1["run_id"], "failed");
    assert_eq!(
        f.rows("silver/registration", "emis-f81001", "registrations"),
        before
    );
}

#[test]
fn exact_duplicates_across_files_are_collapsed() {
    let f = Feed::new();
    f.first_month();
    let before = f.rows("silver/diagnosis", "acute-rxx", "diagnoses");
    // A second file repeats five records of the first and adds one.
    let d = f.read(&format!("{RXX}/apc_diagnoses_2025.csv"));
    let lines: Vec<&str> = d.lines().collect();
    let extra = lines[1].replacen("E11.9", "I10", 1);
    let second = format!("{}\n{}\n{extra}\n", lines[0], lines[1..6].join("\n"));
    f.write(&format!("{RXX}/apc_diagnoses_2025_b.csv"), &second);
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let run = f.run_json();
    assert_reconciled(&run);
    let s = source(&run, "acute-rxx", "diagnoses");
    assert_eq!(s["rows_duplicate"], 5);
    assert_eq!(s["rows_read"], 14 + 6);
    assert_eq!(run["totals"]["rows_duplicate"], 5);
    assert_eq!(s["files_ingested"].as_array().unwrap().len(), 2);
    let after = f.rows("silver/diagnosis", "acute-rxx", "diagnoses");
    assert_eq!(
        after.len(),
        before.len() + 1,
        "one new diagnosis, no duplicates"
    );
    assert_eq!(
        source(&f.report(), "acute-rxx", "diagnoses")["rows_duplicate"],
        5
    );
}

#[test]
fn extract_date_pattern_that_matches_no_file_name() {
    let f = Feed::new();
    let m1 = f.first_month();
    let oct = f.read(&format!("{EMIS}/patients_20261031.csv"));
    f.write(&format!("{EMIS}/patients_final.csv"), &oct);
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1);
    let s = source(&f.run_json(), "emis-f81001", "patients").clone();
    assert_eq!(
        s["failure"],
        format!(
            "delivery.extract_date.pattern `_(\\d{{8}})\\.csv$` matches no file name: `patients_final.csv` ({EMIS}/patients_final.csv) does not match"
        )
    );
    assert_carried(&f, "emis-f81001", "patients", &m1["run_id"], "failed");
}

#[test]
fn control_file_that_does_not_parse() {
    let f = Feed::new();
    let m1 = f.first_month();
    let text = f.read(&format!("{S1}/SRPatient_20261031.csv"));
    f.write(&format!("{S1}/SRPatient_20261130.csv"), &text);
    f.write(&format!("{S1}/SRPatient_20261130.ctl"), "twelve rows\n");
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1);
    let s = source(&f.run_json(), "systmone-f81010", "patients").clone();
    assert_eq!(
        s["failure"],
        format!(
            "control file {S1}/SRPatient_20261130.ctl does not parse: expected the number of data rows, alone or as `rows=N`; it holds `twelve rows`"
        )
    );
    assert_carried(&f, "systmone-f81010", "patients", &m1["run_id"], "failed");
}

#[test]
fn ledger_that_does_not_match_the_landing_zone() {
    let f = Feed::new();
    let m1 = f.first_month();
    let other = f.landing.with_file_name("other-landing");
    copy_tree(&f.landing, &other);
    let o = f.run_with("2026-11-30", &other);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.contains(
            "ledger.json: the ledger does not match the landing zone: it records files from"
        ) && e.contains("other-landing"),
        "{e}"
    );
    assert_eq!(
        f.run_json()["run_id"],
        m1["run_id"],
        "nothing was published"
    );
    // A ledger that does not parse names the file too.
    std::fs::write(f.out.join("current/ledger.json"), "{ not json").unwrap();
    let o = f.run("2026-11-30");
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("ledger.json: the ledger does not parse"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn rerun_of_a_carried_month_is_identical() {
    let f = Feed::new();
    let m1 = f.first_month();
    std::fs::remove_file(f.path(&format!("{S1}/SRPatient_20261031.csv"))).unwrap();
    assert_eq!(code(&f.run("2026-11-30")), 0);
    let a = f.run_json();
    let rows_a = snapshot(&f);
    assert_eq!(code(&f.run("2026-11-30")), 0);
    let b = f.run_json();
    assert_eq!(a["run_id"], b["run_id"]);
    assert_eq!(snapshot(&f), rows_a);
    for (x, y) in a["sources"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["sources"].as_array().unwrap())
    {
        for k in [
            "status",
            "carried_forward",
            "good_load",
            "baseline",
            "row_change",
            "files_ingested",
            "files_skipped",
        ] {
            assert_eq!(x[k], y[k], "{}/{} {k}", x["provider"], x["source"]);
        }
    }
    assert_eq!(
        source(&b, "systmone-f81010", "patients")["carried_forward"]["from_run"],
        m1["run_id"]
    );
}

#[test]
fn carried_data_older_than_max_age_is_an_error() {
    let f = Feed::new();
    let ics = "tests/fixtures/feeds/ics-max-age.yaml";
    let run = |as_of: &str| {
        Command::new(env!("CARGO_BIN_EXE_onboard"))
            .args(["run", "--ics", ics, "--landing"])
            .arg(&f.landing)
            .arg("--out")
            .arg(&f.out)
            .args(["--demo-key", "--as-of", as_of])
            .current_dir(root())
            .output()
            .unwrap()
    };
    assert_eq!(code(&run("2026-10-31")), 0);
    std::fs::remove_file(f.path(&format!("{S1}/SRPatient_20261031.csv"))).unwrap();
    let o = run("2026-11-30");
    assert_eq!(
        code(&o),
        0,
        "30 days: carried: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(
        source(&f.run_json(), "systmone-f81010", "patients")["carried_forward"]["age_days"],
        30
    );
    let o = run("2026-12-31");
    assert_eq!(code(&o), 1, "61 days: too old");
    let s = source(&f.run_json(), "systmone-f81010", "patients").clone();
    assert_eq!(s["status"], "failed");
    assert!(
        s["failure"].as_str().unwrap().contains(
            "no input file; the last good data (run"
        ) && s["failure"].as_str().unwrap().contains(
            "as of 2026-10-31) is 61 days old; max_carry_forward_age is 45 days, so nothing was carried forward"
        ),
        "{}",
        s["failure"]
    );
    assert!(s["carried_forward"].is_null());
    assert!(
        f.rows("identity/person_identity", "systmone-f81010", "patients")
            .is_empty()
    );
}

/// True persons whose published records (silver, and identity rows of identity sources)
/// map through the link map to a person of the spine.
async fn persons_in_spine(out: &Path, truth: &Path) -> std::collections::BTreeSet<String> {
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
    let ctx = SessionContext::new();
    ctx.register_csv("truth", truth.to_str().unwrap(), CsvReadOptions::new())
        .await
        .unwrap();
    let mut parts = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out.join("silver"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.push(out.join("identity/person_identity"));
    for (i, d) in dirs.iter().enumerate() {
        let name = format!("t{i}");
        ctx.register_parquet(&name, d.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        let filter = if d.ends_with("person_identity") {
            " WHERE source_row IS NOT NULL"
        } else {
            ""
        };
        parts.push(format!(
            "SELECT provider_id, source_id, CAST(source_record_id AS VARCHAR) AS rid, person_key FROM {name}{filter}"
        ));
    }
    let linkage = out.join("linkage");
    ctx.register_parquet(
        "link_map",
        linkage.join("link_map.parquet").to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    ctx.register_parquet(
        "spine",
        linkage.join("spine/person").to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let sql = format!(
        "SELECT DISTINCT CAST(t.true_person_id AS VARCHAR) AS p FROM truth t \
         JOIN ({}) r ON r.provider_id = t.provider_id AND r.source_id = t.source AND r.rid = CAST(t.source_record_id AS VARCHAR) \
         LEFT JOIN link_map m ON m.candidate_key = r.person_key \
         JOIN spine s ON s.person_key = coalesce(m.person_key, r.person_key)",
        parts.join(" UNION ALL ")
    );
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut set = std::collections::BTreeSet::new();
    for b in batches {
        for i in 0..b.num_rows() {
            set.insert(array_value_to_string(b.column(0), i).unwrap());
        }
    }
    set
}

/// Several monthly loads of the synthetic ICS (repository providers): one feed missing a
/// month, one re-sent, one cut short, one with a renamed column. After every month, every
/// synthetic person who was in the spine the month before still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn month_by_month_over_the_synthetic_ics_keeps_every_person() {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("synth");
    onboard::synth::generate(&onboard::synth::SynthOptions {
        patients: 1500,
        seed: 16,
        out: synth.clone(),
        ..Default::default()
    })
    .unwrap();
    let landing = synth.join("landing");
    let out = dir.path().join("out");
    let ics = dir.path().join("ics.yaml");
    std::fs::write(
        &ics,
        format!(
            "ics: {{ id: synth-months, name: Synthetic months }}\nproviders: [\"{}\"]\nlanding: \"{}\"\noutput: \"{}\"\nfeeds: {{ max_row_change: 0.3 }}\n",
            root().join("providers").display(),
            landing.display(),
            out.display()
        ),
    )
    .unwrap();
    let onboard = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_onboard"))
            .args(args)
            .args(["--ics", ics.to_str().unwrap(), "--demo-key"])
            .current_dir(root())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let gp = |rel: &str| landing.join("gp").join(rel);
    let read = |rel: &str| std::fs::read_to_string(gp(rel)).unwrap();
    let write = |rel: &str, text: &str| std::fs::write(gp(rel), text).unwrap();
    let kinds = ["patients", "registrations", "observations"];
    // A practice's delivery of the month: its October extracts under the new date (the
    // older files stay, as when they are not archived yet), changed by `f`.
    let deliver = |ods: &str, date: &str, f: &dyn Fn(String) -> String| {
        for k in kinds {
            let text = read(&format!("emis/{ods}/{k}_20261031.csv"));
            write(&format!("emis/{ods}/{k}_{date}.csv"), &f(text));
        }
    };
    let same = |t: String| t;
    // Cut short: two thirds of the file, ending inside a row.
    let cut = |t: String| {
        let head = &t[..t.len() * 2 / 3];
        head[..head.rfind(',').unwrap()].to_string()
    };
    let renamed = |t: String| t.replacen("PatientGuid", "PatientGUID", 1);
    let s1 = ["SRPatient", "SRCode"];
    let stash = synth.join("systmone-october");
    std::fs::create_dir_all(&stash).unwrap();
    let months: [(&str, i32, &[&str]); 4] = [
        ("2026-10-31", 0, &[]),
        (
            "2026-11-30",
            0,
            &["systmone-f81010/coded_events", "systmone-f81010/patients"],
        ),
        (
            "2026-12-31",
            1,
            &[
                "emis-f81002/observations",
                "emis-f81002/patients",
                "emis-f81002/registrations",
            ],
        ),
        (
            "2027-01-31",
            1,
            &[
                "emis-f81001/observations",
                "emis-f81001/patients",
                "emis-f81001/registrations",
            ],
        ),
    ];
    let mut previous: std::collections::BTreeSet<String> = Default::default();
    for (i, (as_of, want, expected)) in months.iter().enumerate() {
        let date = as_of.replace('-', "");
        match i {
            0 => {}
            1 => {
                // SystmOne's delivery does not arrive this month; EMIS delivers.
                for k in s1 {
                    std::fs::rename(
                        gp(&format!("systmone/F81010/{k}_20261031.csv")),
                        stash.join(format!("{k}.csv")),
                    )
                    .unwrap();
                }
                deliver("F81001", &date, &same);
                deliver("F81002", &date, &same);
            }
            2 => {
                // SystmOne is back; F81001 re-sends November's extracts unchanged;
                // F81002's delivery is cut short mid-row.
                for k in s1 {
                    std::fs::copy(
                        stash.join(format!("{k}.csv")),
                        gp(&format!("systmone/F81010/{k}_{date}.csv")),
                    )
                    .unwrap();
                }
                for k in kinds {
                    let nov = format!("emis/F81001/{k}_20261130.csv");
                    let text = read(&nov);
                    write(&nov, &text);
                }
                deliver("F81002", &date, &cut);
            }
            _ => {
                // F81001's system upgrade renames a column in every extract; F81002 recovers
                // (its cut delivery is withdrawn).
                for k in kinds {
                    std::fs::remove_file(gp(&format!("emis/F81002/{k}_20261231.csv"))).unwrap();
                }
                deliver("F81001", &date, &renamed);
                deliver("F81002", &date, &same);
            }
        }
        let o = onboard(&["run", "--out", out.to_str().unwrap(), "--as-of", as_of]);
        assert_eq!(
            code(&o),
            *want,
            "month {as_of}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
        let run: Value =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_reconciled(&run);
        let carried: Vec<String> = run["sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["carried_forward"].is_null())
            .map(|s| {
                format!(
                    "{}/{}",
                    s["provider"].as_str().unwrap(),
                    s["source"].as_str().unwrap()
                )
            })
            .collect();
        let mut carried = carried;
        carried.sort();
        assert_eq!(carried, *expected, "month {as_of}");
        let o = onboard(&["link", "--out", out.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "link {as_of}: {}", stderr(&o));
        let now = persons_in_spine(&out, &synth.join("truth/person_records.csv")).await;
        assert!(now.len() > 1000, "month {as_of}: {} persons", now.len());
        let lost: Vec<&String> = previous.difference(&now).collect();
        assert!(
            lost.is_empty(),
            "month {as_of}: {} persons left the spine: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        previous = now;
    }
}

/// A trailer row is not data: the rows read are checked against its count.
#[test]
fn trailer_row_control_total() {
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing/x");
    std::fs::create_dir_all(&landing).unwrap();
    std::fs::write(
        landing.join("people_20261031.csv"),
        "ID,Name,DOB\n1,Ann,01/02/1990\n2,Bob,03/04/1991\nTRAILER,2\n",
    )
    .unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(
        &manifest,
        "manifest_version: 1\nprovider: { id: trl, name: T, setting: other, system: t }\nsources:\n  people:\n    path: \"x/people_*.csv\"\n    format: csv\n    columns: [ID, Name, DOB]\n    maps_to: person_identity\n    delivery: { load: latest, extract_date: { pattern: '_(\\d{8})\\.csv$' }, control: { trailer: '^TRAILER,(\\d+)$' } }\n    fields:\n      local_patient_id: { from: ID }\n      given_name: { from: Name, transform: name }\n      date_of_birth: { from: DOB, parse_date: \"%d/%m/%Y\" }\n",
    )
    .unwrap();
    let ics = dir.path().join("ics.yaml");
    std::fs::write(
        &ics,
        format!("ics: {{ id: t, name: T }}\nproviders: [\"{}\"]\nlanding: landing\noutput: out\nreference_date: 2026-10-31\n", manifest.display()),
    )
    .unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_onboard"))
            .args(["run", "--ics", ics.to_str().unwrap(), "--demo-key"])
            .current_dir(root())
            .output()
            .unwrap()
    };
    let o = run();
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = dir.path().join("out");
    let read = || -> Value {
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
    };
    let s = source(&read(), "trl", "people").clone();
    assert_eq!(
        (s["rows_read"].as_u64(), s["rows_accepted"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(s["files_ingested"][0]["expected_rows"], 2);
    // November's trailer says three rows; two arrived.
    std::fs::write(
        landing.join("people_20261130.csv"),
        "ID,Name,DOB\n1,Ann,01/02/1990\n2,Bob,03/04/1991\nTRAILER,3\n",
    )
    .unwrap();
    assert_eq!(code(&run()), 1);
    let run_json = read();
    let s = source(&run_json, "trl", "people");
    assert_eq!(
        s["failure"],
        "control total mismatch: x/people_20261130.csv: 2 data rows read, the trailer row says 3"
    );
    assert_eq!(s["carried_forward"]["reason"], "failed");
    assert_eq!(
        rows_of(&out.join("identity/person_identity/provider=trl")).len(),
        2
    );
}
