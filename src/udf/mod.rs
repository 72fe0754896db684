//! NHS-specific scalar functions, registered with DataFusion as `ScalarUDF`s.
//!
//! Manifest transforms compile to these functions, and manifest SQL expressions may call
//! them by name. Each function is null-in/null-out, never errors on bad values (a bad
//! value gives null or `false`, which the quality rules then report), and accepts any
//! string type (the planner casts views to `Utf8`).

pub mod text;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::cast::as_string_array;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};

/// One documented function.
#[derive(Debug, Clone, Copy)]
pub struct FunctionDoc {
    pub name: &'static str,
    pub signature: &'static str,
    pub summary: &'static str,
}

/// Every onboard function, for docs and did-you-mean hints.
pub const FUNCTIONS: &[FunctionDoc] = &[
    FunctionDoc {
        name: "nhs_number_valid",
        signature: "nhs_number_valid(text) -> boolean",
        summary: "True when the text is 10 digits (spaces and dashes ignored) passing the NHS modulus-11 check and not all the same digit.",
    },
    FunctionDoc {
        name: "nhs_number_clean",
        signature: "nhs_number_clean(text) -> text",
        summary: "Keeps the digits; null when nothing is left.",
    },
    FunctionDoc {
        name: "uk_postcode",
        signature: "uk_postcode(text) -> text",
        summary: "Upper case, single space before the inward code (`ls11ab` → `LS1 1AB`); null when not shaped like a UK postcode.",
    },
    FunctionDoc {
        name: "postcode_valid",
        signature: "postcode_valid(text) -> boolean",
        summary: "True when the text is a well-formed UK postcode (pseudo-postcodes `ZZ99` are not valid).",
    },
    FunctionDoc {
        name: "postcode_sector",
        signature: "postcode_sector(text) -> text",
        summary: "Outward code plus first inward digit (`LS1 1`).",
    },
    FunctionDoc {
        name: "postcode_district",
        signature: "postcode_district(text) -> text",
        summary: "Outward code (`LS1`).",
    },
    FunctionDoc {
        name: "icd10_normalise",
        signature: "icd10_normalise(text) -> text",
        summary: "ICD-10 code without dot, dagger/asterisk or filler `X`/`-` (`I10.X` → `I10`, `E11.9` → `E119`).",
    },
    FunctionDoc {
        name: "opcs4_normalise",
        signature: "opcs4_normalise(text) -> text",
        summary: "OPCS-4 code upper case without dot (`W40.1` → `W401`).",
    },
    FunctionDoc {
        name: "snomed_normalise",
        signature: "snomed_normalise(text) -> text",
        summary: "SNOMED CT concept id: 6–18 digits; null otherwise.",
    },
    FunctionDoc {
        name: "read_code_normalise",
        signature: "read_code_normalise(text) -> text",
        summary: "Read v2 / CTV3 code: trimmed, right-padded with `.` to 5 characters (`G30` → `G30..`); case kept (CTV3 is case sensitive).",
    },
    FunctionDoc {
        name: "name_standardise",
        signature: "name_standardise(text) -> text",
        summary: "Upper case ASCII letters, accents folded, punctuation other than `-` and `'` removed, spaces collapsed (`  o'brien-smith ` → `O'BRIEN-SMITH`).",
    },
    FunctionDoc {
        name: "digits_only",
        signature: "digits_only(text) -> text",
        summary: "Keeps the digits; null when nothing is left.",
    },
    FunctionDoc {
        name: "jaro_winkler",
        signature: "jaro_winkler(text, text) -> double",
        summary: "Jaro–Winkler similarity between 0 and 1.",
    },
    FunctionDoc {
        name: "soundex",
        signature: "soundex(text) -> text",
        summary: "American Soundex code of a name (`ROBERT` → `R163`).",
    },
    FunctionDoc {
        name: "parse_date",
        signature: "parse_date(text, format, ...) -> date",
        summary: "Parses with each strftime format in turn; null when none fits (never an error).",
    },
    FunctionDoc {
        name: "parse_timestamp",
        signature: "parse_timestamp(text, format, ...) -> timestamp",
        summary: "Like parse_date for date-times; a plain date gets midnight.",
    },
    FunctionDoc {
        name: "person_key_of",
        signature: "person_key_of(nhs_number, issuer, local_id, record) -> text",
        summary: "Keyed pseudonym candidate (HMAC-SHA-256 under the ICS key, 32 hex): of the NHS number when valid, else of issuer and local id, else of the record (scope and id) so linkage can join it, else null. Registered by the engine with the run's key.",
    },
    FunctionDoc {
        name: "record_key",
        signature: "record_key(scope, id) -> text",
        summary: "Keyed 128-bit SipHash (32 hex) of a record's scope and id: the own ids of canonical tables.",
    },
];

/// All onboard UDFs, ready to register.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        str_to_bool("nhs_number_valid", text::nhs_number_valid),
        str_to_str("nhs_number_clean", text::digits_only),
        str_to_str("uk_postcode", text::postcode_normalise),
        str_to_bool("postcode_valid", |s| text::uk_postcode(s).is_some()),
        str_to_str("postcode_sector", text::postcode_sector),
        str_to_str("postcode_district", text::postcode_district),
        str_to_str("icd10_normalise", text::icd10),
        str_to_str("opcs4_normalise", text::opcs4),
        str_to_str("snomed_normalise", text::snomed),
        str_to_str("read_code_normalise", text::read_code),
        str_to_str("name_standardise", text::name_standardise),
        str_to_str("digits_only", text::digits_only),
        str_to_str("soundex", text::soundex),
        jaro_winkler(),
        ScalarUDF::from(ParseTemporal::new(false)),
        ScalarUDF::from(ParseTemporal::new(true)),
    ]
}

fn str_array(arg: &ArrayRef) -> Result<ArrayRef> {
    datafusion::arrow::compute::cast(arg, &DataType::Utf8).map_err(DataFusionError::from)
}

fn str_to_str(name: &'static str, f: fn(&str) -> Option<String>) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let input = str_array(&arrays[0])?;
            let input = as_string_array(&input)?;
            let out: StringArray = input.iter().map(|v| v.and_then(f)).collect();
            wrap(Arc::new(out), scalar)
        }),
    )
}

fn str_to_bool(name: &'static str, f: fn(&str) -> bool) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let input = str_array(&arrays[0])?;
            let input = as_string_array(&input)?;
            let out: BooleanArray = input.iter().map(|v| v.map(f)).collect();
            wrap(Arc::new(out), scalar)
        }),
    )
}

fn jaro_winkler() -> ScalarUDF {
    create_udf(
        "jaro_winkler",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let a = str_array(&arrays[0])?;
            let b = str_array(&arrays[1])?;
            let a = as_string_array(&a)?;
            let b = as_string_array(&b)?;
            let out: Float64Array = a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => Some(strsim::jaro_winkler(x, y)),
                    _ => None,
                })
                .collect();
            wrap(Arc::new(out), scalar)
        }),
    )
}

fn wrap(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar && array.len() == 1 {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// `parse_date(text, fmt, ...)` and `parse_timestamp(text, fmt, ...)`: null on failure.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ParseTemporal {
    timestamp: bool,
    signature: Signature,
}

impl ParseTemporal {
    fn new(timestamp: bool) -> Self {
        ParseTemporal {
            timestamp,
            signature: Signature::variadic(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ParseTemporal {
    fn name(&self) -> &str {
        if self.timestamp {
            "parse_timestamp"
        } else {
            "parse_date"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.timestamp {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        } else {
            DataType::Date32
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let mut formats = Vec::new();
        for a in args.args.iter().skip(1) {
            match a {
                ColumnarValue::Scalar(s) => {
                    if let Some(f) = scalar_text(s) {
                        formats.push(f);
                    }
                }
                ColumnarValue::Array(_) => {
                    return Err(DataFusionError::Plan(format!(
                        "{}: formats must be literals",
                        self.name()
                    )));
                }
            }
        }
        if formats.is_empty() {
            formats.push(if self.timestamp {
                "%Y-%m-%d %H:%M:%S".into()
            } else {
                "%Y-%m-%d".into()
            });
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let input = str_array(&arrays[0])?;
        let input = as_string_array(&input)?;
        let out: ArrayRef = if self.timestamp {
            let a: TimestampMicrosecondArray = input
                .iter()
                .map(|v| v.and_then(|s| text::parse_timestamp_micros(s, &formats)))
                .collect();
            Arc::new(a)
        } else {
            let a: Date32Array = input
                .iter()
                .map(|v| v.and_then(|s| text::parse_date_days(s, &formats)))
                .collect();
            Arc::new(a)
        };
        wrap(out, scalar && input.len() == 1)
    }
}

fn scalar_text(s: &ScalarValue) -> Option<String> {
    match s {
        ScalarValue::Utf8(v) | ScalarValue::Utf8View(v) | ScalarValue::LargeUtf8(v) => v.clone(),
        _ => None,
    }
}
