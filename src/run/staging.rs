//! The staging directories of runs (`OUT/.staging/<run_id>-<pid>`) and the housekeeping
//! of runs that were killed.
//!
//! A run records who owns its staging directory in `.staging/<dir>/.owner` (the process
//! id and the process's start time as the kernel reports it, so a recycled pid is not
//! mistaken for the run), and removes the file just before publishing. A run killed with
//! SIGKILL cannot clean up after itself; the next run on the same output directory calls
//! [`remove_stale`], which removes every staging directory whose owner is gone and logs
//! each one. A directory whose owner is still running is never touched, and neither is
//! one whose owner cannot be determined (no `/proc`: not Linux).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The owner marker inside a staging directory.
pub const OWNER_FILE: &str = ".owner";

/// Who a staging directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (`/proc/<pid>/stat` field 22);
    /// null where the platform does not tell.
    pub start_ticks: Option<u64>,
    /// When the run started (RFC 3339 UTC), for people reading the directory.
    pub started_at: String,
}

impl Owner {
    /// The current process.
    pub fn current(started_at: &str) -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start_ticks: process_stat(pid).map(|s| s.start_ticks),
            started_at: started_at.to_string(),
        }
    }
}

/// Whether a process is running, as far as the platform can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Running,
    Gone,
    Unknown,
}

/// State and start time of a process, from `/proc/<pid>/stat`.
struct ProcStat {
    zombie: bool,
    start_ticks: u64,
}

fn process_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        zombie: matches!(fields.first(), Some(&"Z") | Some(&"X")),
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

fn has_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// Whether the process `pid` (started at `start_ticks`, when known) is still running.
pub fn liveness(pid: u32, start_ticks: Option<u64>) -> Liveness {
    if !has_proc() {
        return Liveness::Unknown;
    }
    match process_stat(pid) {
        None => Liveness::Gone,
        Some(s) if s.zombie => Liveness::Gone,
        Some(s) if start_ticks.is_some_and(|t| t != s.start_ticks) => Liveness::Gone,
        Some(_) => Liveness::Running,
    }
}

/// Create the staging directory `dir` and record the current process as its owner.
pub fn create(dir: &Path, started_at: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let owner = Owner::current(started_at);
    let json = serde_json::to_string_pretty(&owner).unwrap_or_default();
    crate::store::write_atomic(&dir.join(OWNER_FILE), json.as_bytes())
}

/// Drop the owner marker before the directory is published.
pub fn release(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(OWNER_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The owner of a staging directory: its marker, else the pid its name ends with
/// (`<run_id>-<pid>`, `replaced-<run_id>-<pid>`: directories of older versions, or of a
/// run killed before it wrote the marker).
fn owner_of(dir: &Path) -> Option<(u32, Option<u64>)> {
    if let Ok(text) = std::fs::read_to_string(dir.join(OWNER_FILE))
        && let Ok(o) = serde_json::from_str::<Owner>(&text)
    {
        return Some((o.pid, o.start_ticks));
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let pid = name.rsplit('-').next()?.parse().ok()?;
    Some((pid, None))
}

/// A staging directory removed because its run is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub dir: PathBuf,
    pub pid: u32,
}

/// Remove the staging directories under `out/.staging` whose process is gone (never one
/// that is running, never the current process's); log each one removed.
pub fn remove_stale(out: &Path) -> Vec<Removed> {
    let root = out.join(".staging");
    let me = std::process::id();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let dir = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some((pid, start)) = owner_of(&dir) else {
            tracing::warn!(dir = %dir.display(), "staging directory without an owner; left in place");
            continue;
        };
        if pid == me || liveness(pid, start) != Liveness::Gone {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::warn!(
                    dir = %dir.display(),
                    pid,
                    "removed the staging directory of a run that is no longer running (killed?)"
                );
                removed.push(Removed { dir, pid });
            }
            // Another run removed it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a stale staging directory")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_running_and_an_unused_pid_is_gone() {
        if !has_proc() {
            return;
        }
        let me = Owner::current("now");
        assert_eq!(liveness(me.pid, me.start_ticks), Liveness::Running);
        // A different start time: the pid was recycled, the owner is gone.
        let other = me.start_ticks.map(|t| t + 1);
        assert_eq!(liveness(me.pid, other), Liveness::Gone);
        // Above the kernel's pid limit (4194304 at most).
        assert_eq!(liveness(4_194_305, None), Liveness::Gone);
    }

    #[test]
    fn removes_only_directories_of_dead_owners() {
        if !has_proc() {
            return;
        }
        let out = tempfile::tempdir().unwrap();
        let root = out.path().join(".staging");
        let mine = root.join("aaaa-1");
        create(&mine, "now").unwrap();
        let dead = root.join(format!("bbbb-{}", 4_194_305));
        std::fs::create_dir_all(dead.join("silver")).unwrap();
        let dead_marked = root.join("cccc-7");
        std::fs::create_dir_all(&dead_marked).unwrap();
        let ghost = Owner {
            pid: 4_194_305,
            start_ticks: Some(1),
            started_at: "then".into(),
        };
        std::fs::write(
            dead_marked.join(OWNER_FILE),
            serde_json::to_string(&ghost).unwrap(),
        )
        .unwrap();
        let removed = remove_stale(out.path());
        assert_eq!(removed.len(), 2);
        assert!(mine.exists(), "a running owner's directory is kept");
        assert!(!dead.exists() && !dead_marked.exists());
        release(&mine).unwrap();
        assert!(!mine.join(OWNER_FILE).exists());
    }
}
