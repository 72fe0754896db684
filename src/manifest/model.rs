//! The raw manifest model: the provider manifest language v1 exactly as written.
//!
//! These serde types are the single definition of the language. The JSON Schema that
//! editors use (`schemas/provider-manifest.schema.json`, `onboard schema`) is generated from
//! them with schemars, and `validator` attributes on them give both schema constraints and
//! runtime checks. Only `validate` sees these types; later stages see the resolved model.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

/// A provider manifest: how one provider's extracts map onto the canonical schemas.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(title = "onboard provider manifest (manifest_version 1)")]
pub struct RawManifest {
    /// Version of the manifest language. Always 1 for this release.
    #[validate(range(min = 1, max = 1))]
    pub manifest_version: u32,
    /// Who the provider is.
    #[validate(nested)]
    pub provider: Provider,
    /// A provider template from `templates/providers/` (file name without `.yaml.j2`).
    /// The rendered template supplies everything this file does not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<String>,
    /// Parameters for the template named in `uses`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, serde_json::Value>,
    /// The provider's extracts, by source id (e.g. `patients`, `events`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub sources: IndexMap<String, Source>,
}

/// Provider metadata.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Stable id, unique across the ICS: lower case letters, digits, `-` and `_`.
    #[schemars(pattern(r"^[a-z0-9][a-z0-9_-]*$"))]
    #[validate(length(min = 2, max = 64))]
    pub id: String,
    /// Human name of the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 200))]
    pub name: Option<String>,
    /// The care setting the provider serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<Setting>,
    /// The source system the extracts come from (e.g. `emis_web`, `systmone`, `sus_apc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-z0-9][a-z0-9_]*$"))]
    pub system: Option<String>,
    /// ODS code of the provider organisation, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[A-Z0-9]{3,6}$"))]
    pub ods_code: Option<String>,
}

/// Care settings of providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    PrimaryCare,
    Acute,
    Community,
    MentalHealth,
    SocialCare,
    Nhs111,
    Ambulance,
    Other,
}

/// File formats of extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Csv,
    Parquet,
    Ndjson,
}

/// One extract of the provider and how it maps to one canonical entity.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// What this extract is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Path glob of the extract files, relative to the landing zone (e.g.
    /// `emis/F81001/patients_*.csv`). No absolute paths, no `..`.
    #[validate(length(min = 1))]
    pub path: String,
    /// File format.
    pub format: SourceFormat,
    /// CSV reading options (only with `format: csv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvOptions>,
    /// The columns of the extract, as named in its header. Everything is read as text,
    /// then mapped, parsed and checked.
    #[validate(length(min = 1))]
    pub columns: Vec<String>,
    /// The canonical entity rows of this extract become (see `schemas/canonical/`).
    pub maps_to: String,
    /// Canonical field → how to compute it from the extract.
    #[serde(default)]
    pub fields: IndexMap<String, FieldMapping>,
    /// Identifiers of the person each row is about (fields of `person_identity`). They
    /// go to the identity zone only, and are used for linkage and `person_key`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub identity: IndexMap<String, FieldMapping>,
    /// Data-quality rules, checked on every row after mapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<QualityRule>,
    /// Limits on the share of rows a run may quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub thresholds: Option<Thresholds>,
    /// How the extract's files arrive month by month: which files a run loads, their
    /// extract dates, completeness checks, and what happens when a delivery is missing
    /// or fails (see docs/manifest-reference.md, "Deliveries").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub delivery: Option<Delivery>,
}

/// CSV options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter, one character (default `,`; use `"\t"` for tab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1))]
    pub delimiter: Option<String>,
    /// Whether the first line is a header (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// Quote character, one character (default `"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1))]
    pub quote: Option<String>,
    /// Escape character inside quoted fields, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1))]
    pub escape: Option<String>,
    /// Text encoding (default utf-8; a byte-order mark is skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// Values that mean "missing" besides the empty string (e.g. `NULL`, `N/A`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub null_values: Vec<String>,
}

/// Text encodings of CSV extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "latin-1")]
    Latin1,
}

/// One string or a list of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A code value: written as a string or a number, always compared as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Code {
    Text(String),
    Integer(i64),
}

impl Code {
    pub fn as_text(&self) -> String {
        match self {
            Code::Text(s) => s.clone(),
            Code::Integer(i) => i.to_string(),
        }
    }
}

/// How one canonical field is computed: exactly one of `from`, `const`, `expr`, then
/// optional transforms, value maps and date parsing, applied in that order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// Source column to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A constant value for every row.
    #[serde(default, rename = "const", skip_serializing_if = "Option::is_none")]
    pub constant: Option<serde_json::Value>,
    /// A SQL expression over the source columns (DataFusion SQL; column names as in
    /// the header, quoted with `"` if they contain spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Named transforms applied in order (see docs/transforms.md), e.g. `nhs_number`,
    /// `uk_postcode`, `icd10`, `trim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<OneOrMany>,
    /// Inline value map: source value → canonical code. Values not in the map become
    /// null (and fail rule `parseable`) unless `map_default` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<IndexMap<String, Code>>,
    /// A two-column CSV (`source,target` with header) holding the value map, relative to
    /// this manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_file: Option<String>,
    /// Code for source values that the map does not list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_default: Option<Code>,
    /// Date formats (strftime, e.g. `%d/%m/%Y`), tried in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_date: Option<OneOrMany>,
    /// Timestamp formats (strftime, e.g. `%Y-%m-%d %H:%M:%S`), tried in order. A value
    /// that matches none of them but is a date gets midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_timestamp: Option<OneOrMany>,
}

/// What happens to a row that fails a quality rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// The row goes to quarantine with the rule code and reason (default).
    #[default]
    Quarantine,
    /// The row is accepted with a warning flag.
    Warn,
    /// The whole source fails if any row fails.
    Fail,
}

/// Kahn et al. (2016) harmonised data-quality categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KahnCategory {
    Conformance,
    Completeness,
    Plausibility,
}

/// A data-quality rule: a built-in (`rule:`) or custom SQL (`expr:` with `id:`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityRule {
    /// Built-in rule name (see docs/rules.md), e.g. `not_null`, `nhs_number_valid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Custom rule: a SQL boolean expression over the mapped canonical fields; rows
    /// where it is false fail. Null counts as a pass (combine with `not_null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Rule id shown in quarantine records and reports (required with `expr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-z0-9][a-z0-9_]*$"))]
    pub id: Option<String>,
    /// The canonical field the rule checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Instead of `field`: a declared source column the rule checks as read (text,
    /// before any mapping), e.g. an ODS practice code the canonical entity has no field
    /// for. Only for rules that take `field` and can check text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Fields, for multi-field rules (`unique`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Regular expression, for `matches_regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Allowed values, for `in_value_set` (defaults to the canonical value set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Code>>,
    /// Lower bound, for `in_range` (a number, or a date as `YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<serde_json::Value>,
    /// Upper bound, for `in_range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<serde_json::Value>,
    /// The field that must not be later than `field`, for `date_order`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Minimum length, for `length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// Maximum length, for `length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// What happens to failing rows (default `quarantine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<OnFail>,
    /// Kahn category of a custom rule (built-ins have their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<KahnCategory>,
    /// Why the rule exists; shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What a threshold breach fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnBreach {
    /// The source's outputs are not published; other sources go on (default).
    #[default]
    FailSource,
    /// The whole run fails.
    FailRun,
}

/// Limits checked after a source is processed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Largest acceptable share of quarantined rows, between 0 and 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0.0, max = 1.0))]
    pub max_quarantine_rate: Option<f64>,
    /// Fewest rows an extract must have (catches empty or truncated deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
    /// What a breach fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_breach: Option<OnBreach>,
}

/// Which of the files matching `path` a run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadStrategy {
    /// A snapshot feed: only the newest extract (by extract date, else by file name).
    Latest,
    /// Every matching file, every run (default); exact duplicate rows across files are
    /// collapsed before rules run.
    #[default]
    All,
    /// Each file once: files are remembered by content hash in the ledger, new files
    /// add to the data already published; a re-sent identical file is skipped.
    Incremental,
}

/// What happens to a source whose delivery is missing or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnProblem {
    /// Keep the last good published data of the source in `current` (default).
    #[default]
    CarryForward,
    /// Publish the source with no rows.
    Empty,
    /// Fail the whole run (nothing is published).
    FailRun,
}

/// Delivery settings of a source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// `latest`, `all` (default) or `incremental`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadStrategy>,
    /// Where each file's extract date comes from (lineage `extract_date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub extract_date: Option<ExtractDate>,
    /// No file matches `path` (default from the ICS `feeds`, else `carry_forward`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<OnProblem>,
    /// The source fails (threshold, schema drift, completeness; default from the ICS
    /// `feeds`, else `carry_forward`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnProblem>,
    /// Days after which carried-forward data is too old: the source then fails with
    /// nothing carried (age = reference date − date of the carried load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1))]
    pub max_carry_forward_age: Option<u32>,
    /// Largest change of the row count against the previous good load, either
    /// direction, as a share (0.2 = 20%); a larger change fails the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0.0))]
    pub max_row_change: Option<f64>,
    /// Control totals shipped with the extract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlTotals>,
}

/// Where a file's extract date comes from: its name, or a column.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ExtractDate {
    /// Regular expression over the file name (not the directory) whose first capture
    /// group is the date, e.g. `patients_(\d{8})\.csv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A column holding the extract date (read from the first data row of each file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// strftime format of the date (default `%Y%m%d` for `pattern`, `%Y-%m-%d` for `column`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 2))]
    pub format: Option<String>,
}

/// Expected row counts shipped with an extract.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlTotals {
    /// The last line of each file is a trailer, not data: a regular expression whose
    /// first capture group is the number of data rows, e.g. `^TRAILER,(\d+)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailer: Option<String>,
    /// A control file beside each extract: a name where `{stem}` is the extract's file
    /// name without its last extension and `{name}` the whole file name, e.g. `{stem}.ctl`.
    /// It holds the number of data rows, alone or as `rows=N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The JSON Schema of the manifest language, generated from the types above.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<RawManifest>();
    let mut v = serde_json::to_value(schema).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "$id".into(),
            serde_json::Value::String(
                "https://onboard-ics.github.io/schemas/provider-manifest.schema.json".into(),
            ),
        );
    }
    v
}

/// The schema as pretty JSON text, as committed in `schemas/provider-manifest.schema.json`.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}
