//! `in_value_set` (DQ104, conformance): the field holds one of a list of codes (default: its value set).

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::diagnostics::Diagnostic;
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "in_value_set",
    code: "DQ104",
    category: KahnCategory::Conformance,
    required: &[Param::Field],
    optional: &[Param::Values],
    summary: "The field holds one of `values`, or of the canonical field's value set when `values` is absent.",
    example: "{ rule: in_value_set, field: admission_method }",
    source_column: true,
    resolve: resolve::<InValueSet>,
};

/// `in_value_set`: the field and the allowed codes.
#[derive(Debug, Clone, PartialEq)]
pub struct InValueSet {
    pub field: String,
    pub values: Vec<String>,
}

impl BuiltinRule for InValueSet {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        let value_set = u.field.as_ref().and_then(|f| f.value_set.clone());
        let values = match (&u.raw.values, value_set) {
            (Some(v), _) => v.iter().map(|c| c.as_text()).collect(),
            (None, Some(vs)) => vs.codes().map(str::to_string).collect(),
            (None, None) => {
                if u.field.is_some() {
                    let msg = format!(
                        "field `{}` has no canonical value set; give `values`",
                        u.field_name
                    );
                    u.report(
                        None,
                        Diagnostic::new("ONB0402", msg).label("`values` missing"),
                    );
                }
                Vec::new()
            }
        };
        Some(InValueSet {
            field: u.field_name.clone(),
            values,
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        let list = if self.values.is_empty() {
            "NULL".to_string()
        } else {
            let v: Vec<String> = self.values.iter().map(|v| s.literal(v)).collect();
            v.join(", ")
        };
        format!(
            "{0} IS NOT NULL AND CAST({0} AS VARCHAR) NOT IN ({list})",
            s.column(&self.field)
        )
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}
