//! Generated artefacts stay in sync with the code: the published JSON Schema and the
//! reference docs; the canonical model loads and every entity becomes an Arrow schema.

use crate::util::{code, onboard, root, stdout};

#[test]
fn committed_schema_equals_generated() {
    let committed =
        std::fs::read_to_string(root().join("schemas/provider-manifest.schema.json")).unwrap();
    assert_eq!(
        committed,
        onboard::manifest::model::json_schema_text(),
        "run `onboard schema > schemas/provider-manifest.schema.json`"
    );
    let o = onboard(&["schema"]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), committed);
}

#[test]
fn schema_is_a_valid_json_schema_and_accepts_the_providers() {
    let schema: serde_json::Value =
        serde_json::from_str(&onboard::manifest::model::json_schema_text()).unwrap();
    assert!(jsonschema::meta::is_valid(&schema));
}

#[test]
fn committed_docs_equal_generated() {
    let o = onboard(&["docs", "--check"]);
    assert_eq!(
        code(&o),
        0,
        "run `onboard docs`: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn canonical_model_loads() {
    let m = onboard::canonical::load().expect("canonical model");
    let names: Vec<&str> = m.entity_names().collect();
    for e in [
        "person_identity",
        "person",
        "registration",
        "address_period",
        "care_event",
        "diagnosis",
        "procedure",
        "medication",
        "observation",
        "social_care_service",
        "social_determinant",
    ] {
        assert!(names.contains(&e), "{e} missing");
    }
    for e in &m.entities {
        assert_eq!(e.arrow_schema().fields().len(), e.fields.len());
    }
    let ce = m.entity("care_event").unwrap();
    let am = ce.field("admission_method").unwrap();
    let vs = am.value_set.as_ref().unwrap();
    assert!(vs.contains("2A") && vs.contains("21") && !vs.contains("20"));
    // Identifiers live in the identity zone only.
    for e in m
        .entities
        .iter()
        .filter(|e| e.zone == onboard::canonical::Zone::Analytics)
    {
        assert!(
            e.fields.iter().all(|f| !f.identifier),
            "{} has an identifier",
            e.name
        );
    }
}
