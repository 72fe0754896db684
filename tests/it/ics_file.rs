//! The ICS file as a first-class document: broken ICS files under
//! `tests/fixtures/ics/bad/` are reported at their line and column with an `ONB09xx` code
//! in every output format (human and SARIF pinned by snapshots); `onboard validate`
//! recognises ICS files and checks the manifests they name; the published JSON Schema
//! equals the generated one; `Ics::load` returns every problem as located diagnostics.

use crate::util::{code, onboard, onboard_in, root, stdout};

/// fixture → (code, line, column) that must be among its diagnostics.
const EXPECTED: &[(&str, &str, usize, usize)] = &[
    ("misspelt_linkage_key", "ONB0901", 6, 3),
    ("misspelt_top_key", "ONB0901", 5, 1),
    ("review_above_link", "ONB0910", 7, 21),
    ("unknown_provider_dir", "ONB0905", 4, 5),
    ("wrong_type", "ONB0902", 7, 22),
];

fn fixture(name: &str) -> String {
    format!("tests/fixtures/ics/bad/{name}.yaml")
}

fn json_diagnostics(args: &[&str]) -> Vec<serde_json::Value> {
    let o = onboard(args);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    serde_json::from_str(&stdout(&o)).expect("json")
}

#[test]
fn every_bad_ics_fixture_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/ics/bad"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".yaml"))
                .map(String::from)
        })
        .collect();
    on_disk.sort();
    let listed: Vec<String> = EXPECTED.iter().map(|e| e.0.to_string()).collect();
    assert_eq!(on_disk, listed, "each fixture needs an expectation");
}

#[test]
fn bad_ics_files_report_code_at_line_and_column() {
    for (name, want, line, col) in EXPECTED {
        let diags = json_diagnostics(&["validate", "--format", "json", &fixture(name)]);
        // Only the ICS-file problem: the file is not mistaken for a provider manifest.
        assert_eq!(diags.len(), 1, "{name}: {diags:?}");
        let d = &diags[0];
        assert_eq!(
            (d["code"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
            (Some(*want), Some(*line as u64), Some(*col as u64)),
            "{name}: {d}"
        );
        assert_eq!(d["file"], fixture(name).as_str());
    }
}

#[test]
fn bad_ics_renderings_human_and_sarif() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (name, _, _, _) in EXPECTED {
            let human = onboard(&["validate", &fixture(name)]);
            insta::assert_snapshot!(format!("ics_file__{name}"), stdout(&human));
            let sarif = onboard(&["validate", "--format", "sarif", &fixture(name)]);
            insta::assert_snapshot!(format!("ics_file__{name}__sarif"), stdout(&sarif));
        }
    });
}

#[test]
fn did_you_mean_for_misspelt_keys_and_paths() {
    for (name, hint) in [
        ("misspelt_top_key", "did you mean `reference_date`?"),
        ("misspelt_linkage_key", "did you mean `link_threshold`?"),
        ("unknown_provider_dir", "did you mean `providers`?"),
    ] {
        let o = onboard(&["validate", &fixture(name)]);
        assert!(stdout(&o).contains(hint), "{name}: {}", stdout(&o));
    }
}

#[test]
fn every_output_format_carries_the_ics_diagnostic() {
    let f = fixture("review_above_link");
    for (format, needle) in [
        ("human", format!("{f}:7:21")),
        ("json", "\"code\": \"ONB0910\"".to_string()),
        (
            "github",
            format!("::error file={f},line=7,col=21,title=ONB0910::"),
        ),
        ("sarif", "\"ruleId\": \"ONB0910\"".to_string()),
        ("junit", "7:21: error [ONB0910]".to_string()),
    ] {
        let o = onboard(&["validate", "--format", format, &f]);
        assert_eq!(code(&o), 1, "{format}");
        assert!(stdout(&o).contains(&needle), "{format}: {}", stdout(&o));
    }
}

#[test]
fn example_ics_file_validates_with_the_manifests_it_names() {
    let o = onboard(&[
        "validate",
        "--format",
        "junit",
        "examples/northshire/ics.yaml",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let junit = stdout(&o);
    assert!(
        junit.contains("name=\"examples/northshire/ics.yaml\""),
        "{junit}"
    );
    let names: Vec<String> = std::fs::read_dir(root().join("providers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    let manifests = names.len();
    for name in names {
        let shown = format!("name=\"providers/{name}\"");
        assert!(junit.contains(&shown), "{name} not checked: {junit}");
    }
    assert!(
        junit.contains(&format!("tests=\"{}\"", manifests + 1)),
        "{junit}"
    );
    let o = onboard(&["validate", "--ics", "tests/fixtures/ics/ics.yaml"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("(4 files checked)"), "{}", stdout(&o));
}

#[test]
fn manifests_named_by_an_ics_file_are_checked_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let ics = dir.path().join("ics.yaml");
    let bad = root().join("tests/fixtures/manifests/bad/misspelt_field.yaml");
    std::fs::write(
        &ics,
        format!(
            "ics: {{ id: t, name: T }}\nproviders: [\"{}\"]\nlanding: l\n",
            bad.display()
        ),
    )
    .unwrap();
    let o = onboard_in(
        &root(),
        &["validate", "--format", "json", ics.to_str().unwrap()],
    );
    assert_eq!(code(&o), 1);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        diags
            .iter()
            .any(|d| d["code"] == "ONB0202" && d["line"] == 11 && d["column"] == 7),
        "{diags:?}"
    );
}

#[test]
fn ics_flag_checks_a_file_that_does_not_look_like_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("deploy.yaml");
    std::fs::write(&f, "icss: { id: t, name: T }\nproviders: []\nlanding: l\n").unwrap();
    let o = onboard(&["validate", "--format", "json", "--ics", f.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let codes: Vec<&str> = diags.iter().filter_map(|d| d["code"].as_str()).collect();
    assert_eq!(codes, ["ONB0901", "ONB0903"], "{diags:?}");
    assert!(
        diags[0]["help"]
            .as_str()
            .is_some_and(|h| h.contains("`ics`")),
        "{diags:?}"
    );
}

#[test]
fn ics_load_returns_every_problem_located() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ics.yaml");
    std::fs::write(
        &f,
        "ics: { id: t, name: T }\nproviders: [nowhere]\nlanding: l\nreference_date: 31/10/2026\n\
         engine: { memory_limit: lots }\nlinkage:\n  review_threshold: 9\n  comparisons:\n    - { field: sex, levels: [soundex] }\n",
    )
    .unwrap();
    let e = onboard::ics::Ics::load(&f).unwrap_err();
    let got: Vec<(&str, usize, usize)> = e
        .diagnostics
        .iter()
        .map(|d| (d.code, d.line(), d.column()))
        .collect();
    assert_eq!(
        got,
        [
            ("ONB0905", 2, 13),
            ("ONB0907", 4, 17),
            ("ONB0908", 5, 25),
            ("ONB0910", 7, 21),
            ("ONB0913", 9, 30),
        ]
    );
    let text = e.to_string();
    assert!(text.contains("ics.yaml:7:21"), "{text}");
    assert!(text.contains("5 errors, 0 warnings in 1 file"), "{text}");
    // `onboard run` shows the same located diagnostics.
    let o = onboard(&["run", "--ics", f.to_str().unwrap(), "--demo-key"]);
    assert_ne!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error[ONB0905]") && err.contains("ics.yaml:2:13"),
        "{err}"
    );
}

#[test]
fn committed_ics_schema_equals_generated() {
    let committed = std::fs::read_to_string(root().join("schemas/ics.schema.json")).unwrap();
    assert_eq!(
        committed,
        onboard::ics::json_schema_text(),
        "run `onboard schema --ics > schemas/ics.schema.json`"
    );
    let o = onboard(&["schema", "--ics"]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), committed);
}

#[test]
fn ics_schema_is_valid_and_accepts_the_repository_ics_files() {
    let schema: serde_json::Value =
        serde_json::from_str(&onboard::ics::json_schema_text()).unwrap();
    assert!(jsonschema::meta::is_valid(&schema));
    let validator = jsonschema::validator_for(&schema).unwrap();
    for f in [
        "examples/northshire/ics.yaml",
        "tests/fixtures/ics/ics.yaml",
        "tests/fixtures/ics/ics-strict.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let value = onboard::manifest::source::parse_plain(f, &text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{f}: {errors:?}");
    }
    // and refuses a misspelt key the loader reports.
    let bad = std::fs::read_to_string(root().join(fixture("misspelt_linkage_key"))).unwrap();
    let value = onboard::manifest::source::parse_plain("bad", &bad).unwrap();
    assert!(!validator.is_valid(&value));
}

#[test]
fn provider_ids_are_unique_per_ics_not_across_deployments() {
    // Both ICS files name manifests with the ids acute-rxx, emis-f81001 and
    // systmone-f81010: two deployments, no conflict.
    let o = onboard(&[
        "validate",
        "examples/northshire/ics.yaml",
        "tests/fixtures/ics/ics.yaml",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // Given directly, the same manifests are one set: the ids clash.
    let diags = json_diagnostics(&[
        "validate",
        "--format",
        "json",
        "providers",
        "tests/fixtures/ics/providers",
    ]);
    assert!(diags.iter().all(|d| d["code"] == "ONB0601"), "{diags:?}");
    assert_eq!(diags.len(), 3, "{diags:?}");
}

#[test]
fn a_finding_on_a_default_value_points_at_what_was_written() {
    // review_threshold is left at its default (3.17): the diagnostic points at the
    // link_threshold the file sets.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ics.yaml");
    std::fs::write(
        &f,
        "ics: { id: t, name: T }\nproviders: []\nlanding: l\nlinkage:\n  link_threshold: 2\n",
    )
    .unwrap();
    let e = onboard::ics::Ics::load(&f).unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!((d.code, d.line(), d.column()), ("ONB0910", 5, 19), "{e}");
    assert!(
        d.message
            .contains("review_threshold (3.17) is above link_threshold (2)")
    );
}
