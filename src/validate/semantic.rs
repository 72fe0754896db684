//! Semantic checks of one manifest: names against the canonical model and the rule and
//! transform registries, value maps against value sets, SQL expressions against their
//! schemas (parsed and type-checked by DataFusion), paths, and secrets. Produces the
//! resolved manifest when the file has no errors.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;
use indexmap::IndexMap;
use regex::Regex;
use serde_json::Value;

use super::field::{FieldContext, check_field};
use super::resolved::*;
use super::rules::{self, RuleScope};
use crate::canonical::{self, CanonicalField, Entity, Zone};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::manifest::Loaded;
use crate::manifest::model::{Provider, RawManifest, Source, SourceFormat};
use crate::manifest::source::{SpanIndex, child};

/// Shared, reusable state of the checks (one per `validate` run).
pub struct Checker {
    pub ctx: SessionContext,
    pub root: std::path::PathBuf,
    /// Scalar function names (did-you-mean for unknown functions).
    pub function_names: Vec<String>,
}

impl Checker {
    pub fn new(root: &Path) -> Self {
        let ctx = crate::engine::planning_context();
        let state = ctx.state();
        let mut function_names: Vec<String> = state.scalar_functions().keys().cloned().collect();
        function_names.sort();
        Checker {
            ctx,
            root: root.to_path_buf(),
            function_names,
        }
    }
}

/// Check one loaded manifest. Returns the resolved manifest when there are no errors.
pub fn check(
    checker: &Checker,
    loaded: &Loaded,
    diags: &mut Diagnostics,
) -> Option<ResolvedManifest> {
    let before = diags.errors();
    let spans = &loaded.doc.spans;
    let value = &loaded.doc.value;
    check_secrets(value, "", spans, diags);

    // Whole-manifest deserialisation succeeds when the schema check passed; otherwise
    // check what can be read, part by part.
    let raw: Option<RawManifest> = serde_json::from_value(value.clone()).ok();
    // The `validator` constraints on the model (the same ones the JSON Schema carries):
    // a backstop that reports anything the schema check let through.
    if let Some(r) = &raw
        && let Err(errors) = validator::Validate::validate(r)
        && diags.errors() == 0
    {
        report_validator_errors(&errors, "", spans, diags);
    }
    let provider: Option<Provider> = value
        .get("provider")
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    let resolved_provider = provider
        .as_ref()
        .and_then(|p| check_provider(p, spans, diags));

    let sources_value = value.get("sources").and_then(Value::as_object);
    if sources_value.is_none_or(|s| s.is_empty())
        && value.get("sources").is_none_or(|s| s.is_object())
    {
        diags.push(
            Diagnostic::new("ONB0103", "the manifest declares no sources")
                .at_opt(spans.key("/provider").or_else(|| spans.value("")))
                .help(
                    "add a `sources:` mapping, or `uses:` a provider template that declares them",
                ),
        );
    }
    let mut resolved_sources = Vec::new();
    if let Some(sources) = sources_value {
        for (id, sv) in sources {
            let base = child("/sources", id);
            let Ok(src) = serde_json::from_value::<Source>(sv.clone()) else {
                continue; // the schema check reported why
            };
            if let Some(r) = check_source(checker, loaded, id, &src, &base, diags) {
                resolved_sources.push(r);
            }
        }
    }
    if diags.errors() > before {
        return None;
    }
    // Nothing resolves unless the whole manifest deserialised.
    if raw.is_none() {
        return None;
    }
    Some(ResolvedManifest {
        path: loaded.path.clone(),
        hash: loaded.hash.clone(),
        provider: resolved_provider?,
        sources: resolved_sources,
    })
}

fn report_validator_errors(
    errors: &validator::ValidationErrors,
    pointer: &str,
    spans: &SpanIndex,
    diags: &mut Diagnostics,
) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        let p = child(pointer, field);
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let what = match e.code.as_ref() {
                        "length" => "has the wrong length",
                        "range" => "is out of range",
                        _ => "is not valid",
                    };
                    let bounds: Vec<String> = e
                        .params
                        .iter()
                        .filter(|(k, _)| *k != "value")
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    diags.push(
                        Diagnostic::new(
                            "ONB0104",
                            format!(
                                "`{}` {what} ({})",
                                p.trim_start_matches('/').replace('/', "."),
                                bounds.join(", ")
                            ),
                        )
                        .at_opt(spans.value(&p))
                        .label("invalid"),
                    );
                }
            }
            ValidationErrorsKind::Struct(inner) => report_validator_errors(inner, &p, spans, diags),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    report_validator_errors(inner, &format!("{p}/{i}"), spans, diags);
                }
            }
        }
    }
}

fn check_provider(
    p: &Provider,
    spans: &SpanIndex,
    diags: &mut Diagnostics,
) -> Option<ResolvedProvider> {
    let mut missing = Vec::new();
    if p.name.is_none() {
        missing.push("name");
    }
    if p.setting.is_none() {
        missing.push("setting");
    }
    if p.system.is_none() {
        missing.push("system");
    }
    for m in &missing {
        diags.push(
            Diagnostic::new(
                "ONB0103",
                format!("missing required key `{m}` in `provider`"),
            )
            .at_opt(spans.key("/provider"))
            .label(format!("`{m}` missing here"))
            .help("set it here or in the provider template"),
        );
    }
    if !missing.is_empty() {
        return None;
    }
    Some(ResolvedProvider {
        id: p.id.clone(),
        name: p.name.clone()?,
        setting: p.setting?,
        system: p.system.clone()?,
        ods_code: p.ods_code.clone(),
    })
}

/// Patterns of values that look like credentials.
fn secret_patterns() -> &'static [(Regex, &'static str)] {
    static P: std::sync::OnceLock<Vec<(Regex, &'static str)>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        [
            (r"AKIA[0-9A-Z]{16}", "an AWS access key id"),
            (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "a private key"),
            (
                r"(?i)[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
                "a URL with a password",
            ),
            (
                r"(?i)(AccountKey|SharedAccessSignature|sig)=[A-Za-z0-9%+/=]{16,}",
                "an Azure storage key",
            ),
            (
                r"(?i)(password|pwd)\s*=\s*[^;\s]+",
                "a connection-string password",
            ),
            (r"\bgh[pousr]_[A-Za-z0-9]{30,}", "a GitHub token"),
            (r"\bxox[abpr]-[A-Za-z0-9-]{10,}", "a Slack token"),
            (r"\bsk-[A-Za-z0-9]{20,}", "an API secret key"),
        ]
        .into_iter()
        .filter_map(|(p, what)| Regex::new(p).ok().map(|r| (r, what)))
        .collect()
    })
}

const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "secret_key",
    "private_key",
    "client_secret",
    "connection_string",
    "pseudonymisation_key",
    "hmac_key",
    "key_material",
];

fn check_secrets(v: &Value, pointer: &str, spans: &SpanIndex, diags: &mut Diagnostics) {
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                let p = child(pointer, k);
                let lk = k.to_ascii_lowercase();
                let literal = matches!(val, Value::String(s) if !s.is_empty() && !s.starts_with("${"))
                    || matches!(val, Value::Number(_));
                if literal
                    && SECRET_KEYS
                        .iter()
                        .any(|s| lk == *s || lk.ends_with(&format!("_{s}")))
                {
                    diags.push(
                        Diagnostic::new("ONB0702", format!("`{k}` holds a literal secret"))
                            .at_opt(spans.value(&p))
                            .label("secret value (not shown)")
                            .help("remove it from the manifest and rotate it; onboard reads keys from the environment (ONBOARD_PSEUDONYMISATION_KEY) or a key file"),
                    );
                    continue;
                }
                check_secrets(val, &p, spans, diags);
            }
        }
        Value::Array(a) => {
            for (i, val) in a.iter().enumerate() {
                check_secrets(val, &format!("{pointer}/{i}"), spans, diags);
            }
        }
        Value::String(s) => {
            for (re, what) in secret_patterns() {
                if re.is_match(s) {
                    diags.push(
                        Diagnostic::new("ONB0702", format!("value looks like {what}"))
                            .at_opt(spans.value(pointer))
                            .label("secret value (not shown)")
                            .help("secrets never go in manifests: remove it and rotate it"),
                    );
                    break;
                }
            }
        }
        _ => {}
    }
}

/// Whether a relative path stays under its root (no absolute paths, no `..` above it).
pub fn path_stays_inside(p: &str) -> bool {
    let path = Path::new(p);
    if path.is_absolute()
        || p.starts_with('/')
        || p.starts_with('\\')
        || p.contains(':') && p.len() > 1 && p.as_bytes()[1] == b':'
    {
        return false;
    }
    let mut depth: i64 = 0;
    for c in path.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
    }
    true
}

/// Check one source of a manifest at pointer `base`; the resolved source when it has no
/// errors.
fn check_source(
    checker: &Checker,
    loaded: &Loaded,
    id: &str,
    src: &Source,
    base: &str,
    diags: &mut Diagnostics,
) -> Option<ResolvedSource> {
    let spans = &loaded.doc.spans;
    let before = diags.errors();
    check_path(src, base, spans, diags);
    let csv = csv_settings(src, base, spans, diags);
    check_columns(src, base, spans, diags);
    let source_df = columns_schema(&src.columns);
    let entity = entity_of(src, base, spans, diags);
    let cx = FieldContext {
        checker,
        loaded,
        src,
        source_df: source_df.as_ref(),
    };
    // Columns named by `from` count as used even when their mapping has other problems.
    let mut used_columns: HashSet<String> = (src.fields.values())
        .chain(src.identity.values())
        .filter_map(|m| m.from.clone())
        .collect();
    let (fields, identity) = map_fields(&cx, entity.as_ref(), base, &mut used_columns, diags);
    // So are columns that quality rules check (`column:`).
    used_columns.extend(src.quality.iter().filter_map(|r| r.column.clone()));
    if let Some(entity) = &entity {
        check_required(entity, src, id, base, spans, diags);
    }
    // Unused columns (a warning: they are read and ignored). Only said when the
    // source is otherwise sound, so it never buries an error.
    if diags.errors() == before {
        unused_columns(src, base, &used_columns, spans, diags);
    }
    let quality = match &entity {
        Some(e) => {
            let mapped: IndexMap<String, CanonicalField> = (fields.iter().chain(identity.iter()))
                .map(|f| (f.field.name.clone(), f.field.clone()))
                .collect();
            let scope = RuleScope {
                checker,
                spans,
                entity: e,
                identity: canonical::model().identity(),
                mapped: &mapped,
                columns: &src.columns,
            };
            quality_rules(&scope, src, id, base, diags)
        }
        None => Vec::new(),
    };
    if diags.errors() > before {
        return None;
    }
    let thresholds = src
        .thresholds
        .clone()
        .unwrap_or(crate::manifest::model::Thresholds {
            max_quarantine_rate: None,
            min_rows: None,
            on_breach: None,
        });
    Some(ResolvedSource {
        id: id.to_string(),
        path: src.path.clone(),
        format: src.format,
        csv,
        columns: src.columns.clone(),
        entity: entity?,
        fields,
        identity,
        quality,
        max_quarantine_rate: thresholds.max_quarantine_rate,
        min_rows: thresholds.min_rows,
        on_breach: thresholds.on_breach.unwrap_or_default(),
        delivery: src.delivery.clone().unwrap_or_default(),
    })
}

/// The extract's path stays inside the landing zone and is a valid glob.
fn check_path(src: &Source, base: &str, spans: &SpanIndex, diags: &mut Diagnostics) {
    if !path_stays_inside(&src.path) {
        diags.push(
            Diagnostic::new(
                "ONB0701",
                format!("source path `{}` escapes the landing zone", src.path),
            )
            .at_opt(spans.value(&child(base, "path")))
            .label("absolute or `..` path")
            .help("write the path relative to the landing zone, e.g. `emis/patients_*.csv`"),
        );
    } else if let Err(e) = glob::Pattern::new(&src.path) {
        diags.push(
            Diagnostic::new(
                "ONB0104",
                format!("source path is not a valid glob: {}", e.msg),
            )
            .at_opt(spans.value(&child(base, "path"))),
        );
    }
}

/// CSV reading settings with defaults applied.
fn csv_settings(
    src: &Source,
    base: &str,
    spans: &SpanIndex,
    diags: &mut Diagnostics,
) -> CsvSettings {
    let mut csv = CsvSettings::default();
    let Some(o) = &src.csv else {
        return csv;
    };
    if src.format != SourceFormat::Csv {
        diags.push(
            Diagnostic::new("ONB0104", "`csv` options only apply to `format: csv`")
                .at_opt(spans.key(&child(base, "csv")))
                .label("ignored for this format"),
        );
    }
    let mut one_byte = |s: &Option<String>, key: &str| -> Option<u8> {
        let s = s.as_ref()?;
        if s.len() == 1 && s.is_ascii() {
            return Some(s.as_bytes()[0]);
        }
        diags.push(
            Diagnostic::new(
                "ONB0104",
                format!("`csv.{key}` must be one ASCII character"),
            )
            .at_opt(spans.value(&child(&child(base, "csv"), key))),
        );
        None
    };
    if let Some(d) = one_byte(&o.delimiter, "delimiter") {
        csv.delimiter = d;
    }
    if let Some(q) = one_byte(&o.quote, "quote") {
        csv.quote = q;
    }
    csv.escape = one_byte(&o.escape, "escape");
    csv.header = o.header.unwrap_or(true);
    if let Some(e) = o.encoding {
        csv.encoding = e;
    }
    csv.null_values = o.null_values.clone();
    csv
}

/// Declared columns are unique and not empty.
fn check_columns(src: &Source, base: &str, spans: &SpanIndex, diags: &mut Diagnostics) {
    let mut seen = HashSet::new();
    for (i, c) in src.columns.iter().enumerate() {
        let at = spans.value(&format!("{base}/columns/{i}"));
        if !seen.insert(c.as_str()) {
            diags.push(
                Diagnostic::new("ONB0104", format!("column `{c}` is declared twice"))
                    .at_opt(at.clone())
                    .label("duplicate column"),
            );
        }
        if c.trim().is_empty() {
            diags.push(Diagnostic::new("ONB0104", "column names cannot be empty").at_opt(at));
        }
    }
}

/// The declared columns as text columns (what `expr:` of field mappings sees).
fn columns_schema(columns: &[String]) -> Option<DFSchema> {
    let unique: HashSet<&String> = columns.iter().collect();
    let fields: Vec<Field> = (unique.into_iter())
        .map(|c| Field::new(c, DataType::Utf8, true))
        .collect();
    DFSchema::try_from(Schema::new(fields)).ok()
}

/// The canonical entity the source maps to.
fn entity_of(
    src: &Source,
    base: &str,
    spans: &SpanIndex,
    diags: &mut Diagnostics,
) -> Option<Arc<Entity>> {
    let model = canonical::model();
    if let Some(e) = model.entity(&src.maps_to) {
        return Some(e.clone());
    }
    diags.push(
        Diagnostic::new(
            "ONB0201",
            format!("`{}` is not a canonical entity", src.maps_to),
        )
        .at_opt(spans.value(&child(base, "maps_to")))
        .label("unknown entity")
        .help(
            did_you_mean(&src.maps_to, model.entity_names()).unwrap_or_else(|| {
                format!(
                    "canonical entities: {}",
                    model.entity_names().collect::<Vec<_>>().join(", ")
                )
            }),
        ),
    );
    None
}

/// The `fields:` mappings (onto `entity`) and the `identity:` mappings (onto
/// person_identity), resolved.
fn map_fields(
    cx: &FieldContext<'_>,
    entity: Option<&Arc<Entity>>,
    base: &str,
    used_columns: &mut HashSet<String>,
    diags: &mut Diagnostics,
) -> (Vec<ResolvedField>, Vec<ResolvedField>) {
    let src = cx.src;
    let mut fields = Vec::new();
    if let Some(entity) = entity {
        for (name, m) in &src.fields {
            let p = child(&child(base, "fields"), name);
            if let Some(f) = check_field(cx, entity, (name, m, &p), used_columns, diags) {
                fields.push(f);
            }
        }
    }
    let identity = canonical::model().identity();
    let is_identity_source = entity.is_some_and(|e| e.zone == Zone::Identity);
    let mut identity_fields = Vec::new();
    for (name, m) in &src.identity {
        let p = child(&child(base, "identity"), name);
        if is_identity_source && src.fields.contains_key(name) {
            diags.push(
                Diagnostic::new(
                    "ONB0204",
                    format!("`{name}` is mapped in both `fields` and `identity`"),
                )
                .at_opt(cx.loaded.doc.spans.key(&p))
                .label("second mapping")
                .help("this source maps to person_identity: keep the mapping in `fields` only"),
            );
            continue;
        }
        if let Some(f) = check_field(cx, identity, (name, m, &p), used_columns, diags) {
            identity_fields.push(f);
        }
    }
    (fields, identity_fields)
}

/// Required canonical fields are mapped; an analytics source has an identity block.
fn check_required(
    entity: &Entity,
    src: &Source,
    id: &str,
    base: &str,
    spans: &SpanIndex,
    diags: &mut Diagnostics,
) {
    let is_identity_source = entity.zone == Zone::Identity;
    for f in entity.fields.iter().filter(|f| f.required && !f.derived) {
        let mapped = src.fields.contains_key(&f.name)
            || (is_identity_source && src.identity.contains_key(&f.name));
        if mapped {
            continue;
        }
        diags.push(
            Diagnostic::new(
                "ONB0203",
                format!(
                    "required field `{}` of `{}` is not mapped",
                    f.name, entity.name
                ),
            )
            .at_opt(
                spans
                    .key(&child(base, "fields"))
                    .or_else(|| spans.value(&child(base, "maps_to"))),
            )
            .label(format!("`{}` missing", f.name))
            .help(format!(
                "map it, e.g. `{}: {{ from: <column> }}` ({})",
                f.name, f.description
            )),
        );
    }
    if !is_identity_source && src.identity.is_empty() {
        diags.push(
            Diagnostic::new(
                "ONB0214",
                format!(
                    "source `{id}` has no `identity:` block; its rows cannot be linked to people"
                ),
            )
            .at_opt(spans.key(base))
            .help(
                "map at least `nhs_number` and `date_of_birth` (or a local id) under `identity:`",
            ),
        );
    }
}

/// Declared columns that nothing reads (ONB0212, a warning).
fn unused_columns(
    src: &Source,
    base: &str,
    used: &HashSet<String>,
    spans: &SpanIndex,
    diags: &mut Diagnostics,
) {
    for (i, c) in src.columns.iter().enumerate() {
        if !used.contains(c) {
            diags.push(
                Diagnostic::new("ONB0212", format!("column `{c}` is declared but not used"))
                    .at_opt(spans.value(&format!("{base}/columns/{i}")))
                    .label("unused"),
            );
        }
    }
}

/// The source's quality rules, resolved; rule ids are unique within the source.
fn quality_rules(
    scope: &RuleScope<'_>,
    src: &Source,
    id: &str,
    base: &str,
    diags: &mut Diagnostics,
) -> Vec<ResolvedRule> {
    let mut quality = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, rule) in src.quality.iter().enumerate() {
        let p = format!("{base}/quality/{i}");
        let Some(r) = rules::check_rule(scope, rule, &p, diags) else {
            continue;
        };
        if let Some(first) = ids.get(&r.id) {
            diags.push(
                Diagnostic::new(
                    "ONB0404",
                    format!("rule id `{}` is used twice in source `{id}`", r.id),
                )
                .at_opt(scope.spans.value(&p))
                .label("duplicate id")
                .help(format!(
                    "give one of them a distinct `id:` (first use: quality rule {})",
                    first + 1
                )),
            );
            continue;
        }
        ids.insert(r.id.clone(), i);
        quality.push(r);
    }
    quality
}
