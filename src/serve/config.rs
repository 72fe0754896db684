//! The `serve:` section of the ICS file: who may use `onboard serve`, in which role and
//! scope, how they sign in (local accounts with argon2 password hashes, or a trusted
//! identity provider passing a signed identity header), and where the audit log goes.
//! Semantic checks return located findings `ONB0950`–`ONB0959`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostics::Finding;

/// The web application over a published run (`onboard serve`, docs/serve.md).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on, `host:port` (default `127.0.0.1:8080`; `--listen` wins).
    #[serde(default)]
    pub listen: Option<String>,
    /// Minutes a sign-in lasts before the user signs in again (default 480).
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u32,
    /// An identity provider in front of the app that passes a signed identity header.
    /// Without it, any request carrying an identity header is refused.
    #[serde(default)]
    pub identity_provider: Option<IdentityProvider>,
    /// Audit log of every patient-level access, one JSON object a line (relative to the
    /// ICS file; default `<run>/serve/audit.ndjson`).
    #[serde(default)]
    pub audit_log: Option<String>,
    /// Access log, one line per request with the route pattern, never a path's values
    /// (relative to the ICS file; default: the `tracing` log only).
    #[serde(default)]
    pub access_log: Option<String>,
    /// The people who may sign in, with their role and scope.
    #[serde(default)]
    pub users: Vec<User>,
}

/// A trusted identity provider (a reverse proxy that authenticated the user).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// Header carrying `<user id>:<issued at, Unix seconds>:<hex HMAC-SHA-256>` (default
    /// `x-onboard-identity`).
    #[serde(default = "default_header")]
    pub header: String,
    /// Environment variable holding the shared HMAC secret (never the secret itself).
    pub secret_env: String,
    /// Oldest accepted `issued at`, in seconds (default 300).
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
}

/// A user: who, in which role, scoped to which practices.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Sign-in name (letters, digits, `.`, `_`, `-`, `@`), as the identity provider sends it.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// What the user may see.
    pub role: Role,
    /// ODS codes of the practices a clinician sees patients of (clinicians only).
    #[serde(default)]
    pub practices: Vec<String>,
    /// Argon2 password hash in PHC form (`$argon2id$…`, from `onboard serve
    /// --hash-password`) for a local account; none: identity provider only.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// Roles, from most to least patient detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Patient-level rows of people registered at their practices, with explanation cards.
    Clinician,
    /// Aggregates only, every count through disclosure control; no patient-level route.
    Commissioner,
    /// Pseudonymised patient-level rows of the whole population (never identifiers).
    Analyst,
    /// Everything an analyst sees, plus the audit log.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Clinician => "clinician",
            Role::Commissioner => "commissioner",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

fn default_session_minutes() -> u32 {
    480
}
fn default_header() -> String {
    "x-onboard-identity".into()
}
fn default_max_age() -> u64 {
    300
}

/// Whether a user id may be used (it travels in the identity header and the audit log).
pub fn valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

impl ServeSettings {
    /// Problems the types cannot express, pointers relative to the section.
    pub fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(l) = &self.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            out.push(
                Finding::new(
                    "ONB0956",
                    "/listen",
                    format!("serve.listen `{l}` is not host:port"),
                )
                .label("not an address")
                .help("e.g. `listen: 127.0.0.1:8080`"),
            );
        }
        if self.session_minutes == 0 || self.session_minutes > 24 * 60 {
            out.push(Finding::new(
                "ONB0957",
                "/session_minutes",
                format!(
                    "serve.session_minutes {} is outside 1–1440",
                    self.session_minutes
                ),
            ));
        }
        if let Some(idp) = &self.identity_provider {
            out.extend(idp.check());
        }
        if self.users.is_empty() {
            out.push(
                Finding::new(
                    "ONB0958",
                    "/users",
                    "serve.users is empty: nobody can sign in",
                )
                .help("declare users with a role (docs/serve.md)"),
            );
        }
        let idp = self.identity_provider.is_some();
        for (i, u) in self.users.iter().enumerate() {
            out.extend(
                u.check(idp)
                    .into_iter()
                    .map(|f| f.under(&format!("/users/{i}"))),
            );
            if self.users[..i].iter().any(|o| o.id == u.id) {
                out.push(Finding::new(
                    "ONB0950",
                    format!("/users/{i}/id"),
                    format!("user `{}` is declared twice", u.id),
                ));
            }
        }
        out
    }
}

impl IdentityProvider {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let env_ok = !self.secret_env.is_empty()
            && self
                .secret_env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !env_ok {
            out.push(Finding::new(
                "ONB0955",
                "/identity_provider/secret_env",
                format!(
                    "serve.identity_provider.secret_env `{}` is not an environment variable name",
                    self.secret_env
                ),
            ));
        }
        if axum::http::HeaderName::from_bytes(self.header.as_bytes()).is_err() {
            out.push(Finding::new(
                "ONB0955",
                "/identity_provider/header",
                format!(
                    "serve.identity_provider.header `{}` is not a header name",
                    self.header
                ),
            ));
        }
        out
    }
}

impl User {
    fn check(&self, idp: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        if !valid_user_id(&self.id) {
            out.push(Finding::new(
                "ONB0959",
                "/id",
                format!(
                    "user id `{}` has characters other than letters, digits, `.`, `_`, `-`, `@`",
                    self.id
                ),
            ));
        }
        match (self.role, self.practices.is_empty()) {
            (Role::Clinician, true) => out.push(
                Finding::new(
                    "ONB0951",
                    "/practices",
                    format!(
                        "clinician `{}` has no practices: they would see no patient",
                        self.id
                    ),
                )
                .or_at("/role")
                .help("list the ODS codes of their practices, e.g. `practices: [F81001]`"),
            ),
            (Role::Clinician, false) => {}
            (r, false) => out.push(Finding::new(
                "ONB0952",
                "/practices",
                format!(
                    "`practices` only scopes clinicians; {} `{}` sees the whole population",
                    r.name(),
                    self.id
                ),
            )),
            _ => {}
        }
        match &self.password_hash {
            Some(h) if argon2::PasswordHash::new(h).is_err() || !h.starts_with("$argon2") => out
                .push(
                Finding::new(
                    "ONB0953",
                    "/password_hash",
                    format!(
                        "password_hash of `{}` is not an argon2 hash in PHC form",
                        self.id
                    ),
                )
                .help(
                    "make one with `onboard serve --hash-password` (reads the password from stdin)",
                ),
            ),
            None if !idp => out.push(
                Finding::new(
                    "ONB0954",
                    "/password_hash",
                    format!(
                        "user `{}` cannot sign in: no password_hash and no identity_provider",
                        self.id
                    ),
                )
                .or_at("/id"),
            ),
            _ => {}
        }
        out
    }
}
