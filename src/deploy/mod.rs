//! Deployments: the same compiled plans on other engines, per ICS.
//!
//! This stage owns everything between a validated ICS and a platform that runs it:
//! * [`settings`]: the `deploy:` section of the ICS file (targets, storage URIs, secret
//!   references, schedule, sizes), checked with errors that name the setting;
//! * [`schedule`]: cron checking and its Quartz form for Databricks;
//! * [`spark`]: the Spark SQL dialect for DataFusion's unparser (`onboard explain
//!   --dialect spark` and the Databricks bundle's SQL files);
//! * [`render`]: `onboard render`: minijinja templates under `templates/deploy/<target>/`
//!   (embedded in the binary) rendered with strict undefined variables into a bundle
//!   whose YAML and JSON files are parsed back before anything is written; the same
//!   inputs give the same bytes;
//! * [`check`]: the structural check of a rendered `databricks.yml`;
//! * [`storage`]: object-storage URIs for landing and output paths;
//! * `distributed` (cargo feature `distributed`): `--engine ballista://host:port` and a
//!   standalone in-process Ballista engine.

pub mod check;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod render;
pub mod schedule;
pub mod settings;
pub mod spark;
pub mod storage;

pub use settings::{DeploySettings, Target};

/// SQL dialect of `onboard explain`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlDialect {
    /// The SQL onboard compiles (DataFusion).
    #[default]
    Datafusion,
    /// Spark SQL unparsed from the logical plan (what the Databricks bundle runs).
    Spark,
}

/// Why a bundle was not rendered.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Ics(String),
    #[error("{file}: no `deploy:` section (see docs/deploy.md)")]
    NoDeploySection { file: String },
    #[error("{file}: {}", problems.join("; "))]
    Settings { file: String, problems: Vec<String> },
    #[error("{file}: target `{target}` is not enabled in deploy.targets ({enabled})")]
    TargetNotEnabled {
        file: String,
        target: &'static str,
        enabled: String,
    },
    #[error("the manifests have errors; nothing was rendered:\n{0}")]
    Invalid(String),
    #[error("planning {source_name}: {message}")]
    Plan {
        source_name: String,
        message: String,
    },
    #[error("template {template}: {message}")]
    Template { template: String, message: String },
    #[error("rendered {file} does not parse as {kind}: {message}")]
    Unparseable {
        file: String,
        kind: &'static str,
        message: String,
    },
    #[error("rendered databricks.yml fails the structural check: {}", .0.join("; "))]
    Structure(Vec<String>),
    #[error("{0}")]
    Engine(String),
    #[error("writing {path}: {message}")]
    Io { path: String, message: String },
}

/// The engine a run executes on (`onboard run --engine`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EngineChoice {
    /// DataFusion in this process (the default).
    #[default]
    Embedded,
    /// A Ballista cluster's scheduler (`ballista://host:port`).
    Ballista { host: String, port: u16 },
    /// A Ballista scheduler and executor started in this process (`ballista:standalone`,
    /// for tests and trials).
    BallistaStandalone,
}

impl EngineChoice {
    /// Parse `embedded`, `ballista://host:port` or `ballista:standalone`.
    pub fn parse(text: &str) -> Result<EngineChoice, DeployError> {
        let bad = |m: String| DeployError::Engine(format!("--engine {text}: {m}"));
        let choice = match text {
            "embedded" => return Ok(EngineChoice::Embedded),
            "ballista:standalone" => EngineChoice::BallistaStandalone,
            t if t.starts_with("ballista://") => {
                let rest = &t["ballista://".len()..];
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| bad("expected ballista://host:port".into()))?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| bad(format!("port `{port}` is not a number")))?;
                if host.is_empty() {
                    return Err(bad("the host is empty".into()));
                }
                EngineChoice::Ballista {
                    host: host.to_string(),
                    port,
                }
            }
            _ => {
                return Err(bad(
                    "use `embedded`, `ballista://host:port` or `ballista:standalone`".into(),
                ));
            }
        };
        if cfg!(feature = "distributed") {
            Ok(choice)
        } else {
            Err(bad(
                "this onboard was built without the `distributed` feature (cargo build --features distributed)".into(),
            ))
        }
    }

    pub fn is_embedded(&self) -> bool {
        *self == EngineChoice::Embedded
    }
}

/// The session a run executes on: the embedded engine's bounded context, or a Ballista
/// client context with the same functions (and the run's key) registered.
pub async fn run_context(
    engine: &EngineChoice,
    settings: &crate::ics::EngineSettings,
    spill_dir: &std::path::Path,
    key: &crate::pseudonymise::Key,
) -> Result<datafusion::prelude::SessionContext, String> {
    match engine {
        EngineChoice::Embedded => crate::engine::run_context(settings, spill_dir, key),
        #[cfg(feature = "distributed")]
        other => distributed::context(other, settings, key).await,
        #[cfg(not(feature = "distributed"))]
        _ => Err("built without the `distributed` feature".into()),
    }
}

/// Make a source's scan table available to the engine: registered directly on the
/// embedded engine; on Ballista, first read by onboard's scanner (encodings, ragged
/// rows, lineage) into Parquet under `staging`, which the executors then read.
pub async fn register_scan(
    engine: &EngineChoice,
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
    table: datafusion::catalog::streaming::StreamingTable,
    staging: &std::path::Path,
) -> Result<(), String> {
    match engine {
        EngineChoice::Embedded => ctx
            .register_table(name, std::sync::Arc::new(table))
            .map(|_| ())
            .map_err(|e| e.to_string()),
        #[cfg(feature = "distributed")]
        _ => distributed::stage_scan(ctx, name, table, staging).await,
        #[cfg(not(feature = "distributed"))]
        _ => {
            let _ = staging;
            Err("built without the `distributed` feature".into())
        }
    }
}
