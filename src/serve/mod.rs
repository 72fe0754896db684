//! `onboard serve`: the clinical intelligence dashboard over a published run's `gold/`
//! outputs, with its access rules as part of the product. Owns the web application:
//! server-rendered pages (minijinja templates embedded in the binary, charts as inline
//! SVG drawn with `plotters`), the JSON API behind the same rules, sign-in (local
//! accounts with argon2 hashes, or a trusted identity provider's signed header),
//! sessions and CSRF, the role rules (clinician / commissioner / analyst / admin), and
//! the audit log of patient-level access. It reads `gold/` through DataFusion and never
//! the identity zone. docs/serve.md lists every route, role and JSON field.
//!
//! * [`config`]: the `serve:` section of the ICS file (users, roles, scopes, sign-in).
//! * [`auth`]: passwords, the identity header, sessions, cookies, CSRF tokens.
//! * [`access`]: the route table and role rules; counts through disclosure control.
//! * [`data`]: the scored population read at start-up; cards per request.
//! * [`aggregate`]: risk pyramid, deciles and breakdowns.
//! * [`views`]: what each page and API endpoint shows, as JSON.
//! * [`charts`]: SVG charts.
//! * [`audit`]: audit and access logs.
//! * [`web`]: the axum router, middleware and handlers.

pub mod access;
pub mod aggregate;
pub mod audit;
pub mod auth;
pub mod charts;
pub mod config;
pub mod data;
pub mod views;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use web::router;

/// Why the app did not start or a page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Setup(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Risk(#[from] crate::risk::RiskError),
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Template(#[from] minijinja::Error),
}

impl ServeError {
    pub fn file(path: &Path, e: impl std::fmt::Display) -> ServeError {
        ServeError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Everything a request needs.
pub struct App {
    pub ics_name: String,
    pub data: data::Data,
    pub auth: auth::Authenticator,
    pub audit: audit::Audit,
    pub access_log: Option<audit::LineLog>,
    pub templates: minijinja::Environment<'static>,
}

impl App {
    /// Load the run (`out`, default the ICS file's `output`) and the `serve:` section.
    pub async fn load(ics: &crate::ics::Ics, out: Option<&Path>) -> Result<Arc<App>, ServeError> {
        let settings = ics.file.serve.clone().ok_or_else(|| {
            ServeError::Setup(
                "the ICS file has no `serve:` section: declare its users (docs/serve.md)".into(),
            )
        })?;
        let out = out
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ics.resolve(&ics.file.output));
        let data = data::Data::load(&out, ics).await?;
        let audit_path = settings
            .audit_log
            .as_deref()
            .map(|p| ics.resolve(p))
            .unwrap_or_else(|| out.join("serve").join("audit.ndjson"));
        let access_log = match settings.access_log.as_deref() {
            Some(p) => Some(audit::LineLog::open(&ics.resolve(p))?),
            None => None,
        };
        Ok(Arc::new(App {
            ics_name: ics.file.ics.name.clone(),
            data,
            auth: auth::Authenticator::new(&settings)?,
            audit: audit::Audit::open(&audit_path)?,
            access_log,
            templates: web::templates()?,
        }))
    }
}

/// `onboard serve`: load, bind, serve until Ctrl-C.
pub async fn serve(
    ics: &crate::ics::Ics,
    out: Option<&Path>,
    listen: Option<&str>,
) -> Result<(), ServeError> {
    let app = App::load(ics, out).await?;
    let addr = listen
        .map(str::to_string)
        .or_else(|| ics.file.serve.as_ref().and_then(|s| s.listen.clone()))
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| ServeError::Setup(format!("cannot listen on {addr}: {e}")))?;
    eprintln!(
        "onboard serve: {} persons scored at {} (model {}), listening on http://{addr}",
        app.data.persons.len(),
        app.data.as_of,
        app.data.model_version
    );
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| ServeError::Setup(format!("server stopped: {e}")))
}
