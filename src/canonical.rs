//! The canonical schemas: the v1 data model every provider maps onto.
//!
//! The model is data, in `schemas/canonical/*.yaml` (one entity per file, plus shared value
//! sets), compiled into the binary so that `onboard` works from any directory. This module
//! loads it once and turns each entity into an Arrow schema.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use indexmap::IndexMap;
use serde::Deserialize;

use crate::manifest::source::parse_plain;

/// The canonical schema files, embedded at build time.
const FILES: &[(&str, &str)] = &[
    (
        "person_identity.yaml",
        include_str!("../schemas/canonical/person_identity.yaml"),
    ),
    (
        "person.yaml",
        include_str!("../schemas/canonical/person.yaml"),
    ),
    (
        "registration.yaml",
        include_str!("../schemas/canonical/registration.yaml"),
    ),
    (
        "address_period.yaml",
        include_str!("../schemas/canonical/address_period.yaml"),
    ),
    (
        "care_event.yaml",
        include_str!("../schemas/canonical/care_event.yaml"),
    ),
    (
        "diagnosis.yaml",
        include_str!("../schemas/canonical/diagnosis.yaml"),
    ),
    (
        "procedure.yaml",
        include_str!("../schemas/canonical/procedure.yaml"),
    ),
    (
        "medication.yaml",
        include_str!("../schemas/canonical/medication.yaml"),
    ),
    (
        "observation.yaml",
        include_str!("../schemas/canonical/observation.yaml"),
    ),
    (
        "social_care_service.yaml",
        include_str!("../schemas/canonical/social_care_service.yaml"),
    ),
    (
        "social_determinant.yaml",
        include_str!("../schemas/canonical/social_determinant.yaml"),
    ),
];
const VALUE_SETS: &str = include_str!("../schemas/canonical/value_sets.yaml");

/// The identity-zone entity that holds identifiers.
pub const IDENTITY_ENTITY: &str = "person_identity";

/// Zones: identifiers live only in the identity zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    Identity,
    Analytics,
}

/// Types a canonical field can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Utf8,
    Int64,
    Float64,
    Boolean,
    Date,
    Timestamp,
    Decimal { precision: u8, scale: i8 },
}

impl FieldType {
    fn parse(s: &str) -> Option<FieldType> {
        Some(match s {
            "utf8" => FieldType::Utf8,
            "int64" => FieldType::Int64,
            "float64" => FieldType::Float64,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "timestamp" => FieldType::Timestamp,
            other => {
                let inner = other.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = inner.split_once(',')?;
                FieldType::Decimal {
                    precision: p.trim().parse().ok()?,
                    scale: s.trim().parse().ok()?,
                }
            }
        })
    }

    /// The Arrow type of this canonical type.
    pub fn arrow(self) -> DataType {
        match self {
            FieldType::Utf8 => DataType::Utf8,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Date => DataType::Date32,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            FieldType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        }
    }

    pub fn name(self) -> String {
        match self {
            FieldType::Utf8 => "utf8".into(),
            FieldType::Int64 => "int64".into(),
            FieldType::Float64 => "float64".into(),
            FieldType::Boolean => "boolean".into(),
            FieldType::Date => "date".into(),
            FieldType::Timestamp => "timestamp".into(),
            FieldType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    entity: String,
    zone: Zone,
    description: String,
    fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    identifier: bool,
    #[serde(default)]
    derived: bool,
    #[serde(default)]
    code_system: Option<String>,
    #[serde(default)]
    value_set: Option<String>,
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValueSets {
    value_sets: IndexMap<String, RawValueSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValueSet {
    description: String,
    #[serde(default)]
    code_system: Option<String>,
    values: Vec<ValueCode>,
}

/// One code of a value set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueCode {
    pub code: String,
    pub label: String,
}

/// A named set of allowed codes.
#[derive(Debug, Clone)]
pub struct ValueSet {
    pub name: String,
    pub description: String,
    pub code_system: Option<String>,
    pub values: Vec<ValueCode>,
}

impl ValueSet {
    pub fn contains(&self, code: &str) -> bool {
        self.values.iter().any(|v| v.code == code)
    }
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|v| v.code.as_str())
    }
}

/// One field of a canonical entity.
#[derive(Debug, Clone)]
pub struct CanonicalField {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
    pub identifier: bool,
    /// Computed by onboard (keys, lineage); providers do not map it.
    pub derived: bool,
    pub code_system: Option<String>,
    pub value_set: Option<Arc<ValueSet>>,
    pub description: String,
}

/// A canonical entity (table).
#[derive(Debug, Clone)]
pub struct Entity {
    pub name: String,
    pub zone: Zone,
    pub description: String,
    pub fields: Vec<CanonicalField>,
}

impl Entity {
    pub fn field(&self, name: &str) -> Option<&CanonicalField> {
        self.fields.iter().find(|f| f.name == name)
    }
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
    /// The Arrow schema of the entity (all fields nullable: required-ness is a quality
    /// rule, checked and reported, not a crash).
    pub fn arrow_schema(&self) -> Schema {
        Schema::new(
            self.fields
                .iter()
                .map(|f| Field::new(&f.name, f.ty.arrow(), true))
                .collect::<Vec<_>>(),
        )
    }
}

/// The whole canonical model.
#[derive(Debug)]
pub struct Model {
    pub entities: Vec<Arc<Entity>>,
    pub value_sets: IndexMap<String, Arc<ValueSet>>,
}

impl Model {
    pub fn entity(&self, name: &str) -> Option<&Arc<Entity>> {
        self.entities.iter().find(|e| e.name == name)
    }
    pub fn entity_names(&self) -> impl Iterator<Item = &str> {
        self.entities.iter().map(|e| e.name.as_str())
    }
    pub fn identity(&self) -> &Arc<Entity> {
        self.entity(IDENTITY_ENTITY)
            .expect("the embedded canonical model has person_identity")
    }
}

/// The embedded canonical model (loaded once; a defect in it is a build defect that
/// the test suite catches).
pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        load().unwrap_or_else(|e| panic!("embedded canonical schema is invalid: {e}"))
    })
}

/// Load and cross-check the embedded canonical schema files.
pub fn load() -> Result<Model, String> {
    let vs_json = parse_plain("value_sets.yaml", VALUE_SETS)?;
    let raw_vs: RawValueSets =
        serde_json::from_value(vs_json).map_err(|e| format!("value_sets.yaml: {e}"))?;
    let value_sets: IndexMap<String, Arc<ValueSet>> = raw_vs
        .value_sets
        .into_iter()
        .map(|(name, v)| {
            (
                name.clone(),
                Arc::new(ValueSet {
                    name,
                    description: v.description,
                    code_system: v.code_system,
                    values: v.values,
                }),
            )
        })
        .collect();
    let mut entities = Vec::new();
    for (file, text) in FILES {
        let json = parse_plain(file, text)?;
        let raw: RawEntity = serde_json::from_value(json).map_err(|e| format!("{file}: {e}"))?;
        let mut fields = Vec::new();
        for f in raw.fields {
            let ty = FieldType::parse(&f.ty)
                .ok_or_else(|| format!("{file}: field {}: unknown type {}", f.name, f.ty))?;
            let value_set =
                match &f.value_set {
                    Some(n) => Some(value_sets.get(n).cloned().ok_or_else(|| {
                        format!("{file}: field {}: unknown value set {n}", f.name)
                    })?),
                    None => None,
                };
            fields.push(CanonicalField {
                name: f.name,
                ty,
                required: f.required,
                identifier: f.identifier,
                derived: f.derived,
                code_system: f.code_system,
                value_set,
                description: f.description,
            });
        }
        entities.push(Arc::new(Entity {
            name: raw.entity,
            zone: raw.zone,
            description: raw.description,
            fields,
        }));
    }
    Ok(Model {
        entities,
        value_sets,
    })
}
