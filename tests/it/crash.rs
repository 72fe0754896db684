//! A run killed with SIGKILL in the middle leaves the previous outputs readable and
//! unchanged; the next run removes the killed run's staging directory (and no live
//! run's), and gives the same rows as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use onboard::run::staging;

use crate::util::root;

/// The directories under `OUT/.staging`, sorted.
fn staging_dirs(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join(".staging"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn landing_with_rows(dir: &Path, n: usize) -> PathBuf {
    let landing = dir.join("landing");
    let p = landing.join("gp/emis/F81001");
    std::fs::create_dir_all(&p).unwrap();
    let mut s = String::from(
        "PatientGuid,NHSNumber,Forenames,Surname,DateOfBirth,Sex,Postcode,EthnicOrigin\n",
    );
    for i in 0..n {
        // Every 50th DOB is unparseable, so quarantine has rows too.
        let dob = if i % 50 == 0 {
            "31/02/1980".to_string()
        } else {
            format!("{:02}/{:02}/19{:02}", i % 28 + 1, i % 12 + 1, 30 + i % 70)
        };
        s.push_str(&format!(
            "G{i:08},{},Given{i},Family{},{dob},{},LS{} {}AB,White - British\n",
            4000000000u64 + i as u64,
            i % 977,
            ["M", "F"][i % 2],
            i % 9 + 1,
            i % 9
        ));
    }
    // Dated like a real monthly extract (the emis_web template loads the latest by date).
    std::fs::write(p.join("patients_20261031.csv"), s).unwrap();
    landing
}

fn ics(dir: &Path, landing: &Path) -> PathBuf {
    let f = dir.join("ics.yaml");
    let provider = root().join("tests/fixtures/ics/providers/emis-f81001.yaml");
    std::fs::write(
        &f,
        format!(
            "ics: {{ id: crash, name: Crash test }}\nproviders: [\"{}\"]\nlanding: \"{}\"\noutput: out\nreference_date: 2026-10-31\nengine: {{ memory_limit: 256MiB, target_partitions: 2 }}\n",
            provider.display(),
            landing.display()
        ),
    )
    .unwrap();
    f
}

fn run(ics: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_onboard"));
    c.args([
        "run",
        "--ics",
        ics.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--demo-key",
    ])
    .current_dir(root());
    c
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((
                    p.strip_prefix(base).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn has_parquet(d: &Path) -> bool {
    std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let p = e.path();
            if p.is_dir() {
                has_parquet(&p)
            } else {
                p.extension().is_some_and(|x| x == "parquet")
            }
        })
}

#[test]
fn sigkill_mid_run_keeps_previous_outputs_and_rerun_matches() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Run 1: small input, published.
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let l1 = landing_with_rows(&small, 500);
    let ics1 = ics(&small, &l1);
    assert!(run(&ics1, &out).status().unwrap().success());
    let before = snapshot(&out.join("current/"));
    let current_before = std::fs::read_link(out.join("current")).unwrap();

    // Run 2: a large input, killed once it has started writing.
    let big = dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let l2 = landing_with_rows(&big, 400_000);
    let ics2 = ics(&big, &l2);
    let mut child = run(&ics2, &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut killed_mid_run = false;
    while start.elapsed() < Duration::from_secs(120) {
        if has_parquet(&out.join(".staging")) {
            child.kill().unwrap(); // SIGKILL on Unix
            killed_mid_run = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait();
    assert!(
        killed_mid_run,
        "the run finished before it could be killed; make the input larger"
    );
    assert_eq!(
        std::fs::read_link(out.join("current")).unwrap(),
        current_before,
        "current still points at run 1"
    );
    assert_eq!(
        snapshot(&out.join("current/")),
        before,
        "run 1's outputs are unchanged"
    );

    // The killed run left its staging directory, with its owner recorded.
    let stale = staging_dirs(&out);
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].join(staging::OWNER_FILE).exists());
    // A staging directory of a run that is still going (this test process) must survive.
    let live = out
        .join(".staging")
        .join(format!("feedface-{}", std::process::id()));
    staging::create(&live, "now").unwrap();

    // Rerun to completion: it removes the killed run's directory and says so.
    let rerun = run(&ics2, &out).output().unwrap();
    assert!(rerun.status.success());
    let log = String::from_utf8_lossy(&rerun.stderr);
    assert!(
        log.contains("removed the staging directory of a run that is no longer running")
            && log.contains(&stale[0].display().to_string()),
        "{log}"
    );
    assert_eq!(
        staging_dirs(&out),
        vec![live.clone()],
        "no stale staging dir"
    );
    std::fs::remove_dir_all(&live).unwrap();
    // The published outputs are whole: current is the rerun, reconciled, and readable.
    let published: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(published["sources"][0]["reconciled"], true);
    assert!(
        !out.join("current/.owner").exists(),
        "the marker is not published"
    );

    // Compare with an uninterrupted run of the same input.
    let clean = dir.path().join("clean");
    assert!(run(&ics2, &clean).status().unwrap().success());
    let a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(clean.join("run.json")).unwrap()).unwrap();
    assert_eq!(a["run_id"], b["run_id"]);
    assert_eq!(a["sources"][0]["rows_read"], 400_000);
    // What the previous good load was differs by history (`out` had run 1, `clean` had
    // nothing); everything else is the same.
    let without_history = |v: &serde_json::Value| {
        let mut v = v["sources"].clone();
        for s in v.as_array_mut().unwrap() {
            let o = s.as_object_mut().unwrap();
            o.remove("baseline");
            o.remove("row_change");
        }
        v
    };
    assert_eq!(
        without_history(&a),
        without_history(&b),
        "same counts, hits and samples"
    );
    for t in ["silver", "identity", "quarantine"] {
        assert_eq!(
            super::run_ics::rows_of(&out.join(t)),
            super::run_ics::rows_of(&clean.join(t)),
            "{t}"
        );
    }
    assert!(
        std::fs::read_dir(out.join("runs")).unwrap().count() >= 2,
        "run 1 is kept under runs/"
    );
}
