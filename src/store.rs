//! Writing outputs so a reader never sees half of one: the one Parquet writer (a file
//! written under a temporary name, renamed into place when complete) and the swap of a
//! whole output directory. Shared core: every stage that writes Parquet writes it here.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

/// A write that failed, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub message: String,
}

impl StoreError {
    pub fn at(path: &Path, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> std::io::Error {
        std::io::Error::other(e)
    }
}

/// A file being written under a hidden temporary name beside its final path
/// (`.<name>.tmp`), renamed into place by [`TempFile::commit`]. Dropped uncommitted, the
/// temporary file is removed and the final path is untouched. Every output file of
/// onboard is written through this.
pub struct TempFile {
    path: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl TempFile {
    /// Create the temporary file (and the directories above it).
    pub fn create(path: &Path) -> Result<(TempFile, File), StoreError> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| StoreError::at(d, e))?;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let f = File::create(&tmp).map_err(|e| StoreError::at(&tmp, e))?;
        let t = TempFile {
            path: path.to_path_buf(),
            tmp,
            done: false,
        };
        Ok((t, f))
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Move the written file into place.
    pub fn commit(mut self) -> Result<(), StoreError> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| StoreError::at(&self.path, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// One Parquet file being written through a [`TempFile`]: `finish` moves it into place.
/// Dropped unfinished, nothing appears at its path.
pub struct ParquetFile {
    file: TempFile,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
}

impl ParquetFile {
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        props: Option<WriterProperties>,
    ) -> Result<ParquetFile, StoreError> {
        let (file, f) = TempFile::create(path)?;
        let writer = ArrowWriter::try_new(f, schema, props).map_err(|e| StoreError::at(path, e))?;
        Ok(ParquetFile {
            file,
            writer: Some(writer),
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        if let Some(w) = self.writer.as_mut() {
            w.write(batch)
                .map_err(|e| StoreError::at(self.file.path(), e))?;
            self.rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Close the file and move it into place; the number of rows written.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        if let Some(w) = self.writer.take() {
            w.close().map_err(|e| StoreError::at(self.file.path(), e))?;
        }
        let rows = self.rows;
        self.file.commit()?;
        Ok(rows)
    }
}

/// Write record batches as one Parquet file, atomically; the number of rows.
pub fn write_parquet(
    path: &Path,
    schema: SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch, datafusion::arrow::error::ArrowError>>,
) -> Result<u64, StoreError> {
    let mut f = ParquetFile::create(path, schema, None)?;
    for b in batches {
        f.write(&b.map_err(|e| StoreError::at(path, e))?)?;
    }
    f.finish()
}

/// A directory being rebuilt: filled under a hidden sibling, then swapped in for the old
/// one by two renames (readers see the old directory or the new one).
pub struct DirSwap {
    dir: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl DirSwap {
    pub fn begin(dir: &Path) -> Result<DirSwap, StoreError> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| StoreError::at(parent, e))?;
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| StoreError::at(&tmp, e))?;
        Ok(DirSwap {
            dir: dir.to_path_buf(),
            tmp,
            done: false,
        })
    }

    /// Where to write the new directory's files.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Replace the old directory with the new one.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        let name = self.dir.file_name().unwrap_or_default().to_string_lossy();
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if self.dir.exists() {
            std::fs::rename(&self.dir, &old).map_err(|e| StoreError::at(&self.dir, e))?;
        }
        std::fs::rename(&self.tmp, &self.dir).map_err(|e| StoreError::at(&self.dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
        self.done = true;
        Ok(())
    }
}

impl Drop for DirSwap {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Write a file via a temporary name and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let (file, mut f) = TempFile::create(path)?;
    f.write_all(bytes)?;
    drop(f);
    Ok(file.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let col: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        RecordBatch::try_new(schema, vec![col]).unwrap()
    }

    #[test]
    fn an_unfinished_file_leaves_nothing_and_the_old_file_intact() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t.parquet");
        std::fs::write(&path, b"old").unwrap();
        let b = batch();
        let mut f = ParquetFile::create(&path, b.schema(), None).unwrap();
        f.write(&b).unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let n = write_parquet(&path, b.schema(), [Ok(b.clone()), Ok(b)].into_iter()).unwrap();
        assert_eq!(n, 6);
        assert_ne!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn a_dir_swap_replaces_the_directory_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("out");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("old.txt"), b"x").unwrap();
        let s = DirSwap::begin(&dir).unwrap();
        std::fs::write(s.path().join("new.txt"), b"y").unwrap();
        drop(s);
        assert!(dir.join("old.txt").exists());
        let s = DirSwap::begin(&dir).unwrap();
        std::fs::write(s.path().join("new.txt"), b"y").unwrap();
        s.commit().unwrap();
        assert!(!dir.join("old.txt").exists() && dir.join("new.txt").exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
