//! The files the synthetic ICS writes: CSV extracts (optionally latin-1, ragged rows on
//! purpose), the Parquet 111 extract, NDJSON, and the set of all of them ([`Writers`]).
//! Each file is written to a temporary name and renamed into place when it is complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;

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

/// A file being written under a temporary name, renamed into place by `commit`.
struct TempFile {
    tmp: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn create(path: &Path) -> std::io::Result<(TempFile, File)> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let f = File::create(&tmp)?;
        Ok((
            TempFile {
                tmp,
                path: path.to_path_buf(),
            },
            f,
        ))
    }
    fn commit(self) -> std::io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)
    }
}

/// A CSV extract being written.
pub(super) struct Csv {
    w: csv::Writer<BufWriter<File>>,
    file: TempFile,
    latin1: bool,
    pub rows: u64,
}

impl Csv {
    pub(super) fn create(path: &Path, spec: &Spec) -> std::io::Result<Csv> {
        let (file, f) = TempFile::create(path)?;
        let mut w = csv::WriterBuilder::new()
            .delimiter(spec.delimiter)
            .flexible(true)
            .from_writer(BufWriter::with_capacity(1 << 20, f));
        w.write_record(spec.header).map_err(std::io::Error::other)?;
        Ok(Csv {
            w,
            file,
            latin1: spec.latin1,
            rows: 0,
        })
    }
    pub(super) fn row(&mut self, fields: &[&str]) -> std::io::Result<()> {
        self.rows += 1;
        if self.latin1 {
            let bytes: Vec<Vec<u8>> = fields
                .iter()
                .map(|f| {
                    f.chars()
                        .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
                        .collect()
                })
                .collect();
            self.w.write_record(&bytes).map_err(std::io::Error::other)
        } else {
            self.w.write_record(fields).map_err(std::io::Error::other)
        }
    }
    /// A deliberately ragged row (one field short), as seen in hand-edited extracts.
    pub(super) fn ragged(&mut self, fields: &[&str]) -> std::io::Result<()> {
        self.rows += 1;
        self.w
            .write_record(&fields[..fields.len() - 1])
            .map_err(std::io::Error::other)
    }
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        self.w.flush()?;
        drop(self.w);
        self.file.commit()
    }
}

/// An NDJSON extract being written.
pub(super) struct Ndjson {
    w: BufWriter<File>,
    file: TempFile,
    pub rows: u64,
}

impl Ndjson {
    pub(super) fn create(path: &Path) -> std::io::Result<Ndjson> {
        let (file, f) = TempFile::create(path)?;
        Ok(Ndjson {
            w: BufWriter::with_capacity(1 << 20, f),
            file,
            rows: 0,
        })
    }
    pub(super) fn row(&mut self, obj: &serde_json::Value) -> std::io::Result<()> {
        self.rows += 1;
        writeln!(self.w, "{obj}")
    }
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        self.w.flush()?;
        drop(self.w);
        self.file.commit()
    }
}

/// A Parquet extract (all columns text), buffered into batches.
pub(super) struct ParquetSink {
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    file: TempFile,
    cols: Vec<StringBuilder>,
    n: usize,
    pub rows: u64,
}

impl ParquetSink {
    pub(super) fn create(path: &Path, columns: &[&str]) -> std::io::Result<ParquetSink> {
        let (file, f) = TempFile::create(path)?;
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let writer =
            ArrowWriter::try_new(f, schema.clone(), None).map_err(std::io::Error::other)?;
        Ok(ParquetSink {
            schema,
            writer,
            file,
            cols: columns.iter().map(|_| StringBuilder::new()).collect(),
            n: 0,
            rows: 0,
        })
    }
    pub(super) fn row(&mut self, fields: &[Option<&str>]) -> std::io::Result<()> {
        for (b, f) in self.cols.iter_mut().zip(fields) {
            b.append_option(*f);
        }
        self.n += 1;
        self.rows += 1;
        if self.n >= 65_536 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.n == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(std::io::Error::other)?;
        self.writer.write(&batch).map_err(std::io::Error::other)?;
        self.n = 0;
        Ok(())
    }
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.writer.close().map_err(std::io::Error::other)?;
        self.file.commit()
    }
}
