//! Custom SQL rules (`expr:` with `id:`): a boolean expression over the mapped canonical
//! fields, parsed and type-checked by DataFusion; rows where it is false fail (`DQ900`).

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;

use super::{CUSTOM_RULE_CODE, Param, RuleScope};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::manifest::model::{KahnCategory, OnFail, QualityRule};
use crate::manifest::source::child;
use crate::validate::resolved::{ResolvedRule, RuleCheck};
use crate::validate::sql::check_sql;

/// Check a custom rule `r` with expression `sql` at pointer `p`.
pub fn check(
    scope: &RuleScope<'_>,
    r: &QualityRule,
    sql: &str,
    p: &str,
    diags: &mut Diagnostics,
) -> Option<ResolvedRule> {
    let before = diags.errors();
    let spans = scope.spans;
    for param in Param::ALL.into_iter().filter(|x| x.given(r)) {
        diags.push(
            Diagnostic::new(
                "ONB0402",
                format!("custom `expr` rules take no `{}`", param.key()),
            )
            .at_opt(spans.key(&child(p, param.key())))
            .label("not a parameter of expr rules"),
        );
    }
    let Some(id) = &r.id else {
        diags.push(
            Diagnostic::new("ONB0402", "a custom `expr` rule needs an `id`")
                .at_opt(spans.value(p))
                .label("missing id")
                .help("e.g. `id: plausible_dob`"),
        );
        return None;
    };
    check_boolean(scope, sql, p, diags);
    if diags.errors() > before {
        return None;
    }
    Some(ResolvedRule {
        id: id.clone(),
        code: CUSTOM_RULE_CODE,
        category: r.category.unwrap_or(KahnCategory::Plausibility),
        on_fail: r.on_fail.unwrap_or(OnFail::Quarantine),
        check: RuleCheck::Expr {
            sql: sql.to_string(),
        },
        description: r.description.clone(),
    })
}

/// The expression is valid SQL over the mapped fields and gives a boolean.
fn check_boolean(scope: &RuleScope<'_>, sql: &str, p: &str, diags: &mut Diagnostics) {
    let at = scope.spans.value(&child(p, "expr"));
    let schema = Schema::new(
        (scope.mapped.values())
            .map(|f| Field::new(&f.name, f.ty.arrow(), true))
            .collect::<Vec<_>>(),
    );
    let Ok(df) = DFSchema::try_from(schema) else {
        return;
    };
    match check_sql(scope.checker, sql, &df) {
        Ok((ty, _)) if ty != DataType::Boolean => diags.push(
            Diagnostic::new("ONB0304", format!("rule expression gives `{ty}`, not a boolean"))
                .at_opt(at)
                .label("not boolean")
                .help("a rule expression is true for good rows, e.g. `date_of_birth >= DATE '1890-01-01'`"),
        ),
        Ok(_) => {}
        Err(d) => {
            let d = if d.code == "ONB0302" {
                d.help("rule expressions see the mapped canonical fields, not the source columns")
            } else {
                d
            };
            diags.push(d.at_opt(at))
        }
    }
}
