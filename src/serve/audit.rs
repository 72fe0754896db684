//! The audit log of patient-level access: one JSON object a line (`at`, `user`, `role`,
//! `page`, `person_keys`), appended and flushed before the page is sent. Pages are route
//! patterns (`/patients/{ref}`), so no URL value is written; the person keys are the
//! pseudonyms the page showed. The access log (one line per request: method, route
//! pattern, status, user, milliseconds) never holds a person key or a path's values.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::ServeError;
use super::auth::Principal;

/// One audit record.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC.
    pub at: String,
    pub user: String,
    pub role: String,
    /// The route pattern of the page or API endpoint.
    pub page: String,
    pub person_keys: Vec<String>,
}

/// An append-only line file.
pub struct LineLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl LineLog {
    pub fn open(path: &Path) -> Result<LineLog, ServeError> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| ServeError::file(d, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| ServeError::file(path, e))?;
        Ok(LineLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn append(&self, line: &str) -> Result<(), ServeError> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| ServeError::Setup("log file lock poisoned".into()))?;
        writeln!(f, "{line}")
            .and_then(|_| f.flush())
            .map_err(|e| ServeError::file(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The audit log.
pub struct Audit(LineLog);

impl Audit {
    pub fn open(path: &Path) -> Result<Audit, ServeError> {
        LineLog::open(path).map(Audit)
    }

    /// Record that `who` saw these persons' rows on `page`.
    pub fn record(
        &self,
        who: &Principal,
        page: &str,
        person_keys: Vec<String>,
    ) -> Result<(), ServeError> {
        let r = AuditRecord {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: who.user.clone(),
            role: who.role.name().into(),
            page: page.into(),
            person_keys,
        };
        self.0
            .append(&serde_json::to_string(&r).unwrap_or_default())
    }

    /// The last `n` records, newest first.
    pub fn latest(&self, n: usize) -> Result<Vec<AuditRecord>, ServeError> {
        let text = std::fs::read_to_string(self.0.path())
            .map_err(|e| ServeError::file(self.0.path(), e))?;
        Ok(text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str(l).ok())
            .take(n)
            .collect())
    }
}
