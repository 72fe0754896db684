//! Spark SQL from the compiled DataFusion plans: a [`SparkDialect`] for DataFusion's SQL
//! unparser (backtick identifiers, Spark type names, Spark function names) and the
//! mapping of onboard's functions. Where a Spark built-in computes exactly the same
//! value it is used (`digits_only` → `regexp_replace`, DataFusion's null-skipping
//! `concat` → `concat_ws('', …)`); every other onboard function becomes a call to
//! `onboard_<name>`, registered on the Spark session by `python/onboard_udfs.py`,
//! which ships in the Databricks bundle.

use datafusion::common::Result;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::tokenizer::Span;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, DateFieldExtractStyle, Dialect, IntervalStyle,
};

/// Functions registered in Spark by `python/onboard_udfs.py` (called `onboard_<name>`).
pub const REGISTERED: &[&str] = &[
    "nhs_number_valid",
    "uk_postcode",
    "postcode_valid",
    "postcode_sector",
    "postcode_district",
    "icd10_normalise",
    "opcs4_normalise",
    "snomed_normalise",
    "read_code_normalise",
    "name_standardise",
    "soundex",
    "jaro_winkler",
    "parse_date",
    "parse_timestamp",
    "person_key_of",
    "record_key",
];

/// Onboard functions computed by Spark built-ins (exactly the same values).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("digits_only", "nullif(regexp_replace(x, '[^0-9]', ''), '')"),
    (
        "nhs_number_clean",
        "nullif(regexp_replace(x, '[^0-9]', ''), '')",
    ),
    (
        "concat",
        "concat_ws('', …) (DataFusion's concat skips nulls)",
    ),
];

/// The Spark SQL dialect for DataFusion's unparser.
#[derive(Debug, Default, Clone, Copy)]
pub struct SparkDialect;

impl Dialect for SparkDialect {
    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('`')
    }
    fn utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::String(None)
    }
    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::String(None)
    }
    fn interval_style(&self) -> IntervalStyle {
        IntervalStyle::SQLStandard
    }
    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        DateFieldExtractStyle::Extract
    }
    fn character_length_style(&self) -> CharacterLengthStyle {
        CharacterLengthStyle::CharacterLength
    }
    fn timestamp_cast_dtype(
        &self,
        _unit: &datafusion::arrow::datatypes::TimeUnit,
        tz: &Option<std::sync::Arc<str>>,
    ) -> ast::DataType {
        // Our timestamps carry no zone: Spark's TIMESTAMP_NTZ keeps them as written.
        match tz {
            Some(_) => ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
            None => ast::DataType::TimestampNtz(None),
        }
    }
    fn requires_derived_table_alias(&self) -> bool {
        true
    }
    fn supports_qualify(&self) -> bool {
        false
    }
    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        let sql_args =
            || -> Result<Vec<ast::Expr>> { args.iter().map(|a| unparser.expr_to_sql(a)).collect() };
        Ok(match func_name {
            "digits_only" | "nhs_number_clean" => {
                let x = sql_args()?.into_iter().next();
                x.map(|x| {
                    call(
                        "nullif",
                        vec![
                            call("regexp_replace", vec![x, string("[^0-9]"), string("")]),
                            string(""),
                        ],
                    )
                })
            }
            "concat" => {
                let mut a = vec![string("")];
                a.extend(sql_args()?);
                Some(call("concat_ws", a))
            }
            f if REGISTERED.contains(&f) => Some(call(&format!("onboard_{f}"), sql_args()?)),
            _ => None,
        })
    }
}

fn string(s: &str) -> ast::Expr {
    ast::Expr::value(ast::Value::SingleQuotedString(s.to_string()))
}

fn call(name: &str, args: Vec<ast::Expr>) -> ast::Expr {
    ast::Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident {
            value: name.to_string(),
            quote_style: None,
            span: Span::empty(),
        }]),
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
        parameters: ast::FunctionArguments::None,
        uses_odbc_syntax: false,
    })
}

/// A logical plan as Spark SQL (pretty: only the parentheses the plan needs).
/// Unparse the unoptimised plan: the optimised one repeats pushed-down filters.
pub fn plan_to_spark_sql(plan: &LogicalPlan) -> Result<String> {
    let dialect = SparkDialect;
    let stmt = Unparser::new(&dialect)
        .with_pretty(true)
        .plan_to_sql(plan)?;
    Ok(stmt.to_string())
}
