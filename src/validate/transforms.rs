//! The named field transforms (`transform:` of a mapping): each compiles to one SQL
//! function call. `docs/transforms.md` is generated from this table.

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

/// The transform names, comma-separated (for hints).
pub fn names() -> String {
    TRANSFORMS
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}
