//! Resolved manifests → DataFusion plans (no I/O).
//!
//! Each source becomes one SQL query over its scan table, in three layers:
//! 1. `mapped`: every canonical field computed from the extract (value source, named
//!    transforms, value maps, date parsing, cast to the canonical type), identity
//!    fields (`id__*`), the raw source text where `parseable` needs it (`raw__*`), the
//!    untouched source columns (`src__*`, kept for quarantine records) and lineage;
//! 2. `checked`: one boolean column per quality rule (`fail__<n>`, true when the row
//!    fails; null never fails), required fields getting an automatic `not_null`;
//! 3. keys: `person_key` candidates (keyed HMAC of a valid NHS number, else of the
//!    provider-local id) and a keyed `record_key` per row.
//!
//! The query text is the "equivalent SQL" that `onboard explain` prints next to the
//! logical plan DataFusion builds from it.

use std::fmt::Write as _;

use datafusion::common::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use crate::canonical::{FieldType, IDENTITY_ENTITY};
use crate::manifest::model::OnFail;
use crate::validate::rules::not_null::{self, NotNull};
use crate::validate::rules::{self, SqlScope};
use crate::validate::{
    ResolvedField, ResolvedManifest, ResolvedRule, ResolvedSource, RuleCheck, ValueSource,
};

/// Run-level values baked into plans.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: String,
    /// Reference date for `not_in_future` (YYYY-MM-DD).
    pub reference_date: String,
}

/// A rule as compiled: its column and everything reports need.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub column: String,
    pub rule: ResolvedRule,
    /// The canonical field(s) the rule looks at (for failing-row samples).
    pub fields: Vec<String>,
    /// Added by onboard (required field), not written in the manifest.
    pub implicit: bool,
}

/// One source compiled.
#[derive(Debug, Clone)]
pub struct CompiledSource {
    pub provider: String,
    pub source: String,
    pub entity: String,
    pub table: String,
    pub sql: String,
    pub rules: Vec<CompiledRule>,
    /// Canonical fields of `entity` that are mapped (output columns of the same name).
    pub mapped: Vec<String>,
    /// person_identity fields mapped in the identity block (columns `id__<name>`).
    pub identity: Vec<String>,
    pub manifest_hash: String,
}

/// The scan table name of a source.
pub fn table_name(provider: &str, source: &str) -> String {
    format!("src__{provider}__{source}")
}

/// Quote an identifier for DataFusion SQL.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quote a string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn sql_type(t: FieldType) -> String {
    match t {
        FieldType::Utf8 => "VARCHAR".into(),
        FieldType::Int64 => "BIGINT".into(),
        FieldType::Float64 => "DOUBLE".into(),
        FieldType::Boolean => "BOOLEAN".into(),
        FieldType::Date => "DATE".into(),
        FieldType::Timestamp => "TIMESTAMP".into(),
        FieldType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
    }
}

/// The source value before any mapping (what `parseable` compares against).
fn base_sql(f: &ResolvedField) -> String {
    match &f.source {
        ValueSource::Column(c) => ident(c),
        ValueSource::Const(v) => lit(v),
        ValueSource::Expr(e) => format!("({e})"),
    }
}

/// The full mapping of one field to its canonical type.
pub fn field_sql(f: &ResolvedField) -> String {
    let mut x = base_sql(f);
    for t in &f.transforms {
        x = t.replace("{}", &x);
    }
    if let Some(map) = &f.map {
        let mut case = format!("CASE CAST({x} AS VARCHAR)");
        for (k, v) in map {
            let _ = write!(case, " WHEN {} THEN {}", lit(k), lit(v));
        }
        match &f.map_default {
            // Unlisted values get the default; a missing value stays missing.
            Some(d) => {
                let _ = write!(case, " ELSE {} END", lit(d));
                case = format!("CASE WHEN {x} IS NULL THEN NULL ELSE {case} END");
            }
            None => case.push_str(" ELSE NULL END"),
        }
        x = case;
    } else if let Some(d) = &f.map_default {
        x = format!("coalesce({x}, {})", lit(d));
    }
    let fmts = |v: &[String]| v.iter().map(|s| lit(s)).collect::<Vec<_>>().join(", ");
    match f.field.ty {
        FieldType::Date => {
            if !f.date_formats.is_empty() {
                x = format!(
                    "parse_date(CAST({x} AS VARCHAR), {})",
                    fmts(&f.date_formats)
                );
            } else if !f.timestamp_formats.is_empty() {
                x = format!(
                    "CAST(parse_timestamp(CAST({x} AS VARCHAR), {}) AS DATE)",
                    fmts(&f.timestamp_formats)
                );
            } else if matches!(f.source, ValueSource::Expr(_)) {
                x = format!("try_cast({x} AS DATE)");
            } else {
                x = format!("parse_date(CAST({x} AS VARCHAR), '%Y-%m-%d')");
            }
        }
        FieldType::Timestamp => {
            if !f.timestamp_formats.is_empty() {
                x = format!(
                    "parse_timestamp(CAST({x} AS VARCHAR), {})",
                    fmts(&f.timestamp_formats)
                );
            } else if !f.date_formats.is_empty() {
                x = format!(
                    "CAST(parse_date(CAST({x} AS VARCHAR), {}) AS TIMESTAMP)",
                    fmts(&f.date_formats)
                );
            } else if matches!(f.source, ValueSource::Expr(_)) {
                x = format!("try_cast({x} AS TIMESTAMP)");
            } else {
                x = format!(
                    "parse_timestamp(CAST({x} AS VARCHAR), '%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d')"
                );
            }
        }
        FieldType::Utf8 => {
            if matches!(f.source, ValueSource::Expr(_)) {
                x = format!("CAST({x} AS VARCHAR)");
            }
        }
        FieldType::Boolean => {
            x = format!(
                "CASE lower(trim(CAST({x} AS VARCHAR))) WHEN 'true' THEN true WHEN 'yes' THEN true WHEN 'y' THEN true WHEN '1' THEN true WHEN 'false' THEN false WHEN 'no' THEN false WHEN 'n' THEN false WHEN '0' THEN false ELSE NULL END"
            );
        }
        t => {
            x = format!("try_cast(trim(CAST({x} AS VARCHAR)) AS {})", sql_type(t));
        }
    }
    x
}

fn typed_literal(t: FieldType, v: &str) -> String {
    match t {
        FieldType::Date => format!("DATE {}", lit(v)),
        FieldType::Timestamp => format!("CAST(DATE {} AS TIMESTAMP)", lit(v)),
        FieldType::Utf8 => lit(v),
        _ => v.to_string(),
    }
}

/// Column name of a canonical field in the mapped layer (of a source column, for rules
/// over one: `src__<column>`, the column as read).
fn col_of(src: &ResolvedSource, name: &str) -> String {
    if let Some(c) = rules::as_source_column(name) {
        return format!("src__{c}");
    }
    let is_identity_entity = src.entity.name == IDENTITY_ENTITY;
    if !is_identity_entity
        && !src.fields.iter().any(|f| f.field.name == name)
        && src.identity.iter().any(|f| f.field.name == name)
    {
        format!("id__{name}")
    } else {
        name.to_string()
    }
}

fn field_type(src: &ResolvedSource, name: &str) -> FieldType {
    src.fields
        .iter()
        .chain(src.identity.iter())
        .find(|f| f.field.name == name)
        .map(|f| f.field.ty)
        .unwrap_or(FieldType::Utf8)
}

/// What rule SQL sees of one source's query.
struct Scope<'a> {
    src: &'a ResolvedSource,
    ctx: &'a RunContext,
}

impl SqlScope for Scope<'_> {
    fn column(&self, field: &str) -> String {
        ident(&col_of(self.src, field))
    }
    fn raw_column(&self, field: &str) -> String {
        ident(&format!("raw__{}", col_of(self.src, field)))
    }
    fn field_type(&self, field: &str) -> FieldType {
        field_type(self.src, field)
    }
    fn literal(&self, text: &str) -> String {
        lit(text)
    }
    fn typed_literal(&self, ty: FieldType, text: &str) -> String {
        typed_literal(ty, text)
    }
    fn reference_date(&self) -> &str {
        &self.ctx.reference_date
    }
}

/// The SQL condition that is true when a row fails, and the fields it reads.
fn rule_sql(src: &ResolvedSource, check: &RuleCheck, ctx: &RunContext) -> (String, Vec<String>) {
    match check {
        RuleCheck::Builtin(r) => (r.failing_sql(&Scope { src, ctx }), r.fields()),
        RuleCheck::Expr { sql } => (format!("NOT ({sql})"), Vec::new()),
    }
}

/// Compile one source of a manifest: layer 1 maps source columns to canonical fields
/// (plus identity fields, raw text for `parseable` rules, lineage); layer 2 adds one
/// failure column per rule and the keys.
pub fn compile_source(
    m: &ResolvedManifest,
    src: &ResolvedSource,
    ctx: &RunContext,
) -> CompiledSource {
    let provider = &m.provider.id;
    let table = table_name(provider, &src.id);
    let rules = rules_with_required(src);
    let parseable: Vec<String> = rules
        .iter()
        .filter_map(|(r, _)| match &r.check {
            RuleCheck::Builtin(b) => b.raw_text_of().map(str::to_string),
            RuleCheck::Expr { .. } => None,
        })
        .collect();
    let layer1 = mapped_layer(src, &parseable);

    let mut l2: Vec<String> = vec!["*".into()];
    let mut compiled_rules = Vec::new();
    for (i, (r, implicit)) in rules.into_iter().enumerate() {
        let column = format!("fail__{i}");
        let (cond, fields) = rule_sql(src, &r.check, ctx);
        l2.push(format!("coalesce({cond}, false) AS {}", ident(&column)));
        compiled_rules.push(CompiledRule {
            column,
            rule: r,
            fields,
            implicit,
        });
    }
    l2.extend(key_columns(m, src, ctx, &layer1));

    let sql = format!(
        "SELECT\n  {}\nFROM (\n  SELECT\n    {}\n  FROM {}\n) AS mapped",
        l2.join(",\n  "),
        layer1.columns.join(",\n    "),
        ident(&table)
    );
    CompiledSource {
        provider: provider.clone(),
        source: src.id.clone(),
        entity: src.entity.name.clone(),
        table,
        sql,
        rules: compiled_rules,
        mapped: layer1.mapped,
        identity: layer1.identity,
        manifest_hash: m.hash.clone(),
    }
}

/// The manifest's rules, plus `not_null` on required fields it does not check (marked
/// implicit).
fn rules_with_required(src: &ResolvedSource) -> Vec<(ResolvedRule, bool)> {
    let mut rules: Vec<(ResolvedRule, bool)> =
        src.quality.iter().cloned().map(|r| (r, false)).collect();
    for f in src
        .entity
        .fields
        .iter()
        .filter(|f| f.required && !f.derived)
    {
        let check = RuleCheck::builtin(NotNull {
            field: f.name.clone(),
        });
        if !src.quality.iter().any(|r| r.check == check) {
            rules.push((
                ResolvedRule {
                    id: format!("required_{}", f.name),
                    code: not_null::RULE.code,
                    category: not_null::RULE.category,
                    on_fail: OnFail::Quarantine,
                    check,
                    description: Some(format!("`{}` is required by the canonical model", f.name)),
                },
                true,
            ));
        }
    }
    rules
}

/// Layer 1 of a source's query: its select list and the canonical fields it maps.
struct MappedLayer {
    columns: Vec<String>,
    mapped: Vec<String>,
    identity: Vec<String>,
}

/// Mapped fields, identity fields (`id__` unless the entity is the identity entity),
/// the raw text of fields `parseable` rules check, the source columns as read
/// (`src__`), and the lineage columns.
fn mapped_layer(src: &ResolvedSource, parseable: &[String]) -> MappedLayer {
    let is_identity_entity = src.entity.name == IDENTITY_ENTITY;
    let mut l1: Vec<String> = Vec::new();
    let mut mapped = Vec::new();
    for f in &src.fields {
        l1.push(format!("{} AS {}", field_sql(f), ident(&f.field.name)));
        mapped.push(f.field.name.clone());
    }
    let mut identity = Vec::new();
    for f in &src.identity {
        let name = if is_identity_entity {
            f.field.name.clone()
        } else {
            format!("id__{}", f.field.name)
        };
        l1.push(format!("{} AS {}", field_sql(f), ident(&name)));
        identity.push(f.field.name.clone());
    }
    for p in parseable {
        if let Some(f) = src
            .fields
            .iter()
            .chain(src.identity.iter())
            .find(|f| &f.field.name == p)
        {
            let raw = format!("nullif(trim(CAST({} AS VARCHAR)), '')", base_sql(f));
            l1.push(format!(
                "{raw} AS {}",
                ident(&format!("raw__{}", col_of(src, p)))
            ));
        }
    }
    for c in &src.columns {
        l1.push(format!("{} AS {}", ident(c), ident(&format!("src__{c}"))));
    }
    l1.push(ident(SOURCE_FILE));
    l1.push(ident(SOURCE_ROW));
    MappedLayer {
        columns: l1,
        mapped,
        identity,
    }
}

/// The key and provenance columns of layer 2: `person_key` (from the NHS number, the
/// issuer's local id, else the record itself), `record_key`, `manifest_hash`, `run_id`.
fn key_columns(
    m: &ResolvedManifest,
    src: &ResolvedSource,
    ctx: &RunContext,
    layer1: &MappedLayer,
) -> Vec<String> {
    let provider = &m.provider.id;
    let is_identity_entity = src.entity.name == IDENTITY_ENTITY;
    let idc = |n: &str| -> Option<String> {
        let present = if is_identity_entity {
            src.fields.iter().any(|f| f.field.name == n)
        } else {
            src.identity.iter().any(|f| f.field.name == n)
        };
        present.then(|| {
            ident(&if is_identity_entity {
                n.to_string()
            } else {
                format!("id__{n}")
            })
        })
    };
    let null = "CAST(NULL AS VARCHAR)".to_string();
    let lineage = format!(
        "concat({}, '#', CAST({} AS VARCHAR))",
        ident(SOURCE_FILE),
        ident(SOURCE_ROW)
    );
    let record_id = if layer1
        .mapped
        .iter()
        .chain(layer1.identity.iter())
        .any(|f| f == "source_record_id")
    {
        format!(
            "coalesce(CAST({} AS VARCHAR), {lineage})",
            ident("source_record_id")
        )
    } else {
        lineage
    };
    let scope = lit(&format!("{provider}:{}", src.id));
    // A record with identity fields but neither key stands for itself (`record:`) so
    // linkage can join it; a record with no identity fields has no candidate.
    let has_identity = if is_identity_entity {
        !src.fields.is_empty()
    } else {
        !src.identity.is_empty()
    };
    let pk = if !has_identity {
        null.clone()
    } else {
        let issuer = idc("local_id_issuer")
            .map(|i| format!("coalesce({i}, {})", lit(provider)))
            .unwrap_or_else(|| lit(provider));
        format!(
            "person_key_of(CAST({} AS VARCHAR), {issuer}, CAST({} AS VARCHAR), concat({scope}, ':', {record_id}))",
            idc("nhs_number").unwrap_or_else(|| null.clone()),
            idc("local_patient_id").unwrap_or_else(|| null.clone())
        )
    };
    vec![
        format!("{pk} AS \"person_key\""),
        format!("record_key({scope}, {record_id}) AS \"record_key\""),
        format!("{} AS \"manifest_hash\"", lit(&m.hash)),
        format!("{} AS \"run_id\"", lit(&ctx.run_id)),
    ]
}

/// Lineage column of the scan table: path of the file (relative to the landing zone).
pub const SOURCE_FILE: &str = "_source_file";
/// Lineage column of the scan table: 1-based data row number within the file.
pub const SOURCE_ROW: &str = "_source_row";

/// The scan table a source's plan reads (the ingest stage's scan fills it): every
/// declared column as text, then the lineage columns.
pub fn scan_schema(columns: &[String]) -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(c, DataType::Utf8, true))
        .collect();
    fields.push(Field::new(SOURCE_FILE, DataType::Utf8, false));
    fields.push(Field::new(SOURCE_ROW, DataType::Int64, false));
    std::sync::Arc::new(Schema::new(fields))
}

/// Every source of a manifest (or the one named) compiled and planned over an empty scan
/// table, for `onboard explain`; `None` when the manifest has no such source.
pub async fn explain(
    m: &ResolvedManifest,
    source: Option<&str>,
    reference_date: &str,
) -> Result<Option<Vec<(CompiledSource, LogicalPlan)>>> {
    let run_ctx = RunContext {
        run_id: "explain".into(),
        reference_date: reference_date.to_string(),
    };
    let ctx = crate::engine::planning_context();
    let mut out = Vec::new();
    for s in m
        .sources
        .iter()
        .filter(|s| source.is_none_or(|x| x == s.id))
    {
        let c = compile_source(m, s, &run_ctx);
        register_empty_scan(&ctx, &c, s)?;
        let plan = logical_plan(&ctx, &c).await?;
        out.push((c, plan));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The logical plan of a compiled source; its scan table must be registered in `ctx`.
pub async fn logical_plan(ctx: &SessionContext, c: &CompiledSource) -> Result<LogicalPlan> {
    ctx.state().create_logical_plan(&c.sql).await
}

/// Register an empty scan table for planning without data (explain).
pub fn register_empty_scan(
    ctx: &SessionContext,
    c: &CompiledSource,
    src: &ResolvedSource,
) -> Result<()> {
    use datafusion::datasource::MemTable;
    let schema = scan_schema(&src.columns);
    let table = MemTable::try_new(schema, vec![vec![]])?;
    ctx.register_table(c.table.as_str(), std::sync::Arc::new(table))?;
    Ok(())
}

/// Whether any rule of the source uses a window (they make the plan repartition).
pub fn uses_window(c: &CompiledSource) -> bool {
    c.rules
        .iter()
        .any(|r| matches!(&r.rule.check, RuleCheck::Builtin(b) if b.uses_window()))
}

/// Does the rule send failing rows to quarantine?
pub fn quarantines(r: &CompiledRule) -> bool {
    r.rule.on_fail == OnFail::Quarantine
}
