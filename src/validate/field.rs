//! Checks of one canonical field mapping (`fields:` and `identity:` entries): the
//! canonical field exists and may be mapped, exactly one value source (`from`, `const`,
//! `expr`), named transforms, value maps (inline or `map_file`) against the field's value
//! set, date formats, and whether the mapped value can become the field's type.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use indexmap::IndexMap;
use serde_json::Value;

use super::resolved::{ResolvedField, ValueSource};
use super::semantic::{Checker, path_stays_inside};
use super::sql::check_sql;
use super::transforms;
use super::values::{check_code, codes_help, const_fits, preview};
use crate::canonical::{self, CanonicalField, Entity, FieldType, Zone};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::manifest::Loaded;
use crate::manifest::model::{FieldMapping, Source};
use crate::manifest::source::{SpanIndex, child};
use crate::udf::text::check_date_format;

/// What every field mapping of one source is checked against.
pub struct FieldContext<'a> {
    pub checker: &'a Checker,
    pub loaded: &'a Loaded,
    pub src: &'a Source,
    /// The declared columns as a schema (for `expr:`), when they form one.
    pub source_df: Option<&'a DFSchema>,
}

/// One mapping being checked: the canonical field's name, the mapping, its pointer.
struct Mapping<'a> {
    name: &'a str,
    m: &'a FieldMapping,
    p: &'a str,
    spans: &'a SpanIndex,
}

impl Mapping<'_> {
    fn at(&self, key: &str) -> Option<crate::diagnostics::Span> {
        self.spans.value(&child(self.p, key))
    }
}

/// Check the mapping `m` of canonical field `name` of `entity` at pointer `p`. Columns
/// it reads are added to `used_columns`. Returns the resolved field when it has no errors.
pub fn check_field(
    cx: &FieldContext<'_>,
    entity: &Arc<Entity>,
    (name, m, p): (&str, &FieldMapping, &str),
    used_columns: &mut HashSet<String>,
    diags: &mut Diagnostics,
) -> Option<ResolvedField> {
    let before = diags.errors();
    let spans = &cx.loaded.doc.spans;
    let mp = Mapping { name, m, p, spans };
    let field = mappable_field(entity, &mp, diags)?;
    if !one_value_source(&mp, diags) {
        return None;
    }
    let target = field.ty.arrow();
    let (source, mut input_type) = value_source(cx, field, &mp, used_columns, diags)?;
    let transforms = named_transforms(&mp, diags);
    if !transforms.is_empty() {
        input_type = DataType::Utf8;
    }
    let (map, map_default) = value_map(cx, field, &mp, diags);
    if map.is_some() {
        input_type = DataType::Utf8;
    }
    let (date_formats, timestamp_formats) = date_formats(field, &mp, diags);
    if let Some(last) = [
        ("parse_date", &date_formats),
        ("parse_timestamp", &timestamp_formats),
    ]
    .iter()
    .rev()
    .find(|(_, f)| !f.is_empty())
    {
        input_type = if last.0 == "parse_date" {
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
            .at_opt(mp.at("expr"))
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

/// The canonical field, if it exists and is not derived by onboard.
fn mappable_field<'e>(
    entity: &'e Arc<Entity>,
    mp: &Mapping<'_>,
    diags: &mut Diagnostics,
) -> Option<&'e CanonicalField> {
    let name = mp.name;
    let Some(field) = entity.field(name) else {
        let mut help = did_you_mean(name, entity.field_names());
        if help.is_none()
            && entity.zone == Zone::Analytics
            && canonical::model().identity().field(name).is_some()
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
            .at_opt(mp.spans.key(mp.p))
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
            .at_opt(mp.spans.key(mp.p))
            .label("derived field")
            .help(field.description.clone()),
        );
        return None;
    }
    Some(field)
}

/// Exactly one of `from`, `const`, `expr`.
fn one_value_source(mp: &Mapping<'_>, diags: &mut Diagnostics) -> bool {
    let m = mp.m;
    let kinds = [m.from.is_some(), m.constant.is_some(), m.expr.is_some()];
    if kinds.iter().filter(|k| **k).count() == 1 {
        return true;
    }
    diags.push(
        Diagnostic::new(
            "ONB0208",
            format!(
                "mapping of `{}` needs exactly one of `from`, `const`, `expr`",
                mp.name
            ),
        )
        .at_opt(mp.spans.key(mp.p))
        .label(if kinds.iter().any(|k| *k) {
            "more than one given"
        } else {
            "none given"
        }),
    );
    false
}

/// Where the value comes from, and its type before any transform or map.
fn value_source(
    cx: &FieldContext<'_>,
    field: &CanonicalField,
    mp: &Mapping<'_>,
    used_columns: &mut HashSet<String>,
    diags: &mut Diagnostics,
) -> Option<(ValueSource, DataType)> {
    let m = mp.m;
    if let Some(col) = &m.from {
        let columns = &cx.src.columns;
        if !columns.iter().any(|c| c == col) {
            diags.push(
                Diagnostic::new(
                    "ONB0210",
                    format!(
                        "column `{col}` is not in source columns ({})",
                        preview(columns)
                    ),
                )
                .at_opt(mp.at("from"))
                .label("not declared")
                .help(
                    did_you_mean(col, columns.iter().map(String::as_str))
                        .unwrap_or_else(|| "add it to the source's `columns:` list".to_string()),
                ),
            );
        }
        used_columns.insert(col.clone());
        return Some((ValueSource::Column(col.clone()), DataType::Utf8));
    }
    if let Some(c) = &m.constant {
        return constant(field, mp, c, diags).map(|t| (ValueSource::Const(t), DataType::Utf8));
    }
    let sql = m.expr.clone().unwrap_or_default();
    let mut input_type = DataType::Utf8;
    if let Some(df) = cx.source_df {
        match check_sql(cx.checker, &sql, df) {
            Ok((ty, cols)) => {
                input_type = ty;
                used_columns.extend(cols);
            }
            Err(d) => diags.push(d.at_opt(mp.at("expr"))),
        }
    }
    Some((ValueSource::Expr(sql), input_type))
}

/// A `const:` as text, checked against the field's type and value set when it is used
/// as is (no transform, map or date parsing).
fn constant(
    field: &CanonicalField,
    mp: &Mapping<'_>,
    c: &Value,
    diags: &mut Diagnostics,
) -> Option<String> {
    let (m, name) = (mp.m, mp.name);
    let text = match c {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            diags.push(
                Diagnostic::new("ONB0102", "`const` must be a string, number or boolean")
                    .at_opt(mp.at("const"))
                    .label(format!("found {other}")),
            );
            return None;
        }
    };
    let used_as_is = m.transform.is_none()
        && m.map.is_none()
        && m.map_file.is_none()
        && m.parse_date.is_none()
        && m.parse_timestamp.is_none();
    if !used_as_is {
        return Some(text);
    }
    if !const_fits(&text, c, field.ty) {
        diags.push(
            Diagnostic::new(
                "ONB0205",
                format!(
                    "constant `{text}` cannot be a `{}` (field `{name}`)",
                    field.ty.name()
                ),
            )
            .at_opt(mp.at("const"))
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
            .at_opt(mp.at("const"))
            .label("not in value set")
            .help(codes_help(&text, vs)),
        );
    }
    Some(text)
}

/// The SQL templates of the named transforms, in order.
fn named_transforms(mp: &Mapping<'_>, diags: &mut Diagnostics) -> Vec<&'static str> {
    let mut out = Vec::new();
    let Some(t) = &mp.m.transform else {
        return out;
    };
    let many = matches!(t, crate::manifest::model::OneOrMany::Many(_));
    for (i, name_t) in t.to_vec().iter().enumerate() {
        let tp = if many {
            format!("{}/transform/{i}", mp.p)
        } else {
            child(mp.p, "transform")
        };
        match transforms::transform(name_t) {
            Some(def) => out.push(def.sql),
            None => diags.push(
                Diagnostic::new("ONB0209", format!("unknown transform `{name_t}`"))
                    .at_opt(mp.spans.value(&tp))
                    .label("no such transform")
                    .help(
                        did_you_mean(name_t, transforms::TRANSFORMS.iter().map(|t| t.name))
                            .unwrap_or_else(|| format!("transforms: {}", transforms::names())),
                    ),
            ),
        }
    }
    out
}

type ValueMap = (Option<IndexMap<String, String>>, Option<String>);

/// The value map (`map:` or `map_file:`) and `map_default:`, targets checked against the
/// field's value set.
fn value_map(
    cx: &FieldContext<'_>,
    field: &CanonicalField,
    mp: &Mapping<'_>,
    diags: &mut Diagnostics,
) -> ValueMap {
    let (m, p, name, spans) = (mp.m, mp.p, mp.name, mp.spans);
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
            let at = spans.value(&child(&child(p, "map"), k));
            check_code(field, &t, at, name, diags);
            out.insert(k.clone(), t);
        }
        map = Some(out);
    }
    if let Some(file) = &m.map_file {
        map = map_file(cx, field, mp, file, diags).or(map);
    }
    if map.as_ref().is_some_and(IndexMap::is_empty) {
        let key = if m.map_file.is_some() {
            "map_file"
        } else {
            "map"
        };
        diags.push(
            Diagnostic::new("ONB0217", format!("value map of `{name}` has no entries"))
                .at_opt(spans.key(&child(p, key)))
                .label("empty map")
                .help("list source codes and their canonical codes, or remove the map"),
        );
        map = None;
    }
    let map_default = m.map_default.as_ref().map(|c| {
        let t = c.as_text();
        check_code(field, &t, mp.at("map_default"), name, diags);
        t
    });
    (map, map_default)
}

fn map_file(
    cx: &FieldContext<'_>,
    field: &CanonicalField,
    mp: &Mapping<'_>,
    file: &str,
    diags: &mut Diagnostics,
) -> Option<IndexMap<String, String>> {
    let at = mp.at("map_file");
    match read_map_file(&cx.checker.root, &cx.loaded.path, file) {
        Ok(entries) => {
            for (line, (_, t)) in entries.iter().enumerate() {
                if let Some(vs) = &field.value_set
                    && !vs.contains(t)
                {
                    diags.push(
                        Diagnostic::new(
                            "ONB0206",
                            format!(
                                "`{file}` line {} maps to `{t}`, which is not in value set `{}` of field `{}`",
                                line + 2,
                                vs.name,
                                mp.name
                            ),
                        )
                        .at_opt(at.clone())
                        .label("map file has a bad target")
                        .help(codes_help(t, vs)),
                    );
                }
            }
            Some(entries.into_iter().collect())
        }
        Err((code, msg)) => {
            diags.push(Diagnostic::new(code, msg).at_opt(at).label("map file"));
            None
        }
    }
}

/// `parse_date` / `parse_timestamp` formats, checked and only on date fields.
fn date_formats(
    field: &CanonicalField,
    mp: &Mapping<'_>,
    diags: &mut Diagnostics,
) -> (Vec<String>, Vec<String>) {
    let m = mp.m;
    let date = m
        .parse_date
        .as_ref()
        .map(|f| f.to_vec())
        .unwrap_or_default();
    let timestamp = (m.parse_timestamp.as_ref())
        .map(|f| f.to_vec())
        .unwrap_or_default();
    for (key, formats) in [("parse_date", &date), ("parse_timestamp", &timestamp)] {
        if formats.is_empty() {
            continue;
        }
        if !matches!(field.ty, FieldType::Date | FieldType::Timestamp) {
            diags.push(
                Diagnostic::new(
                    "ONB0205",
                    format!(
                        "`{key}` on field `{}`, which is `{}`, not a date",
                        mp.name,
                        field.ty.name()
                    ),
                )
                .at_opt(mp.spans.key(&child(mp.p, key)))
                .label("type conflict")
                .help("remove it, or map a date field"),
            );
        }
        for f in formats.iter() {
            if let Err(e) = check_date_format(f) {
                diags.push(
                    Diagnostic::new("ONB0211", e)
                        .at_opt(mp.at(key))
                        .label("bad format")
                        .help("use strftime codes, e.g. `%d/%m/%Y` or `%Y-%m-%d %H:%M:%S`"),
                );
            }
        }
    }
    (date, timestamp)
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
    parse_map_file(file, text.strip_prefix('\u{feff}').unwrap_or(&text))
}

fn parse_map_file(file: &str, text: &str) -> Result<Vec<(String, String)>, (&'static str, String)> {
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
