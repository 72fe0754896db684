//! Helpers: run the built binary from the repository root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn onboard(args: &[&str]) -> Output {
    onboard_in(&root(), args)
}

/// The binary under test: `ONBOARD_TEST_BIN` when set (a copy of this worktree's
/// build, when several worktrees share one target directory), else cargo's.
pub fn bin() -> PathBuf {
    std::env::var_os("ONBOARD_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_onboard")))
}

pub fn onboard_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run onboard")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
