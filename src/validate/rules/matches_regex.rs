//! `matches_regex` (DQ103, conformance): the field matches a regular expression.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::diagnostics::Diagnostic;
use crate::manifest::model::KahnCategory;
use crate::validate::values::one_line;

pub const RULE: RuleDef = RuleDef {
    name: "matches_regex",
    code: "DQ103",
    category: KahnCategory::Conformance,
    required: &[Param::Field, Param::Pattern],
    optional: &[],
    summary: "The field matches the regular expression `pattern` (Rust regex syntax).",
    example: "{ rule: matches_regex, field: practice_ods, pattern: \"^[A-Z][0-9]{5}$\" }",
    source_column: true,
    resolve: resolve::<MatchesRegex>,
};

/// `matches_regex`: the field and its pattern (checked to compile).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchesRegex {
    pub field: String,
    pub pattern: String,
}

impl BuiltinRule for MatchesRegex {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        let pattern = u.raw.pattern.clone().unwrap_or_default();
        if let Err(e) = regex::Regex::new(&pattern) {
            let msg = format!(
                "`pattern` is not a valid regular expression: {}",
                one_line(&e.to_string())
            );
            u.report(
                Some("pattern"),
                Diagnostic::new("ONB0402", msg).label("bad regex"),
            );
        }
        Some(MatchesRegex {
            field: u.field_name.clone(),
            pattern,
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        format!(
            "{0} IS NOT NULL AND NOT regexp_like(CAST({0} AS VARCHAR), {1})",
            s.column(&self.field),
            s.literal(&self.pattern)
        )
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}
