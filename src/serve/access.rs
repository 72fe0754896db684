//! The access rules, in one place: what each role may reach ([`Need`] of every route in
//! [`ROUTES`]), which persons a principal may see, and how counts are shown (through
//! disclosure control for commissioners).

use serde::Serialize;

use super::auth::Principal;
use super::config::Role;
use crate::disclosure::{Cell, DisclosurePolicy};

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
        "/favicon.ico",
        Need::Public,
        false,
        "no icon (204), so browsers are not sent to sign-in for it",
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

/// How a role's counts are shown: unchanged for roles that see patient rows anyway,
/// through [`crate::disclosure`] (the ICS file's `population.disclosure` policy) for
/// commissioners. A count the disclosure function cannot protect is withheld.
#[derive(Debug, Clone, Copy)]
pub struct Counting<'a> {
    pub role: Role,
    pub policy: &'a DisclosurePolicy,
}

/// A protected two-way table: rows × columns with row, column and grand totals.
#[derive(Debug, Clone)]
pub struct TableCounts {
    pub cells: Vec<Vec<Count>>,
    pub row_totals: Vec<Count>,
    pub col_totals: Vec<Count>,
    pub grand: Count,
}

fn shown(c: Cell) -> Count {
    Count(c.value())
}

impl Counting<'_> {
    fn controlled(&self) -> bool {
        self.role == Role::Commissioner
    }

    /// Counts standing on their own (no table around them).
    pub fn lone(&self, raw: &[u64]) -> Vec<Count> {
        if !self.controlled() {
            return raw.iter().map(|n| Count(Some(*n))).collect();
        }
        raw.iter().map(|n| shown(self.policy.count(*n))).collect()
    }

    /// A one-way breakdown and its total.
    pub fn breakdown(&self, raw: &[u64]) -> (Vec<Count>, Count) {
        if !self.controlled() {
            return (self.lone(raw), Count(Some(raw.iter().sum())));
        }
        match crate::disclosure::protect_breakdown(self.policy, raw, None) {
            Ok((cells, total)) => (cells.into_iter().map(shown).collect(), shown(total)),
            Err(_) => (vec![Count(None); raw.len()], Count(None)),
        }
    }

    /// A two-way table (row-major counts) with its margins, protected as one table so no
    /// suppressed cell can be recovered from the totals.
    pub fn table(&self, rows: usize, cols: usize, raw: &[u64]) -> TableCounts {
        let of = |v: &[Count]| v.chunks(cols.max(1)).map(<[Count]>::to_vec).collect();
        if !self.controlled() {
            let row_totals = raw
                .chunks(cols.max(1))
                .map(|r| Count(Some(r.iter().sum())))
                .collect();
            let col_totals = (0..cols)
                .map(|c| Count(Some((0..rows).map(|r| raw[r * cols + c]).sum())))
                .collect();
            return TableCounts {
                cells: of(&self.lone(raw)),
                row_totals,
                col_totals,
                grand: Count(Some(raw.iter().sum())),
            };
        }
        let table = crate::disclosure::CountTable::two_way(rows, cols, raw.to_vec());
        match crate::disclosure::protect(self.policy, &table) {
            Ok(t) => TableCounts {
                cells: of(&t.cells.iter().map(|c| shown(*c)).collect::<Vec<_>>()),
                row_totals: t.row_totals.into_iter().map(shown).collect(),
                col_totals: t.col_totals.into_iter().map(shown).collect(),
                grand: shown(t.grand),
            },
            Err(_) => TableCounts {
                cells: vec![vec![Count(None); cols]; rows],
                row_totals: vec![Count(None); rows],
                col_totals: vec![Count(None); cols],
                grand: Count(None),
            },
        }
    }
}

/// Whether this principal may see this person's row.
pub fn may_see_person(who: &Principal, practice: Option<&str>) -> bool {
    match who.role {
        Role::Commissioner => false,
        Role::Clinician => practice.is_some_and(|p| who.practices.iter().any(|x| x == p)),
        Role::Analyst | Role::Admin => true,
    }
}
