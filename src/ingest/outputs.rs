//! What one source writes: the output schemas (canonical entity, identity, quarantine),
//! their partition directories, the Parquet writer settings, and a lazily created
//! writer over [`crate::store::ParquetFile`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;

use super::identity::SeenState;
use crate::canonical::Entity;
use crate::compile::CompiledSource;
use crate::store::{ParquetFile, StoreError};

/// Partition directory of one source's outputs.
pub(crate) fn part_dir(
    base: &Path,
    kind: &str,
    entity: Option<&str>,
    provider: &str,
    source: &str,
) -> PathBuf {
    let mut p = base.join(kind);
    if let Some(e) = entity {
        p = p.join(e);
    }
    p.join(format!("provider={provider}"))
        .join(format!("source={source}"))
}

pub(crate) struct Outputs {
    /// Identity tuples already written (analytics sources write each distinct tuple
    /// once: one person has many events).
    pub(crate) seen_identities: Option<Mutex<SeenState>>,
    /// Analytics output (None for sources that map to person_identity).
    pub(crate) silver: Option<(Arc<Entity>, SchemaRef)>,
    /// Identity output (when the source carries identifiers).
    pub(crate) identity: Option<SchemaRef>,
    pub(crate) quarantine: SchemaRef,
    /// Extract date of each file (display name), for the lineage `extract_date`.
    pub(crate) extract_dates: BTreeMap<String, chrono::NaiveDate>,
}

fn extras() -> Vec<Field> {
    vec![
        Field::new("provider_id", DataType::Utf8, false),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("record_key", DataType::Utf8, true),
        Field::new("manifest_hash", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
    ]
}

pub(crate) fn entity_schema(e: &Entity, identity: bool) -> SchemaRef {
    let mut fields: Vec<Field> = e
        .fields
        .iter()
        .map(|f| Field::new(&f.name, f.ty.arrow(), true))
        .collect();
    if identity {
        fields.push(Field::new("person_key", DataType::Utf8, true));
        fields.push(Field::new("source_file", DataType::Utf8, true));
        fields.push(Field::new("source_row", DataType::Int64, true));
    }
    // An entity whose first field is its own id (event_id, …) holds the record key there.
    let own_id = e
        .fields
        .first()
        .is_some_and(|f| f.derived && f.name.ends_with("_id"));
    fields.extend(
        extras()
            .into_iter()
            .filter(|f| !(own_id && f.name() == "record_key")),
    );
    if !identity {
        fields.push(Field::new("dq_warnings", DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// Text columns (nearly) unique per row whose min and max prune nothing: random keys,
/// identifiers, names and free text. Neither a dictionary nor statistics are kept for
/// them (each only costs time: the writer gives a dictionary up, and statistics
/// compare every value).
const UNPRUNABLE_TEXT: &[&str] = &[
    "record_key",
    "person_key",
    "source_record_id",
    "raw_row",
    "reasons",
    "nhs_number",
    "local_patient_id",
    "given_name",
    "family_name",
    "event_id",
    "diagnosis_id",
    "procedure_id",
    "medication_id",
    "observation_id",
    "service_id",
    // Distinct per row in patient-level extracts.
    "value_text",
];

/// Lineage columns holding one value per file, which its key/value metadata also holds:
/// statistics would compare every row's value for a min and max known in advance.
const ONE_VALUE_PER_FILE: &[&str] = &["provider_id", "source_id", "manifest_hash", "run_id"];

/// Other columns (nearly) unique per row: no dictionary, statistics kept.
const HIGH_CARDINALITY: &[&str] = &[
    "source_row",
    "value_numeric",
    "start_ts",
    "end_ts",
    "cost_amount",
    "postcode",
];

pub(crate) fn writer_props(c: &CompiledSource, run_id: &str) -> WriterProperties {
    use datafusion::parquet::file::properties::EnabledStatistics;
    use datafusion::parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder();
    for col in UNPRUNABLE_TEXT.iter().chain(HIGH_CARDINALITY) {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*col), false);
    }
    for col in UNPRUNABLE_TEXT.iter().chain(ONE_VALUE_PER_FILE) {
        b = b.set_column_statistics_enabled(ColumnPath::from(*col), EnabledStatistics::None);
    }
    b.set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("onboard.manifest_hash".into(), c.manifest_hash.clone()),
            KeyValue::new("onboard.run_id".into(), run_id.to_string()),
            KeyValue::new("onboard.provider".into(), c.provider.clone()),
            KeyValue::new("onboard.source".into(), c.source.clone()),
        ]))
        .build()
}

/// A Parquet file of a partition, created on its first rows (a partition with no rows
/// writes no file), written through [`ParquetFile`].
pub(crate) struct Sink {
    path: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    file: Option<ParquetFile>,
}

impl Sink {
    pub(crate) fn new(path: PathBuf, schema: SchemaRef, props: WriterProperties) -> Self {
        Sink {
            path,
            schema,
            props,
            file: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(ParquetFile::create(
                &self.path,
                self.schema.clone(),
                Some(self.props.clone()),
            )?),
        };
        file.write(batch)
    }

    pub(crate) fn close(self) -> Result<(), StoreError> {
        match self.file {
            Some(f) => f.finish().map(|_| ()),
            None => Ok(()),
        }
    }
}
