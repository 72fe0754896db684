//! The content hash (SHA-256) of a delivered file, computed once, off the run's path.
//!
//! A run needs a file's hash before reading it only when the hash decides something: an
//! `incremental` source skips content it has ingested, and a skipped file is recorded
//! with its hash. Otherwise the hash is only recorded (run.json, the ledger), so it is
//! computed by background threads while the run reads the file, and waited for when
//! the record is written. Whoever asks first computes it; a second caller waits for the
//! first (a [`OnceLock`]), so a file is hashed exactly once either way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// The SHA-256 of one file, as lowercase hex, or why it could not be read.
#[derive(Clone)]
pub struct ContentHash {
    path: PathBuf,
    /// The file name shown in errors (relative to the landing zone).
    shown: String,
    cell: Arc<OnceLock<Result<String, String>>>,
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cell.get() {
            Some(Ok(h)) => write!(f, "ContentHash({h})"),
            Some(Err(e)) => write!(f, "ContentHash(error: {e})"),
            None => write!(f, "ContentHash(pending {})", self.shown),
        }
    }
}

impl ContentHash {
    /// The hash of `path`, not computed yet.
    pub fn of(path: &Path, shown: &str) -> ContentHash {
        ContentHash {
            path: path.to_path_buf(),
            shown: shown.to_string(),
            cell: Arc::new(OnceLock::new()),
        }
    }

    /// A hash already known.
    #[cfg(test)]
    pub fn known(hex: &str) -> ContentHash {
        let h = ContentHash::of(Path::new(""), "");
        let _ = h.cell.set(Ok(hex.to_string()));
        h
    }

    /// The hash: computed now, or waited for when a background thread is computing it.
    pub fn get(&self) -> Result<String, String> {
        self.cell
            .get_or_init(|| {
                sha256_file(&self.path).map_err(|e| {
                    format!("{}: cannot be read to compute its SHA-256: {e}", self.shown)
                })
            })
            .clone()
    }
}

/// Hash `hashes` on background threads (at most one per core), in order.
pub fn in_background(hashes: Vec<ContentHash>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(hashes.len());
    let queue = Arc::new(Mutex::new(hashes.into_iter()));
    for _ in 0..threads {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name("onboard-hash".into())
            .spawn(move || {
                while let Some(h) = queue.lock().ok().and_then(|mut q| q.next()) {
                    drop(h.get());
                }
            });
        // A thread that cannot start leaves its hashes to whoever asks for them.
        if spawned.is_err() {
            break;
        }
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    std::io::copy(&mut file, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_and_asked_hashes_agree_with_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..5)
            .map(|i| {
                let p = dir.path().join(format!("f{i}.csv"));
                std::fs::write(&p, format!("a,b\n{i},{}\n", "x".repeat(i * 300_000))).unwrap();
                p
            })
            .collect();
        let hashes: Vec<ContentHash> = paths.iter().map(|p| ContentHash::of(p, "f")).collect();
        in_background(hashes.clone());
        for (p, h) in paths.iter().zip(&hashes) {
            let want = hex::encode(Sha256::digest(std::fs::read(p).unwrap()));
            assert_eq!(h.get().unwrap(), want);
        }
        assert_eq!(
            ContentHash::of(Path::new("/nonexistent/x.csv"), "x.csv")
                .get()
                .unwrap_err()
                .split(':')
                .next(),
            Some("x.csv")
        );
    }
}
