//! The identity zone's rows of an analytics source: each distinct identity tuple (the
//! identity fields and the person key) written once per source, decided by 128-bit
//! fingerprints in an exact set of bounded memory ([`super::seen`]).

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, new_null_array,
};
use datafusion::arrow::compute::{self, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::parquet::file::properties::WriterProperties;

use super::IngestError;
use super::outputs::Sink;
use super::seen;
use super::split::col;
use crate::compile::CompiledSource;

/// The identity tuples a source has written, and the rows waiting for an exact
/// decision (see [`seen`]).
pub(crate) struct SeenState {
    set: seen::SeenSet,
    /// Rows whose tuple may have been written before a spill (Parquet in the spill dir).
    deferred: Sink,
    deferred_rows: usize,
}

/// Fingerprints kept in memory per source before the identity set spills (about 36 MB,
/// and as many deferred ones pending a decision);
/// `ONBOARD_IDENTITY_SET_LIMIT` lowers it (tests, small machines).
const SEEN_IN_MEMORY: usize = 1 << 20;

/// Rows per row group of the deferred rows' spill file.
const DEFERRED_ROW_GROUP: usize = 32 * 1024;

fn seen_limit() -> usize {
    super::env_limit("ONBOARD_IDENTITY_SET_LIMIT", SEEN_IN_MEMORY)
}

impl SeenState {
    pub(crate) fn new(spill: &Path, c: &CompiledSource, schema: SchemaRef) -> SeenState {
        let dir = spill.join(format!("identity-{}-{}", c.provider, c.source));
        SeenState {
            set: seen::SeenSet::new(dir.join("runs"), seen_limit()),
            deferred: Sink::new(
                dir.join("deferred.parquet"),
                schema,
                // Small row groups: the writer holds a row group in memory until it is full.
                WriterProperties::builder()
                    .set_max_row_group_row_count(Some(DEFERRED_ROW_GROUP))
                    .build(),
            ),
            deferred_rows: 0,
        }
    }

    /// Decide the deferred rows and write the new ones to the identity zone.
    ///
    /// First the deferred rows' fingerprints (their identity columns only) are decided in
    /// chunks of twice the set's limit, each chunk reading each spill run once; a tuple
    /// decided new joins the set, so a tuple deferred again in a later chunk is written
    /// once. Then the rows are read again and filtered by the verdicts (a byte per row).
    pub(crate) fn settle(
        self,
        out: &mut Sink,
        identity_fields: &[String],
    ) -> Result<(), IngestError> {
        let SeenState {
            mut set,
            deferred,
            deferred_rows,
        } = self;
        let path = deferred.path().to_path_buf();
        deferred.close()?;
        tracing::debug!(deferred_rows, spills = set.spills(), "identity set settled");
        if deferred_rows == 0 {
            return Ok(());
        }
        let chunk = 2 * set.limit;
        let mut new = Vec::with_capacity(deferred_rows);
        let mut fps = Vec::with_capacity(chunk.min(deferred_rows));
        for batch in read_deferred(&path, Some(identity_fields))? {
            let batch = batch?;
            let cols = identity_columns(&batch, identity_fields);
            fps.extend(fingerprints(&cols, batch.num_rows())?);
            if fps.len() >= chunk {
                new.extend(set.resolve(&fps)?);
                fps.clear();
            }
        }
        if !fps.is_empty() {
            new.extend(set.resolve(&fps)?);
        }
        let mut rest = new.as_slice();
        for batch in read_deferred(&path, None)? {
            let batch = batch?;
            let (now, later) = rest.split_at_checked(batch.num_rows()).ok_or_else(|| {
                IngestError::Other(format!(
                    "{}: more deferred rows than fingerprints",
                    path.display()
                ))
            })?;
            rest = later;
            out.write(&filter_record_batch(
                &batch,
                &BooleanArray::from(now.to_vec()),
            )?)?;
        }
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}

/// The deferred rows, in the order written: all columns, or the identity tuple's.
fn read_deferred(
    path: &Path,
    identity_fields: Option<&[String]>,
) -> Result<datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader, IngestError> {
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut b = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.with_batch_size(8192);
    if let Some(fields) = identity_fields {
        let names = fields.iter().map(String::as_str).chain(["person_key"]);
        let mask = ProjectionMask::columns(b.parquet_schema(), names);
        b = b.with_projection(mask);
    }
    Ok(b.build()?)
}

/// A 128-bit fingerprint of an identity tuple: two independent multiply-rotate lanes
/// over 8-byte words, each finished with the murmur3 avalanche (collisions are
/// negligible at ICS scale, and the set only decides what is written once).
struct TupleHash {
    a: u64,
    b: u64,
}

impl Default for TupleHash {
    fn default() -> Self {
        TupleHash {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
        }
    }
}

impl TupleHash {
    fn mix(&mut self, w: u64) {
        self.a = (self.a ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
        self.b = (self.b ^ w.rotate_left(32))
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            .rotate_left(31);
    }
    /// One value: its 8-byte words, then the rest with its length (so `ab`+`c` and
    /// `a`+`bc` differ).
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(last) ^ ((bytes.len() as u64) << 56) ^ 0x80);
    }
    fn finish(&self) -> u128 {
        fn fmix(mut k: u64) -> u64 {
            k ^= k >> 33;
            k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
            k ^= k >> 33;
            k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            k ^ (k >> 33)
        }
        ((fmix(self.a) as u128) << 64) | fmix(self.b ^ self.a.rotate_left(17)) as u128
    }
}

/// The 128-bit fingerprint of each row's values in `cols` (nulls and value boundaries
/// marked). Text is hashed as bytes and dates and integers as their binary values, so
/// nothing is formatted per row.
fn fingerprints(cols: &[ArrayRef], n: usize) -> Result<Vec<u128>, IngestError> {
    use datafusion::arrow::array::{AsArray, Date32Array};
    let mut hs: Vec<TupleHash> = (0..n).map(|_| TupleHash::default()).collect();
    for a in cols {
        let a = match a.data_type() {
            DataType::Utf8 | DataType::Date32 | DataType::Int64 => a.clone(),
            _ => compute::cast(a, &DataType::Utf8)?,
        };
        let any = a.as_any();
        if let Some(t) = a.as_string_opt::<i32>() {
            mix_each(&mut hs, t, |h, r| h.write(t.value(r).as_bytes()));
        } else if let Some(d) = any.downcast_ref::<Date32Array>() {
            mix_each(&mut hs, d, |h, r| h.write(&d.value(r).to_le_bytes()));
        } else if let Some(i) = any.downcast_ref::<Int64Array>() {
            mix_each(&mut hs, i, |h, r| h.write(&i.value(r).to_le_bytes()));
        }
    }
    Ok(hs.iter().map(TupleHash::finish).collect())
}

/// Mix each row's value of `a` into its hash; a null is no value at all (values are
/// length-delimited).
fn mix_each(hs: &mut [TupleHash], a: &dyn Array, value: impl Fn(&mut TupleHash, usize)) {
    let nulls = a.logical_nulls();
    for (row, h) in hs.iter_mut().enumerate() {
        if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            h.mix(0xff);
        } else {
            value(h, row);
        }
    }
}

/// Keep the rows whose identity tuple has not been written yet (per source), without
/// per-record lineage, so the result does not depend on which record came first. Only
/// the `accepted` rows count (all when `None`): a quarantined row's tuple is not the
/// identity zone's. One filter from the projected batch, so the identity columns are
/// copied once.
pub(crate) fn first_seen(
    out: &RecordBatch,
    accepted: Option<&BooleanArray>,
    identity_fields: &[String],
    seen: &Mutex<SeenState>,
) -> Result<RecordBatch, IngestError> {
    use datafusion::arrow::array::BooleanBufferBuilder;
    let hashes = fingerprints(&identity_columns(out, identity_fields), out.num_rows())?;
    let mut state = seen
        .lock()
        .map_err(|_| IngestError::Other("identity set poisoned".into()))?;
    let mut keep = BooleanBufferBuilder::new(hashes.len());
    let mut maybe = BooleanBufferBuilder::new(hashes.len());
    for (row, h) in hashes.iter().enumerate() {
        let verdict = match accepted {
            Some(a) if !a.value(row) => None,
            _ => Some(state.set.check(*h)?),
        };
        keep.append(verdict == Some(seen::Verdict::New));
        maybe.append(verdict == Some(seen::Verdict::Maybe));
    }
    let maybe = BooleanArray::new(maybe.finish(), None);
    if maybe.true_count() > 0 {
        let rows = without_lineage(filter_record_batch(out, &maybe)?)?;
        state.deferred_rows += rows.num_rows();
        state.deferred.write(&rows)?;
    }
    drop(state);
    let keep = BooleanArray::new(keep.finish(), None);
    without_lineage(filter_record_batch(out, &keep)?)
}

/// The columns of an identity tuple: the identity fields and the person key.
fn identity_columns(out: &RecordBatch, identity_fields: &[String]) -> Vec<ArrayRef> {
    identity_fields
        .iter()
        .map(String::as_str)
        .chain(std::iter::once("person_key"))
        .filter_map(|f| col(out, f).cloned())
        .collect()
}

/// Drop per-record lineage: the row stands for every record carrying the tuple.
fn without_lineage(kept: RecordBatch) -> Result<RecordBatch, IngestError> {
    let schema = kept.schema();
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if matches!(
                f.name().as_str(),
                "source_file" | "source_row" | "record_key"
            ) {
                new_null_array(f.data_type(), kept.num_rows())
            } else {
                kept.column(i).clone()
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}
