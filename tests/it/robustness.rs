//! No input panics the reader or the validator (property tests over arbitrary bytes and
//! YAML-shaped text).

use onboard::diagnostics::{Diagnostics, SourceFile};
use proptest::prelude::*;

fn validate_text(text: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.yaml");
    std::fs::write(&p, text).unwrap();
    let opts = onboard::validate::Options {
        root: Some(crate::util::root()),
        ..Default::default()
    };
    let outcome = onboard::validate::validate_paths(&[p], &opts).unwrap();
    let sorted = outcome.diagnostics.into_sorted();
    for f in [
        onboard::diagnostics::Format::Human,
        onboard::diagnostics::Format::Sarif,
    ] {
        let _ = onboard::diagnostics::render(f, &sorted, &Default::default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn reader_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = onboard::manifest::source::parse(&SourceFile::new("x.yaml", text));
    }

    #[test]
    fn validator_never_panics_on_yamlish_text(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("manifest_version: 1".to_string()),
                Just("provider: { id: p1, name: n, setting: acute, system: s }".to_string()),
                Just("sources:".to_string()),
                Just("  s:".to_string()),
                Just("    path: a.csv".to_string()),
                Just("    format: csv".to_string()),
                Just("    columns: [A, B]".to_string()),
                Just("    maps_to: care_event".to_string()),
                Just("    fields:".to_string()),
                Just("      setting: { const: APC }".to_string()),
                Just("      start_ts: { expr: \"A ||| B\" }".to_string()),
                Just("      start_ts: { from: A, parse_timestamp: \"%Y\" }".to_string()),
                Just("    quality: [{ rule: in_range, field: start_ts, min: [] }]".to_string()),
                Just("uses: emis_web".to_string()),
                Just("params: { ods_code: [1, 2] }".to_string()),
                "[ -~]{0,40}",
            ],
            0..14,
        )
    ) {
        validate_text(lines.join("\n").as_bytes());
    }

    #[test]
    fn validator_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        validate_text(&bytes);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let r = onboard::manifest::source::parse(&SourceFile::new("deep.yaml", text));
    let _ = r;
    let mut d = Diagnostics::default();
    let _ = onboard::manifest::load(
        std::path::Path::new("no/such.yaml"),
        &crate::util::root(),
        &mut d,
    );
    assert_eq!(d.errors(), 1);
}
