//! `not_null` (DQ201, completeness): the field is present (not null, not blank).

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::canonical::FieldType;
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "not_null",
    code: "DQ201",
    category: KahnCategory::Completeness,
    required: &[Param::Field],
    optional: &[],
    summary: "The field is present (not null, not blank). Added automatically for required canonical fields.",
    example: "{ rule: not_null, field: nhs_number, on_fail: warn }",
    source_column: true,
    resolve: resolve::<NotNull>,
};

/// `not_null` on one field (also added by `compile` for required canonical fields).
#[derive(Debug, Clone, PartialEq)]
pub struct NotNull {
    pub field: String,
}

impl BuiltinRule for NotNull {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        Some(NotNull {
            field: u.field_name.clone(),
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        let c = s.column(&self.field);
        if s.field_type(&self.field) == FieldType::Utf8 {
            format!("{c} IS NULL OR trim({c}) = ''")
        } else {
            format!("{c} IS NULL")
        }
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}
