//! Semantic checks of one manifest: names against the canonical model and the rule and
//! transform registries, value maps against value sets, SQL expressions against their
//! schemas (parsed and type-checked by DataFusion), paths, and secrets. Produces the
//! resolved manifest when the file has no errors.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};
use std::sync::Arc;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{DFSchema, DataFusionError, SchemaError};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::utils::find_aggregate_exprs;
use datafusion::prelude::SessionContext;
use indexmap::IndexMap;
use regex::Regex;
use serde_json::Value;

use super::resolved::*;
use super::rules::{self, Param};
use crate::canonical::{self, CanonicalField, Entity, FieldType, Zone};
use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean};
use crate::manifest::Loaded;
use crate::manifest::model::{
    FieldMapping, OnFail, Provider, QualityRule, RawManifest, Source, SourceFormat,
};
use crate::manifest::source::{SpanIndex, child};
use crate::udf::text::check_date_format;

/// Shared, reusable state of the checks (one per `validate` run).
pub struct Checker {
    pub ctx: SessionContext,
    pub root: std::path::PathBuf,
    function_names: Vec<String>,
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

fn check_source(
    checker: &Checker,
    loaded: &Loaded,
    id: &str,
    src: &Source,
    base: &str,
    diags: &mut Diagnostics,
) -> Option<ResolvedSource> {
    let spans = &loaded.doc.spans;
    let model = canonical::model();
    let before = diags.errors();

    // Path of the extract.
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

    // CSV options.
    let mut csv = CsvSettings::default();
    if let Some(o) = &src.csv {
        if src.format != SourceFormat::Csv {
            diags.push(
                Diagnostic::new("ONB0104", "`csv` options only apply to `format: csv`")
                    .at_opt(spans.key(&child(base, "csv")))
                    .label("ignored for this format"),
            );
        }
        let one_byte = |s: &Option<String>, key: &str, diags: &mut Diagnostics| -> Option<u8> {
            let s = s.as_ref()?;
            if s.len() == 1 && s.is_ascii() {
                Some(s.as_bytes()[0])
            } else {
                diags.push(
                    Diagnostic::new(
                        "ONB0104",
                        format!("`csv.{key}` must be one ASCII character"),
                    )
                    .at_opt(spans.value(&child(&child(base, "csv"), key))),
                );
                None
            }
        };
        if let Some(d) = one_byte(&o.delimiter, "delimiter", diags) {
            csv.delimiter = d;
        }
        if let Some(q) = one_byte(&o.quote, "quote", diags) {
            csv.quote = q;
        }
        csv.escape = one_byte(&o.escape, "escape", diags);
        csv.header = o.header.unwrap_or(true);
        if let Some(e) = o.encoding {
            csv.encoding = e;
        }
        csv.null_values = o.null_values.clone();
    }

    // Declared columns.
    let mut seen = HashSet::new();
    for (i, c) in src.columns.iter().enumerate() {
        if !seen.insert(c.as_str()) {
            diags.push(
                Diagnostic::new("ONB0104", format!("column `{c}` is declared twice"))
                    .at_opt(spans.value(&format!("{base}/columns/{i}")))
                    .label("duplicate column"),
            );
        }
        if c.trim().is_empty() {
            diags.push(
                Diagnostic::new("ONB0104", "column names cannot be empty")
                    .at_opt(spans.value(&format!("{base}/columns/{i}"))),
            );
        }
    }
    let source_schema = Schema::new(
        src.columns
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|c| Field::new(c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let source_df = DFSchema::try_from(source_schema).ok();

    // The canonical entity.
    let entity = match model.entity(&src.maps_to) {
        Some(e) => Some(e.clone()),
        None => {
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
    };
    let identity = model.identity().clone();
    let is_identity_source = entity.as_ref().is_some_and(|e| e.zone == Zone::Identity);

    // Columns named by `from` count as used even when their mapping has other problems.
    let mut used_columns: HashSet<String> = src
        .fields
        .values()
        .chain(src.identity.values())
        .filter_map(|m| m.from.clone())
        .collect();
    let mut fields = Vec::new();
    if let Some(entity) = &entity {
        for (name, m) in &src.fields {
            let p = child(&child(base, "fields"), name);
            if let Some(f) = check_field(
                checker,
                loaded,
                entity,
                name,
                m,
                &p,
                src,
                source_df.as_ref(),
                &mut used_columns,
                diags,
            ) {
                fields.push(f);
            }
        }
    }
    let mut identity_fields = Vec::new();
    for (name, m) in &src.identity {
        let p = child(&child(base, "identity"), name);
        if is_identity_source && src.fields.contains_key(name) {
            diags.push(
                Diagnostic::new(
                    "ONB0204",
                    format!("`{name}` is mapped in both `fields` and `identity`"),
                )
                .at_opt(spans.key(&p))
                .label("second mapping")
                .help("this source maps to person_identity: keep the mapping in `fields` only"),
            );
            continue;
        }
        if let Some(f) = check_field(
            checker,
            loaded,
            &identity,
            name,
            m,
            &p,
            src,
            source_df.as_ref(),
            &mut used_columns,
            diags,
        ) {
            identity_fields.push(f);
        }
    }

    // Required canonical fields.
    if let Some(entity) = &entity {
        for f in entity.fields.iter().filter(|f| f.required && !f.derived) {
            let mapped = src.fields.contains_key(&f.name)
                || (is_identity_source && src.identity.contains_key(&f.name));
            if !mapped {
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
        }
        if !is_identity_source && src.identity.is_empty() {
            diags.push(
                Diagnostic::new(
                    "ONB0214",
                    format!("source `{id}` has no `identity:` block; its rows cannot be linked to people"),
                )
                .at_opt(spans.key(base))
                .help("map at least `nhs_number` and `date_of_birth` (or a local id) under `identity:`"),
            );
        }
    }

    // Unused columns (a warning: they are read and ignored). Only said when the
    // source is otherwise sound, so it never buries an error.
    for (i, c) in src.columns.iter().enumerate() {
        if diags.errors() == before && !used_columns.contains(c) {
            diags.push(
                Diagnostic::new("ONB0212", format!("column `{c}` is declared but not used"))
                    .at_opt(spans.value(&format!("{base}/columns/{i}")))
                    .label("unused"),
            );
        }
    }

    // Quality rules.
    let mut quality = Vec::new();
    if let Some(entity) = &entity {
        let mut mapped: IndexMap<String, CanonicalField> = IndexMap::new();
        for f in fields.iter().chain(identity_fields.iter()) {
            mapped.insert(f.field.name.clone(), f.field.clone());
        }
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (i, rule) in src.quality.iter().enumerate() {
            let p = format!("{base}/quality/{i}");
            if let Some(r) = check_rule(checker, spans, entity, &identity, &mapped, rule, &p, diags)
            {
                if let Some(first) = ids.get(&r.id) {
                    diags.push(
                        Diagnostic::new(
                            "ONB0404",
                            format!("rule id `{}` is used twice in source `{id}`", r.id),
                        )
                        .at_opt(spans.value(&p))
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
        }
    }

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
        identity: identity_fields,
        quality,
        max_quarantine_rate: thresholds.max_quarantine_rate,
        min_rows: thresholds.min_rows,
        on_breach: thresholds.on_breach.unwrap_or_default(),
        delivery: src.delivery.clone().unwrap_or_default(),
    })
}

#[allow(clippy::too_many_arguments)]
fn check_field(
    checker: &Checker,
    loaded: &Loaded,
    entity: &Arc<Entity>,
    name: &str,
    m: &FieldMapping,
    p: &str,
    src: &Source,
    source_df: Option<&DFSchema>,
    used_columns: &mut HashSet<String>,
    diags: &mut Diagnostics,
) -> Option<ResolvedField> {
    let spans = &loaded.doc.spans;
    let model = canonical::model();
    let before = diags.errors();
    let Some(field) = entity.field(name) else {
        let mut help = did_you_mean(name, entity.field_names());
        if help.is_none()
            && entity.zone == Zone::Analytics
            && model.identity().field(name).is_some()
        {
            help = Some(
                "identifiers go in the source's `identity:` block, never in analytics fields"
                    .into(),
            );
        }
        diags.push(
            Diagnostic::new(
                "ONB0202",
                format!(
                    "`{name}` is not a field of canonical entity `{}`",
                    entity.name
                ),
            )
            .at_opt(spans.key(p))
            .label("unknown field")
            .help_opt(help),
        );
        return None;
    };
    if field.derived {
        diags.push(
            Diagnostic::new(
                "ONB0213",
                format!("`{name}` is computed by onboard and cannot be mapped"),
            )
            .at_opt(spans.key(p))
            .label("derived field")
            .help(field.description.clone()),
        );
        return None;
    }

    let kinds = [m.from.is_some(), m.constant.is_some(), m.expr.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        diags.push(
            Diagnostic::new(
                "ONB0208",
                format!("mapping of `{name}` needs exactly one of `from`, `const`, `expr`"),
            )
            .at_opt(spans.key(p))
            .label(if kinds.iter().any(|k| *k) {
                "more than one given"
            } else {
                "none given"
            }),
        );
        return None;
    }
    let target = field.ty.arrow();
    let mut input_type = DataType::Utf8;
    let source = if let Some(col) = &m.from {
        if !src.columns.iter().any(|c| c == col) {
            diags.push(
                Diagnostic::new(
                    "ONB0210",
                    format!(
                        "column `{col}` is not in source columns ({})",
                        preview(&src.columns)
                    ),
                )
                .at_opt(spans.value(&child(p, "from")))
                .label("not declared")
                .help(
                    did_you_mean(col, src.columns.iter().map(String::as_str))
                        .unwrap_or_else(|| "add it to the source's `columns:` list".to_string()),
                ),
            );
        }
        used_columns.insert(col.clone());
        ValueSource::Column(col.clone())
    } else if let Some(c) = &m.constant {
        let text = match c {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                diags.push(
                    Diagnostic::new("ONB0102", "`const` must be a string, number or boolean")
                        .at_opt(spans.value(&child(p, "const")))
                        .label(format!("found {other}")),
                );
                return None;
            }
        };
        if m.transform.is_none()
            && m.map.is_none()
            && m.map_file.is_none()
            && m.parse_date.is_none()
            && m.parse_timestamp.is_none()
        {
            if !const_fits(&text, c, field.ty) {
                diags.push(
                    Diagnostic::new(
                        "ONB0205",
                        format!(
                            "constant `{text}` cannot be a `{}` (field `{name}`)",
                            field.ty.name()
                        ),
                    )
                    .at_opt(spans.value(&child(p, "const")))
                    .label("type conflict"),
                );
            } else if let Some(vs) = &field.value_set
                && !vs.contains(&text)
            {
                diags.push(
                    Diagnostic::new(
                        "ONB0206",
                        format!(
                            "`{text}` is not in value set `{}` of field `{name}`",
                            vs.name
                        ),
                    )
                    .at_opt(spans.value(&child(p, "const")))
                    .label("not in value set")
                    .help(codes_help(&text, vs)),
                );
            }
        }
        ValueSource::Const(text)
    } else {
        let sql = m.expr.clone().unwrap_or_default();
        if let Some(df) = source_df {
            match check_sql(checker, &sql, df) {
                Ok((ty, cols)) => {
                    input_type = ty;
                    used_columns.extend(cols);
                }
                Err(d) => diags.push(d.at_opt(spans.value(&child(p, "expr")))),
            }
        }
        ValueSource::Expr(sql)
    };

    // Transforms.
    let mut transforms = Vec::new();
    if let Some(t) = &m.transform {
        let list = t.to_vec();
        let many = matches!(t, crate::manifest::model::OneOrMany::Many(_));
        for (i, name_t) in list.iter().enumerate() {
            let tp = if many {
                format!("{p}/transform/{i}")
            } else {
                child(p, "transform")
            };
            match rules::transform(name_t) {
                Some(def) => transforms.push(def.sql),
                None => diags.push(
                    Diagnostic::new("ONB0209", format!("unknown transform `{name_t}`"))
                        .at_opt(spans.value(&tp))
                        .label("no such transform")
                        .help(
                            did_you_mean(name_t, rules::TRANSFORMS.iter().map(|t| t.name))
                                .unwrap_or_else(|| {
                                    format!(
                                        "transforms: {}",
                                        rules::TRANSFORMS
                                            .iter()
                                            .map(|t| t.name)
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                }),
                        ),
                ),
            }
        }
        if !transforms.is_empty() {
            input_type = DataType::Utf8;
        }
    }

    // Value maps.
    let mut map: Option<IndexMap<String, String>> = None;
    if m.map.is_some() && m.map_file.is_some() {
        diags.push(
            Diagnostic::new("ONB0104", "give either `map` or `map_file`, not both")
                .at_opt(spans.key(&child(p, "map_file"))),
        );
    }
    if let Some(inline) = &m.map {
        let mut out = IndexMap::new();
        for (k, v) in inline {
            let t = v.as_text();
            check_code(
                field,
                &t,
                spans.value(&child(&child(p, "map"), k)),
                name,
                diags,
            );
            out.insert(k.clone(), t);
        }
        map = Some(out);
    }
    if let Some(file) = &m.map_file {
        let at = spans.value(&child(p, "map_file"));
        match read_map_file(&checker.root, &loaded.path, file) {
            Ok(entries) => {
                for (line, (_, t)) in entries.iter().enumerate() {
                    if let Some(vs) = &field.value_set
                        && !vs.contains(t)
                    {
                        diags.push(
                            Diagnostic::new(
                                "ONB0206",
                                format!("`{file}` line {} maps to `{t}`, which is not in value set `{}` of field `{name}`", line + 2, vs.name),
                            )
                            .at_opt(at.clone())
                            .label("map file has a bad target")
                            .help(codes_help(t, vs)),
                        );
                    }
                }
                map = Some(entries.into_iter().collect());
            }
            Err((code, msg)) => diags.push(Diagnostic::new(code, msg).at_opt(at).label("map file")),
        }
    }
    let map_default = m.map_default.as_ref().map(|c| {
        let t = c.as_text();
        check_code(
            field,
            &t,
            spans.value(&child(p, "map_default")),
            name,
            diags,
        );
        t
    });
    if map.is_some() {
        input_type = DataType::Utf8;
    }

    // Dates.
    let date_formats = m
        .parse_date
        .as_ref()
        .map(|f| f.to_vec())
        .unwrap_or_default();
    let timestamp_formats = m
        .parse_timestamp
        .as_ref()
        .map(|f| f.to_vec())
        .unwrap_or_default();
    for (key, formats) in [
        ("parse_date", &date_formats),
        ("parse_timestamp", &timestamp_formats),
    ] {
        if formats.is_empty() {
            continue;
        }
        if !matches!(field.ty, FieldType::Date | FieldType::Timestamp) {
            diags.push(
                Diagnostic::new(
                    "ONB0205",
                    format!(
                        "`{key}` on field `{name}`, which is `{}`, not a date",
                        field.ty.name()
                    ),
                )
                .at_opt(spans.key(&child(p, key)))
                .label("type conflict")
                .help("remove it, or map a date field"),
            );
        }
        for f in formats.iter() {
            if let Err(e) = check_date_format(f) {
                diags.push(
                    Diagnostic::new("ONB0211", e)
                        .at_opt(spans.value(&child(p, key)))
                        .label("bad format")
                        .help("use strftime codes, e.g. `%d/%m/%Y` or `%Y-%m-%d %H:%M:%S`"),
                );
            }
        }
        input_type = if key == "parse_date" {
            DataType::Date32
        } else {
            target.clone()
        };
    }
    if (map.is_some() || m.map_default.is_some())
        && matches!(field.ty, FieldType::Date | FieldType::Timestamp)
        && date_formats.is_empty()
        && timestamp_formats.is_empty()
    {
        diags.push(
            Diagnostic::new("ONB0205", format!("value map on date field `{name}`"))
                .at_opt(spans.key(&child(p, if m.map.is_some() { "map" } else { "map_file" })))
                .label("type conflict")
                .help("dates are parsed with `parse_date`, not mapped"),
        );
    }
    if matches!(source, ValueSource::Expr(_))
        && !can_cast_types(&input_type, &target)
        && input_type != DataType::Null
    {
        diags.push(
            Diagnostic::new(
                "ONB0205",
                format!(
                    "expression gives `{input_type}`, which cannot become `{}` (field `{name}`)",
                    field.ty.name()
                ),
            )
            .at_opt(spans.value(&child(p, "expr")))
            .label("type conflict"),
        );
    }
    if diags.errors() > before {
        return None;
    }
    Some(ResolvedField {
        field: field.clone(),
        source,
        transforms,
        map,
        map_default,
        date_formats,
        timestamp_formats,
    })
}

fn preview(cols: &[String]) -> String {
    if cols.len() <= 6 {
        cols.join(", ")
    } else {
        format!("{}, … {} more", cols[..5].join(", "), cols.len() - 5)
    }
}

fn codes_help(got: &str, vs: &canonical::ValueSet) -> String {
    did_you_mean(got, vs.codes()).unwrap_or_else(|| {
        let codes: Vec<&str> = vs.codes().collect();
        if codes.len() <= 20 {
            format!("allowed codes: {}", codes.join(", "))
        } else {
            format!(
                "value set `{}` has {} codes; see schemas/canonical/value_sets.yaml",
                vs.name,
                codes.len()
            )
        }
    })
}

fn check_code(
    field: &CanonicalField,
    code: &str,
    at: Option<Span>,
    name: &str,
    diags: &mut Diagnostics,
) {
    if let Some(vs) = &field.value_set
        && !vs.contains(code)
    {
        diags.push(
            Diagnostic::new(
                "ONB0206",
                format!(
                    "`{code}` is not in value set `{}` of field `{name}`",
                    vs.name
                ),
            )
            .at_opt(at)
            .label("not in value set")
            .help(codes_help(code, vs)),
        );
    } else if field.value_set.is_none() && !text_fits(code, field.ty) {
        diags.push(
            Diagnostic::new(
                "ONB0205",
                format!(
                    "`{code}` cannot be a `{}` (field `{name}`)",
                    field.ty.name()
                ),
            )
            .at_opt(at)
            .label("type conflict"),
        );
    }
}

fn text_fits(text: &str, ty: FieldType) -> bool {
    match ty {
        FieldType::Utf8 => true,
        FieldType::Int64 => text.trim().parse::<i64>().is_ok(),
        FieldType::Float64 | FieldType::Decimal { .. } => text.trim().parse::<f64>().is_ok(),
        FieldType::Boolean => matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "true" | "false" | "1" | "0" | "yes" | "no"
        ),
        FieldType::Date => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").is_ok(),
        FieldType::Timestamp => {
            chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S").is_ok()
                || chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S").is_ok()
                || chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").is_ok()
        }
    }
}

fn const_fits(text: &str, v: &Value, ty: FieldType) -> bool {
    match (v, ty) {
        (Value::Bool(_), FieldType::Boolean | FieldType::Utf8) => true,
        (Value::Bool(_), _) => false,
        _ => text_fits(text, ty),
    }
}

/// Read a two-column `source,target` CSV with a header. Paths are relative to the
/// manifest and must stay inside the project root.
pub fn read_map_file(
    root: &Path,
    manifest: &Path,
    file: &str,
) -> Result<Vec<(String, String)>, (&'static str, String)> {
    if !path_stays_inside(file) {
        return Err((
            "ONB0701",
            format!("map file `{file}` is an absolute path or leaves the repository"),
        ));
    }
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let full = dir.join(file);
    let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if let Ok(c) = full.canonicalize()
        && !c.starts_with(&canon_root)
    {
        return Err((
            "ONB0701",
            format!("map file `{file}` resolves outside the repository"),
        ));
    }
    let text = std::fs::read_to_string(&full)
        .map_err(|e| ("ONB0207", format!("cannot read map file `{file}`: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header_len = rdr.headers().map(|h| h.len()).unwrap_or(0);
    if header_len != 2 {
        return Err((
            "ONB0207",
            format!("map file `{file}` must start with a two-column header (source,target)"),
        ));
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| ("ONB0207", format!("map file `{file}` line {}: {e}", i + 2)))?;
        if rec.len() == 1 && rec.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue;
        }
        if rec.len() != 2 {
            return Err((
                "ONB0207",
                format!(
                    "map file `{file}` line {}: expected 2 columns, found {}",
                    i + 2,
                    rec.len()
                ),
            ));
        }
        let k = rec.get(0).unwrap_or("").trim().to_string();
        if !seen.insert(k.clone()) {
            return Err((
                "ONB0207",
                format!(
                    "map file `{file}` line {}: source value `{k}` is mapped twice",
                    i + 2
                ),
            ));
        }
        out.push((k, rec.get(1).unwrap_or("").trim().to_string()));
    }
    Ok(out)
}

/// Parse and type-check a SQL expression; returns its type and the columns it reads.
pub fn check_sql(
    checker: &Checker,
    sql: &str,
    schema: &DFSchema,
) -> Result<(DataType, Vec<String>), Diagnostic> {
    let expr = match checker.ctx.parse_sql_expr(sql, schema) {
        Ok(e) => e,
        Err(e) => return Err(sql_error(checker, &e, schema)),
    };
    if !find_aggregate_exprs(std::iter::once(&expr)).is_empty() {
        return Err(Diagnostic::new("ONB0304", "aggregate functions are not allowed in row expressions")
            .label("aggregate")
            .help("expressions are evaluated per row; use a quality rule such as `unique` for cross-row checks"));
    }
    let ty = expr.get_type(schema).map_err(|e| {
        Diagnostic::new(
            "ONB0304",
            format!(
                "expression does not type-check: {}",
                first_line(&e.find_root().to_string())
            ),
        )
        .label("type error")
    })?;
    let cols = expr
        .column_refs()
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    Ok((ty, cols))
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn sql_error(checker: &Checker, e: &DataFusionError, schema: &DFSchema) -> Diagnostic {
    let root = e.find_root();
    if let DataFusionError::SchemaError(se, _) = root
        && let SchemaError::FieldNotFound { field, .. } = se.as_ref()
    {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut help = did_you_mean(&field.name, names.iter().map(String::as_str));
        if help.is_none() {
            help = Some(format!("available: {}", preview(&names)));
        }
        return Diagnostic::new(
            "ONB0302",
            format!("expression names unknown column `{}`", field.name),
        )
        .label("unknown column")
        .help_opt(help);
    }
    match root {
        DataFusionError::SQL(pe, _) => {
            Diagnostic::new("ONB0301", format!("SQL expression does not parse: {pe}"))
                .label("syntax error")
        }
        other => {
            let msg = other.to_string();
            if let Some(rest) = msg.split("Invalid function '").nth(1) {
                let name = rest.split('\'').next().unwrap_or("").to_string();
                Diagnostic::new(
                    "ONB0303",
                    format!("expression calls unknown function `{name}`"),
                )
                .label("unknown function")
                .help_opt(did_you_mean(
                    &name,
                    checker.function_names.iter().map(String::as_str),
                ))
            } else {
                Diagnostic::new(
                    "ONB0304",
                    format!("expression is not valid: {}", first_line(&msg)),
                )
                .label("invalid")
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_rule(
    checker: &Checker,
    spans: &SpanIndex,
    entity: &Arc<Entity>,
    identity: &Arc<Entity>,
    mapped: &IndexMap<String, CanonicalField>,
    r: &QualityRule,
    p: &str,
    diags: &mut Diagnostics,
) -> Option<ResolvedRule> {
    let before = diags.errors();
    let on_fail = r.on_fail.unwrap_or(OnFail::Quarantine);
    let given: Vec<(Param, bool)> = vec![
        (Param::Field, r.field.is_some()),
        (Param::Fields, r.fields.is_some()),
        (Param::Pattern, r.pattern.is_some()),
        (Param::Values, r.values.is_some()),
        (Param::Min, r.min.is_some()),
        (Param::Max, r.max.is_some()),
        (Param::After, r.after.is_some()),
        (Param::MinLength, r.min_length.is_some()),
        (Param::MaxLength, r.max_length.is_some()),
    ];
    match (&r.rule, &r.expr) {
        (Some(_), Some(_)) | (None, None) => {
            diags.push(
                Diagnostic::new(
                    "ONB0405",
                    "a quality rule needs exactly one of `rule` or `expr`",
                )
                .at_opt(spans.value(p))
                .label(if r.rule.is_some() {
                    "both given"
                } else {
                    "neither given"
                }),
            );
            None
        }
        (None, Some(sql)) => {
            for (param, present) in &given {
                if *present {
                    diags.push(
                        Diagnostic::new(
                            "ONB0402",
                            format!("custom `expr` rules take no `{}`", param.key()),
                        )
                        .at_opt(spans.key(&child(p, param.key())))
                        .label("not a parameter of expr rules"),
                    );
                }
            }
            let Some(id) = &r.id else {
                diags.push(
                    Diagnostic::new("ONB0402", "a custom `expr` rule needs an `id`")
                        .at_opt(spans.value(p))
                        .label("missing id")
                        .help("e.g. `id: plausible_dob`"),
                );
                return None;
            };
            let schema = Schema::new(
                mapped
                    .values()
                    .map(|f| Field::new(&f.name, f.ty.arrow(), true))
                    .collect::<Vec<_>>(),
            );
            if let Ok(df) = DFSchema::try_from(schema) {
                match check_sql(checker, sql, &df) {
                    Ok((ty, _)) if ty != DataType::Boolean => diags.push(
                        Diagnostic::new("ONB0304", format!("rule expression gives `{ty}`, not a boolean"))
                            .at_opt(spans.value(&child(p, "expr")))
                            .label("not boolean")
                            .help("a rule expression is true for good rows, e.g. `date_of_birth >= DATE '1890-01-01'`"),
                    ),
                    Ok(_) => {}
                    Err(d) => {
                        let d = if d.code == "ONB0302" {
                            d.help("rule expressions see the mapped canonical fields, not the source columns")
                        } else {
                            d
                        };
                        diags.push(d.at_opt(spans.value(&child(p, "expr"))))
                    }
                }
            }
            if diags.errors() > before {
                return None;
            }
            Some(ResolvedRule {
                id: id.clone(),
                code: rules::CUSTOM_RULE_CODE,
                category: r
                    .category
                    .unwrap_or(crate::manifest::model::KahnCategory::Plausibility),
                on_fail,
                check: RuleCheck::Expr { sql: sql.clone() },
                description: r.description.clone(),
            })
        }
        (Some(name), None) => {
            let Some(def) = rules::rule(name) else {
                diags.push(
                    Diagnostic::new("ONB0401", format!("unknown quality rule `{name}`"))
                        .at_opt(spans.value(&child(p, "rule")))
                        .label("no such rule")
                        .help(did_you_mean(name, rules::RULES.iter().map(|r| r.name)).unwrap_or_else(|| {
                            "see docs/rules.md for the rule library, or write a custom rule with `expr:`".into()
                        })),
                );
                return None;
            };
            for (param, present) in &given {
                let allowed = def.required.contains(param) || def.optional.contains(param);
                if *present && !allowed {
                    diags.push(
                        Diagnostic::new(
                            "ONB0402",
                            format!("rule `{name}` takes no `{}`", param.key()),
                        )
                        .at_opt(spans.key(&child(p, param.key())))
                        .label("unexpected parameter"),
                    );
                }
                if !*present && def.required.contains(param) {
                    diags.push(
                        Diagnostic::new(
                            "ONB0402",
                            format!("rule `{name}` needs `{}`", param.key()),
                        )
                        .at_opt(spans.value(p))
                        .label(format!("`{}` missing", param.key()))
                        .help(format!("e.g. {}", def.example)),
                    );
                }
            }
            if r.category.is_some() {
                diags.push(
                    Diagnostic::new(
                        "ONB0402",
                        format!("built-in rule `{name}` has a fixed category"),
                    )
                    .at_opt(spans.key(&child(p, "category")))
                    .label("only for expr rules"),
                );
            }
            let field_ok = |f: &str,
                            key: &str,
                            diags: &mut Diagnostics|
             -> Option<CanonicalField> {
                if let Some(cf) = mapped.get(f) {
                    return Some(cf.clone());
                }
                let at = spans.value(&child(p, key));
                if entity.field(f).is_some() || identity.field(f).is_some() {
                    diags.push(
                        Diagnostic::new(
                            "ONB0403",
                            format!("rule `{name}` checks `{f}`, which this source does not map"),
                        )
                        .at_opt(at)
                        .label("not mapped")
                        .help(format!(
                            "map `{f}` under `fields:` (or `identity:`), or drop the rule"
                        )),
                    );
                } else {
                    let names: Vec<&str> = mapped.keys().map(String::as_str).collect();
                    diags.push(
                        Diagnostic::new(
                            "ONB0202",
                            format!("`{f}` is not a field of canonical entity `{}`", entity.name),
                        )
                        .at_opt(at)
                        .label("unknown field")
                        .help_opt(did_you_mean(
                            f,
                            names.into_iter().chain(entity.field_names()),
                        )),
                    );
                }
                None
            };
            let field = r.field.as_deref().and_then(|f| field_ok(f, "field", diags));
            let fname = r.field.clone().unwrap_or_default();
            let check = match def.name {
                "nhs_number_valid" => RuleCheck::NhsNumberValid {
                    field: fname.clone(),
                },
                "postcode_valid" => RuleCheck::PostcodeValid {
                    field: fname.clone(),
                },
                "matches_regex" => {
                    let pat = r.pattern.clone().unwrap_or_default();
                    if let Err(e) = Regex::new(&pat) {
                        diags.push(
                            Diagnostic::new(
                                "ONB0402",
                                format!(
                                    "`pattern` is not a valid regular expression: {}",
                                    one_line(&e.to_string())
                                ),
                            )
                            .at_opt(spans.value(&child(p, "pattern")))
                            .label("bad regex"),
                        );
                    }
                    RuleCheck::MatchesRegex {
                        field: fname.clone(),
                        pattern: pat,
                    }
                }
                "in_value_set" => {
                    let values = match (&r.values, field.as_ref().and_then(|f| f.value_set.clone()))
                    {
                        (Some(v), _) => v.iter().map(|c| c.as_text()).collect(),
                        (None, Some(vs)) => vs.codes().map(str::to_string).collect(),
                        (None, None) => {
                            if field.is_some() {
                                diags.push(
                                    Diagnostic::new("ONB0402", format!("field `{fname}` has no canonical value set; give `values`"))
                                        .at_opt(spans.value(p))
                                        .label("`values` missing"),
                                );
                            }
                            Vec::new()
                        }
                    };
                    RuleCheck::InValueSet {
                        field: fname.clone(),
                        values,
                    }
                }
                "parseable" => RuleCheck::Parseable {
                    field: fname.clone(),
                },
                "length" => {
                    if r.min_length.is_none() && r.max_length.is_none() {
                        diags.push(
                            Diagnostic::new(
                                "ONB0402",
                                "rule `length` needs `min_length` or `max_length`",
                            )
                            .at_opt(spans.value(p))
                            .label("no bound"),
                        );
                    }
                    RuleCheck::Length {
                        field: fname.clone(),
                        min: r.min_length,
                        max: r.max_length,
                    }
                }
                "not_null" => RuleCheck::NotNull {
                    field: fname.clone(),
                },
                "in_range" => {
                    if r.min.is_none() && r.max.is_none() {
                        diags.push(
                            Diagnostic::new("ONB0402", "rule `in_range` needs `min` or `max`")
                                .at_opt(spans.value(p))
                                .label("no bound"),
                        );
                    }
                    let mut bound = |v: &Option<Value>, key: &str| -> Option<String> {
                        let v = v.as_ref()?;
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            other => other.to_string(),
                        };
                        if let Some(f) = &field {
                            let ok = match f.ty {
                                FieldType::Date | FieldType::Timestamp => {
                                    text_fits(&text, FieldType::Date)
                                }
                                FieldType::Int64
                                | FieldType::Float64
                                | FieldType::Decimal { .. } => matches!(v, Value::Number(_)),
                                _ => false,
                            };
                            if !ok {
                                diags.push(
                                    Diagnostic::new(
                                        "ONB0402",
                                        format!(
                                            "`{key}` of `in_range` on `{}` field `{}` must be {}",
                                            f.ty.name(),
                                            f.name,
                                            if matches!(
                                                f.ty,
                                                FieldType::Date | FieldType::Timestamp
                                            ) {
                                                "a date YYYY-MM-DD"
                                            } else if matches!(
                                                f.ty,
                                                FieldType::Utf8 | FieldType::Boolean
                                            ) {
                                                "used on a number or date field"
                                            } else {
                                                "a number"
                                            }
                                        ),
                                    )
                                    .at_opt(spans.value(&child(p, key)))
                                    .label("bad bound"),
                                );
                            }
                        }
                        Some(text)
                    };
                    let min = bound(&r.min, "min");
                    let max = bound(&r.max, "max");
                    RuleCheck::InRange {
                        field: fname.clone(),
                        min,
                        max,
                    }
                }
                "not_in_future" => {
                    if let Some(f) = &field
                        && !matches!(f.ty, FieldType::Date | FieldType::Timestamp)
                    {
                        diags.push(
                            Diagnostic::new(
                                "ONB0402",
                                format!(
                                    "`not_in_future` needs a date field; `{}` is `{}`",
                                    f.name,
                                    f.ty.name()
                                ),
                            )
                            .at_opt(spans.value(&child(p, "field")))
                            .label("not a date"),
                        );
                    }
                    RuleCheck::NotInFuture {
                        field: fname.clone(),
                    }
                }
                "date_order" => {
                    let after = r.after.clone().unwrap_or_default();
                    if r.after.is_some() {
                        field_ok(&after, "after", diags);
                    }
                    RuleCheck::DateOrder {
                        field: fname.clone(),
                        after,
                    }
                }
                "unique" => {
                    let fs = r.fields.clone().unwrap_or_default();
                    for (i, f) in fs.iter().enumerate() {
                        field_ok(f, &format!("fields/{i}"), diags);
                    }
                    if r.fields.as_ref().is_some_and(|f| f.is_empty()) {
                        diags.push(
                            Diagnostic::new("ONB0402", "`fields` of `unique` cannot be empty")
                                .at_opt(spans.value(&child(p, "fields"))),
                        );
                    }
                    RuleCheck::Unique { fields: fs }
                }
                _ => return None,
            };
            if diags.errors() > before {
                return None;
            }
            let id = r.id.clone().unwrap_or_else(|| match (&r.field, &r.fields) {
                (Some(f), _) => format!("{name}_{f}"),
                (None, Some(fs)) => format!("{name}_{}", fs.join("_")),
                _ => name.clone(),
            });
            Some(ResolvedRule {
                id,
                code: def.code,
                category: def.category,
                on_fail,
                check,
                description: r.description.clone(),
            })
        }
    }
}
