//! The resolved manifest: what compile and execute see.
//!
//! Every name is checked, every canonical field carries its type, every SQL expression has
//! parsed and type-checked against its schema, defaults are filled in. No serde types and
//! no spans: the only link back to the YAML is the manifest path and hash.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;

use super::rules::BuiltinRule;
use crate::canonical::{CanonicalField, Entity};
use crate::manifest::model::{Encoding, KahnCategory, OnBreach, OnFail, Setting, SourceFormat};

/// A provider manifest after validation.
#[derive(Debug, Clone)]
pub struct ResolvedManifest {
    pub path: PathBuf,
    /// SHA-256 of the manifest, its template and parameters.
    pub hash: String,
    pub provider: ResolvedProvider,
    pub sources: Vec<ResolvedSource>,
}

#[derive(Debug, Clone)]
pub struct ResolvedProvider {
    pub id: String,
    pub name: String,
    pub setting: Setting,
    pub system: String,
    pub ods_code: Option<String>,
}

/// CSV reading settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvSettings {
    pub delimiter: u8,
    pub header: bool,
    pub quote: u8,
    pub escape: Option<u8>,
    pub encoding: Encoding,
    pub null_values: Vec<String>,
}

impl Default for CsvSettings {
    fn default() -> Self {
        CsvSettings {
            delimiter: b',',
            header: true,
            quote: b'"',
            escape: None,
            encoding: Encoding::Utf8,
            null_values: Vec::new(),
        }
    }
}

/// One extract, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedSource {
    pub id: String,
    /// Glob relative to the landing zone.
    pub path: String,
    pub format: SourceFormat,
    pub csv: CsvSettings,
    pub columns: Vec<String>,
    pub entity: Arc<Entity>,
    /// Mappings onto `entity`.
    pub fields: Vec<ResolvedField>,
    /// Mappings onto `person_identity` (identity zone only).
    pub identity: Vec<ResolvedField>,
    pub quality: Vec<ResolvedRule>,
    pub max_quarantine_rate: Option<f64>,
    pub min_rows: Option<u64>,
    pub on_breach: OnBreach,
    /// Delivery settings as written (ICS defaults are applied at run time by `feeds`).
    pub delivery: crate::manifest::model::Delivery,
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    Column(String),
    /// The constant, as text (cast to the field type when compiled).
    Const(String),
    /// A SQL expression over the source columns (already checked).
    Expr(String),
}

/// One canonical field mapping.
#[derive(Debug, Clone)]
pub struct ResolvedField {
    pub field: CanonicalField,
    pub source: ValueSource,
    /// SQL templates of the named transforms, in order (`{}` is the input).
    pub transforms: Vec<&'static str>,
    pub map: Option<IndexMap<String, String>>,
    pub map_default: Option<String>,
    pub date_formats: Vec<String>,
    pub timestamp_formats: Vec<String>,
}

/// What a rule checks.
#[derive(Debug, Clone)]
pub enum RuleCheck {
    /// A built-in rule (`validate/rules/<name>.rs`) with its resolved parameters.
    Builtin(Arc<dyn BuiltinRule>),
    /// Custom SQL boolean expression over the mapped canonical fields.
    Expr { sql: String },
}

impl RuleCheck {
    /// A built-in rule check.
    pub fn builtin(rule: impl BuiltinRule) -> Self {
        RuleCheck::Builtin(Arc::new(rule))
    }
    /// The canonical fields the check reads (none for custom SQL).
    pub fn fields(&self) -> Vec<String> {
        match self {
            RuleCheck::Builtin(r) => r.fields(),
            RuleCheck::Expr { .. } => Vec::new(),
        }
    }
}

impl PartialEq for RuleCheck {
    /// The same rule with the same parameters.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RuleCheck::Builtin(a), RuleCheck::Builtin(b)) => {
                a.def().code == b.def().code && format!("{a:?}") == format!("{b:?}")
            }
            (RuleCheck::Expr { sql: a }, RuleCheck::Expr { sql: b }) => a == b,
            _ => false,
        }
    }
}

/// One quality rule, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedRule {
    /// Id shown in quarantine records and reports.
    pub id: String,
    /// Stable `DQ…` code.
    pub code: &'static str,
    pub category: KahnCategory,
    pub on_fail: OnFail,
    pub check: RuleCheck,
    pub description: Option<String>,
}
