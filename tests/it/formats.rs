//! Machine formats: JSON fields, SARIF 2.1.0 shape, GitHub annotations, JUnit XML.

use crate::util::{code, onboard, stdout};

const FILES: &[&str] = &[
    "tests/fixtures/manifests/bad/misspelt_field.yaml",
    "tests/fixtures/manifests/bad/unused_param_warning.yaml",
    "tests/fixtures/manifests/good/minimal.yaml",
];

fn run(format: &str) -> (i32, String) {
    let mut args = vec!["validate", "--format", format];
    args.extend_from_slice(FILES);
    let o = onboard(&args);
    (code(&o), stdout(&o))
}

#[test]
fn json_has_documented_fields() {
    let (c, out) = run("json");
    assert_eq!(c, 1);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 3, "{out}");
    for d in &v {
        for key in [
            "code",
            "severity",
            "file",
            "line",
            "column",
            "end_line",
            "end_column",
            "message",
            "help",
            "label",
            "title",
        ] {
            assert!(d.get(key).is_some(), "missing {key} in {d}");
        }
        assert!(d["line"].as_u64().unwrap() >= 1);
        assert!(["error", "warning"].contains(&d["severity"].as_str().unwrap()));
    }
    assert_eq!(v.iter().filter(|d| d["severity"] == "warning").count(), 1);
}

/// The parts of the SARIF 2.1.0 schema (OASIS) that consumers such as GitHub code
/// scanning rely on, written out as our own JSON Schema.
fn sarif_shape() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "required": ["version", "runs"],
        "properties": {
            "version": { "const": "2.1.0" },
            "$schema": { "type": "string" },
            "runs": { "type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": { "type": "object", "required": ["driver"], "properties": {
                        "driver": { "type": "object", "required": ["name"], "properties": {
                            "name": { "type": "string" },
                            "rules": { "type": "array", "items": { "type": "object", "required": ["id"], "properties": {
                                "id": { "type": "string" },
                                "shortDescription": { "type": "object", "required": ["text"] },
                                "fullDescription": { "type": "object", "required": ["text"] },
                                "defaultConfiguration": { "type": "object", "properties": { "level": { "enum": ["none", "note", "warning", "error"] } } }
                            }}}
                        }}
                    }},
                    "columnKind": { "enum": ["utf16CodeUnits", "unicodeCodePoints"] },
                    "results": { "type": "array", "items": {
                        "type": "object",
                        "required": ["message"],
                        "properties": {
                            "ruleId": { "type": "string" },
                            "ruleIndex": { "type": "integer", "minimum": -1 },
                            "level": { "enum": ["none", "note", "warning", "error"] },
                            "message": { "type": "object", "required": ["text"], "properties": { "text": { "type": "string" } } },
                            "locations": { "type": "array", "items": { "type": "object", "properties": {
                                "physicalLocation": { "type": "object", "required": ["artifactLocation"], "properties": {
                                    "artifactLocation": { "type": "object", "required": ["uri"], "properties": { "uri": { "type": "string" } } },
                                    "region": { "type": "object", "properties": {
                                        "startLine": { "type": "integer", "minimum": 1 },
                                        "startColumn": { "type": "integer", "minimum": 1 },
                                        "endLine": { "type": "integer", "minimum": 1 },
                                        "endColumn": { "type": "integer", "minimum": 1 }
                                    }}
                                }}
                            }}}
                        }
                    }}
                }
            }}
        }
    })
}

#[test]
fn sarif_is_valid_2_1_0() {
    let (c, out) = run("sarif");
    assert_eq!(c, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let validator = jsonschema::validator_for(&sarif_shape()).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            rules[idx]["id"], r["ruleId"],
            "ruleIndex points at its rule"
        );
    }
}

#[test]
fn github_lines_are_annotations() {
    let (c, out) = run("github");
    assert_eq!(c, 1);
    let re = regex::Regex::new(
        r"^::(error|warning) file=[^,]+,line=\d+,col=\d+,title=ONB\d{4}::\[ONB\d{4}\] .+$",
    )
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    for l in lines {
        assert!(re.is_match(l), "not an annotation: {l}");
    }
}

#[test]
fn junit_has_one_case_per_file() {
    let (c, out) = run("junit");
    assert_eq!(c, 1);
    assert!(out.starts_with("<?xml"));
    assert_eq!(out.matches("<testcase ").count(), 3, "{out}");
    assert_eq!(out.matches("<failure ").count(), 3, "{out}");
    assert!(out.contains("tests=\"3\" failures=\"2\""), "{out}");
    assert!(
        !out.contains("<failure type=\"error\" message=\"11:7: error [ONB0202] `date_of_brith`<")
    );
}
