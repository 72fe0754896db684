//! `not_in_future` (DQ302, plausibility): a date or timestamp not after the reference date.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::canonical::FieldType;
use crate::diagnostics::Diagnostic;
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "not_in_future",
    code: "DQ302",
    category: KahnCategory::Plausibility,
    required: &[Param::Field],
    optional: &[],
    summary: "The date or timestamp is not after the run's reference date.",
    example: "{ rule: not_in_future, field: date_of_birth }",
    source_column: false,
    resolve: resolve::<NotInFuture>,
};

/// `not_in_future` on one date or timestamp field.
#[derive(Debug, Clone, PartialEq)]
pub struct NotInFuture {
    pub field: String,
}

impl BuiltinRule for NotInFuture {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        if let Some(f) = &u.field
            && !matches!(f.ty, FieldType::Date | FieldType::Timestamp)
        {
            let msg = format!(
                "`not_in_future` needs a date field; `{}` is `{}`",
                f.name,
                f.ty.name()
            );
            u.report(
                Some("field"),
                Diagnostic::new("ONB0402", msg).label("not a date"),
            );
        }
        Some(NotInFuture {
            field: u.field_name.clone(),
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        let (c, date) = (s.column(&self.field), s.literal(s.reference_date()));
        match s.field_type(&self.field) {
            FieldType::Timestamp => {
                format!("{c} >= CAST(DATE {date} AS TIMESTAMP) + INTERVAL '1 day'")
            }
            _ => format!("{c} > DATE {date}"),
        }
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}
