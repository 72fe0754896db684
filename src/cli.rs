//! The `onboard` command line: argument parsing, dispatch, output and exit codes.
//!
//! Exit codes: 0 success (valid), 1 problems found (invalid manifests), 2 usage or I/O
//! error. Results go to stdout; logs (`RUST_LOG`) go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::diagnostics::{self, Format, Summary};

/// Onboard health and care providers onto an ICS data platform by configuration.
#[derive(Debug, Parser)]
#[command(name = "onboard", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check provider manifests and report every problem (a PR check).
    Validate(ValidateArgs),
    /// Print the JSON Schema of provider manifests (for editors).
    Schema,
    /// Write the generated reference docs (diagnostic codes, rules, transforms, canonical model).
    Docs(DocsArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files or directories (searched recursively for *.yaml / *.yml).
    /// Default: `providers/`.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Landing-zone directory: check each source's declared columns against the header
    /// of the first extract matching its path.
    #[arg(long, value_name = "DIR", conflicts_with = "sample")]
    pub data: Option<PathBuf>,
    /// One extract file: check it against the source whose path pattern matches its name.
    #[arg(long, value_name = "FILE")]
    pub sample: Option<PathBuf>,
    /// Project root (holds templates/providers/). Default: nearest ancestor with templates/.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DocsArgs {
    /// Directory to write into.
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
    /// Do not write; exit 1 if the files on disk differ from what would be written.
    #[arg(long)]
    pub check: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run a parsed command; returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate(a) => validate(a),
        Command::Schema => {
            emit(&crate::manifest::model::json_schema_text())?;
            Ok(0)
        }
        Command::Docs(a) => docs(a),
    }
}

fn validate(a: ValidateArgs) -> anyhow::Result<u8> {
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from("providers")]
    } else {
        a.paths
    };
    let opts = crate::validate::Options {
        root: a.root,
        data: a.data,
        sample: a.sample,
    };
    if let Some(d) = &opts.data
        && !d.is_dir()
    {
        anyhow::bail!("--data {}: not a directory", d.display());
    }
    if let Some(s) = &opts.sample
        && !s.is_file()
    {
        anyhow::bail!("--sample {}: not a file", s.display());
    }
    let outcome = crate::validate::validate_paths(&paths, &opts)?;
    let errors = outcome.diagnostics.errors();
    let warnings = outcome.diagnostics.warnings();
    let summary = Summary {
        files: outcome.files,
    };
    let sorted = outcome.diagnostics.into_sorted();
    emit(&diagnostics::render(a.format, &sorted, &summary))?;
    Ok(if errors > 0 || (a.deny_warnings && warnings > 0) {
        1
    } else {
        0
    })
}

fn docs(a: DocsArgs) -> anyhow::Result<u8> {
    let files = crate::reference::generate();
    let mut stale = Vec::new();
    for (name, text) in &files {
        let path = a.out.join(name);
        if a.check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        } else {
            std::fs::create_dir_all(&a.out)?;
            let tmp = path.with_extension("md.tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)?;
        }
    }
    if a.check && !stale.is_empty() {
        eprintln!(
            "generated docs are out of date (run `onboard docs`): {}",
            stale.join(", ")
        );
        return Ok(1);
    }
    Ok(0)
}

/// Write to stdout; a closed pipe (e.g. `| head`) is not an error.
fn emit(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
