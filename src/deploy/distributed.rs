//! The Ballista engine (cargo feature `distributed`): the same compiled plans, planned by
//! a Ballista scheduler and executed by its executors. `ballista://host:port` connects
//! to a cluster; `ballista:standalone` starts a scheduler and an executor in this
//! process (tests). onboard's functions, including the keyed `person_key_of` and
//! `record_key`, are registered on the session state *before* the context is created,
//! so the in-process executor's function registry has them; a cluster's executors need
//! an executor build that registers the same functions.

use std::path::Path;
use std::sync::Arc;

use ballista::prelude::*;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use super::EngineChoice;

/// A Ballista client context with onboard's session options and functions.
pub async fn context(
    engine: &EngineChoice,
    settings: &crate::ics::EngineSettings,
    key: &crate::pseudonymise::Key,
) -> Result<SessionContext, String> {
    let mut cfg = SessionConfig::new_with_ballista().with_information_schema(false);
    {
        let o = cfg.options_mut();
        o.sql_parser.enable_ident_normalization = false;
        o.sql_parser.map_string_types_to_utf8view = false;
        // Staged scans are Parquet: keep their text columns Utf8, as the embedded scan.
        o.execution.parquet.schema_force_view_types = false;
    }
    if let Some(p) = settings.target_partitions {
        cfg = cfg.with_target_partitions(p.max(1));
    }
    let mut state = SessionStateBuilder::new()
        .with_config(cfg)
        .with_default_features()
        .build();
    let udfs = || {
        let mut v = crate::udf::all();
        v.push(crate::pseudonymise::PersonKeyOf::udf(key.clone()));
        v.push(crate::pseudonymise::RecordKey::udf(key.clone()));
        v
    };
    // On the state for the scheduler and executors (standalone mode copies it) …
    for f in udfs() {
        state
            .register_udf(Arc::new(f))
            .map_err(|e| format!("registering functions: {e}"))?;
    }
    let ctx = match engine {
        EngineChoice::BallistaStandalone => SessionContext::standalone_with_state(state).await,
        EngineChoice::Ballista { host, port } => {
            SessionContext::remote_with_state(&format!("df://{host}:{port}"), state).await
        }
        EngineChoice::Embedded => return Err("not a Ballista engine".into()),
    };
    let ctx = ctx.map_err(|e| format!("starting the Ballista engine: {e}"))?;
    // … and on the client, whose state Ballista rebuilt with its own function list.
    for f in udfs() {
        ctx.register_udf(f);
    }
    Ok(ctx)
}

/// Read a source with onboard's scanner (in this process) into Parquet under
/// `staging/bronze/<table>/`, and register that directory on the Ballista context.
pub async fn stage_scan(
    ctx: &SessionContext,
    name: &str,
    table: StreamingTable,
    staging: &Path,
) -> Result<(), String> {
    let local = SessionContext::new_with_config(crate::engine::session_config());
    local
        .register_table(name, Arc::new(table))
        .map_err(|e| e.to_string())?;
    let dir = staging.join("bronze").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("part-0.parquet");
    let df = local.table(name).await.map_err(|e| e.to_string())?;
    df.write_parquet(
        &file.to_string_lossy(),
        DataFrameWriteOptions::new().with_single_file_output(true),
        None,
    )
    .await
    .map_err(|e| format!("staging {name}: {e}"))?;
    ctx.register_parquet(name, &dir.to_string_lossy(), ParquetReadOptions::default())
        .await
        .map_err(|e| format!("registering staged {name}: {e}"))
}
