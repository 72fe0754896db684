//! Reading extracts into Arrow, every row accounted for.
//!
//! A source's path glob is expanded under the landing zone into files. Each file is a
//! DataFusion partition (a `StreamingTable`), read on a blocking thread and streamed in
//! batches, so memory stays bounded whatever the extract size. Every batch has the
//! declared columns as text, plus `_source_file` and `_source_row` (1-based data row;
//! the header is row 0). Rows that cannot be read as the declared shape (ragged CSV
//! rows, undecodable text, NDJSON lines that are not objects) never reach the plan:
//! they are recorded as [`Rejected`] rows with the reason and the raw text, and counted
//! in the reconciliation. A large plain CSV is read by several partitions at once, in
//! chunks of whole records ([`parallel`]), with the same row numbers.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

pub use crate::compile::{SOURCE_FILE, SOURCE_ROW, scan_schema};
use crate::manifest::model::{Encoding, SourceFormat};
use crate::validate::{CsvSettings, ResolvedSource};

mod chunks;
mod parallel;

/// Rows per batch.
pub const BATCH_ROWS: usize = 16 * 1024;
/// Raw text kept per rejected row.
const RAW_LIMIT: usize = 4096;

/// A row that could not be read in the declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub file: String,
    pub row: i64,
    pub reason: String,
    pub raw: String,
}

/// Rejected rows of one source, filled while scanning.
pub type RejectedRows = Arc<Mutex<Vec<Rejected>>>;

/// Rows read into batches per file (by display name), filled while scanning.
pub type RowCounts = Arc<Mutex<std::collections::BTreeMap<String, u64>>>;

/// The files of a source under `landing`, sorted (deterministic row order and run ids).
pub fn source_files(landing: &Path, src: &ResolvedSource) -> Result<Vec<PathBuf>> {
    let pattern = landing.join(&src.path);
    let mut files: Vec<PathBuf> = glob::glob(&pattern.to_string_lossy())
        .map_err(|e| DataFusionError::Plan(format!("bad path glob {}: {e}", src.path)))?
        .flatten()
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// A table over the given files of `src`: one partition per file, and `parts`
/// partitions for each plain CSV file large enough to be worth cutting up
/// ([`parallel`]).
pub fn table(
    landing: &Path,
    src: &ResolvedSource,
    files: &[PathBuf],
    rejected: RejectedRows,
    counts: RowCounts,
    parts: usize,
) -> Result<StreamingTable> {
    // A declared trailer row is not data: the scan never sees it (feeds checks it).
    let trailer = src.format == SourceFormat::Csv
        && src
            .delivery
            .control
            .as_ref()
            .is_some_and(|c| c.trailer.is_some());
    let schema = scan_schema(&src.columns);
    let streams: Vec<Arc<dyn PartitionStream>> = files
        .iter()
        .flat_map(|f| {
            let file = FileStream {
                schema: schema.clone(),
                path: f.clone(),
                display: f
                    .strip_prefix(landing)
                    .unwrap_or(f)
                    .to_string_lossy()
                    .replace('\\', "/"),
                format: src.format,
                csv: src.csv.clone(),
                columns: src.columns.clone(),
                rejected: rejected.clone(),
                counts: counts.clone(),
                trailer,
                batch_rows: BATCH_ROWS,
            };
            if parallel::worth_splitting(&file, parts) {
                parallel::SplitFile::partitions(file, parts)
            } else {
                vec![Arc::new(file) as Arc<dyn PartitionStream>]
            }
        })
        .collect();
    if streams.is_empty() {
        // An empty extract is still a table (zero rows), so plans stay valid.
        return StreamingTable::try_new(schema.clone(), vec![Arc::new(Empty { schema })]);
    }
    StreamingTable::try_new(schema, streams)
}

#[derive(Debug)]
struct Empty {
    schema: SchemaRef,
}

impl PartitionStream for Empty {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::empty(),
        ))
    }
}

/// Where each declared column is in a CSV row (`None`: not in the file), and how many
/// fields a row has.
type CsvLayout = (Vec<Option<usize>>, usize);

/// One extract file: a DataFusion partition, read on a blocking thread.
#[derive(Debug, Clone)]
struct FileStream {
    schema: SchemaRef,
    path: PathBuf,
    display: String,
    format: SourceFormat,
    csv: CsvSettings,
    columns: Vec<String>,
    rejected: RejectedRows,
    counts: RowCounts,
    /// Drop the last non-empty line (a trailer row).
    trailer: bool,
    batch_rows: usize,
}

impl PartitionStream for FileStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut job = self.clone();
        job.batch_rows = batch_rows(&ctx);
        blocking_stream(self.schema.clone(), move |emit| job.run(emit))
    }
}

fn batch_rows(ctx: &TaskContext) -> usize {
    ctx.session_config().batch_size().max(1024)
}

/// A stream of the batches `job` emits on a blocking thread (the job stops when the
/// stream is dropped: `emit` returns false).
fn blocking_stream(
    schema: SchemaRef,
    job: impl FnOnce(&mut dyn FnMut(RecordBatch) -> bool) -> Result<()> + Send + 'static,
) -> SendableRecordBatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    tokio::task::spawn_blocking(move || {
        let tx2 = tx.clone();
        if let Err(e) = job(&mut |b| tx2.blocking_send(Ok(b)).is_ok()) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// Accumulates rows into a batch of text columns plus lineage.
struct Builder {
    cols: Vec<StringBuilder>,
    rows: Int64Builder,
    n: usize,
}

impl Builder {
    fn new(ncols: usize, cap: usize) -> Self {
        Builder {
            cols: (0..ncols)
                .map(|_| StringBuilder::with_capacity(cap, cap * 16))
                .collect(),
            rows: Int64Builder::with_capacity(cap),
            n: 0,
        }
    }
    fn finish(&mut self, schema: &SchemaRef, file: &str) -> Result<RecordBatch> {
        let n = self.n;
        let mut arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        arrays.push(Arc::new(StringArray::new_repeated(file, n)));
        arrays.push(Arc::new(self.rows.finish()));
        self.n = 0;
        RecordBatch::try_new(schema.clone(), arrays).map_err(DataFusionError::from)
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("{}: {e}", path.display()))
}

/// Open a file, transparently decompressing `.gz`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            f,
        )))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, f))
    })
}

impl FileStream {
    fn reject(&self, row: i64, reason: impl Into<String>, raw: &[u8]) {
        let mut raw = String::from_utf8_lossy(raw).into_owned();
        if raw.len() > RAW_LIMIT {
            let mut cut = RAW_LIMIT;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            raw.truncate(cut);
        }
        if let Ok(mut r) = self.rejected.lock() {
            r.push(Rejected {
                file: self.display.clone(),
                row,
                reason: reason.into(),
                raw,
            });
        }
    }

    fn count(&self, n: usize) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry(self.display.clone()).or_default() += n as u64;
        }
    }

    /// Close the current row; emit a full batch. False when the consumer has gone.
    fn end_row(
        &self,
        b: &mut Builder,
        row: i64,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<bool> {
        b.rows.append_value(row);
        b.n += 1;
        if b.n >= self.batch_rows {
            self.count(b.n);
            return Ok(emit(b.finish(&self.schema, &self.display)?));
        }
        Ok(true)
    }

    /// Emit what is left.
    fn flush(&self, b: &mut Builder, emit: &mut dyn FnMut(RecordBatch) -> bool) -> Result<()> {
        if b.n > 0 {
            self.count(b.n);
            emit(b.finish(&self.schema, &self.display)?);
        }
        Ok(())
    }

    fn run(&self, emit: &mut dyn FnMut(RecordBatch) -> bool) -> Result<()> {
        match self.format {
            SourceFormat::Csv => self.run_csv(emit),
            SourceFormat::Ndjson => self.run_ndjson(emit),
            SourceFormat::Parquet => self.run_parquet(emit),
        }
    }

    /// Where each declared column is in a row, and how many fields a row has: from the
    /// header (names trimmed) when the source has one, else in declared order. `None`
    /// for an empty file.
    fn csv_positions<R: Read>(&self, rdr: &mut csv::Reader<R>) -> Result<Option<CsvLayout>> {
        let ncols = self.columns.len();
        let positions: Vec<Option<usize>> = (0..ncols).map(Some).collect();
        if !self.csv.header {
            return Ok(Some((positions, ncols)));
        }
        let mut record = csv::ByteRecord::new();
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {
                let header: Vec<String> = record
                    .iter()
                    .map(|h| {
                        decode(h, self.csv.encoding)
                            .unwrap_or_default()
                            .trim()
                            .to_string()
                    })
                    .collect();
                let expected_width = header.len();
                let positions: Vec<Option<usize>> = self
                    .columns
                    .iter()
                    .map(|c| header.iter().position(|h| h == c))
                    .collect();
                let missing: Vec<&String> = self
                    .columns
                    .iter()
                    .zip(&positions)
                    .filter(|(_, p)| p.is_none())
                    .map(|(c, _)| c)
                    .collect();
                if !missing.is_empty() {
                    return Err(DataFusionError::Execution(format!(
                        "{}: header lacks declared column(s) {} (run `onboard validate --data` to check extracts)",
                        self.display,
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                Ok(Some((positions, expected_width)))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(io_err(&self.path, e)),
        }
    }

    /// The file as the CSV reader sees it: without a UTF-8 byte-order mark, and without
    /// its last line when the source declares a trailer.
    fn csv_input(&self) -> Result<Box<dyn Read + Send>> {
        let mut input = open(&self.path)?;
        // Skip a UTF-8 byte-order mark.
        let mut head = [0u8; 3];
        let mut got = 0;
        while got < 3 {
            let n = input
                .read(&mut head[got..])
                .map_err(|e| io_err(&self.path, e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let prefix: Vec<u8> = if got == 3 && head == [0xEF, 0xBB, 0xBF] {
            Vec::new()
        } else {
            head[..got].to_vec()
        };
        let input = std::io::Cursor::new(prefix).chain(input);
        Ok(if self.trailer {
            Box::new(WithoutLastLine::new(input))
        } else {
            Box::new(input)
        })
    }

    /// A CSV reader over `input` in the source's dialect (a header is read as a record).
    fn csv_reader<R: Read>(&self, input: R) -> csv::Reader<R> {
        csv::ReaderBuilder::new()
            .delimiter(self.csv.delimiter)
            .quote(self.csv.quote)
            .escape(self.csv.escape)
            .double_quote(self.csv.escape.is_none())
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 20)
            .from_reader(input)
    }

    fn run_csv(&self, emit: &mut dyn FnMut(RecordBatch) -> bool) -> Result<()> {
        let mut rdr = self.csv_reader(self.csv_input()?);
        let Some(layout) = self.csv_positions(&mut rdr)? else {
            return Ok(());
        };
        let mut reject = |row: i64, reason: String, raw: &[u8]| self.reject(row, reason, raw);
        self.csv_records(&mut rdr, &layout, &mut reject, emit)
            .map(|_| ())
    }

    /// The data records of `rdr` as batches, numbered from 1 (blank lines are not rows);
    /// rows that cannot be read in the declared shape go to `reject` with their number.
    /// Returns the number of rows read.
    fn csv_records<R: Read>(
        &self,
        rdr: &mut csv::Reader<R>,
        (positions, expected_width): &CsvLayout,
        reject: &mut dyn FnMut(i64, String, &[u8]),
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<i64> {
        let expected_width = *expected_width;
        let ncols = self.columns.len();
        let mut record = csv::ByteRecord::new();
        let mut row: i64 = 0;
        let nulls = &self.csv.null_values;
        let mut b = Builder::new(ncols, self.batch_rows);
        let latin1 = self.csv.encoding == Encoding::Latin1;
        loop {
            match rdr.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    // The csv reader cannot resynchronise after an I/O error; a parse
                    // error on one row is recorded and reading goes on.
                    row += 1;
                    if e.is_io_error() {
                        return Err(io_err(&self.path, e));
                    }
                    reject(row, format!("unreadable CSV row: {e}"), b"");
                    continue;
                }
            }
            row += 1;
            if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                // A blank line is not a row.
                row -= 1;
                continue;
            }
            if record.len() != expected_width {
                let raw = join_raw(&record, self.csv.delimiter);
                reject(
                    row,
                    format!(
                        "ragged row: {} fields, header has {}",
                        record.len(),
                        expected_width
                    ),
                    &raw,
                );
                continue;
            }
            // UTF-8 extracts are validated once per row (all fields at once), so a row
            // is either fully in the batch or fully rejected.
            let whole: Option<&str> = if latin1 {
                None
            } else {
                match std::str::from_utf8(record.as_slice()) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        let raw = join_raw(&record, self.csv.delimiter);
                        reject(
                            row,
                            "text is not valid UTF-8 (set `csv.encoding: latin-1`?)".into(),
                            &raw,
                        );
                        continue;
                    }
                }
            };
            for (i, p) in positions.iter().enumerate() {
                let range = p.and_then(|p| record.range(p));
                let text: std::borrow::Cow<'_, str> = match (whole, range) {
                    (Some(t), Some(r)) => std::borrow::Cow::Borrowed(t.get(r).unwrap_or("")),
                    (None, Some(r)) => {
                        decode(&record.as_slice()[r], self.csv.encoding).unwrap_or_default()
                    }
                    (_, None) => std::borrow::Cow::Borrowed(""),
                };
                if is_blank(&text) || (!nulls.is_empty() && nulls.iter().any(|n| n == text.trim()))
                {
                    b.cols[i].append_null();
                } else {
                    b.cols[i].append_value(&text);
                }
            }
            if !self.end_row(&mut b, row, emit)? {
                return Ok(row);
            }
        }
        self.flush(&mut b, emit)?;
        Ok(row)
    }

    fn run_ndjson(&self, emit: &mut dyn FnMut(RecordBatch) -> bool) -> Result<()> {
        use std::io::BufRead;
        let input = std::io::BufReader::new(open(&self.path)?);
        let ncols = self.columns.len();
        let mut b = Builder::new(ncols, self.batch_rows);
        let mut row: i64 = 0;
        for line in input.split(b'\n') {
            let line = line.map_err(|e| io_err(&self.path, e))?;
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            row += 1;
            let obj = match serde_json::from_str::<serde_json::Value>(text.trim()) {
                Ok(serde_json::Value::Object(o)) => o,
                Ok(_) => {
                    self.reject(row, "NDJSON line is not an object", &line);
                    continue;
                }
                Err(e) => {
                    self.reject(row, format!("NDJSON line is not valid JSON: {e}"), &line);
                    continue;
                }
            };
            if std::str::from_utf8(&line).is_err() {
                self.reject(row, "text is not valid UTF-8", &line);
                continue;
            }
            for (i, c) in self.columns.iter().enumerate() {
                match obj.get(c) {
                    None | Some(serde_json::Value::Null) => b.cols[i].append_null(),
                    Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
                        b.cols[i].append_null()
                    }
                    Some(serde_json::Value::String(s)) => b.cols[i].append_value(s),
                    Some(other) => b.cols[i].append_value(other.to_string()),
                }
            }
            if !self.end_row(&mut b, row, emit)? {
                return Ok(());
            }
        }
        self.flush(&mut b, emit)
    }

    fn run_parquet(&self, emit: &mut dyn FnMut(RecordBatch) -> bool) -> Result<()> {
        use datafusion::arrow::compute::cast;
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let f = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| io_err(&self.path, e))?;
        let file_schema = builder.schema().clone();
        let positions: Vec<Option<usize>> = self
            .columns
            .iter()
            .map(|c| file_schema.index_of(c).ok())
            .collect();
        if let Some((c, _)) = self
            .columns
            .iter()
            .zip(&positions)
            .find(|(_, p)| p.is_none())
        {
            return Err(DataFusionError::Execution(format!(
                "{}: no column `{c}` in the Parquet file",
                self.display
            )));
        }
        let reader = builder
            .with_batch_size(self.batch_rows)
            .build()
            .map_err(|e| io_err(&self.path, e))?;
        let mut row: i64 = 0;
        for batch in reader {
            let batch = batch.map_err(|e| io_err(&self.path, e))?;
            let n = batch.num_rows();
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 2);
            for p in positions.iter().flatten() {
                arrays.push(cast(batch.column(*p), &DataType::Utf8)?);
            }
            let mut fb = StringBuilder::with_capacity(n, n * self.display.len());
            let mut rb = Int64Builder::with_capacity(n);
            for _ in 0..n {
                row += 1;
                fb.append_value(&self.display);
                rb.append_value(row);
            }
            arrays.push(Arc::new(fb.finish()));
            arrays.push(Arc::new(rb.finish()));
            self.count(n);
            if !emit(RecordBatch::try_new(self.schema.clone(), arrays)?) {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A reader that withholds the last non-empty line of its input (a trailer row),
/// streaming everything before it.
struct WithoutLastLine<R> {
    inner: R,
    /// Bytes from the start of the last non-empty line seen so far.
    pending: Vec<u8>,
    /// Bytes ready to hand out, and how many of them were handed out.
    ready: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<R: Read> WithoutLastLine<R> {
    fn new(inner: R) -> Self {
        WithoutLastLine {
            inner,
            pending: Vec::new(),
            ready: Vec::new(),
            pos: 0,
            eof: false,
        }
    }
}

/// Where the last non-empty line of `buf` starts.
fn last_line_start(buf: &[u8]) -> usize {
    let mut end = buf.len();
    while end > 0 && matches!(buf[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    buf[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

impl<R: Read> Read for WithoutLastLine<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.ready.len() && !self.eof {
            let mut chunk = vec![0u8; 1 << 16];
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                // What is pending is the trailer (and trailing line breaks): dropped.
                self.eof = true;
                break;
            }
            self.pending.extend_from_slice(&chunk[..n]);
            let start = last_line_start(&self.pending);
            self.ready = self.pending.drain(..start).collect();
            self.pos = 0;
        }
        let left = &self.ready[self.pos.min(self.ready.len())..];
        let n = left.len().min(out.len());
        out[..n].copy_from_slice(&left[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// Empty or only whitespace (checked from the ends first: most fields are neither).
fn is_blank(s: &str) -> bool {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (None, _) => true,
        (Some(a), Some(z)) if !a.is_ascii_whitespace() && !z.is_ascii_whitespace() => false,
        _ => s.trim().is_empty(),
    }
}

fn decode(bytes: &[u8], enc: Encoding) -> Option<std::borrow::Cow<'_, str>> {
    match enc {
        Encoding::Utf8 => std::str::from_utf8(bytes)
            .ok()
            .map(std::borrow::Cow::Borrowed),
        Encoding::Latin1 => {
            if bytes.is_ascii() {
                std::str::from_utf8(bytes)
                    .ok()
                    .map(std::borrow::Cow::Borrowed)
            } else {
                Some(std::borrow::Cow::Owned(
                    bytes.iter().map(|b| *b as char).collect(),
                ))
            }
        }
    }
}

fn join_raw(record: &csv::ByteRecord, delim: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in record.iter().enumerate() {
        if i > 0 {
            out.push(delim);
        }
        out.extend_from_slice(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `.1` bytes per read.
    pub(super) struct Trickle<'a>(pub &'a [u8], pub usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn strip(text: &str, chunk: usize) -> String {
        let mut s = String::new();
        WithoutLastLine::new(Trickle(text.as_bytes(), chunk))
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn the_trailer_line_is_withheld_whatever_the_chunking() {
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(strip("a,b\n1,2\nTRL,1\n", chunk), "a,b\n1,2\n");
            assert_eq!(strip("a,b\n1,2\nTRL,1", chunk), "a,b\n1,2\n");
            assert_eq!(
                strip("a,b\r\n1,2\r\nTRL,1\r\n\r\n", chunk),
                "a,b\r\n1,2\r\n"
            );
            assert_eq!(strip("TRL,0\n", chunk), "");
            assert_eq!(strip("", chunk), "");
        }
    }
}
