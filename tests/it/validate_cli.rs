//! `onboard validate` on the repository's manifests and on the bad-manifest fixtures:
//! every fixture exits 1 with its expected code at its expected line:col, and its human
//! rendering is pinned by a snapshot.

use crate::util::{code, onboard, stdout};

/// fixture → (code, line, column) that must be among its diagnostics.
const EXPECTED: &[(&str, &str, usize, usize)] = &[
    ("alias_bomb", "ONB0004", 4, 8),
    ("bad_date_format", "ONB0211", 11, 47),
    ("bad_format_enum", "ONB0104", 6, 13),
    ("const_not_in_value_set", "ONB0206", 12, 21),
    ("const_type_conflict", "ONB0205", 11, 31),
    ("csv_options_wrong_format", "ONB0104", 7, 5),
    ("derived_field", "ONB0213", 12, 7),
    ("duplicate_key", "ONB0005", 14, 7),
    ("duplicate_rule_id", "ONB0404", 17, 9),
    ("identifier_in_analytics", "ONB0202", 10, 7),
    ("identity_twice", "ONB0204", 16, 7),
    ("in_range_bad_bound", "ONB0402", 16, 54),
    ("manifest_version_2", "ONB0105", 1, 19),
    ("map_file_bad_target", "ONB0206", 12, 38),
    ("map_file_missing", "ONB0207", 12, 38),
    ("merge_key", "ONB0004", 5, 5),
    ("missing_maps_to", "ONB0103", 4, 3),
    ("missing_provider_setting", "ONB0103", 2, 1),
    ("misspelt_field", "ONB0202", 11, 7),
    ("no_value_source", "ONB0208", 14, 7),
    ("on_fail_invalid", "ONB0104", 16, 63),
    ("path_escape", "ONB0701", 5, 11),
    ("required_not_mapped", "ONB0203", 9, 5),
    ("rule_and_expr", "ONB0405", 16, 9),
    ("rule_bad_param", "ONB0402", 16, 46),
    ("rule_column_misspelt", "ONB0215", 16, 40),
    ("rule_column_not_text", "ONB0216", 16, 40),
    ("rule_field_not_mapped", "ONB0403", 16, 34),
    ("rule_param_bad_regex", "ONB0402", 16, 60),
    ("secret", "ONB0702", 2, 13),
    ("sql_not_boolean", "ONB0304", 16, 31),
    ("sql_parse", "ONB0301", 14, 33),
    ("sql_unknown_column", "ONB0302", 14, 33),
    ("sql_unknown_function", "ONB0303", 14, 33),
    ("template_missing_param", "ONB0502", 4, 1),
    ("threshold_out_of_range", "ONB0104", 15, 40),
    ("two_documents", "ONB0006", 18, 1),
    ("type_conflict_expr", "ONB0205", 11, 30),
    ("type_conflict_parse_date", "ONB0205", 12, 28),
    ("unknown_column", "ONB0210", 13, 25),
    ("unknown_entity", "ONB0201", 8, 14),
    ("unknown_mapping_key", "ONB0101", 14, 27),
    ("unknown_rule", "ONB0401", 16, 17),
    ("unknown_template", "ONB0501", 3, 7),
    ("unknown_top_key", "ONB0101", 3, 1),
    ("unknown_transform", "ONB0209", 13, 46),
    ("unused_param_warning", "ONB0504", 4, 29),
    ("value_map_outside", "ONB0206", 12, 46),
    ("wrong_type_columns", "ONB0102", 7, 14),
    ("yaml_syntax", "ONB0003", 8, 12),
];

fn fixture(name: &str) -> String {
    format!("tests/fixtures/manifests/bad/{name}.yaml")
}

#[test]
fn repository_manifests_validate_clean() {
    let o = onboard(&["validate", "providers/"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("ok: no problems"), "{}", stdout(&o));
}

#[test]
fn every_bad_fixture_is_listed_and_at_least_thirty() {
    let mut on_disk: Vec<String> =
        std::fs::read_dir(crate::util::root().join("tests/fixtures/manifests/bad"))
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
    let mut listed: Vec<String> = EXPECTED.iter().map(|e| e.0.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "each fixture needs an expectation");
    assert!(EXPECTED.len() >= 30);
}

#[test]
fn bad_fixtures_report_expected_code_at_expected_position() {
    let mut failures = Vec::new();
    for (name, want_code, line, col) in EXPECTED {
        let o = onboard(&[
            "validate",
            "--format",
            "json",
            "--deny-warnings",
            &fixture(name),
        ]);
        if code(&o) != 1 {
            failures.push(format!("{name}: exit {} (want 1)", code(&o)));
            continue;
        }
        let diags: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).expect("json");
        let hit = diags.iter().any(|d| {
            d["code"] == *want_code && d["line"] == *line as u64 && d["column"] == *col as u64
        });
        if !hit {
            failures.push(format!(
                "{name}: no {want_code} at {line}:{col}; got {}",
                stdout(&o)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_fixture_human_renderings() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (name, _, _, _) in EXPECTED {
            let o = onboard(&["validate", &fixture(name)]);
            insta::assert_snapshot!(format!("validate__{name}"), stdout(&o));
        }
    });
}

#[test]
fn misspelt_source_column_in_a_rule_gets_did_you_mean() {
    let o = onboard(&["validate", &fixture("rule_column_misspelt")]);
    let out = stdout(&o);
    assert!(out.contains("error[ONB0215]"), "{out}");
    assert!(out.contains("rule_column_misspelt.yaml:16:40"), "{out}");
    assert!(out.contains("help: did you mean `PracticeCode`?"), "{out}");
}

#[test]
fn misspelt_canonical_field_gets_did_you_mean() {
    let o = onboard(&["validate", &fixture("misspelt_field")]);
    assert!(
        stdout(&o).contains("help: did you mean `date_of_birth`?"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn warnings_pass_unless_denied() {
    let f = fixture("unused_param_warning");
    assert_eq!(code(&onboard(&["validate", &f])), 0);
    assert_eq!(code(&onboard(&["validate", "--deny-warnings", &f])), 1);
}

#[test]
fn duplicate_provider_ids_across_files() {
    let o = onboard(&[
        "validate",
        "--format",
        "json",
        "tests/fixtures/manifests/dup_provider",
    ]);
    assert_eq!(code(&o), 1);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let d = diags
        .iter()
        .find(|d| d["code"] == "ONB0601")
        .expect("ONB0601");
    assert_eq!(d["file"], "tests/fixtures/manifests/dup_provider/b.yaml");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(17))
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("dup_provider/a.yaml:2")
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(code(&onboard(&["validate", "no/such/dir"])), 2);
    assert_eq!(
        code(&onboard(&["validate", "--format", "xml", "providers"])),
        2
    );
    assert_eq!(code(&onboard(&["frobnicate"])), 2);
}

#[test]
fn oversized_and_non_utf8_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(
        &big,
        format!("manifest_version: 1\n# {}\n", "x".repeat(2 << 20)),
    )
    .unwrap();
    let bin = dir.path().join("latin1.yaml");
    std::fs::write(&bin, b"manifest_version: 1\nprovider: { id: caf\xe9 }\n").unwrap();
    let o = onboard(&[
        "validate",
        "--format",
        "json",
        big.to_str().unwrap(),
        bin.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    let s = stdout(&o);
    assert!(
        s.contains("\"ONB0002\"") && s.contains("\"ONB0001\""),
        "{s}"
    );
}

#[test]
fn data_headers_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("gp/emis/F81001");
    std::fs::create_dir_all(&d).unwrap();
    // A header with one declared column missing (Postcode) and one extra (Email).
    std::fs::write(
        d.join("patients_2026.csv"),
        "\u{feff}PatientGuid,NHSNumber,Forenames,Surname,DateOfBirth,Sex,Email,EthnicOrigin\n",
    )
    .unwrap();
    let o = onboard(&[
        "validate",
        "--format",
        "json",
        "--data",
        dir.path().to_str().unwrap(),
        "providers/emis-f81001.yaml",
    ]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let diags: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"ONB0801"), "{codes:?}");
    assert!(codes.contains(&"ONB0802"), "{codes:?}");
    // registrations, observations and medications have no files here.
    assert_eq!(
        codes.iter().filter(|c| **c == "ONB0803").count(),
        3,
        "{codes:?}"
    );
    let missing = diags.iter().find(|d| d["code"] == "ONB0801").unwrap();
    assert!(missing["message"].as_str().unwrap().contains("`Postcode`"));
}
