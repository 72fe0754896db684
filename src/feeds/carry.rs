//! Carrying a source's published data from the previous run into the new one: the last
//! good data of a source whose delivery is missing or failed, and the data an
//! `incremental` source already holds. Files are hard-linked (copied where links are
//! not possible), so older runs can be pruned without losing the data.

use std::path::{Path, PathBuf};

use crate::canonical::IDENTITY_ENTITY;

/// Prefix of a Parquet file carried from run `<id>`: `run-<id>-<name>`.
const CARRIED: &str = "run-";

fn partition(base: &Path, kind: &str, entity: &str, provider: &str, source: &str) -> PathBuf {
    base.join(kind)
        .join(entity)
        .join(format!("provider={provider}"))
        .join(format!("source={source}"))
}

/// Link the silver and identity files of one source from the run directory `from` (run
/// `from_run`) into `staging`. Files `from_run` wrote itself are renamed
/// `run-<from_run>-<name>`; when `from_run` is this run (a rerun), they are not carried,
/// since this run writes them again. Returns the number of files linked.
pub fn link_source(
    from: &Path,
    from_run: &str,
    staging: &Path,
    entity: &str,
    provider: &str,
    source: &str,
    this_run: &str,
) -> std::io::Result<usize> {
    let mut n = 0;
    for (kind, e) in [("silver", entity), ("identity", IDENTITY_ENTITY)] {
        let src = partition(from, kind, e, provider, source);
        let Ok(dir) = std::fs::read_dir(&src) else {
            continue;
        };
        let target = partition(staging, kind, e, provider, source);
        let mut names: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".parquet"))
            .collect();
        names.sort();
        for name in names {
            let new_name = if name.starts_with(CARRIED) {
                name.clone()
            } else if from_run == this_run {
                continue;
            } else {
                format!("{CARRIED}{from_run}-{name}")
            };
            std::fs::create_dir_all(&target)?;
            let to = target.join(&new_name);
            if to.exists() {
                continue;
            }
            if std::fs::hard_link(src.join(&name), &to).is_err() {
                std::fs::copy(src.join(&name), &to)?;
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Remove what this run staged for a source (before carrying its last good data).
pub fn clear_source(staging: &Path, entity: &str, provider: &str, source: &str) {
    for (kind, e) in [("silver", entity), ("identity", IDENTITY_ENTITY)] {
        let _ = std::fs::remove_dir_all(partition(staging, kind, e, provider, source));
    }
}
