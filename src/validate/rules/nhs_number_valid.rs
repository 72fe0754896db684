//! `nhs_number_valid` (DQ101, conformance): a 10-digit NHS number passing the modulus-11 check.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "nhs_number_valid",
    code: "DQ101",
    category: KahnCategory::Conformance,
    required: &[Param::Field],
    optional: &[],
    summary: "The field is a 10-digit NHS number passing the modulus-11 check (null passes; pair with not_null).",
    example: "{ rule: nhs_number_valid, field: nhs_number, on_fail: warn }",
    source_column: true,
    resolve: resolve::<NhsNumberValid>,
};

/// `nhs_number_valid` on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct NhsNumberValid {
    pub field: String,
}

impl BuiltinRule for NhsNumberValid {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        Some(NhsNumberValid {
            field: u.field_name.clone(),
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        format!(
            "{0} IS NOT NULL AND NOT nhs_number_valid(CAST({0} AS VARCHAR))",
            s.column(&self.field)
        )
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}
