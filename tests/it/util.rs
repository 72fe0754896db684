//! Helpers: run the built binary from the repository root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn onboard(args: &[&str]) -> Output {
    onboard_in(&root(), args)
}

pub fn onboard_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onboard"))
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

/// An ICS of one provider in `dir`: `manifest` as `providers/provider.yaml`, `csv` as
/// `landing/events.csv`, outputs to `out/`, and `engine` (a YAML flow map, or empty)
/// as its engine settings. Returns the ICS file.
pub fn one_source_ics(dir: &Path, manifest: &str, csv: impl AsRef<[u8]>, engine: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("providers")).unwrap();
    std::fs::create_dir_all(dir.join("landing")).unwrap();
    std::fs::write(dir.join("providers/provider.yaml"), manifest).unwrap();
    std::fs::write(dir.join("landing/events.csv"), csv).unwrap();
    let engine = if engine.is_empty() {
        String::new()
    } else {
        format!("engine: {engine}\n")
    };
    let ics = dir.join("ics.yaml");
    std::fs::write(
        &ics,
        format!(
            "ics: {{ id: one, name: One source }}\nproviders: [providers]\nlanding: landing\n\
             output: out\nreference_date: 2026-10-31\n{engine}"
        ),
    )
    .unwrap();
    ics
}
