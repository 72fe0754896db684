//! `parseable` (DQ105, conformance): the source value was present but did not map to the canonical type.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "parseable",
    code: "DQ105",
    category: KahnCategory::Conformance,
    required: &[Param::Field],
    optional: &[],
    summary: "The source value was present but the mapping could not turn it into the canonical type (bad date, bad number, code missing from the value map).",
    example: "{ rule: parseable, field: date_of_birth }",
    source_column: false,
    resolve: resolve::<Parseable>,
};

/// `parseable` on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Parseable {
    pub field: String,
}

impl BuiltinRule for Parseable {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        Some(Parseable {
            field: u.field_name.clone(),
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        format!(
            "{} IS NOT NULL AND {} IS NULL",
            s.raw_column(&self.field),
            s.column(&self.field)
        )
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
    fn raw_text_of(&self) -> Option<&str> {
        Some(&self.field)
    }
}
