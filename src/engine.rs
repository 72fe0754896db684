//! DataFusion session factory. Owns how sessions are configured: our UDFs registered on
//! top of the built-ins, identifiers kept case-sensitive (manifest expressions name source
//! columns exactly as in the extract header), and, for runs, the memory pool and spill
//! directory, and its settings (the `engine:` section of the ICS file).

use datafusion::prelude::{SessionConfig, SessionContext};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Session options shared by planning and execution.
pub fn session_config() -> SessionConfig {
    let mut cfg = SessionConfig::new().with_information_schema(false);
    cfg.options_mut().sql_parser.enable_ident_normalization = false;
    // VARCHAR means Utf8 (our scans and UDFs produce Utf8; views would mean copies).
    cfg.options_mut().sql_parser.map_string_types_to_utf8view = false;
    cfg
}

/// A context for planning and checking expressions (no I/O).
pub fn planning_context() -> SessionContext {
    let ctx = SessionContext::new_with_config(session_config());
    for udf in crate::udf::all() {
        ctx.register_udf(udf);
    }
    // Planning needs the function's signature only; the demo key never hashes data here.
    let demo = crate::pseudonymise::Key::demo();
    ctx.register_udf(crate::pseudonymise::PersonKeyOf::udf(demo.clone()));
    ctx.register_udf(crate::pseudonymise::RecordKey::udf(demo));
    ctx
}

/// A context for running plans: bounded memory (a greedy pool of the configured
/// size, its five largest consumers named when exhausted), spilling to `spill_dir`, our UDFs and the keyed `person_key` function.
pub fn run_context(
    settings: &EngineSettings,
    spill_dir: &std::path::Path,
    key: &crate::pseudonymise::Key,
) -> Result<SessionContext, String> {
    let ctx = bounded_context(settings, spill_dir)?;
    ctx.register_udf(crate::pseudonymise::PersonKeyOf::udf(key.clone()));
    ctx.register_udf(crate::pseudonymise::RecordKey::udf(key.clone()));
    Ok(ctx)
}

/// A context for plans over pseudonymised data (no key): bounded memory (a greedy
/// pool of `engine.memory_limit`), spilling to `spill_dir`, our UDFs.
pub fn bounded_context(
    settings: &EngineSettings,
    spill_dir: &std::path::Path,
) -> Result<SessionContext, String> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use std::sync::Arc;
    let bytes = parse_bytes(&settings.memory_limit).ok_or_else(|| {
        format!(
            "engine.memory_limit `{}` is not a size such as 2GiB",
            settings.memory_limit
        )
    })?;
    std::fs::create_dir_all(spill_dir)
        .map_err(|e| format!("cannot create spill directory {}: {e}", spill_dir.display()))?;
    let runtime = RuntimeEnvBuilder::new()
        // The five largest consumers are named when the pool is exhausted.
        .with_memory_pool(Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(bytes),
            std::num::NonZeroUsize::new(5).unwrap_or(std::num::NonZeroUsize::MIN),
        )))
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![spill_dir.to_path_buf()])),
        )
        .build_arc()
        .map_err(|e| e.to_string())?;
    let mut cfg = session_config().with_sort_spill_reservation_bytes(4 * 1024 * 1024);
    if let Some(p) = settings.target_partitions {
        cfg = cfg.with_target_partitions(p.max(1));
    }
    let ctx = SessionContext::new_with_config_rt(cfg, runtime);
    for udf in crate::udf::all() {
        ctx.register_udf(udf);
    }
    Ok(ctx)
}

/// Engine limits.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Memory pool for DataFusion operators (e.g. `2GiB`, `512MiB`).
    #[serde(default = "default_memory")]
    pub memory_limit: String,
    /// Parallelism (default: the number of CPUs).
    #[serde(default)]
    pub target_partitions: Option<usize>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            memory_limit: default_memory(),
            target_partitions: None,
        }
    }
}

fn default_memory() -> String {
    "2GiB".into()
}

/// Parse sizes such as `2GiB`, `512MiB`, `1GB`, `1000000`.
pub fn parse_bytes(s: &str) -> Option<usize> {
    let t = s.trim();
    let idx = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as usize)
}
