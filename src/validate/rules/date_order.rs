//! `date_order` (DQ303, plausibility): one date field is not earlier than another.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::canonical::FieldType;
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "date_order",
    code: "DQ303",
    category: KahnCategory::Plausibility,
    required: &[Param::Field, Param::After],
    optional: &[],
    summary: "`field` is not earlier than the field named by `after` (e.g. discharge not before admission), compared by day.",
    example: "{ rule: date_order, field: end_ts, after: start_ts }",
    source_column: false,
    resolve: resolve::<DateOrder>,
};

/// `date_order`: `field` is not earlier than `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct DateOrder {
    pub field: String,
    pub after: String,
}

impl BuiltinRule for DateOrder {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        let after = u.raw.after.clone().unwrap_or_default();
        if u.raw.after.is_some() {
            u.mapped_field(&after, "after");
        }
        Some(DateOrder {
            field: u.field_name.clone(),
            after,
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        // Compared at day precision: extracts often carry a time on one side only
        // (admission date-time, discharge date), and a same-day discharge is fine.
        let day = |n: &str| {
            if s.field_type(n) == FieldType::Timestamp {
                format!("CAST({} AS DATE)", s.column(n))
            } else {
                s.column(n)
            }
        };
        format!(
            "{} IS NOT NULL AND {} IS NOT NULL AND {} < {}",
            s.column(&self.field),
            s.column(&self.after),
            day(&self.field),
            day(&self.after)
        )
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone(), self.after.clone()]
    }
}
