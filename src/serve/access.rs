//! The access rules, in one place: what each role may reach ([`Need`] of every route in
//! [`ROUTES`]), which persons a principal may see, and how counts are shown (through
//! disclosure control for commissioners).

use serde::Serialize;

use super::auth::Principal;
use super::config::Role;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// Nothing: the sign-in page, the health check, the stylesheet.
    Public,
    /// Any signed-in role: aggregates (commissioners see them disclosure-controlled).
    Aggregates,
    /// Patient-level rows: clinicians (their practices), analysts, admins.
    PatientRows,
    /// Admins only.
    Admin,
}

impl Need {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Need::Public | Need::Aggregates => true,
            Need::PatientRows => role != Role::Commissioner,
            Need::Admin => role == Role::Admin,
        }
    }
}

/// One route of the app.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
    /// Writes an audit record (patient-level data).
    pub audited: bool,
    pub what: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    need: Need,
    audited: bool,
    what: &'static str,
) -> Route {
    Route {
        method,
        path,
        need,
        audited,
        what,
    }
}

/// Every route, as docs/serve.md lists them.
pub const ROUTES: &[Route] = &[
    r(
        "GET",
        "/healthz",
        Need::Public,
        false,
        "liveness: `ok`, no data",
    ),
    r(
        "GET",
        "/static/app.css",
        Need::Public,
        false,
        "the stylesheet",
    ),
    r(
        "GET",
        "/login",
        Need::Public,
        false,
        "sign-in form (sets the sign-in CSRF cookie)",
    ),
    r(
        "POST",
        "/login",
        Need::Public,
        false,
        "sign in a local account (CSRF token required)",
    ),
    r(
        "POST",
        "/logout",
        Need::Aggregates,
        false,
        "sign out (CSRF token required)",
    ),
    r("GET", "/", Need::Aggregates, false, "redirects to /risk"),
    r(
        "GET",
        "/risk",
        Need::Aggregates,
        false,
        "risk pyramid, deciles and a breakdown with drill-down",
    ),
    r(
        "GET",
        "/population",
        Need::Aggregates,
        false,
        "population views from the population stage's outputs",
    ),
    r(
        "GET",
        "/quality",
        Need::Aggregates,
        false,
        "data quality and linkage per provider",
    ),
    r(
        "GET",
        "/cohorts",
        Need::PatientRows,
        true,
        "cohort list of a band or decile",
    ),
    r(
        "GET",
        "/patients/{ref}",
        Need::PatientRows,
        true,
        "patient detail: explanation card and referral status",
    ),
    r(
        "GET",
        "/admin/audit",
        Need::Admin,
        false,
        "the latest audit records",
    ),
    r(
        "GET",
        "/api/v1/me",
        Need::Aggregates,
        false,
        "the signed-in user, role and scope",
    ),
    r(
        "GET",
        "/api/v1/risk/distribution",
        Need::Aggregates,
        false,
        "the distribution page as JSON",
    ),
    r(
        "GET",
        "/api/v1/population",
        Need::Aggregates,
        false,
        "the population tables as JSON",
    ),
    r(
        "GET",
        "/api/v1/quality",
        Need::Aggregates,
        false,
        "data quality and linkage per provider as JSON",
    ),
    r(
        "GET",
        "/api/v1/cohort",
        Need::PatientRows,
        true,
        "cohort rows as JSON",
    ),
    r(
        "GET",
        "/api/v1/patients/{ref}",
        Need::PatientRows,
        true,
        "one patient's card as JSON",
    ),
    r(
        "GET",
        "/api/v1/audit",
        Need::Admin,
        false,
        "the latest audit records as JSON",
    ),
];

/// A count as shown: the number, or `null` when disclosure control suppressed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Count(pub Option<u64>);

impl Count {
    pub fn text(self) -> String {
        match self.0 {
            Some(n) => n.to_string(),
            None => "*".into(),
        }
    }
}

/// Counts as a role may see them: unchanged for roles that see patient rows anyway,
/// through the disclosure-control function for commissioners.
pub fn counts(role: Role, raw: &[u64]) -> Vec<Count> {
    match role {
        Role::Commissioner => disclosed(raw),
        _ => raw.iter().map(|n| Count(Some(*n))).collect(),
    }
}

/// Commissioners' counts. Until the disclosure-control function of the population
/// stage is part of this build, every count is withheld (fail closed).
fn disclosed(raw: &[u64]) -> Vec<Count> {
    raw.iter().map(|_| Count(None)).collect()
}

/// Whether this principal may see this person's row.
pub fn may_see_person(who: &Principal, practice: Option<&str>) -> bool {
    match who.role {
        Role::Commissioner => false,
        Role::Clinician => practice.is_some_and(|p| who.practices.iter().any(|x| x == p)),
        Role::Analyst | Role::Admin => true,
    }
}
