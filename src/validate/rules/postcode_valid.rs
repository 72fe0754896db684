//! `postcode_valid` (DQ102, conformance): a well-formed UK postcode.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "postcode_valid",
    code: "DQ102",
    category: KahnCategory::Conformance,
    required: &[Param::Field],
    optional: &[],
    summary: "The field is a well-formed UK postcode (pseudo-postcodes ZZ99 fail).",
    example: "{ rule: postcode_valid, field: postcode, on_fail: warn }",
    source_column: true,
    resolve: resolve::<PostcodeValid>,
};

/// `postcode_valid` on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct PostcodeValid {
    pub field: String,
}

impl BuiltinRule for PostcodeValid {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        Some(PostcodeValid {
            field: u.field_name.clone(),
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        format!(
            "{0} IS NOT NULL AND NOT postcode_valid(CAST({0} AS VARCHAR))",
            s.column(&self.field)
        )
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}
