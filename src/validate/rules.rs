//! The registries that manifests refer to by name: built-in data-quality rules (stable
//! `DQ…` codes, Kahn categories, parameters) and named field transforms. `docs/rules.md`
//! and `docs/transforms.md` are generated from these tables.

use crate::manifest::model::KahnCategory;

/// Parameters a rule can take (besides `rule`, `id`, `on_fail`, `description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Field,
    Fields,
    Pattern,
    Values,
    Min,
    Max,
    After,
    MinLength,
    MaxLength,
}

impl Param {
    pub fn key(self) -> &'static str {
        match self {
            Param::Field => "field",
            Param::Fields => "fields",
            Param::Pattern => "pattern",
            Param::Values => "values",
            Param::Min => "min",
            Param::Max => "max",
            Param::After => "after",
            Param::MinLength => "min_length",
            Param::MaxLength => "max_length",
        }
    }
}

/// A built-in quality rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleDef {
    pub name: &'static str,
    pub code: &'static str,
    pub category: KahnCategory,
    /// Parameters that must be present.
    pub required: &'static [Param],
    /// Parameters that may be present.
    pub optional: &'static [Param],
    pub summary: &'static str,
    pub example: &'static str,
}

/// Code of rows that could not be read in the declared shape (ragged CSV rows,
/// undecodable text, NDJSON lines that are not objects). Always quarantined.
pub const UNREADABLE_CODE: &str = "DQ001";

/// Code of custom SQL-expression rules.
pub const CUSTOM_RULE_CODE: &str = "DQ900";

/// The built-in rule library. Codes are stable: never renumber or reuse one.
pub const RULES: &[RuleDef] = &[
    RuleDef {
        name: "nhs_number_valid",
        code: "DQ101",
        category: KahnCategory::Conformance,
        required: &[Param::Field],
        optional: &[],
        summary: "The field is a 10-digit NHS number passing the modulus-11 check (null passes; pair with not_null).",
        example: "{ rule: nhs_number_valid, field: nhs_number, on_fail: warn }",
    },
    RuleDef {
        name: "postcode_valid",
        code: "DQ102",
        category: KahnCategory::Conformance,
        required: &[Param::Field],
        optional: &[],
        summary: "The field is a well-formed UK postcode (pseudo-postcodes ZZ99 fail).",
        example: "{ rule: postcode_valid, field: postcode, on_fail: warn }",
    },
    RuleDef {
        name: "matches_regex",
        code: "DQ103",
        category: KahnCategory::Conformance,
        required: &[Param::Field, Param::Pattern],
        optional: &[],
        summary: "The field matches the regular expression `pattern` (Rust regex syntax).",
        example: "{ rule: matches_regex, field: practice_ods, pattern: \"^[A-Z][0-9]{5}$\" }",
    },
    RuleDef {
        name: "in_value_set",
        code: "DQ104",
        category: KahnCategory::Conformance,
        required: &[Param::Field],
        optional: &[Param::Values],
        summary: "The field holds one of `values`, or of the canonical field's value set when `values` is absent.",
        example: "{ rule: in_value_set, field: admission_method }",
    },
    RuleDef {
        name: "parseable",
        code: "DQ105",
        category: KahnCategory::Conformance,
        required: &[Param::Field],
        optional: &[],
        summary: "The source value was present but the mapping could not turn it into the canonical type (bad date, bad number, code missing from the value map).",
        example: "{ rule: parseable, field: date_of_birth }",
    },
    RuleDef {
        name: "length",
        code: "DQ106",
        category: KahnCategory::Conformance,
        required: &[Param::Field],
        optional: &[Param::MinLength, Param::MaxLength],
        summary: "The text length of the field is within `min_length`..`max_length` (at least one given).",
        example: "{ rule: length, field: practice_ods, min_length: 6, max_length: 6 }",
    },
    RuleDef {
        name: "not_null",
        code: "DQ201",
        category: KahnCategory::Completeness,
        required: &[Param::Field],
        optional: &[],
        summary: "The field is present (not null, not blank). Added automatically for required canonical fields.",
        example: "{ rule: not_null, field: nhs_number, on_fail: warn }",
    },
    RuleDef {
        name: "in_range",
        code: "DQ301",
        category: KahnCategory::Plausibility,
        required: &[Param::Field],
        optional: &[Param::Min, Param::Max],
        summary: "The field lies within `min`..`max` inclusive (numbers, or dates written YYYY-MM-DD; at least one bound).",
        example: "{ rule: in_range, field: date_of_birth, min: 1890-01-01 }",
    },
    RuleDef {
        name: "not_in_future",
        code: "DQ302",
        category: KahnCategory::Plausibility,
        required: &[Param::Field],
        optional: &[],
        summary: "The date or timestamp is not after the run's reference date.",
        example: "{ rule: not_in_future, field: date_of_birth }",
    },
    RuleDef {
        name: "date_order",
        code: "DQ303",
        category: KahnCategory::Plausibility,
        required: &[Param::Field, Param::After],
        optional: &[],
        summary: "`field` is not earlier than the field named by `after` (e.g. discharge not before admission), compared by day.",
        example: "{ rule: date_order, field: end_ts, after: start_ts }",
    },
    RuleDef {
        name: "unique",
        code: "DQ304",
        category: KahnCategory::Plausibility,
        required: &[Param::Fields],
        optional: &[],
        summary: "No two rows of the extract share the values of `fields`; every row of a duplicated key fails.",
        example: "{ rule: unique, fields: [source_record_id], on_fail: warn }",
    },
];

pub fn rule(name: &str) -> Option<&'static RuleDef> {
    RULES.iter().find(|r| r.name == name)
}

/// A named transform for field mappings.
#[derive(Debug, Clone, Copy)]
pub struct TransformDef {
    pub name: &'static str,
    /// The SQL function it compiles to (`{}` is the input).
    pub sql: &'static str,
    pub summary: &'static str,
}

/// Named transforms, applied to text in the order listed in the manifest.
pub const TRANSFORMS: &[TransformDef] = &[
    TransformDef {
        name: "trim",
        sql: "trim({})",
        summary: "Remove leading and trailing spaces.",
    },
    TransformDef {
        name: "upper",
        sql: "upper({})",
        summary: "Upper case.",
    },
    TransformDef {
        name: "lower",
        sql: "lower({})",
        summary: "Lower case.",
    },
    TransformDef {
        name: "null_if_blank",
        sql: "nullif(trim({}), '')",
        summary: "Blank text becomes null.",
    },
    TransformDef {
        name: "digits_only",
        sql: "digits_only({})",
        summary: "Keep only the digits.",
    },
    TransformDef {
        name: "nhs_number",
        sql: "nhs_number_clean({})",
        summary: "NHS number cleaning: keep the digits (`943 476 5919` → `9434765919`).",
    },
    TransformDef {
        name: "uk_postcode",
        sql: "uk_postcode({})",
        summary: "Postcode normalisation to `OUTWARD INWARD`; malformed postcodes become null.",
    },
    TransformDef {
        name: "icd10",
        sql: "icd10_normalise({})",
        summary: "ICD-10 with or without dot and filler to the no-dot form (`I10.X` → `I10`).",
    },
    TransformDef {
        name: "opcs4",
        sql: "opcs4_normalise({})",
        summary: "OPCS-4 to the no-dot form.",
    },
    TransformDef {
        name: "snomed",
        sql: "snomed_normalise({})",
        summary: "SNOMED CT concept id (digits); anything else becomes null.",
    },
    TransformDef {
        name: "read_code",
        sql: "read_code_normalise({})",
        summary: "Read v2 / CTV3 padded to five characters.",
    },
    TransformDef {
        name: "name",
        sql: "name_standardise({})",
        summary: "Name standardisation for linkage (upper case, accents folded, punctuation removed).",
    },
];

pub fn transform(name: &str) -> Option<&'static TransformDef> {
    TRANSFORMS.iter().find(|t| t.name == name)
}

pub fn category_name(c: KahnCategory) -> &'static str {
    match c {
        KahnCategory::Conformance => "conformance",
        KahnCategory::Completeness => "completeness",
        KahnCategory::Plausibility => "plausibility",
    }
}
