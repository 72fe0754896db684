//! SQL expressions of manifests (`expr:` of field mappings and custom quality rules):
//! parsed and type-checked by DataFusion against the schema they will see, errors
//! turned into diagnostics (unknown column with did-you-mean, unknown function, syntax,
//! type).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, DataFusionError, SchemaError};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::utils::find_aggregate_exprs;

use super::semantic::Checker;
use super::values::{first_line, preview};
use crate::diagnostics::{Diagnostic, did_you_mean};

/// Parse and type-check a SQL expression; returns its type and the columns it reads.
pub fn check_sql(
    checker: &Checker,
    sql: &str,
    schema: &DFSchema,
) -> Result<(DataType, Vec<String>), Diagnostic> {
    let expr = match checker.ctx.parse_sql_expr(sql, schema) {
        Ok(e) => e,
        Err(e) => return Err(sql_error(checker, &e, schema)),
    };
    if !find_aggregate_exprs(std::iter::once(&expr)).is_empty() {
        return Err(Diagnostic::new("ONB0304", "aggregate functions are not allowed in row expressions")
            .label("aggregate")
            .help("expressions are evaluated per row; use a quality rule such as `unique` for cross-row checks"));
    }
    let ty = expr.get_type(schema).map_err(|e| {
        Diagnostic::new(
            "ONB0304",
            format!(
                "expression does not type-check: {}",
                first_line(&e.find_root().to_string())
            ),
        )
        .label("type error")
    })?;
    // Type coercion and argument checks (e.g. `upper()` with no argument) happen only
    // when the expression is planned; plan it here so validate sees what `run` would.
    if let Err(e) = checker.ctx.create_physical_expr(expr.clone(), schema) {
        return Err(Diagnostic::new(
            "ONB0304",
            format!(
                "expression is not valid: {}",
                first_line(&e.find_root().to_string())
            ),
        )
        .label("invalid"));
    }
    let cols = expr
        .column_refs()
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    Ok((ty, cols))
}

fn sql_error(checker: &Checker, e: &DataFusionError, schema: &DFSchema) -> Diagnostic {
    let root = e.find_root();
    if let DataFusionError::SchemaError(se, _) = root
        && let SchemaError::FieldNotFound { field, .. } = se.as_ref()
    {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut help = did_you_mean(&field.name, names.iter().map(String::as_str));
        if help.is_none() {
            help = Some(format!("available: {}", preview(&names)));
        }
        return Diagnostic::new(
            "ONB0302",
            format!("expression names unknown column `{}`", field.name),
        )
        .label("unknown column")
        .help_opt(help);
    }
    match root {
        DataFusionError::SQL(pe, _) => {
            Diagnostic::new("ONB0301", format!("SQL expression does not parse: {pe}"))
                .label("syntax error")
        }
        other => {
            let msg = other.to_string();
            if let Some(rest) = msg.split("Invalid function '").nth(1) {
                let name = rest.split('\'').next().unwrap_or("").to_string();
                Diagnostic::new(
                    "ONB0303",
                    format!("expression calls unknown function `{name}`"),
                )
                .label("unknown function")
                .help_opt(did_you_mean(
                    &name,
                    checker.function_names.iter().map(String::as_str),
                ))
            } else {
                Diagnostic::new(
                    "ONB0304",
                    format!("expression is not valid: {}", first_line(&msg)),
                )
                .label("invalid")
            }
        }
    }
}
