//! Small checks of values shared by field mappings and quality rules: whether a text
//! fits a canonical type, codes against value sets, and message helpers.

use serde_json::Value;

use crate::canonical::{self, CanonicalField, FieldType};
use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean};

/// The first columns of a list, for messages.
pub fn preview(cols: &[String]) -> String {
    if cols.len() <= 6 {
        cols.join(", ")
    } else {
        format!("{}, … {} more", cols[..5].join(", "), cols.len() - 5)
    }
}

/// Did-you-mean among the codes of a value set, or the codes themselves.
pub fn codes_help(got: &str, vs: &canonical::ValueSet) -> String {
    did_you_mean(got, vs.codes()).unwrap_or_else(|| {
        let codes: Vec<&str> = vs.codes().collect();
        if codes.len() <= 20 {
            format!("allowed codes: {}", codes.join(", "))
        } else {
            format!(
                "value set `{}` has {} codes; see schemas/canonical/value_sets.yaml",
                vs.name,
                codes.len()
            )
        }
    })
}

/// A code a value map produces: in the field's value set, or of its type.
pub fn check_code(
    field: &CanonicalField,
    code: &str,
    at: Option<Span>,
    name: &str,
    diags: &mut Diagnostics,
) {
    if let Some(vs) = &field.value_set
        && !vs.contains(code)
    {
        diags.push(
            Diagnostic::new(
                "ONB0206",
                format!(
                    "`{code}` is not in value set `{}` of field `{name}`",
                    vs.name
                ),
            )
            .at_opt(at)
            .label("not in value set")
            .help(codes_help(code, vs)),
        );
    } else if field.value_set.is_none() && !text_fits(code, field.ty) {
        diags.push(
            Diagnostic::new(
                "ONB0205",
                format!(
                    "`{code}` cannot be a `{}` (field `{name}`)",
                    field.ty.name()
                ),
            )
            .at_opt(at)
            .label("type conflict"),
        );
    }
}

/// Whether text parses as a value of the canonical type.
pub fn text_fits(text: &str, ty: FieldType) -> bool {
    match ty {
        FieldType::Utf8 => true,
        FieldType::Int64 => text.trim().parse::<i64>().is_ok(),
        FieldType::Float64 | FieldType::Decimal { .. } => text.trim().parse::<f64>().is_ok(),
        FieldType::Boolean => matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "true" | "false" | "1" | "0" | "yes" | "no"
        ),
        FieldType::Date => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").is_ok(),
        FieldType::Timestamp => {
            chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S").is_ok()
                || chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S").is_ok()
                || chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").is_ok()
        }
    }
}

/// Whether a `const:` value fits the canonical type.
pub fn const_fits(text: &str, v: &Value, ty: FieldType) -> bool {
    match (v, ty) {
        (Value::Bool(_), FieldType::Boolean | FieldType::Utf8) => true,
        (Value::Bool(_), _) => false,
        _ => text_fits(text, ty),
    }
}

/// A multi-line error message (e.g. of the regex crate) on one line.
pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first line of a message.
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}
