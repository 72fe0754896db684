//! The built-in data-quality rules, one unit per file: each file (`not_null.rs`,
//! `in_range.rs`, …) holds the rule's [`RuleDef`] (name, stable `DQ…` code, Kahn category,
//! parameters, summary and example: its row of `docs/rules.md`) and a type implementing
//! [`BuiltinRule`]: how a use of the rule in a manifest is checked and resolved, and the
//! SQL condition it compiles to. [`RULES`] lists them: adding a rule is one file and one
//! line there (see `example_rule.rs`, a test-only rule). Custom SQL rules (`expr:`) are
//! checked in [`custom`].
//!
//! [`check_rule`] is what every rule shares: exactly one of `rule`/`expr`, a known rule
//! name (did-you-mean), allowed and required parameters, a fixed category, the checked
//! field mapped (or, with `column:`, the checked source column declared and the rule
//! able to check text), the rule id.
//!
//! A rule over a source column carries the column through the rule's `field` as
//! [`source_ref`] (`source.<column>`): canonical field names are snake_case and never
//! hold a `.`, so the two cannot be confused. `compile` reads it from the untouched
//! source column, and `execute` masks its values in failing-row samples.

mod custom;
mod date_order;
#[cfg(test)]
mod example_rule;
mod in_range;
mod in_value_set;
mod length;
mod matches_regex;
mod nhs_number_valid;
mod not_in_future;
pub mod not_null;
mod parseable;
mod postcode_valid;
mod unique;

use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;

use super::resolved::{ResolvedRule, RuleCheck};
use super::semantic::Checker;
use crate::canonical::{CanonicalField, Entity, FieldType};
use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean};
use crate::manifest::model::{KahnCategory, OnFail, QualityRule};
use crate::manifest::source::{SpanIndex, child};

pub use super::transforms::{TRANSFORMS, TransformDef, transform};

/// Parameters a rule can take (besides `rule`, `id`, `on_fail`, `description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Field,
    /// A source column instead of `field` (never listed by a rule: it goes with `Field`).
    Column,
    Fields,
    Pattern,
    Values,
    Min,
    Max,
    After,
    MinLength,
    MaxLength,
}

impl Param {
    pub const ALL: [Param; 10] = [
        Param::Field,
        Param::Column,
        Param::Fields,
        Param::Pattern,
        Param::Values,
        Param::Min,
        Param::Max,
        Param::After,
        Param::MinLength,
        Param::MaxLength,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Param::Field => "field",
            Param::Column => "column",
            Param::Fields => "fields",
            Param::Pattern => "pattern",
            Param::Values => "values",
            Param::Min => "min",
            Param::Max => "max",
            Param::After => "after",
            Param::MinLength => "min_length",
            Param::MaxLength => "max_length",
        }
    }

    /// Whether the manifest's rule gives this parameter.
    pub fn given(self, r: &QualityRule) -> bool {
        match self {
            Param::Field => r.field.is_some(),
            Param::Column => r.column.is_some(),
            Param::Fields => r.fields.is_some(),
            Param::Pattern => r.pattern.is_some(),
            Param::Values => r.values.is_some(),
            Param::Min => r.min.is_some(),
            Param::Max => r.max.is_some(),
            Param::After => r.after.is_some(),
            Param::MinLength => r.min_length.is_some(),
            Param::MaxLength => r.max_length.is_some(),
        }
    }
}

/// A built-in quality rule: its documentation and how it resolves.
#[derive(Clone, Copy)]
pub struct RuleDef {
    pub name: &'static str,
    pub code: &'static str,
    pub category: KahnCategory,
    /// Parameters that must be present.
    pub required: &'static [Param],
    /// Parameters that may be present.
    pub optional: &'static [Param],
    pub summary: &'static str,
    pub example: &'static str,
    /// Whether `column:` may replace `field:`: the rule can check a source column as
    /// read (text).
    pub source_column: bool,
    /// Check one use of the rule (parameters already known to be allowed) and resolve it:
    /// `resolve::<TheRule>`.
    pub resolve: fn(&mut RuleUse<'_>) -> Option<RuleCheck>,
}

impl fmt::Debug for RuleDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleDef")
            .field("name", &self.name)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

/// One built-in rule, as resolved from a manifest: the type holds its parameters.
pub trait BuiltinRule: fmt::Debug + Send + Sync + 'static {
    /// Check the parameters of one use and resolve them; problems go to `u` (a rule
    /// with errors is dropped by [`check_rule`], never silently).
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self>
    where
        Self: Sized;
    /// The rule's definition (name, code, category, parameters, docs).
    fn def(&self) -> &'static RuleDef;
    /// SQL that is true when a row fails (a null result never fails).
    fn failing_sql(&self, s: &dyn SqlScope) -> String;
    /// The canonical fields the rule reads (for failing-row samples).
    fn fields(&self) -> Vec<String>;
    /// Whether the SQL is a window over the whole extract (it makes the plan repartition).
    fn uses_window(&self) -> bool {
        false
    }
    /// The field whose raw source text the SQL reads (`raw__<field>`), if any.
    fn raw_text_of(&self) -> Option<&str> {
        None
    }
}

/// Erase a rule type for [`RuleDef::resolve`].
pub fn resolve<R: BuiltinRule>(u: &mut RuleUse<'_>) -> Option<RuleCheck> {
    R::resolve(u).map(|r| RuleCheck::Builtin(Arc::new(r)))
}

/// What a rule's SQL can ask of the query it goes into (implemented by `compile`).
pub trait SqlScope {
    /// The quoted column of a canonical field in the mapped layer.
    fn column(&self, field: &str) -> String;
    /// The quoted column holding the raw source text of a field.
    fn raw_column(&self, field: &str) -> String;
    /// The canonical type of a mapped field.
    fn field_type(&self, field: &str) -> FieldType;
    /// A SQL string literal.
    fn literal(&self, text: &str) -> String;
    /// A literal of the field type (`DATE '…'` for dates).
    fn typed_literal(&self, ty: FieldType, text: &str) -> String;
    /// The run's reference date (YYYY-MM-DD).
    fn reference_date(&self) -> &str;
}

/// Prefix of a source column carried as a rule's field (`source.<column>`).
pub const SOURCE_PREFIX: &str = "source.";

/// How a rule over source column `column` names it in place of a canonical field.
pub fn source_ref(column: &str) -> String {
    format!("{SOURCE_PREFIX}{column}")
}

/// The source column a rule's field stands for, when it is one ([`source_ref`]).
pub fn as_source_column(field: &str) -> Option<&str> {
    field.strip_prefix(SOURCE_PREFIX)
}

/// Code of rows that could not be read in the declared shape (ragged CSV rows,
/// undecodable text, NDJSON lines that are not objects). Always quarantined.
pub const UNREADABLE_CODE: &str = "DQ001";

/// Code of custom SQL-expression rules.
pub const CUSTOM_RULE_CODE: &str = "DQ900";

/// The built-in rule library, in code order. Codes are stable: never renumber or reuse one.
pub const RULES: &[RuleDef] = &[
    nhs_number_valid::RULE,
    postcode_valid::RULE,
    matches_regex::RULE,
    in_value_set::RULE,
    parseable::RULE,
    length::RULE,
    not_null::RULE,
    in_range::RULE,
    not_in_future::RULE,
    date_order::RULE,
    unique::RULE,
    #[cfg(test)]
    example_rule::RULE,
];

pub fn rule(name: &str) -> Option<&'static RuleDef> {
    RULES.iter().find(|r| r.name == name)
}

pub fn category_name(c: KahnCategory) -> &'static str {
    match c {
        KahnCategory::Conformance => "conformance",
        KahnCategory::Completeness => "completeness",
        KahnCategory::Plausibility => "plausibility",
    }
}

/// What one quality rule of a source is checked against.
pub struct RuleScope<'a> {
    pub checker: &'a Checker,
    pub spans: &'a SpanIndex,
    pub entity: &'a Arc<Entity>,
    pub identity: &'a Arc<Entity>,
    /// The source's mapped fields (analytics and identity), by name.
    pub mapped: &'a IndexMap<String, CanonicalField>,
    /// The source's declared columns (`columns:`).
    pub columns: &'a [String],
}

/// One use of a built-in rule in a manifest, while it is checked.
pub struct RuleUse<'a> {
    pub def: &'static RuleDef,
    /// The rule as written.
    pub raw: &'a QualityRule,
    /// The `field` parameter as written (empty when absent).
    pub field_name: String,
    /// The `field` parameter resolved to a mapped canonical field.
    pub field: Option<CanonicalField>,
    scope: &'a RuleScope<'a>,
    pointer: &'a str,
    pub diags: &'a mut Diagnostics,
}

impl RuleUse<'_> {
    /// The span of parameter `key` (`fields/0` for list items), or of the whole rule.
    pub fn at(&self, key: Option<&str>) -> Option<Span> {
        match key {
            Some(k) => self.scope.spans.value(&format!("{}/{k}", self.pointer)),
            None => self.scope.spans.value(self.pointer),
        }
    }

    /// Report `d` at parameter `key` (`fields/0` for list items), or at the rule.
    pub fn report(&mut self, key: Option<&str>, d: Diagnostic) {
        let at = self.at(key);
        self.diags.push(d.at_opt(at));
    }

    /// A field a parameter names (`key` is where it is written): the mapped canonical
    /// field, or a diagnostic (`ONB0403` not mapped, `ONB0202` not a field at all).
    pub fn mapped_field(&mut self, name: &str, key: &str) -> Option<CanonicalField> {
        resolve_field(
            self.scope,
            self.pointer,
            self.def.name,
            name,
            key,
            self.diags,
        )
    }
}

fn resolve_field(
    scope: &RuleScope<'_>,
    pointer: &str,
    rule: &str,
    f: &str,
    key: &str,
    diags: &mut Diagnostics,
) -> Option<CanonicalField> {
    if let Some(cf) = scope.mapped.get(f) {
        return Some(cf.clone());
    }
    let at = scope.spans.value(&format!("{pointer}/{key}"));
    let entity = scope.entity;
    if entity.field(f).is_some() || scope.identity.field(f).is_some() {
        diags.push(
            Diagnostic::new(
                "ONB0403",
                format!("rule `{rule}` checks `{f}`, which this source does not map"),
            )
            .at_opt(at)
            .label("not mapped")
            .help(format!(
                "map `{f}` under `fields:` (or `identity:`), or drop the rule"
            )),
        );
    } else {
        let names: Vec<&str> = scope.mapped.keys().map(String::as_str).collect();
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
}

/// Check one quality rule of a source at pointer `p`; the resolved rule when it has no
/// errors.
pub fn check_rule(
    scope: &RuleScope<'_>,
    r: &QualityRule,
    p: &str,
    diags: &mut Diagnostics,
) -> Option<ResolvedRule> {
    match (&r.rule, &r.expr) {
        (Some(_), Some(_)) | (None, None) => {
            diags.push(
                Diagnostic::new(
                    "ONB0405",
                    "a quality rule needs exactly one of `rule` or `expr`",
                )
                .at_opt(scope.spans.value(p))
                .label(if r.rule.is_some() {
                    "both given"
                } else {
                    "neither given"
                }),
            );
            None
        }
        (None, Some(sql)) => custom::check(scope, r, sql, p, diags),
        (Some(name), None) => check_builtin(scope, r, name, p, diags),
    }
}

fn check_builtin(
    scope: &RuleScope<'_>,
    r: &QualityRule,
    name: &str,
    p: &str,
    diags: &mut Diagnostics,
) -> Option<ResolvedRule> {
    let before = diags.errors();
    let Some(def) = rule(name) else {
        diags.push(
            Diagnostic::new("ONB0401", format!("unknown quality rule `{name}`"))
                .at_opt(scope.spans.value(&child(p, "rule")))
                .label("no such rule")
                .help(did_you_mean(name, RULES.iter().map(|r| r.name)).unwrap_or_else(|| {
                    "see docs/rules.md for the rule library, or write a custom rule with `expr:`"
                        .into()
                })),
        );
        return None;
    };
    check_params(scope.spans, def, r, p, diags);
    let takes_field = def.required.contains(&Param::Field) || def.optional.contains(&Param::Field);
    let (field_name, field) = match (&r.field, &r.column) {
        (_, Some(c)) if takes_field => (source_ref(c), resolve_column(scope, p, def, c, diags)),
        (Some(f), _) => (
            f.clone(),
            resolve_field(scope, p, def.name, f, "field", diags),
        ),
        _ => (String::new(), None),
    };
    let mut u = RuleUse {
        def,
        raw: r,
        field_name,
        field,
        scope,
        pointer: p,
        diags,
    };
    let check = (def.resolve)(&mut u)?;
    if diags.errors() > before {
        return None;
    }
    let id = r.id.clone().unwrap_or_else(|| default_id(name, r));
    Some(ResolvedRule {
        id,
        code: def.code,
        category: def.category,
        on_fail: r.on_fail.unwrap_or(OnFail::Quarantine),
        check,
        description: r.description.clone(),
    })
}

fn report_missing(
    spans: &SpanIndex,
    def: &RuleDef,
    param: Param,
    p: &str,
    diags: &mut Diagnostics,
) {
    diags.push(
        Diagnostic::new(
            "ONB0402",
            format!("rule `{}` needs `{}`", def.name, param.key()),
        )
        .at_opt(spans.value(p))
        .label(format!("`{}` missing", param.key()))
        .help(format!("e.g. {}", def.example)),
    );
}

/// The id of a rule written without one: `<rule>_<field>`, `<rule>_<field>_<field>…`, or
/// `<rule>_source_<column>` (lower case, other characters as `_`).
fn default_id(name: &str, r: &QualityRule) -> String {
    match (&r.column, &r.field, &r.fields) {
        (Some(c), _, _) => {
            let c: String = (c.chars())
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() {
                        ch.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{name}_source_{c}")
        }
        (None, Some(f), _) => format!("{name}_{f}"),
        (None, None, Some(fs)) => format!("{name}_{}", fs.join("_")),
        _ => name.to_string(),
    }
}

/// The source column a rule names with `column:`, as a text field: the column must be
/// declared (`ONB0215`, did-you-mean) and the rule able to check text (`ONB0216`).
fn resolve_column(
    scope: &RuleScope<'_>,
    pointer: &str,
    def: &RuleDef,
    column: &str,
    diags: &mut Diagnostics,
) -> Option<CanonicalField> {
    let at = scope.spans.value(&child(pointer, "column"));
    if !scope.columns.iter().any(|c| c == column) {
        let declared = scope.columns.join(", ");
        diags.push(
            Diagnostic::new(
                "ONB0215",
                format!("rule `{}` checks column `{column}`, which the source does not declare (declared columns: {declared})", def.name),
            )
            .at_opt(at)
            .label("unknown column")
            .help_opt(did_you_mean(column, scope.columns.iter().map(String::as_str))),
        );
        return None;
    }
    if !def.source_column {
        diags.push(
            Diagnostic::new(
                "ONB0216",
                format!(
                    "rule `{}` cannot check source column `{column}`: source columns are text as read, and the rule needs a mapped, typed field",
                    def.name
                ),
            )
            .at_opt(at)
            .label("text column")
            .help(format!(
                "map `{column}` to a canonical field (with `parse_date` for dates) and use `field:`, or use a text rule (not_null, matches_regex, length, in_value_set, nhs_number_valid, postcode_valid)"
            )),
        );
        return None;
    }
    Some(CanonicalField {
        name: source_ref(column),
        ty: FieldType::Utf8,
        required: false,
        identifier: false,
        derived: false,
        code_system: None,
        value_set: None,
        description: format!("source column `{column}`"),
    })
}

/// Parameters the rule does not take, parameters it needs, and a category (fixed for
/// built-in rules).
fn check_params(
    spans: &SpanIndex,
    def: &RuleDef,
    r: &QualityRule,
    p: &str,
    diags: &mut Diagnostics,
) {
    let name = def.name;
    let takes = |p: Param| def.required.contains(&p) || def.optional.contains(&p);
    if r.field.is_some() && r.column.is_some() {
        diags.push(
            Diagnostic::new(
                "ONB0402",
                format!("rule `{name}` takes `field` or `column`, not both"),
            )
            .at_opt(spans.key(&child(p, "column")))
            .label("both given")
            .help("`field` names a canonical field, `column` a declared source column"),
        );
    }
    for param in Param::ALL {
        let present = param.given(r);
        // `column` stands in for `field`.
        let allowed = takes(if param == Param::Column {
            Param::Field
        } else {
            param
        });
        let satisfied = present || (param == Param::Field && r.column.is_some());
        if present && !allowed {
            diags.push(
                Diagnostic::new(
                    "ONB0402",
                    format!("rule `{name}` takes no `{}`", param.key()),
                )
                .at_opt(spans.key(&child(p, param.key())))
                .label("unexpected parameter"),
            );
        }
        if !satisfied && def.required.contains(&param) {
            report_missing(spans, def, param, p, diags);
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
}
