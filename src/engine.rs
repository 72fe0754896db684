//! DataFusion session factory. Owns how sessions are configured: our UDFs registered on
//! top of the built-ins, identifiers kept case-sensitive (manifest expressions name source
//! columns exactly as in the extract header), and, for runs, the memory pool and spill
//! directory.

use datafusion::prelude::{SessionConfig, SessionContext};

/// Session options shared by planning and execution.
pub fn session_config() -> SessionConfig {
    let mut cfg = SessionConfig::new().with_information_schema(false);
    cfg.options_mut().sql_parser.enable_ident_normalization = false;
    cfg
}

/// A context for planning and checking expressions (no I/O).
pub fn planning_context() -> SessionContext {
    let ctx = SessionContext::new_with_config(session_config());
    for udf in crate::udf::all() {
        ctx.register_udf(udf);
    }
    ctx
}
