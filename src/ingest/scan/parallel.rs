//! One large CSV read as several partitions of the scan, so that parsing uses every
//! core (as DataFusion and Polars read one file in byte ranges).
//!
//! A reader thread cuts the file into chunks of whole records ([`super::chunks`]: a
//! line break inside a quoted field is never a cut) and hands chunk `k` to partition
//! `k mod n`; each partition parses its chunks on its own blocking thread. Row numbers
//! stay exact: a chunk's rows are numbered once every earlier chunk has been counted
//! ([`Order`]), and since the cuts depend only on the bytes, a partition reads the same
//! rows on every run. Memory stays bounded: a partition holds one chunk being parsed
//! and one waiting.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Condvar, PoisonError};

use datafusion::arrow::array::Int64Array;

use super::chunks::{Chunks, Dialect};
use super::*;

/// A plain CSV file at least this large is read by several partitions;
/// `ONBOARD_SCAN_SPLIT_BYTES` lowers it (tests).
const SPLIT_MIN_BYTES: u64 = 64 << 20;
/// Bytes per chunk (at most; a sixteenth of the threshold when that is lower).
const CHUNK_BYTES: u64 = 4 << 20;

fn split_min_bytes() -> u64 {
    crate::ingest::env_limit("ONBOARD_SCAN_SPLIT_BYTES", SPLIT_MIN_BYTES)
}

/// Whether `file` is read by `parts` partitions: a CSV file (not compressed: a gzip
/// stream cannot be cut) of at least the threshold, when there is more than one.
pub(super) fn worth_splitting(file: &FileStream, parts: usize) -> bool {
    parts > 1
        && file.format == SourceFormat::Csv
        && !file.path.extension().is_some_and(|e| e == "gz")
        && std::fs::metadata(&file.path).is_ok_and(|m| m.len() >= split_min_bytes())
}

/// A chunk of whole records, the `index`-th of the file (the header removed).
struct Chunk {
    index: usize,
    bytes: Vec<u8>,
    layout: Arc<CsvLayout>,
}

type ChunkMsg = Result<Chunk>;

/// Numbers the chunks' rows in file order: chunk `k` learns how many rows came before
/// it once chunk `k - 1` has been parsed.
#[derive(Default)]
struct Order {
    state: Mutex<OrderState>,
    turn: Condvar,
}

#[derive(Default)]
struct OrderState {
    /// The chunk whose turn it is, and the rows before it.
    next: usize,
    rows_before: i64,
    /// Why reading stopped early (a failed or dropped partition).
    abandoned: Option<String>,
}

impl Order {
    /// The rows before chunk `index`, once every earlier chunk has been counted.
    fn wait(&self, index: usize) -> Result<i64> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.next == index {
                return Ok(s.rows_before);
            }
            if let Some(why) = &s.abandoned {
                return Err(DataFusionError::Execution(why.clone()));
            }
            s = self.turn.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Chunk `index` had `rows` rows: the next chunk's turn.
    fn publish(&self, index: usize, rows: i64) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.next = index + 1;
        s.rows_before += rows;
        self.turn.notify_all();
    }

    /// Stop every partition still waiting for its turn.
    fn abandon(&self, why: String) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.abandoned.get_or_insert(why);
        self.turn.notify_all();
    }
}

/// One reading of the file by all its partitions.
struct Reading {
    /// Each partition's chunks, taken when the partition starts.
    inputs: Mutex<Vec<Option<Receiver<ChunkMsg>>>>,
    order: Arc<Order>,
}

/// A CSV file shared by its partitions.
pub(super) struct SplitFile {
    file: FileStream,
    parts: usize,
    reading: Mutex<Option<Arc<Reading>>>,
}

impl std::fmt::Debug for SplitFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitFile")
            .field("file", &self.file.display)
            .field("parts", &self.parts)
            .finish()
    }
}

impl SplitFile {
    /// The `parts` partitions reading `file`.
    pub(super) fn partitions(file: FileStream, parts: usize) -> Vec<Arc<dyn PartitionStream>> {
        let shared = Arc::new(SplitFile {
            file,
            parts,
            reading: Mutex::new(None),
        });
        (0..parts)
            .map(|index| {
                Arc::new(SplitPart {
                    file: shared.clone(),
                    index,
                }) as Arc<dyn PartitionStream>
            })
            .collect()
    }

    /// Partition `index`'s chunks of the current reading; a new reading starts when the
    /// partition has already taken its chunks of the current one (the plan runs again).
    /// Every partition of a reading must be executed and polled (an ingest plan scans
    /// its source once and runs every partition, as DataFusion's operators do).
    fn take(&self, index: usize, batch_rows: usize) -> (Arc<Order>, Receiver<ChunkMsg>) {
        let mut current = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = current.as_ref() {
            let mut inputs = r.inputs.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(rx) = inputs.get_mut(index).and_then(Option::take) {
                return (r.order.clone(), rx);
            }
        }
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..self.parts).map(|_| sync_channel::<ChunkMsg>(1)).unzip();
        let mut inputs: Vec<Option<Receiver<ChunkMsg>>> = receivers.into_iter().map(Some).collect();
        let rx = inputs
            .get_mut(index)
            .and_then(Option::take)
            .unwrap_or_else(|| sync_channel(0).1);
        let reading = Arc::new(Reading {
            inputs: Mutex::new(inputs),
            order: Arc::new(Order::default()),
        });
        let mut file = self.file.clone();
        file.batch_rows = batch_rows;
        tracing::debug!(file = %file.display, parts = self.parts, "reading in chunks");
        tokio::task::spawn_blocking(move || read_chunks(&file, &senders));
        let order = reading.order.clone();
        *current = Some(reading);
        (order, rx)
    }
}

/// Cut the file into chunks and deal them out; an error goes to the partition whose
/// turn it was. Stops when a partition is gone.
fn read_chunks(file: &FileStream, outputs: &[SyncSender<ChunkMsg>]) {
    let deal = |chunk: ChunkMsg, index: usize| outputs[index % outputs.len()].send(chunk);
    let mut index = 0;
    let mut read = || -> Result<()> {
        let dialect = Dialect {
            delimiter: file.csv.delimiter,
            quote: file.csv.quote,
            escape: file.csv.escape,
        };
        let chunk_bytes = (split_min_bytes() / 16).clamp(1, CHUNK_BYTES) as usize;
        let mut chunks = Chunks::new(file.csv_input()?, dialect, chunk_bytes);
        let mut layout: Option<Arc<CsvLayout>> = None;
        while let Some(mut bytes) = chunks.next_chunk().map_err(|e| io_err(&file.path, e))? {
            let layout = match &layout {
                Some(l) => l.clone(),
                None => {
                    // The header is in the first chunk that has a record at all.
                    let mut rdr = file.csv_reader(&bytes[..]);
                    let Some(l) = file.csv_positions(&mut rdr)? else {
                        continue;
                    };
                    let header = rdr.position().byte() as usize;
                    bytes.drain(..header.min(bytes.len()));
                    layout.insert(Arc::new(l)).clone()
                }
            };
            let chunk = Chunk {
                index,
                bytes,
                layout,
            };
            if deal(Ok(chunk), index).is_err() {
                return Ok(());
            }
            index += 1;
        }
        Ok(())
    };
    if let Err(e) = read() {
        let _ = deal(Err(e), index);
    }
}

/// One partition of a [`SplitFile`].
#[derive(Debug)]
struct SplitPart {
    file: Arc<SplitFile>,
    index: usize,
}

impl PartitionStream for SplitPart {
    fn schema(&self) -> &SchemaRef {
        &self.file.file.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut file = self.file.file.clone();
        file.batch_rows = batch_rows(&ctx);
        let (order, input) = self.file.take(self.index, file.batch_rows);
        blocking_stream(file.schema.clone(), move |emit| {
            let r = parse_chunks(&file, &input, &order, emit);
            match &r {
                Err(e) => order.abandon(format!("{}: {e}", file.display)),
                Ok(false) => order.abandon(format!("{}: reading stopped", file.display)),
                Ok(true) => {}
            }
            r.map(|_| ())
        })
    }
}

/// Parse a partition's chunks in turn and emit their batches with file row numbers.
/// False when the consumer has gone.
fn parse_chunks(
    file: &FileStream,
    input: &Receiver<ChunkMsg>,
    order: &Order,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<bool> {
    for chunk in input.iter() {
        let chunk = chunk?;
        let mut batches = Vec::new();
        let mut rejects: Vec<(i64, String, Vec<u8>)> = Vec::new();
        let mut rdr = file.csv_reader(&chunk.bytes[..]);
        let rows = file.csv_records(
            &mut rdr,
            &chunk.layout,
            &mut |row, reason, raw| rejects.push((row, reason, raw.to_vec())),
            &mut |b| {
                batches.push(b);
                true
            },
        )?;
        let before = order.wait(chunk.index)?;
        order.publish(chunk.index, rows);
        for (row, reason, raw) in rejects {
            file.reject(before + row, reason, &raw);
        }
        for b in batches {
            if !emit(renumbered(b, before)?) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The batch with `before` added to its row numbers (the last column).
fn renumbered(batch: RecordBatch, before: i64) -> Result<RecordBatch> {
    let last = batch.num_columns() - 1;
    let rows = batch
        .column(last)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| DataFusionError::Internal("row numbers are not Int64".into()))?;
    let rows = Int64Array::from_iter_values(rows.values().iter().map(|r| r + before));
    let mut columns = batch.columns().to_vec();
    columns[last] = Arc::new(rows);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
