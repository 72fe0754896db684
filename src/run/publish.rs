//! Publishing a staged run: rename it into `runs/<run_id>`, swap the `current` symlink
//! (and the top-level links), and keep the last few runs.

use std::path::{Path, PathBuf};

use super::record::RunRecord;
use crate::feeds;

/// Runs kept under `runs/` after publishing.
const RUNS_KEPT: usize = 3;

/// The previous published run, for "change since the previous run".
pub(super) fn read_previous(out: &Path) -> Option<RunRecord> {
    let text = std::fs::read_to_string(out.join("current").join("run.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Move the staged run into place and point `current` (and the top-level links) at it.
pub(super) fn publish(out: &Path, staging: &Path, run_id: &str) -> std::io::Result<PathBuf> {
    let runs = out.join("runs");
    std::fs::create_dir_all(&runs)?;
    let target = runs.join(run_id);
    if target.exists() {
        // The same inputs ran before: replace that run's files with this identical run.
        let trash = out
            .join(".staging")
            .join(format!("replaced-{run_id}-{}", std::process::id()));
        std::fs::rename(&target, &trash)?;
        std::fs::rename(staging, &target)?;
        let _ = std::fs::remove_dir_all(&trash);
    } else {
        std::fs::rename(staging, &target)?;
    }
    swap_symlink(&out.join("current"), &Path::new("runs").join(run_id))?;
    for name in [
        "run.json",
        feeds::ledger::FILE,
        "silver",
        "identity",
        "quarantine",
        "reports",
    ] {
        let link = out.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            swap_symlink(&link, &Path::new("current").join(name))?;
        }
    }
    prune_runs(&runs, run_id);
    Ok(target)
}

#[cfg(unix)]
fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let tmp = link.with_extension(format!("tmp-link-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

#[cfg(not(unix))]
fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(link);
    std::fs::write(link, target.to_string_lossy().as_bytes())
}

fn prune_runs(runs: &Path, keep: &str) {
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort();
    while dirs.len() >= RUNS_KEPT {
        let (_, p) = dirs.remove(0);
        let _ = std::fs::remove_dir_all(p);
    }
}
