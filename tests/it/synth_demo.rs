//! The synthetic ICS and the one-command demo: every source validates and ingests, the
//! faults land where they should, every record has its ground truth, and the same seed
//! gives the same files.

use std::path::Path;

use crate::util::{code, onboard_in, root, stdout};

fn sha_of_tree(dir: &Path) -> Vec<(String, String)> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let h = hex::encode(Sha256::digest(std::fs::read(&p).unwrap()));
                out.push((p.strip_prefix(base).unwrap().display().to_string(), h));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn synth_is_deterministic_and_in_native_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for d in [&a, &b] {
        let o = onboard_in(
            &root(),
            &[
                "synth",
                "--patients",
                "500",
                "--seed",
                "7",
                "--out",
                d.to_str().unwrap(),
            ],
        );
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(sha_of_tree(&a), sha_of_tree(&b), "same seed, same files");
    // Ten source systems, each in its own shape.
    for f in [
        "landing/gp/emis/F81001/patients_20261031.csv",
        "landing/gp/emis/F81001/medications_20261031.csv",
        "landing/gp/systmone/F81010/SRPrimaryCareMedication_20261031.csv",
        "landing/gp/systmone/F81010/SRPatient_20261031.csv",
        "landing/acute/RXX/apc_spells_2026.csv",
        "landing/acute/RXX/op_attendances_2026.csv",
        "landing/acute/RXX/ecds_2026.csv",
        "landing/community/RYA/csds_contacts_2026.csv",
        "landing/mental_health/RXA/mhsds_contacts_2026.ndjson",
        "landing/social_care/E08000035/asc_cld_2026.csv",
        "landing/urgent_care/nhs111/calls_2026.parquet",
        "landing/urgent_care/ambulance/incidents_2026.csv",
        "truth/person_records.csv",
        "truth/outcomes_90d.csv",
        "truth/condition_onsets.csv",
        "truth/emergency_admissions.csv",
        "reference/postcode_lsoa11_SYNTHETIC.csv",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let s1 = std::fs::read_to_string(a.join("landing/gp/systmone/F81010/SRPatient_20261031.csv"))
        .unwrap();
    assert!(
        s1.starts_with("Patient ID|NHS Number|"),
        "SystmOne is pipe-delimited with its own names"
    );
    truth_matches_the_extracts(&a);
    // Every postcode in the synthetic lookup maps to a real Leeds LSOA of IMD 2019.
    let lookup =
        onboard::refdata::load_postcode_lookup(&a.join("reference/postcode_lsoa11_SYNTHETIC.csv"))
            .unwrap();
    let imd = onboard::refdata::imd2019().unwrap();
    assert!(lookup.values().all(|l| {
        imd.iter()
            .any(|r| &r.lsoa11 == l && r.lad_code == "E08000035")
    }));
}

/// The truth has a row per person per truth as-of date, and for as-of dates whose 90
/// days end before the extract date its admissions are exactly the emergency spells in
/// the APC extract.
fn truth_matches_the_extracts(dir: &Path) {
    use std::collections::BTreeMap;
    let read = |p: &str| {
        let mut r = csv::Reader::from_path(dir.join(p)).unwrap();
        r.records().map(|x| x.unwrap()).collect::<Vec<_>>()
    };
    let outcomes = read("truth/outcomes_90d.csv");
    let dates: std::collections::BTreeSet<String> =
        outcomes.iter().map(|r| r[1].to_string()).collect();
    assert_eq!(dates.len(), 9, "{dates:?}");
    assert!(dates.contains("2024-10-31") && dates.contains("2026-10-31"));
    assert_eq!(outcomes.len(), 500 * 9);
    // Spell admissions by person (hospital number H<digits> = T<digits>).
    let mut spells: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in read("landing/acute/RXX/apc_spells_2026.csv") {
        let emergency = matches!(
            &s[9],
            "21" | "22" | "23" | "24" | "25" | "28" | "2A" | "2B" | "2C" | "2D"
        );
        assert!(&s[7][..10] <= "2026-10-31" && &s[7][..10] >= "2023-10-31");
        if emergency {
            let person = format!("T{}", &s[2][1..]);
            spells
                .entry(person)
                .or_default()
                .push(s[7][..10].to_string());
        }
    }
    let mut checked = 0;
    let (mut sum_risk, mut admitted) = (0.0, 0);
    for o in &outcomes {
        let risk: f64 = o[5].parse().unwrap();
        assert!((0.0..=1.0).contains(&risk), "{o:?}");
        let as_of = chrono::NaiveDate::parse_from_str(&o[1], "%Y-%m-%d").unwrap();
        let end = as_of + chrono::Duration::days(90);
        sum_risk += risk;
        admitted += usize::from(&o[3] != "0");
        if end > chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap() {
            continue;
        }
        let (from, to) = (as_of.to_string(), end.to_string());
        let in_window: Vec<&String> = spells
            .get(&o[0])
            .map(|v| v.iter().filter(|d| **d > from && **d <= to).collect())
            .unwrap_or_default();
        assert_eq!(in_window.len().to_string(), o[3], "{o:?}");
        assert_eq!(in_window.first().map(|d| d.as_str()).unwrap_or(""), &o[4]);
        checked += 1;
    }
    assert_eq!(checked, 500 * 8);
    // The probabilities are calibrated to what happened (loosely, 500 people).
    let n = outcomes.len() as f64;
    assert!(
        (sum_risk / n - admitted as f64 / n).abs() < 0.015,
        "{} vs {}",
        sum_risk / n,
        admitted as f64 / n
    );
    // Conditions appear in the GP record from onset.
    let onsets = read("truth/condition_onsets.csv");
    assert!(onsets.iter().any(|r| &r[2] < "2023-10-31"));
    assert!(
        onsets
            .iter()
            .any(|r| &r[2] >= "2023-10-31" && &r[2] <= "2026-10-31")
    );
}

#[test]
fn demo_runs_end_to_end_and_faults_land_where_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = onboard_in(
        &root(),
        &["demo", "--out", out.to_str().unwrap(), "--patients", "3000"],
    );
    assert_eq!(
        code(&o),
        0,
        "{}\n{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("dq_report.html"));
    assert!(out.join("reports/dq_report.html").is_file());
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let sources = run["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 20, "every source of every provider ran");
    let mut read = 0;
    for s in sources {
        assert_eq!(
            s["status"], "published",
            "{}/{}: {}",
            s["provider"], s["source"], s["failure"]
        );
        assert_eq!(s["reconciled"], true);
        assert!(
            s["rows_read"].as_u64().unwrap() > 0,
            "{}/{} read nothing",
            s["provider"],
            s["source"]
        );
        read += s["rows_read"].as_u64().unwrap();
    }
    // Every source record has a ground-truth person (ragged and duplicate rows too).
    let truth = std::fs::read_to_string(out.join("truth/person_records.csv")).unwrap();
    assert_eq!(truth.lines().count() as u64 - 1, read);
    // Faults: missing NHS numbers are warnings in social care, ragged or bad rows quarantine.
    let hits = |p: &str, s: &str, rule: &str| -> u64 {
        let src = sources
            .iter()
            .find(|x| x["provider"] == p && x["source"] == s)
            .unwrap();
        src["rule_hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["rule"] == rule)
            .map(|h| h["rows"].as_u64().unwrap())
            .sum()
    };
    assert!(hits("nhs111-nwas", "calls", "not_null_nhs_number") > 0);
    assert!(hits("acute-rxx-op", "attendances", "nhs_number_valid_nhs_number") > 0);
    let completeness = |p: &str, s: &str, f: &str| -> f64 {
        let src = sources
            .iter()
            .find(|x| x["provider"] == p && x["source"] == s)
            .unwrap();
        src["completeness"][f].as_f64().unwrap()
    };
    let gp = completeness("emis-f81001", "patients", "ethnic_category");
    let acute = completeness("acute-rxx", "spells", "identity.ethnic_category");
    assert!(
        (0.6..0.8).contains(&gp),
        "GP ethnicity about 70% recorded, got {gp}"
    );
    assert!(acute > 0.85, "acute ethnicity mostly recorded, got {acute}");

    // Linkage scored against the truth: the per-record keys (NHS number, else local id)
    // never merge two people, but split each person across systems.
    let o = onboard_in(
        &root(),
        &[
            "evaluate-linkage",
            "--out",
            out.to_str().unwrap(),
            "--truth",
            out.join("truth/person_records.csv").to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let score: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(score["records"].as_u64().unwrap(), read);
    assert_eq!(score["true_persons"], 3000);
    assert!(score["precision"].as_f64().unwrap() > 0.999, "{score}");
    let recall = score["recall"].as_f64().unwrap();
    assert!(recall > 0.2 && recall < 0.9, "{score}");
    assert_eq!(score["true_positive_pairs"], score["predicted_pairs"]);

    // Linking the candidates (same-record evidence plus Fellegi–Sunter on the rest)
    // joins most of each person's records without merging people. The example ICS
    // file, with the synthetic postcode lookup for address periods.
    let ics = std::fs::read_to_string(root().join("examples/northshire/ics.yaml")).unwrap();
    let ics = ics.replace(
        "providers: [../../providers]",
        &format!("providers: [{}]", root().join("providers").display()),
    ) + &format!(
        "  postcode_lsoa11: {}\n",
        out.join("reference/postcode_lsoa11_SYNTHETIC.csv")
            .display()
    );
    let ics_path = dir.path().join("ics.yaml");
    std::fs::write(&ics_path, ics).unwrap();
    // The demo linked already (same settings): linking again gives the same bytes.
    let demo_map = std::fs::read(out.join("linkage/link_map.parquet")).unwrap();
    let demo_model = std::fs::read(out.join("linkage/model.json")).unwrap();
    let o = onboard_in(
        &root(),
        &[
            "link",
            "--out",
            out.to_str().unwrap(),
            "--demo-key",
            "--ics",
            ics_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let map = out.join("linkage/link_map.parquet");
    assert!(
        std::fs::read(&map).unwrap() == demo_map,
        "linkage is reproducible"
    );
    assert!(std::fs::read(out.join("linkage/model.json")).unwrap() == demo_model);
    let o = onboard_in(
        &root(),
        &[
            "evaluate-linkage",
            "--out",
            out.to_str().unwrap(),
            "--truth",
            out.join("truth/person_records.csv").to_str().unwrap(),
            "--link-map",
            map.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let linked: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(linked["precision"].as_f64().unwrap() > 0.99, "{linked}");
    assert!(linked["recall"].as_f64().unwrap() > 0.95, "{linked}");
    assert!(
        linked["recall"].as_f64().unwrap() > recall + 0.3,
        "linkage adds recall: {linked}"
    );

    // Ethnicity before and after linkage, and the clerical-review queue.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("linkage/summary.json")).unwrap()).unwrap();
    let before = summary["ethnicity_recorded_before"].as_f64().unwrap();
    let after = summary["ethnicity_recorded_after"].as_f64().unwrap();
    assert!(
        after > before + 0.05,
        "linkage raises recorded ethnicity: {summary}"
    );
    assert!(out.join("linkage/report.html").is_file());
    let tiers = &summary["rows_by_provider_and_tier"];
    assert!(
        tiers["social-care-e08000035"]["probabilistic"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{tiers}"
    );
    assert!(
        tiers["emis-f81001"]["local_id"].as_u64().unwrap_or(0) > 0,
        "{tiers}"
    );
    // Records with neither an NHS number nor a local id (111, ambulance) are linked too.
    assert!(
        tiers["nhs111-nwas"]["probabilistic"].as_u64().unwrap_or(0) > 0,
        "{tiers}"
    );
    assert_eq!(summary["persons_with_several_nhs_numbers"], 0);
    // The model was trained: u from random pairs, m by EM in each session.
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("linkage/model.json")).unwrap()).unwrap();
    assert!(
        model["u_sample_pairs"].as_u64().unwrap() > 100_000,
        "{model}"
    );
    assert!(model["prior"].as_f64().unwrap() < -5.0, "{model}");
    for c in model["comparisons"].as_array().unwrap() {
        assert!(
            !c["m_estimated_in"].as_array().unwrap().is_empty(),
            "m of {} estimated by EM: {model}",
            c["field"]
        );
        let m: f64 = c["m"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert!((m - 1.0).abs() < 1e-3, "m sums to 1: {c}");
        let w = c["weights"].as_array().unwrap();
        assert!(
            w[0].as_f64().unwrap() > w[w.len() - 1].as_f64().unwrap(),
            "agreement outweighs disagreement: {c}"
        );
    }
    assert!(
        !summary["match_weight_histogram"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    let queue = std::fs::read_to_string(out.join("linkage/clerical_review.ndjson")).unwrap();
    assert_eq!(
        queue.lines().count() as u64,
        summary["clerical_review_pairs"].as_u64().unwrap()
    );
    for line in queue.lines() {
        let item: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = item["total"].as_f64().unwrap();
        assert!((3.17..6.64).contains(&t), "review band: {item}");
    }

    // The spine: one person row per linked person, events re-keyed to it.
    let persons = super::run_ics::rows_of(&out.join("linkage/spine/person"));
    assert_eq!(persons.len() as u64, summary["persons"].as_u64().unwrap());
    assert!(
        persons
            .iter()
            .all(|l| !l.contains("nhs_number") && l.contains("birth_year_month="))
    );
    let with_ethnicity = persons
        .iter()
        .filter(|l| !l.contains("ethnic_category=|"))
        .count() as f64
        / persons.len() as f64;
    assert!(
        with_ethnicity > before,
        "survivorship fills ethnicity: {with_ethnicity} vs {before}"
    );
    let events = super::run_ics::rows_of(&out.join("linkage/spine/care_event"));
    assert!(!events.is_empty());
    // Address periods: LSOAs, at most one current period per person.
    let periods = super::run_ics::rows_of(&out.join("linkage/spine/address_period"));
    assert!(periods.len() as u64 >= summary["persons"].as_u64().unwrap() * 9 / 10);
    assert!(
        periods.iter().all(|l| l.contains("lsoa11=E01")),
        "{:?}",
        &periods[..2]
    );
    let mut current: std::collections::BTreeMap<String, usize> = Default::default();
    for l in periods.iter().filter(|l| l.contains("current=true")) {
        let k = l.split('|').find(|c| c.starts_with("person_key=")).unwrap();
        *current.entry(k.to_string()).or_default() += 1;
    }
    assert!(current.values().all(|n| *n == 1));
    // The current registration is flagged once per registered person.
    let regs = super::run_ics::rows_of(&out.join("linkage/spine/registration"));
    assert!(regs.iter().any(|l| l.contains("current=true")));

    // Explain a link: two candidate keys of one person, comparison by comparison.
    let mut by_person: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in super::run_ics::rows_of(&out.join("linkage")) {
        let (mut cand, mut person) = (String::new(), String::new());
        for cell in line.split('|') {
            if let Some(v) = cell.strip_prefix("candidate_key=") {
                cand = v.to_string();
            }
            if let Some(v) = cell.strip_prefix("person_key=") {
                person = v.to_string();
            }
        }
        if !cand.is_empty() {
            by_person.entry(person).or_default().push(cand);
        }
    }
    let pair = by_person
        .values()
        .find(|v| v.len() >= 2)
        .expect("a person with two candidate keys");
    let o = onboard_in(
        &root(),
        &[
            "explain-match",
            "--out",
            out.to_str().unwrap(),
            "--demo-key",
            "--format",
            "json",
            &pair[0],
            &pair[1],
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let e: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The waterfall as people read it (the model is reproducible, so is this).
    let human = onboard_in(
        &root(),
        &[
            "explain-match",
            "--out",
            out.to_str().unwrap(),
            "--demo-key",
            &pair[0],
            &pair[1],
        ],
    );
    assert_eq!(code(&human), 0);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root().join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("explain_match__waterfall", stdout(&human)));
    let total: f64 = e["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["weight"].as_f64().unwrap())
        .sum();
    assert!((total - e["total"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(
        e["linked"].as_bool().unwrap(),
        total >= e["threshold"].as_f64().unwrap()
    );

    // Person keys are stable: relinking kept every key; a stricter model splits some
    // persons, and each keeps its key on one part.
    assert_eq!(summary["person_keys_kept"], summary["persons"], "{summary}");
    let strict = ics_path.with_file_name("strict.yaml");
    let text = std::fs::read_to_string(&ics_path)
        .unwrap()
        .replace("link_threshold: 6.64", "link_threshold: 40")
        .replace("review_threshold: 3.17", "review_threshold: 30");
    std::fs::write(&strict, text).unwrap();
    let o = onboard_in(
        &root(),
        &[
            "link",
            "--out",
            out.to_str().unwrap(),
            "--demo-key",
            "--ics",
            strict.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("linkage/summary.json")).unwrap()).unwrap();
    let (before_n, after_n) = (
        summary["persons"].as_u64().unwrap(),
        after["persons"].as_u64().unwrap(),
    );
    assert!(after_n > before_n, "fewer links, more persons: {after}");
    assert_eq!(after["person_keys_kept"].as_u64().unwrap(), before_n);
    assert_eq!(
        after["person_keys_new"].as_u64().unwrap(),
        after_n - before_n
    );
}

/// A linkage section that asks for the impossible is refused when the file loads.
#[test]
fn linkage_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    // `onboard link` with an ICS file whose linkage section is `linkage`.
    let link_with = |name: &str, linkage: &str| {
        let ics = dir.path().join(name);
        std::fs::write(
            &ics,
            format!("ics: {{ id: x, name: X }}\nproviders: []\nlanding: l\nlinkage:\n{linkage}"),
        )
        .unwrap();
        let o = onboard_in(
            &root(),
            &[
                "link",
                "--out",
                dir.path().to_str().unwrap(),
                "--demo-key",
                "--ics",
                ics.to_str().unwrap(),
            ],
        );
        assert_ne!(code(&o), 0);
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = link_with(
        "ics.yaml",
        "  link_threshold: 2\n  review_threshold: 5\n  comparisons:\n    - { field: sex, levels: [soundex] }\n",
    );
    assert!(
        err.contains("level `soundex` does not apply to `sex`"),
        "{err}"
    );
    assert!(
        err.contains("review_threshold (5) is above link_threshold (2)"),
        "{err}"
    );
    let err = link_with("unknown.yaml", "  blocking: [[shoe_size]]\n");
    assert!(err.contains("shoe_size"), "{err}");
}

#[test]
fn example_ics_file_loads() {
    let ics = onboard::ics::Ics::load(&root().join("examples/northshire/ics.yaml")).unwrap();
    assert_eq!(ics.file.ics.id, "northshire");
    assert!(
        ics.resolve(&ics.file.providers[0])
            .join("emis-f81001.yaml")
            .is_file()
    );
    assert_eq!(
        onboard::ics::parse_bytes(&ics.file.engine.memory_limit),
        Some(2 << 30)
    );
}
