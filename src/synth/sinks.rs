//! The files the synthetic ICS writes: CSV extracts (optionally latin-1, ragged rows on
//! purpose), the Parquet 111 extract, NDJSON, and the set of all of them ([`Writers`]).
//! Each file is written through [`crate::store`] (a temporary name, renamed into place
//! when it is complete).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::store::{ParquetFile, TempFile};

/// One extract file: where it goes under its root and its header.
pub(super) struct Spec {
    /// Relative path; `{ods}` is the practice, `{date}` the extract date (yyyymmdd),
    /// `{year}` the extract year.
    pub path: &'static str,
    pub header: &'static [&'static str],
    pub delimiter: u8,
    pub latin1: bool,
}

impl Spec {
    pub(super) const fn csv(path: &'static str, header: &'static [&'static str]) -> Spec {
        Spec {
            path,
            header,
            delimiter: b',',
            latin1: false,
        }
    }
}

/// Names of one extract set: the root directory and the placeholders of [`Spec::path`].
pub(super) struct FileNames<'a> {
    pub root: &'a Path,
    pub date: String,
    pub year: String,
}

impl FileNames<'_> {
    pub(super) fn path(&self, spec: &Spec, ods: &str) -> PathBuf {
        self.root.join(
            spec.path
                .replace("{ods}", ods)
                .replace("{date}", &self.date)
                .replace("{year}", &self.year),
        )
    }
}

/// Where one delivery of an extract goes and the last day it holds.
pub(super) type Target = (PathBuf, i32);

/// One delivery's CSV file being written.
struct CsvOut {
    w: csv::Writer<BufWriter<File>>,
    file: TempFile,
    /// Last day this delivery holds (its extract date).
    extract: i32,
}

/// A CSV extract being written, to one file per delivery: a row dated on a day goes
/// into every delivery whose extract date is on or after it, so the same event is the
/// same row in every later delivery. `rows` counts the rows of the first delivery.
pub(super) struct Csv {
    outs: Vec<CsvOut>,
    latin1: bool,
    pub rows: u64,
}

impl Csv {
    /// One file, every row.
    pub(super) fn create(path: &Path, spec: &Spec) -> std::io::Result<Csv> {
        Csv::create_each(&[(path.to_path_buf(), i32::MAX)], spec)
    }
    /// One file per delivery.
    pub(super) fn create_each(targets: &[Target], spec: &Spec) -> std::io::Result<Csv> {
        let mut outs = Vec::new();
        for (path, extract) in targets {
            let (file, f) = TempFile::create(path)?;
            let mut w = csv::WriterBuilder::new()
                .delimiter(spec.delimiter)
                .flexible(true)
                .from_writer(BufWriter::with_capacity(1 << 20, f));
            w.write_record(spec.header).map_err(std::io::Error::other)?;
            outs.push(CsvOut {
                w,
                file,
                extract: *extract,
            });
        }
        Ok(Csv {
            outs,
            latin1: spec.latin1,
            rows: 0,
        })
    }
    fn encode(&self, fields: &[&str]) -> Vec<Vec<u8>> {
        fields
            .iter()
            .map(|f| {
                if self.latin1 {
                    f.chars()
                        .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
                        .collect()
                } else {
                    f.as_bytes().to_vec()
                }
            })
            .collect()
    }
    /// A row in every delivery (a snapshot row such as a patient's demographics).
    pub(super) fn row(&mut self, fields: &[&str]) -> std::io::Result<()> {
        self.row_on(i32::MIN, fields)
    }
    /// A row dated `day`: in every delivery whose extract date is on or after it.
    pub(super) fn row_on(&mut self, day: i32, fields: &[&str]) -> std::io::Result<()> {
        self.row_each(day, |_| fields.iter().map(|f| f.to_string()).collect())
    }
    /// A row dated `day` whose fields depend on the delivery's extract date (a spell
    /// not yet discharged at one extract date and discharged at a later one).
    pub(super) fn row_each(
        &mut self,
        day: i32,
        fields: impl Fn(i32) -> Vec<String>,
    ) -> std::io::Result<()> {
        if self.outs.first().is_some_and(|o| o.extract >= day) {
            self.rows += 1;
        }
        for i in 0..self.outs.len() {
            if self.outs[i].extract < day {
                continue;
            }
            let f = fields(self.outs[i].extract);
            let refs: Vec<&str> = f.iter().map(String::as_str).collect();
            let bytes = self.encode(&refs);
            self.outs[i]
                .w
                .write_record(&bytes)
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
    /// A deliberately ragged row (one field short), as seen in hand-edited extracts.
    pub(super) fn ragged_on(&mut self, day: i32, fields: &[&str]) -> std::io::Result<()> {
        self.row_on(day, &fields[..fields.len() - 1])
    }
    pub(super) fn finish(self) -> std::io::Result<()> {
        for mut o in self.outs {
            o.w.flush()?;
            drop(o.w);
            o.file.commit()?;
        }
        Ok(())
    }
}

/// An NDJSON extract being written, one file per delivery (as [`Csv`]).
pub(super) struct Ndjson {
    outs: Vec<(BufWriter<File>, TempFile, i32)>,
    pub rows: u64,
}

impl Ndjson {
    pub(super) fn create_each(targets: &[Target]) -> std::io::Result<Ndjson> {
        let mut outs = Vec::new();
        for (path, extract) in targets {
            let (file, f) = TempFile::create(path)?;
            outs.push((BufWriter::with_capacity(1 << 20, f), file, *extract));
        }
        Ok(Ndjson { outs, rows: 0 })
    }
    pub(super) fn row_on(&mut self, day: i32, obj: &serde_json::Value) -> std::io::Result<()> {
        if self.outs.first().is_some_and(|o| o.2 >= day) {
            self.rows += 1;
        }
        for (w, _, extract) in &mut self.outs {
            if *extract >= day {
                writeln!(w, "{obj}")?;
            }
        }
        Ok(())
    }
    pub(super) fn finish(self) -> std::io::Result<()> {
        for (mut w, file, _) in self.outs {
            w.flush()?;
            drop(w);
            file.commit()?;
        }
        Ok(())
    }
}

/// One delivery's Parquet file.
struct ParquetOut {
    file: ParquetFile,
    cols: Vec<StringBuilder>,
    n: usize,
    extract: i32,
}

/// A Parquet extract (all columns text), buffered into batches, one file per delivery.
pub(super) struct ParquetSink {
    schema: SchemaRef,
    outs: Vec<ParquetOut>,
    pub rows: u64,
}

impl ParquetSink {
    pub(super) fn create_each(
        targets: &[Target],
        columns: &[&str],
    ) -> std::io::Result<ParquetSink> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let mut outs = Vec::new();
        for (path, extract) in targets {
            let file = ParquetFile::create(path, schema.clone(), None)?;
            outs.push(ParquetOut {
                file,
                cols: columns.iter().map(|_| StringBuilder::new()).collect(),
                n: 0,
                extract: *extract,
            });
        }
        Ok(ParquetSink {
            schema,
            outs,
            rows: 0,
        })
    }
    pub(super) fn row_on(&mut self, day: i32, fields: &[Option<&str>]) -> std::io::Result<()> {
        if self.outs.first().is_some_and(|o| o.extract >= day) {
            self.rows += 1;
        }
        for i in 0..self.outs.len() {
            if self.outs[i].extract < day {
                continue;
            }
            let o = &mut self.outs[i];
            for (b, f) in o.cols.iter_mut().zip(fields) {
                b.append_option(*f);
            }
            o.n += 1;
            if o.n >= 65_536 {
                flush(&self.schema, &mut self.outs[i])?;
            }
        }
        Ok(())
    }
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        for mut o in std::mem::take(&mut self.outs) {
            flush(&self.schema, &mut o)?;
            o.file.finish()?;
        }
        Ok(())
    }
}

fn flush(schema: &SchemaRef, o: &mut ParquetOut) -> std::io::Result<()> {
    if o.n == 0 {
        return Ok(());
    }
    let arrays: Vec<ArrayRef> = o
        .cols
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(std::io::Error::other)?;
    o.file.write(&batch)?;
    o.n = 0;
    Ok(())
}
