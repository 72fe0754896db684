//! `in_range` (DQ301, plausibility): the field lies within bounds (numbers or dates).

use serde_json::Value;

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::canonical::FieldType;
use crate::diagnostics::Diagnostic;
use crate::manifest::model::KahnCategory;
use crate::validate::values::text_fits;

pub const RULE: RuleDef = RuleDef {
    name: "in_range",
    code: "DQ301",
    category: KahnCategory::Plausibility,
    required: &[Param::Field],
    optional: &[Param::Min, Param::Max],
    summary: "The field lies within `min`..`max` inclusive (numbers, or dates written YYYY-MM-DD; at least one bound).",
    example: "{ rule: in_range, field: date_of_birth, min: 1890-01-01 }",
    source_column: false,
    resolve: resolve::<InRange>,
};

/// `in_range`: the field and its bounds as text (dates YYYY-MM-DD or numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct InRange {
    pub field: String,
    pub min: Option<String>,
    pub max: Option<String>,
}

impl BuiltinRule for InRange {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        if u.raw.min.is_none() && u.raw.max.is_none() {
            u.report(
                None,
                Diagnostic::new("ONB0402", "rule `in_range` needs `min` or `max`")
                    .label("no bound"),
            );
        }
        let min = bound(u, u.raw.min.as_ref(), "min");
        let max = bound(u, u.raw.max.as_ref(), "max");
        Some(InRange {
            field: u.field_name.clone(),
            min,
            max,
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        let (c, t) = (s.column(&self.field), s.field_type(&self.field));
        let mut parts = Vec::new();
        if let Some(m) = &self.min {
            parts.push(format!("{c} < {}", s.typed_literal(t, m)));
        }
        if let Some(m) = &self.max {
            parts.push(format!("{c} > {}", s.typed_literal(t, m)));
        }
        format!("{c} IS NOT NULL AND ({})", parts.join(" OR "))
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}

/// One bound as text, checked against the field's type.
fn bound(u: &mut RuleUse<'_>, v: Option<&Value>, key: &str) -> Option<String> {
    let v = v?;
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    let Some(f) = u.field.clone() else {
        return Some(text);
    };
    let is_date = matches!(f.ty, FieldType::Date | FieldType::Timestamp);
    let ok = match f.ty {
        FieldType::Date | FieldType::Timestamp => text_fits(&text, FieldType::Date),
        FieldType::Int64 | FieldType::Float64 | FieldType::Decimal { .. } => {
            matches!(v, Value::Number(_))
        }
        _ => false,
    };
    if !ok {
        let must = if is_date {
            "a date YYYY-MM-DD"
        } else if matches!(f.ty, FieldType::Utf8 | FieldType::Boolean) {
            "used on a number or date field"
        } else {
            "a number"
        };
        let msg = format!(
            "`{key}` of `in_range` on `{}` field `{}` must be {must}",
            f.ty.name(),
            f.name
        );
        u.report(
            Some(key),
            Diagnostic::new("ONB0402", msg).label("bad bound"),
        );
    }
    Some(text)
}
