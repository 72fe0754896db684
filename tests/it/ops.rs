//! Model operations on the synthetic ICS: three monthly refreshes after the scored
//! as-of date 2026-10-31, then its monitoring against the ingested admissions, checked
//! against the synthetic truth for the same people; stability of person keys, scores
//! and referrals; audited re-identification; referral files without identifiers; PSI
//! drift on a shifted fixture; the `operations:` checks; clear errors for monitoring
//! too early, a missing month and an unknown model version.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::util::{code, onboard, root, stdout};

fn cli(args: &[&str]) -> anyhow::Result<u8> {
    use clap::Parser;
    let cli =
        onboard::cli::Cli::try_parse_from(std::iter::once("onboard").chain(args.iter().copied()))?;
    onboard::cli::run(cli)
}

fn err(args: &[&str]) -> String {
    match cli(args) {
        Ok(c) => panic!("{args:?} succeeded with exit code {c}"),
        Err(e) => format!("{e:#}"),
    }
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn date(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Candidate key → person key of a link map.
fn link_map(out: &Path) -> BTreeMap<String, String> {
    let b = onboard::ops::read_parquet_dir(&out.join("linkage")).unwrap();
    let mut m = BTreeMap::new();
    for b in b {
        let c = onboard::ops::text_column(&b, "candidate_key").unwrap();
        let p = onboard::ops::text_column(&b, "person_key").unwrap();
        for (c, p) in c.into_iter().zip(p) {
            m.insert(c.unwrap(), p.unwrap());
        }
    }
    m
}

/// Truth admissions in (as_of, as_of + 90] → the person keys of their ingested spells:
/// the outcome of each person key by the synthetic truth.
fn truth_admitted_keys(out: &Path, as_of: &str) -> (BTreeSet<String>, usize) {
    let (from, to) = (date(as_of), date(as_of) + chrono::Duration::days(90));
    let mut spells: HashMap<String, String> = HashMap::new();
    let mut people = BTreeSet::new();
    let mut r = csv::Reader::from_path(out.join("truth/emergency_admissions.csv")).unwrap();
    for row in r.records() {
        let row = row.unwrap();
        let d = date(&row[2]);
        if d > from && d <= to {
            spells.insert(row[1].to_string(), row[0].to_string());
            people.insert(row[0].to_string());
        }
    }
    let dir = out.join("silver/care_event/provider=acute-rxx/source=spells");
    let map = link_map(out);
    let mut keys = BTreeSet::new();
    for b in onboard::ops::read_parquet_dir(&dir).unwrap() {
        let id = onboard::ops::text_column(&b, "source_record_id").unwrap();
        let cand = onboard::ops::text_column(&b, "person_key").unwrap();
        for (id, cand) in id.into_iter().zip(cand) {
            if let (Some(id), Some(cand)) = (id, cand)
                && spells.contains_key(&id)
            {
                keys.insert(map.get(&cand).cloned().unwrap_or(cand));
            }
        }
    }
    (keys, people.len())
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The identifiers in the identity zone: NHS numbers and postcodes (never inside any
/// text), names (never a word of one), dates of birth (never a whole value).
#[derive(Default)]
struct Identifiers {
    within: BTreeSet<String>,
    words: BTreeSet<String>,
    whole: BTreeSet<String>,
}

impl Identifiers {
    fn found_in(&self, column: &str, cell: &str) -> Option<String> {
        if let Some(x) = self.within.iter().find(|x| cell.contains(x.as_str())) {
            return Some(x.clone());
        }
        if let Some(w) = cell
            .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
            .find(|w| self.words.contains(*w))
        {
            return Some(w.to_string());
        }
        (column != "as_of_date" && self.whole.contains(cell)).then(|| cell.to_string())
    }
}

fn identifiers(out: &Path) -> Identifiers {
    let mut ids = Identifiers::default();
    let mut stack = vec![out.join("identity")];
    let mut dirs = BTreeSet::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                dirs.insert(p.parent().unwrap().to_path_buf());
            }
        }
    }
    for d in dirs {
        for b in onboard::ops::read_parquet_dir(&d).unwrap() {
            let col = |c: &str| -> Vec<String> {
                onboard::ops::text_column(&b, c)
                    .map(|v| v.into_iter().flatten().filter(|s| s.len() >= 3).collect())
                    .unwrap_or_default()
            };
            ids.within.extend(col("nhs_number"));
            ids.within.extend(col("postcode"));
            ids.words.extend(col("given_name"));
            ids.words.extend(col("family_name"));
            ids.whole.extend(col("date_of_birth"));
        }
    }
    assert!(ids.within.len() > 100 && ids.words.len() > 50 && ids.whole.len() > 100);
    ids
}

fn referral_files_hold_no_identifier(dir: &Path, ids: &Identifiers) {
    let mut r = csv::Reader::from_path(dir.join("referrals.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, onboard::ops::referrals::csv_header());
    let mut cells = 0;
    for row in r.records() {
        for (i, cell) in row.unwrap().iter().enumerate() {
            cells += 1;
            if let Some(id) = ids.found_in(&header[i], cell) {
                panic!("column {} holds identifier {id}: {cell}", header[i]);
            }
        }
    }
    assert!(cells > 0);
    fn strings(key: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::String(s) => out.push((key.to_string(), s.clone())),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(key, x, out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| strings(k, x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    strings("", &json(&dir.join("referrals.json")), &mut all);
    for (k, s) in &all {
        assert!(
            ids.found_in(k, s).is_none(),
            "referrals.json {k} holds an identifier: {s}"
        );
    }
}

fn monitor_equals_truth(out: &Path, o: &str) {
    let m = json(&out.join("ops/monitor/as_of=2026-10-31/monitor.json"));
    let version = m["model_version"].as_str().unwrap();
    let scores = onboard::ops::read_scores(out, date("2026-10-31"), version).unwrap();
    let (admitted, true_people) = truth_admitted_keys(out, "2026-10-31");
    assert_eq!(m["persons_not_found"], 0);
    let p: Vec<f64> = scores.iter().map(|s| s.probability).collect();
    let y: Vec<bool> = scores
        .iter()
        .map(|s| admitted.contains(&s.person_key))
        .collect();
    let truth = onboard::risk::evaluation::evaluate(&p, &y, &[]);
    let at_k: Vec<onboard::risk::evaluation::AtK> =
        serde_json::from_value(m["evaluation"]["at_k"].clone()).unwrap();
    assert_eq!(
        at_k, truth.at_k,
        "recall@k and PPV@k: monitor against truth"
    );
    assert_eq!(
        m["evaluation"]["events"].as_u64().unwrap() as usize,
        truth.events
    );
    eprintln!(
        "monitor 2026-10-31: {} persons, {} admitted ({} true persons admitted), AUROC {:.3}, at_k {:?}",
        scores.len(),
        truth.events,
        true_people,
        truth.auroc,
        truth.at_k
    );
    // The HTML page has its plots inline, and the trend lists the date.
    let html =
        std::fs::read_to_string(out.join("ops/monitor/as_of=2026-10-31/monitor.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 5 && !html.contains("http://") || html.contains("xmlns")
    );
    assert!(!html.contains("<script"));
    let trend = json(&out.join("ops/monitor/trend.json"));
    assert_eq!(trend["points"][0]["as_of"], "2026-10-31");
    // `onboard monitor` again gives the same report.
    assert_eq!(
        cli(&["monitor", "--out", o, "--as-of", "2026-10-31"]).unwrap(),
        0
    );
    assert_eq!(
        json(&out.join("ops/monitor/as_of=2026-10-31/monitor.json")),
        m
    );
}

fn reidentification(out: &Path, o: &str, ids: &Identifiers) {
    let refs = json(&out.join(format!(
        "gold/referrals/as_of=2026-10-31/model={}/referrals.json",
        onboard::ops::scoring_version(out, date("2026-10-31"), None).unwrap()
    )));
    let list = refs["referrals"].as_array().unwrap();
    let first = &list[0];
    let key = first["person_key"].as_str().unwrap();
    let practice = first["practice"].as_str().unwrap();
    let other = ["F81001", "F81002", "F81010"]
        .into_iter()
        .find(|p| *p != practice)
        .unwrap();
    let base = [
        "reidentify",
        "--out",
        o,
        "--as-of",
        "2026-10-31",
        "--user",
        "nurse.a",
        "--purpose",
        "case review",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&a)
    };
    // SAFETY of the test: the env var is not set in the test environment.
    let e = format!(
        "{:#}",
        run(with(&["--practice", practice, "--person", key])).unwrap_err()
    );
    assert!(
        e.contains("refused") && e.contains("pseudonymisation key"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        run(with(&["--practice", other, "--person", key, "--demo-key"])).unwrap_err()
    );
    assert!(e.contains("outside the practice scope"), "{e}");
    let e = format!(
        "{:#}",
        run(with(&["--person", key, "--demo-key"])).unwrap_err()
    );
    assert!(e.contains("no practice scope"), "{e}");
    let wrong = out.join("wrong.key");
    std::fs::write(
        &wrong,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let e = format!(
        "{:#}",
        run(with(&[
            "--practice",
            practice,
            "--person",
            key,
            "--key-file",
            wrong.to_str().unwrap()
        ]))
        .unwrap_err()
    );
    assert!(
        e.contains("not the key this run was pseudonymised with"),
        "{e}"
    );
    // Granted: the NHS number and name behind the key, from the identity zone.
    let req = onboard::ops::reidentify::Request {
        out: out.to_path_buf(),
        as_of: date("2026-10-31"),
        model: None,
        practices: vec![practice.to_string()],
        persons: vec![key.to_string()],
        user: "nurse.a".into(),
        purpose: "case review".into(),
    };
    let found =
        onboard::ops::reidentify::reidentify(&req, Ok(onboard::pseudonymise::Key::demo())).unwrap();
    assert_eq!(found.len(), 1);
    let nhs = found[0].nhs_number.clone().expect("an NHS number");
    assert!(ids.within.contains(&nhs));
    assert!(found[0].family_name.is_some());
    let audit = onboard::ops::reidentify::read_audit(out).unwrap();
    let outcomes: Vec<&str> = audit.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["refused", "refused", "refused", "refused", "granted"]
    );
    assert!(
        audit
            .iter()
            .all(|a| a.user == "nurse.a" && a.as_of == "2026-10-31")
    );
    assert_eq!(audit[4].persons_reidentified, [key.to_string()]);
    assert!(audit[0].reason.as_deref().unwrap().contains("key"));
    // The audit log holds keys, never identifiers.
    let log = std::fs::read_to_string(onboard::ops::reidentify::audit_path(out)).unwrap();
    assert!(!log.contains(&nhs));
    // Nothing under gold/ holds the identifier.
    let mut stack = vec![out.join("gold")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json" || x == "csv") {
                assert!(
                    !std::fs::read_to_string(&p).unwrap().contains(&nhs),
                    "{}",
                    p.display()
                );
            }
        }
    }
}

/// Refreshing the last month again gives the same run, keys, scores and referrals.
fn rerun_is_identical(out: &Path, ics: &str) {
    let v = onboard::ops::scoring_version(out, date("2027-01-31"), None).unwrap();
    let files = [
        format!("gold/risk_scores/as_of=2027-01-31/model={v}/part-0.parquet"),
        format!("gold/referrals/as_of=2027-01-31/model={v}/referrals.json"),
        format!("gold/referrals/as_of=2027-01-31/model={v}/referrals.csv"),
        "linkage/link_map.parquet".into(),
    ];
    let before: Vec<Vec<u8>> = files.iter().map(|f| read(&out.join(f))).collect();
    let history = json(&out.join("ops/refreshes.json"));
    assert_eq!(
        cli(&[
            "refresh",
            "--ics",
            ics,
            "--demo-key",
            "--month",
            "2027-01-31"
        ])
        .unwrap(),
        0
    );
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&read(&out.join(f)), b, "{f} changed on a rerun");
    }
    assert_eq!(json(&out.join("ops/refreshes.json")), history);
}

/// A person whose records did not change keeps their key, and their features, score
/// and referral at the base as-of date come out the same from the later data.
fn stable_where_nothing_changed(
    out: &Path,
    o: &str,
    ics: &str,
    base_map: &BTreeMap<String, String>,
) {
    let now = link_map(out);
    let mut persons: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut persons_now: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (c, p) in base_map {
        persons.entry(p).or_default().insert(c);
    }
    for (c, p) in &now {
        persons_now.entry(p).or_default().insert(c);
    }
    let (mut same, mut kept) = (0, 0);
    for (p, cands) in &persons {
        // The same candidate keys (and maybe new records): the same person key.
        let first = cands.iter().next().unwrap();
        let p_now = now.get(*first).map(String::as_str);
        if p_now
            .and_then(|q| persons_now.get(q))
            .is_some_and(|c| cands.is_subset(c))
        {
            same += 1;
            kept += usize::from(p_now == Some(*p));
        }
    }
    assert!(
        same * 100 >= persons.len() * 99,
        "{same} of {} persons kept their records",
        persons.len()
    );
    assert_eq!(kept, same, "a person whose records stayed kept the key");
    // Features of 2026-10-31 recomputed from the 2027-01-31 data.
    let v = onboard::ops::scoring_version(out, date("2026-10-31"), None).unwrap();
    let scores_before = onboard::ops::read_scores(out, date("2026-10-31"), &v).unwrap();
    let refs_before = onboard::ops::referrals::read(out, date("2026-10-31"), &v).unwrap();
    let feats = |dir: &Path| -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for b in onboard::ops::read_parquet_dir(dir).unwrap() {
            let k = onboard::ops::text_column(&b, "person_key").unwrap();
            let cols: Vec<Vec<Option<String>>> = b
                .schema()
                .fields()
                .iter()
                .filter(|f| f.name() != "outcome_emergency_admission")
                .map(|f| onboard::ops::text_column(&b, f.name()).unwrap())
                .collect();
            for (i, k) in k.into_iter().enumerate() {
                m.insert(
                    k.unwrap(),
                    format!("{:?}", cols.iter().map(|c| &c[i]).collect::<Vec<_>>()),
                );
            }
        }
        m
    };
    let fdir = onboard::risk::features_dir(out, date("2026-10-31"));
    let f_before = feats(&fdir);
    assert_eq!(
        cli(&[
            "risk",
            "features",
            "--out",
            o,
            "--ics",
            ics,
            "--as-of",
            "2026-10-31"
        ])
        .unwrap(),
        0
    );
    let f_after = feats(&fdir);
    let unchanged: BTreeSet<&String> = f_before
        .iter()
        .filter(|(k, v)| f_after.get(*k) == Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        unchanged.len() * 100 >= f_before.len() * 99,
        "{} of {} unchanged",
        unchanged.len(),
        f_before.len()
    );
    assert_eq!(
        cli(&[
            "risk",
            "score",
            "--out",
            o,
            "--ics",
            ics,
            "--model",
            &v,
            "--as-of",
            "2026-10-31"
        ])
        .unwrap(),
        0
    );
    assert_eq!(
        cli(&[
            "referrals",
            "--out",
            o,
            "--ics",
            ics,
            "--as-of",
            "2026-10-31",
            "--model",
            &v
        ])
        .unwrap(),
        0
    );
    let scores_after: HashMap<String, onboard::ops::ScoreRow> =
        onboard::ops::read_scores(out, date("2026-10-31"), &v)
            .unwrap()
            .into_iter()
            .map(|s| (s.person_key.clone(), s))
            .collect();
    for s in &scores_before {
        if unchanged.contains(&s.person_key) {
            assert_eq!(
                scores_after[&s.person_key].probability, s.probability,
                "{}",
                s.person_key
            );
        }
    }
    let refs_after = onboard::ops::referrals::read(out, date("2026-10-31"), &v).unwrap();
    let after: HashMap<&str, &onboard::ops::referrals::Referral> = refs_after
        .referrals
        .iter()
        .map(|r| (r.person_key.as_str(), r))
        .collect();
    let mut same_referral = 0;
    for r in &refs_before.referrals {
        let moved = scores_after
            .get(&r.person_key)
            .is_none_or(|s| s.rank != r.rank);
        if unchanged.contains(&r.person_key) && !moved {
            assert_eq!(
                after.get(r.person_key.as_str()),
                Some(&r),
                "referral of {}",
                r.person_key
            );
            same_referral += 1;
        }
    }
    eprintln!(
        "stability: {same} of {} persons kept their records and keys; {} of {} feature rows at 2026-10-31 unchanged; {same_referral} of {} referrals identical",
        persons.len(),
        unchanged.len(),
        f_before.len(),
        refs_before.referrals.len()
    );
    assert!(same_referral * 100 >= refs_before.referrals.len() * 95);
}

#[test]
fn monthly_refreshes_monitor_refer_and_reidentify() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ics");
    let o = out.to_str().unwrap();
    let t = std::time::Instant::now();
    assert_eq!(
        cli(&["demo", "--out", o, "--patients", "1200", "--months", "3"]).unwrap(),
        0
    );
    eprintln!(
        "demo with 3 monthly deliveries: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let ics_path = out.join("ics.yaml");
    let base = std::fs::read_to_string(&ics_path).unwrap();
    std::fs::write(
        &ics_path,
        format!("{base}operations:\n  referral: {{ top_percent: 2 }}\n"),
    )
    .unwrap();
    let ics = ics_path.to_str().unwrap();
    let base_map = link_map(&out);
    let ids = identifiers(&out);
    // Too early: the base date's window has not passed in the data.
    let e = err(&["monitor", "--out", o, "--ics", ics, "--as-of", "2026-10-31"]);
    assert!(
        e.contains("ends on 2027-01-29") && e.contains("data end on 2026-10-31"),
        "{e}"
    );
    // Referrals of the base date, written by hand, with no identifier.
    assert_eq!(
        cli(&[
            "referrals",
            "--out",
            o,
            "--ics",
            ics,
            "--as-of",
            "2026-10-31"
        ])
        .unwrap(),
        0
    );
    let v0 = onboard::ops::scoring_version(&out, date("2026-10-31"), None).unwrap();
    referral_files_hold_no_identifier(
        &onboard::ops::referrals::referrals_dir(&out, date("2026-10-31"), &v0),
        &ids,
    );
    // A month skipped, a delivery missing.
    let e = err(&[
        "refresh",
        "--ics",
        ics,
        "--demo-key",
        "--month",
        "2026-12-31",
    ]);
    assert!(e.contains("skips 2026-11-30"), "{e}");
    let nov = out.join("deliveries/2026-11-30");
    let aside = out.join("deliveries/held-back");
    std::fs::rename(&nov, &aside).unwrap();
    let e = err(&["refresh", "--ics", ics, "--demo-key"]);
    assert!(
        e.contains("no delivery for 2026-11-30") && e.contains("2026-12-31"),
        "{e}"
    );
    std::fs::rename(&aside, &nov).unwrap();
    for month in ["2026-11-30", "2026-12-31", "2027-01-31"] {
        let t = std::time::Instant::now();
        assert_eq!(
            cli(&["refresh", "--ics", ics, "--demo-key"]).unwrap(),
            0,
            "{month}"
        );
        eprintln!("refresh {month}: {:.1} s", t.elapsed().as_secs_f64());
    }
    let history = json(&out.join("ops/refreshes.json"));
    let months: Vec<&str> = history["refreshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["extract_date"].as_str().unwrap())
        .collect();
    assert_eq!(months, ["2026-11-30", "2026-12-31", "2027-01-31"]);
    // The base date is monitored by the refresh whose data cover its 90 days.
    assert_eq!(
        history["refreshes"][2]["monitored"][0]["as_of"],
        "2026-10-31"
    );
    assert!(
        history["refreshes"][0]["monitored"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Scores say which model made them.
    for r in history["refreshes"].as_array().unwrap() {
        let v = r["model_version"].as_str().unwrap();
        let d = r["extract_date"].as_str().unwrap();
        assert!(
            out.join(format!("gold/risk_scores/as_of={d}/model={v}"))
                .is_dir()
        );
        assert!(r["drift_from"].is_string());
    }
    monitor_equals_truth(&out, o);
    // Too early for a later date; an unknown model version.
    let e = err(&["monitor", "--out", o, "--as-of", "2026-12-31"]);
    assert!(e.contains("ends on 2027-03-31"), "{e}");
    let e = err(&[
        "monitor",
        "--out",
        o,
        "--as-of",
        "2026-10-31",
        "--model",
        "logistic-20260430-00000000",
    ]);
    assert!(
        e.contains("does not exist") && e.contains("versions:"),
        "{e}"
    );
    let e = err(&["promote", "--out", o, "logistic-20260430-00000000"]);
    assert!(e.contains("does not exist"), "{e}");
    for d in ["2026-11-30", "2027-01-31"] {
        let v = onboard::ops::scoring_version(&out, date(d), None).unwrap();
        referral_files_hold_no_identifier(
            &onboard::ops::referrals::referrals_dir(&out, date(d), &v),
            &ids,
        );
    }
    reidentification(&out, o, &ids);
    rerun_is_identical(&out, ics);
    stable_where_nothing_changed(&out, o, ics, &base_map);
}

fn features_batch(n: usize, shift: f64) -> RecordBatch {
    let mut x: u64 = 12345;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as f64 / (1u64 << 31) as f64
    };
    let keys: Vec<String> = (0..n).map(|i| format!("{i:032x}")).collect();
    let age: Vec<f64> = (0..n).map(|_| (next() * 90.0).floor()).collect();
    let admissions: Vec<f64> = (0..n)
        .map(|_| (next() * next() * 3.0).floor() + shift)
        .collect();
    let charlson: Vec<f64> = (0..n).map(|_| (next() * 4.0).floor()).collect();
    let cols: Vec<ArrayRef> = vec![
        std::sync::Arc::new(StringArray::from(keys)),
        std::sync::Arc::new(Float64Array::from(age)),
        std::sync::Arc::new(Float64Array::from(admissions)),
        std::sync::Arc::new(Float64Array::from(charlson)),
    ];
    let schema = Schema::new(vec![
        Field::new("person_key", DataType::Utf8, false),
        Field::new("age", DataType::Float64, false),
        Field::new("emergency_admissions_0_3m", DataType::Float64, false),
        Field::new("charlson", DataType::Float64, false),
    ]);
    RecordBatch::try_new(std::sync::Arc::new(schema), cols).unwrap()
}

fn write_features(out: &Path, as_of: &str, b: RecordBatch) -> PathBuf {
    let dir = out.join(format!("gold/features/as_of={as_of}"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, b.schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    dir
}

#[test]
fn psi_flags_a_deliberately_shifted_feature() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    write_features(out, "2026-10-31", features_batch(3000, 0.0));
    // The same people a month on, with one feature shifted by one admission.
    let mut later = features_batch(3000, 0.0);
    let shifted = features_batch(3000, 1.0);
    later = RecordBatch::try_new(
        later.schema(),
        vec![
            later.column(0).clone(),
            later.column(1).clone(),
            shifted.column(2).clone(),
            later.column(3).clone(),
        ],
    )
    .unwrap();
    write_features(out, "2026-11-30", later);
    let o = out.to_str().unwrap();
    let args = [
        "drift",
        "--out",
        o,
        "--from",
        "2026-10-31",
        "--to",
        "2026-11-30",
        "--format",
        "json",
    ];
    let r = onboard(&args);
    assert_eq!(code(&r), 1, "a flagged feature exits 1: {}", stdout(&r));
    let v: serde_json::Value = serde_json::from_str(&stdout(&r)).unwrap();
    assert_eq!(
        v["flagged"],
        serde_json::json!(["emergency_admissions_0_3m"])
    );
    let by: BTreeMap<String, f64> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().unwrap().to_string(),
                f["psi"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(by["emergency_admissions_0_3m"] >= 0.25, "{by:?}");
    assert_eq!(by["age"], 0.0);
    assert_eq!(by["charlson"], 0.0);
    assert!(out.join("ops/drift/as_of=2026-11-30/drift.json").is_file());
    // No shift: nothing flagged, exit 0.
    write_features(out, "2026-12-31", features_batch(3000, 0.0));
    let r = onboard(&[
        "drift",
        "--out",
        o,
        "--from",
        "2026-10-31",
        "--to",
        "2026-12-31",
    ]);
    assert_eq!(code(&r), 0, "{}", stdout(&r));
}

#[test]
fn operations_settings_are_checked_where_they_are_written() {
    let f = "tests/fixtures/ops/bad_operations.yaml";
    let o = onboard(&["validate", "--format", "json", f]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let diags: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let got: BTreeSet<(String, u64)> = diags
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [
        ("ONB0930", 9),
        ("ONB0931", 10),
        ("ONB0932", 11),
        ("ONB0933", 12),
        ("ONB0934", 13),
    ] {
        assert!(
            got.contains(&(want.0.to_string(), want.1)),
            "{want:?} in {got:?}"
        );
    }
    let text = std::fs::read_to_string(root().join(f)).unwrap();
    assert!(text.contains("very_hgh"));
    assert!(
        diags
            .iter()
            .any(|d| d["help"].as_str().is_some_and(|h| h.contains("very_high"))),
        "did-you-mean for the band: {diags:?}"
    );
}
