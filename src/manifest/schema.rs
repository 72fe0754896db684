//! The JSON Schema check of manifests, with errors mapped back to YAML positions.
//!
//! The schema is generated from [`super::model`] (so it cannot drift from the Rust types),
//! compiled once, and run over the located document. Each schema error becomes an `ONB01xx`
//! diagnostic at the key or value it concerns, with did-you-mean hints for unknown keys
//! and enumeration values.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::manifest::source::{Document, child};

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        let schema = super::model::json_schema();
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("generated manifest schema does not compile: {e}"));
        Compiled { schema, validator }
    })
}

/// Check `doc` against the manifest schema; push one diagnostic per problem.
pub fn check(doc: &Document, diags: &mut Diagnostics) {
    let c = compiled();
    check_with(&c.schema, &c.validator, &doc.value, &[], doc, diags, 0);
}

fn check_with(
    root: &Value,
    validator: &jsonschema::Validator,
    value: &Value,
    prefix: &[String],
    doc: &Document,
    diags: &mut Diagnostics,
    depth: usize,
) {
    let c = compiled();
    for err in validator.iter_errors(value) {
        let mut segments: Vec<String> = prefix.to_vec();
        segments.extend(err.instance_path().iter().map(|s| match s {
            LocationSegment::Property(p) => p.to_string(),
            LocationSegment::Index(i) => i.to_string(),
        }));
        let pointer: String = segments.iter().map(|s| format!("/{}", escape(s))).collect();
        let place = describe(&segments);
        let d = match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let allowed = allowed_keys(root, &doc.value, &segments);
                for key in unexpected {
                    let help =
                        did_you_mean(key, allowed.iter().map(String::as_str)).or_else(|| {
                            (!allowed.is_empty())
                                .then(|| format!("allowed keys here: {}", allowed.join(", ")))
                        });
                    diags.push(
                        Diagnostic::new("ONB0101", format!("unknown key `{key}` in {place}"))
                            .at_opt(doc.spans.key(&child(&pointer, key)))
                            .label("unknown key")
                            .help_opt(help),
                    );
                }
                continue;
            }
            ValidationErrorKind::Required { property } => {
                let prop = property.as_str().unwrap_or("?");
                Diagnostic::new(
                    "ONB0103",
                    format!("missing required key `{prop}` in {place}"),
                )
                .at_opt(doc.spans.key(&pointer))
                .label(format!("`{prop}` missing here"))
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(ts) => {
                        let v: Vec<String> = (*ts).into_iter().map(|t| t.to_string()).collect();
                        v.join(" or ")
                    }
                };
                Diagnostic::new(
                    "ONB0102",
                    format!(
                        "{place} must be {} {expected}, found {}",
                        article(&expected),
                        type_name(err.instance())
                    ),
                )
                .at_opt(doc.spans.value(&pointer))
                .label("wrong type")
            }
            ValidationErrorKind::Enum { options } => {
                let opts: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|o| {
                                o.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| o.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let got = err
                    .instance()
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| err.instance().to_string());
                let help = did_you_mean(&got, opts.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("allowed values: {}", opts.join(", ")));
                Diagnostic::new(
                    "ONB0104",
                    format!("`{got}` is not an allowed value for {place}"),
                )
                .at_opt(doc.spans.value(&pointer))
                .label("not allowed")
                .help(help)
            }
            ValidationErrorKind::AnyOf { .. }
            | ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::OneOfMultipleValid { .. } => {
                let node = node_at(&c.schema, &doc.value, &segments);
                let options = node
                    .map(|n| const_options(&c.schema, n))
                    .unwrap_or_default();
                if let (false, Some(got)) = (options.is_empty(), err.instance().as_str()) {
                    let help = did_you_mean(got, options.iter().map(String::as_str))
                        .unwrap_or_else(|| format!("allowed values: {}", options.join(", ")));
                    diags.push(
                        Diagnostic::new(
                            "ONB0104",
                            format!("`{got}` is not an allowed value for {place}"),
                        )
                        .at_opt(doc.spans.value(&pointer))
                        .label("not allowed")
                        .help(help),
                    );
                    continue;
                }
                let branches = node
                    .map(|n| non_null_branches(&c.schema, n))
                    .unwrap_or_default();
                if !err.instance().is_null() && branches.len() == 1 && depth < 8 {
                    let mut sub = branches[0].clone();
                    if let (Some(o), Some(defs)) = (sub.as_object_mut(), c.schema.get("$defs")) {
                        o.insert("$defs".into(), defs.clone());
                    }
                    if let Ok(v) = jsonschema::validator_for(&sub) {
                        let before = diags.len();
                        check_with(root, &v, err.instance(), &segments, doc, diags, depth + 1);
                        if diags.len() > before {
                            continue;
                        }
                    }
                }
                Diagnostic::new(
                    "ONB0102",
                    format!(
                        "{place} must be {}, found {}",
                        any_of_expectation(&segments),
                        type_name(err.instance())
                    ),
                )
                .at_opt(doc.spans.value(&pointer))
                .label("wrong type")
            }
            ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
                if pointer == "/manifest_version" =>
            {
                Diagnostic::new(
                    "ONB0105",
                    format!("manifest_version {} is not supported", err.instance()),
                )
                .at_opt(doc.spans.value(&pointer))
                .label("unsupported")
                .help("this version of onboard reads `manifest_version: 1`")
            }
            _ => Diagnostic::new(
                "ONB0104",
                format!("invalid value for {place}: {}", err.masked()),
            )
            .at_opt(doc.spans.value(&pointer))
            .label("invalid"),
        };
        diags.push(d);
    }
}

fn escape(s: &str) -> String {
    crate::manifest::source::escape_token(s)
}

fn article(expected: &str) -> &'static str {
    if expected.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn any_of_expectation(segments: &[String]) -> &'static str {
    match segments
        .iter()
        .rev()
        .find(|s| s.parse::<usize>().is_err())
        .map(String::as_str)
    {
        Some("transform" | "parse_date" | "parse_timestamp") => "a string or a list of strings",
        _ => "a string or a number",
    }
}

/// `sources.patients.fields.nhs_number`, or `the manifest` at the top.
fn describe(segments: &[String]) -> String {
    if segments.is_empty() {
        "the manifest".to_string()
    } else {
        let mut s = String::new();
        for seg in segments {
            if seg.parse::<usize>().is_ok() {
                s.push_str(&format!("[{seg}]"));
            } else {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(seg);
            }
        }
        format!("`{s}`")
    }
}

/// The keys the schema allows in the object at `segments` (for did-you-mean).
fn allowed_keys(schema: &Value, instance: &Value, segments: &[String]) -> Vec<String> {
    let mut node = resolve(schema, schema);
    let mut inst = instance;
    for seg in segments {
        let next_inst = match inst {
            Value::Object(o) => o.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        node = match step(schema, node, seg, inst) {
            Some(n) => n,
            None => return Vec::new(),
        };
        match next_inst {
            Some(i) => inst = i,
            None => return Vec::new(),
        }
    }
    object_branch(schema, node)
        .and_then(|n| n.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut n = node;
    for _ in 0..16 {
        match n.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(t) => n = t,
                None => return n,
            },
            None => return n,
        }
    }
    n
}

/// The branch of an `anyOf`/`oneOf` that describes objects (Option<Struct> is
/// `anyOf: [{$ref}, {type: null}]`).
fn object_branch<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    let node = resolve(root, node);
    if node.get("properties").is_some() || node.get("additionalProperties").is_some() {
        return Some(node);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array) {
            for b in branches {
                if let Some(found) = object_branch(root, b) {
                    return Some(found);
                }
            }
        }
    }
    None
}

fn array_branch<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    let node = resolve(root, node);
    if node.get("items").is_some() {
        return Some(node);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array) {
            for b in branches {
                if let Some(found) = array_branch(root, b) {
                    return Some(found);
                }
            }
        }
    }
    None
}

fn step<'a>(root: &'a Value, node: &'a Value, seg: &str, inst: &Value) -> Option<&'a Value> {
    match inst {
        Value::Array(_) => array_branch(root, node)
            .and_then(|n| n.get("items"))
            .map(|n| resolve(root, n)),
        _ => {
            let obj = object_branch(root, node)?;
            if let Some(p) = obj.get("properties").and_then(|p| p.get(seg)) {
                return Some(resolve(root, p));
            }
            obj.get("additionalProperties")
                .filter(|a| a.is_object())
                .map(|a| resolve(root, a))
        }
    }
}

/// The schema node describing the instance at `segments` (through `$ref`s).
fn node_at<'a>(schema: &'a Value, instance: &Value, segments: &[String]) -> Option<&'a Value> {
    let mut node = resolve(schema, schema);
    let mut inst = instance;
    for seg in segments {
        node = step(schema, node, seg, inst)?;
        inst = match inst {
            Value::Object(o) => o.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The allowed constants of an enumeration node (`enum`, or `oneOf`/`anyOf` of `const`s).
fn const_options(root: &Value, node: &Value) -> Vec<String> {
    let node = resolve(root, node);
    let mut out = Vec::new();
    if let Some(e) = node.get("enum").and_then(Value::as_array) {
        out.extend(e.iter().filter_map(|v| v.as_str().map(str::to_string)));
    }
    if let Some(c) = node.get("const").and_then(Value::as_str) {
        out.push(c.to_string());
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(bs) = node.get(key).and_then(Value::as_array) {
            for b in bs {
                out.extend(const_options(root, b));
            }
        }
    }
    out
}

/// The branches of an `anyOf`/`oneOf` that are not `{type: null}`, resolved.
fn non_null_branches(root: &Value, node: &Value) -> Vec<Value> {
    let node = resolve(root, node);
    let mut out = Vec::new();
    for key in ["anyOf", "oneOf"] {
        if let Some(bs) = node.get(key).and_then(Value::as_array) {
            for b in bs {
                if b.get("type").and_then(Value::as_str) == Some("null") {
                    continue;
                }
                out.push(resolve(root, b).clone());
            }
        }
    }
    out
}
