//! `length` (DQ106, conformance): the text length of the field is within bounds.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::diagnostics::Diagnostic;
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "length",
    code: "DQ106",
    category: KahnCategory::Conformance,
    required: &[Param::Field],
    optional: &[Param::MinLength, Param::MaxLength],
    summary: "The text length of the field is within `min_length`..`max_length` (at least one given).",
    example: "{ rule: length, field: practice_ods, min_length: 6, max_length: 6 }",
    source_column: true,
    resolve: resolve::<Length>,
};

/// `length`: the field and its bounds (at least one).
#[derive(Debug, Clone, PartialEq)]
pub struct Length {
    pub field: String,
    pub min: Option<u32>,
    pub max: Option<u32>,
}

impl BuiltinRule for Length {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        let (min, max) = (u.raw.min_length, u.raw.max_length);
        if min.is_none() && max.is_none() {
            u.report(
                None,
                Diagnostic::new(
                    "ONB0402",
                    "rule `length` needs `min_length` or `max_length`",
                )
                .label("no bound"),
            );
        }
        Some(Length {
            field: u.field_name.clone(),
            min,
            max,
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        let c = s.column(&self.field);
        let len = format!("character_length(CAST({c} AS VARCHAR))");
        let mut parts = Vec::new();
        if let Some(m) = self.min {
            parts.push(format!("{len} < {m}"));
        }
        if let Some(m) = self.max {
            parts.push(format!("{len} > {m}"));
        }
        format!("{c} IS NOT NULL AND ({})", parts.join(" OR "))
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}
