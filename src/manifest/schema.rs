//! The JSON Schema check of located documents, with errors mapped back to YAML positions.
//!
//! A [`SchemaCheck`] holds a schema generated from Rust types with schemars (so it cannot
//! drift from them), compiled once, and the codes of one kind of document
//! ([`DocumentKind`]): provider manifests use `ONB01xx`, the ICS file `ONB09xx`. Each schema
//! error becomes a diagnostic at the key or value it concerns, with did-you-mean hints for
//! unknown keys and enumeration values.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::manifest::source::{Document, child};

/// The codes and wording of one kind of document.
#[derive(Debug, Clone, Copy)]
pub struct DocumentKind {
    /// How the whole document is named in messages (`the manifest`, `the ICS file`).
    pub what: &'static str,
    pub unknown_key: &'static str,
    pub wrong_type: &'static str,
    pub missing_key: &'static str,
    pub invalid_value: &'static str,
    /// A version key and the code for an unsupported version (`/manifest_version`).
    pub version: Option<(&'static str, &'static str)>,
}

/// Provider manifests: `ONB0101`–`ONB0105`.
pub const MANIFEST: DocumentKind = DocumentKind {
    what: "the manifest",
    unknown_key: "ONB0101",
    wrong_type: "ONB0102",
    missing_key: "ONB0103",
    invalid_value: "ONB0104",
    version: Some(("/manifest_version", "ONB0105")),
};

/// A compiled schema and the codes its errors are reported under.
pub struct SchemaCheck {
    kind: DocumentKind,
    schema: Value,
    validator: jsonschema::Validator,
}

impl SchemaCheck {
    /// Compile `schema` (generated from Rust types: a failure is a bug, hence the panic
    /// message naming the document kind).
    pub fn new(kind: DocumentKind, schema: Value) -> Self {
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| {
            panic!(
                "generated JSON Schema of {} does not compile: {e}",
                kind.what
            )
        });
        SchemaCheck {
            kind,
            schema,
            validator,
        }
    }

    /// Check `doc`; push one diagnostic per problem.
    pub fn check(&self, doc: &Document, diags: &mut Diagnostics) {
        let walk = Walk {
            s: self,
            doc,
            depth: 0,
        };
        walk.run(&self.validator, &doc.value, &[], diags);
    }
}

fn manifest_check() -> &'static SchemaCheck {
    static C: OnceLock<SchemaCheck> = OnceLock::new();
    C.get_or_init(|| SchemaCheck::new(MANIFEST, super::model::json_schema()))
}

/// Check `doc` against the manifest schema; push one diagnostic per problem.
pub fn check(doc: &Document, diags: &mut Diagnostics) {
    manifest_check().check(doc, diags);
}

/// One pass of a validator over (part of) a document.
struct Walk<'a> {
    s: &'a SchemaCheck,
    doc: &'a Document,
    depth: usize,
}

/// Where an error is: its path segments, JSON pointer and description for messages.
struct Place {
    segments: Vec<String>,
    pointer: String,
    text: String,
}

impl Walk<'_> {
    fn run(
        &self,
        validator: &jsonschema::Validator,
        value: &Value,
        prefix: &[String],
        diags: &mut Diagnostics,
    ) {
        for err in validator.iter_errors(value) {
            let mut segments: Vec<String> = prefix.to_vec();
            segments.extend(err.instance_path().iter().map(|s| match s {
                LocationSegment::Property(p) => p.to_string(),
                LocationSegment::Index(i) => i.to_string(),
            }));
            let pointer: String = segments.iter().map(|s| format!("/{}", escape(s))).collect();
            let text = describe(self.s.kind.what, &segments);
            let at = Place {
                segments,
                pointer,
                text,
            };
            self.one(&err, &at, diags);
        }
    }

    fn one(&self, err: &jsonschema::ValidationError<'_>, at: &Place, diags: &mut Diagnostics) {
        let k = &self.s.kind;
        let spans = &self.doc.spans;
        let d = match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                return self.unknown_keys(unexpected, at, diags);
            }
            ValidationErrorKind::Required { property } => {
                let prop = property.as_str().unwrap_or("?");
                Diagnostic::new(
                    k.missing_key,
                    format!("missing required key `{prop}` in {}", at.text),
                )
                .at_opt(spans.key(&at.pointer))
                .label(format!("`{prop}` missing here"))
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(ts) => {
                        // `Option<T>` is `[T, null]`: the value is wrong, not absent.
                        let v: Vec<String> = (*ts)
                            .into_iter()
                            .map(|t| t.to_string())
                            .filter(|t| t != "null")
                            .collect();
                        v.join(" or ")
                    }
                };
                Diagnostic::new(
                    k.wrong_type,
                    format!(
                        "{} must be {} {expected}, found {}",
                        at.text,
                        article(&expected),
                        type_name(err.instance())
                    ),
                )
                .at_opt(spans.value(&at.pointer))
                .label("wrong type")
            }
            ValidationErrorKind::Enum { options } => {
                let opts: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(text_of).collect())
                    .unwrap_or_default();
                self.not_allowed(&text_of(err.instance()), &opts, at)
            }
            ValidationErrorKind::AnyOf { .. }
            | ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::OneOfMultipleValid { .. } => {
                return self.any_of(err, at, diags);
            }
            ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
                if k.version.is_some_and(|(p, _)| p == at.pointer) =>
            {
                let (key, code) = k.version.unwrap_or_default();
                Diagnostic::new(
                    code,
                    format!(
                        "{} {} is not supported",
                        key.trim_start_matches('/'),
                        err.instance()
                    ),
                )
                .at_opt(spans.value(&at.pointer))
                .label("unsupported")
                .help("this version of onboard reads `manifest_version: 1`")
            }
            _ => Diagnostic::new(
                k.invalid_value,
                format!("invalid value for {}: {}", at.text, err.masked()),
            )
            .at_opt(spans.value(&at.pointer))
            .label("invalid"),
        };
        diags.push(d);
    }

    fn unknown_keys(&self, unexpected: &[String], at: &Place, diags: &mut Diagnostics) {
        let allowed = allowed_keys(&self.s.schema, &self.doc.value, &at.segments);
        for key in unexpected {
            let help = did_you_mean(key, allowed.iter().map(String::as_str)).or_else(|| {
                (!allowed.is_empty()).then(|| format!("allowed keys here: {}", allowed.join(", ")))
            });
            diags.push(
                Diagnostic::new(
                    self.s.kind.unknown_key,
                    format!("unknown key `{key}` in {}", at.text),
                )
                .at_opt(self.doc.spans.key(&child(&at.pointer, key)))
                .label("unknown key")
                .help_opt(help),
            );
        }
    }

    fn not_allowed(&self, got: &str, options: &[String], at: &Place) -> Diagnostic {
        let help = did_you_mean(got, options.iter().map(String::as_str))
            .unwrap_or_else(|| format!("allowed values: {}", options.join(", ")));
        Diagnostic::new(
            self.s.kind.invalid_value,
            format!("`{got}` is not an allowed value for {}", at.text),
        )
        .at_opt(self.doc.spans.value(&at.pointer))
        .label("not allowed")
        .help(help)
    }

    /// `anyOf`/`oneOf` failed: an enumeration value, or the errors of the one non-null
    /// branch (an `Option<Struct>`), or a plain type error.
    fn any_of(&self, err: &jsonschema::ValidationError<'_>, at: &Place, diags: &mut Diagnostics) {
        let schema = &self.s.schema;
        let node = node_at(schema, &self.doc.value, &at.segments);
        let options = node.map(|n| const_options(schema, n)).unwrap_or_default();
        if let (false, Some(got)) = (options.is_empty(), err.instance().as_str()) {
            diags.push(self.not_allowed(got, &options, at));
            return;
        }
        let mut branches = node
            .map(|n| non_null_branches(schema, n))
            .unwrap_or_default();
        if branches.len() > 1 {
            branches.retain(|b| fits_type(b, err.instance()));
        }
        if !err.instance().is_null() && branches.len() == 1 && self.depth < 8 {
            let mut sub = branches[0].clone();
            if let (Some(o), Some(defs)) = (sub.as_object_mut(), schema.get("$defs")) {
                o.insert("$defs".into(), defs.clone());
            }
            if let Ok(v) = jsonschema::validator_for(&sub) {
                let before = diags.len();
                let inner = Walk {
                    depth: self.depth + 1,
                    ..*self
                };
                inner.run(&v, err.instance(), &at.segments, diags);
                if diags.len() > before {
                    return;
                }
            }
        }
        diags.push(
            Diagnostic::new(
                self.s.kind.wrong_type,
                format!(
                    "{} must be {}, found {}",
                    at.text,
                    any_of_expectation(&at.segments),
                    type_name(err.instance())
                ),
            )
            .at_opt(self.doc.spans.value(&at.pointer))
            .label("wrong type"),
        );
    }
}

fn text_of(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
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
fn describe(what: &str, segments: &[String]) -> String {
    if segments.is_empty() {
        what.to_string()
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

/// Whether a schema branch is for values of the instance's JSON type (a branch
/// without a `type` may be for anything).
fn fits_type(branch: &Value, instance: &Value) -> bool {
    let name = match instance {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let whole = instance.is_i64() || instance.is_u64();
    let fits = |t: &str| t == name || (t == "integer" && whole);
    match branch.get("type") {
        Some(Value::String(t)) => fits(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(fits),
        _ => true,
    }
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
