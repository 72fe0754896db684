//! `unique` (DQ304, plausibility): no two rows share the values of some fields.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::diagnostics::Diagnostic;
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "unique",
    code: "DQ304",
    category: KahnCategory::Plausibility,
    required: &[Param::Fields],
    optional: &[],
    summary: "No two rows of the extract share the values of `fields`; every row of a duplicated key fails.",
    example: "{ rule: unique, fields: [source_record_id], on_fail: warn }",
    source_column: false,
    resolve: resolve::<Unique>,
};

/// `unique`: the key fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Unique {
    pub fields: Vec<String>,
}

impl BuiltinRule for Unique {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        let fields = u.raw.fields.clone().unwrap_or_default();
        for (i, f) in fields.iter().enumerate() {
            u.mapped_field(f, &format!("fields/{i}"));
        }
        if u.raw.fields.as_ref().is_some_and(|f| f.is_empty()) {
            u.report(
                Some("fields"),
                Diagnostic::new("ONB0402", "`fields` of `unique` cannot be empty"),
            );
        }
        Some(Unique { fields })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        let keys: Vec<String> = self.fields.iter().map(|f| s.column(f)).collect();
        let not_null: Vec<String> = keys.iter().map(|k| format!("{k} IS NOT NULL")).collect();
        format!(
            "{} AND count(1) OVER (PARTITION BY {}) > 1",
            not_null.join(" AND "),
            keys.join(", ")
        )
    }
    fn fields(&self) -> Vec<String> {
        self.fields.clone()
    }
    fn uses_window(&self) -> bool {
        true
    }
}
