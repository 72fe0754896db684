//! Disclosure control: the one implementation every aggregate writer uses before a count
//! leaves the platform for commissioners (NHS convention, docs/population.md):
//!
//! * **primary suppression**: counts from 1 to [`DisclosurePolicy::suppress_up_to`]
//!   (default 7) are not published; zero is published as zero;
//! * **rounding**: every other published count is rounded to the nearest multiple of
//!   [`DisclosurePolicy::round_to`] (default 5, halves up);
//! * **secondary suppression**: further cells are suppressed until no suppressed cell
//!   can be recovered from the published cells and the table's row or column totals;
//! * **rates** computed from a suppressed count are suppressed too ([`rate_publishable`]).
//!
//! A table is a grid of counts with its margins ([`CountTable`]): a one-way breakdown is
//! one row whose total is the grand total; a two-way table has row totals, column totals
//! and the grand total. Whether a suppressed cell is recoverable is exact linear algebra
//! on the table's structure: with the totals negated, every line of the extended table
//! sums to zero, so the unknown (suppressed) cells are determined exactly when their cell
//! is a bridge of the graph whose nodes are the constrained lines and whose edges are the
//! suppressed cells ([`recoverable`]). Secondary suppression adds, for each such cell, the
//! cheapest path of further cells (smallest counts first, totals last) that closes a
//! cycle through it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The disclosure-control settings; the defaults are the NHS convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisclosurePolicy {
    /// Counts from 1 up to this value are suppressed (default 7).
    #[serde(default = "default_suppress_up_to")]
    pub suppress_up_to: u64,
    /// Published counts are rounded to the nearest multiple of this (default 5; 1 = no rounding).
    #[serde(default = "default_round_to")]
    pub round_to: u64,
    /// Suppress further cells so that no suppressed cell can be recovered from its row or
    /// column totals (default true).
    #[serde(default = "default_true")]
    pub secondary: bool,
}

fn default_suppress_up_to() -> u64 {
    7
}
fn default_round_to() -> u64 {
    5
}
fn default_true() -> bool {
    true
}

impl Default for DisclosurePolicy {
    fn default() -> Self {
        DisclosurePolicy {
            suppress_up_to: default_suppress_up_to(),
            round_to: default_round_to(),
            secondary: true,
        }
    }
}

/// Why a cell is not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// The count is from 1 to `suppress_up_to`.
    Primary,
    /// The rest of its group (denominator minus count) is from 1 to `suppress_up_to`.
    Complement,
    /// The caller suppressed it because it is suppressed in another published table.
    Linked,
    /// Suppressed so that another suppressed cell cannot be recovered from the totals.
    Secondary,
}

impl Suppression {
    /// The status text used in the tidy outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Primary => "suppressed_primary",
            Suppression::Complement => "suppressed_complement",
            Suppression::Linked => "suppressed_linked",
            Suppression::Secondary => "suppressed_secondary",
        }
    }
}

/// A count as published: its rounded value, or why it is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    Published(u64),
    Suppressed(Suppression),
}

impl Cell {
    /// The published (rounded) value, if any.
    pub fn value(self) -> Option<u64> {
        match self {
            Cell::Published(v) => Some(v),
            Cell::Suppressed(_) => None,
        }
    }
    pub fn is_suppressed(self) -> bool {
        matches!(self, Cell::Suppressed(_))
    }
    /// `published` or the suppression's status text.
    pub fn status(self) -> &'static str {
        match self {
            Cell::Published(_) => "published",
            Cell::Suppressed(s) => s.as_str(),
        }
    }
}

/// Which totals of a table are published beside its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Margins {
    /// Each row's total (a one-way breakdown is one row: its total is the grand total).
    RowTotals,
    /// Row totals, column totals and the grand total.
    Both,
}

/// A place in a table: a cell or one of the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellRef {
    Interior(usize, usize),
    RowTotal(usize),
    ColTotal(usize),
    Grand,
}

/// The true counts of a table (row-major), with the margins that will be published.
#[derive(Debug, Clone, PartialEq)]
pub struct CountTable {
    pub rows: usize,
    pub cols: usize,
    pub counts: Vec<u64>,
    pub margins: Margins,
}

/// A problem with a table handed to [`protect`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisclosureError {
    #[error("a {rows}×{cols} table needs {} counts, got {got}", rows * cols)]
    Shape {
        rows: usize,
        cols: usize,
        got: usize,
    },
    #[error("disclosure policy: `round_to` must be at least 1")]
    RoundTo,
    #[error("{what} has {got} entries for a table with {expected}")]
    Length {
        what: &'static str,
        got: usize,
        expected: usize,
    },
}

impl CountTable {
    /// A one-way breakdown: the groups' counts in one row; its total is the grand total.
    pub fn one_way(counts: Vec<u64>) -> CountTable {
        CountTable {
            rows: 1,
            cols: counts.len(),
            counts,
            margins: Margins::RowTotals,
        }
    }
    /// A two-way table with all margins.
    pub fn two_way(rows: usize, cols: usize, counts: Vec<u64>) -> CountTable {
        CountTable {
            rows,
            cols,
            counts,
            margins: Margins::Both,
        }
    }
    fn count(&self, at: CellRef) -> u64 {
        match at {
            CellRef::Interior(r, c) => self.counts[r * self.cols + c],
            CellRef::RowTotal(r) => self.counts[r * self.cols..(r + 1) * self.cols].iter().sum(),
            CellRef::ColTotal(c) => (0..self.rows).map(|r| self.counts[r * self.cols + c]).sum(),
            CellRef::Grand => self.counts.iter().sum(),
        }
    }
    /// Every place of the table in a fixed order: cells, row totals, column totals, grand.
    fn places(&self) -> Vec<CellRef> {
        let mut v: Vec<CellRef> = (0..self.rows)
            .flat_map(|r| (0..self.cols).map(move |c| CellRef::Interior(r, c)))
            .collect();
        v.extend((0..self.rows).map(CellRef::RowTotal));
        if self.margins == Margins::Both {
            v.extend((0..self.cols).map(CellRef::ColTotal));
            v.push(CellRef::Grand);
        }
        v
    }
}

/// A table as published: every cell and total, rounded or suppressed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectedTable {
    pub rows: usize,
    pub cols: usize,
    pub margins: Margins,
    /// Row-major, `rows × cols`.
    pub cells: Vec<Cell>,
    pub row_totals: Vec<Cell>,
    /// Empty unless the margins are [`Margins::Both`].
    pub col_totals: Vec<Cell>,
    /// The grand total (for a one-way table, the same as its row total).
    pub grand: Cell,
}

impl ProtectedTable {
    /// The published form of one place.
    pub fn get(&self, at: CellRef) -> Cell {
        match at {
            CellRef::Interior(r, c) => self.cells[r * self.cols + c],
            CellRef::RowTotal(r) => self.row_totals[r],
            CellRef::ColTotal(c) => self.col_totals[c],
            CellRef::Grand => self.grand,
        }
    }
    fn set(&mut self, at: CellRef, cell: Cell) {
        match at {
            CellRef::Interior(r, c) => self.cells[r * self.cols + c] = cell,
            CellRef::RowTotal(r) => self.row_totals[r] = cell,
            CellRef::ColTotal(c) => self.col_totals[c] = cell,
            CellRef::Grand => self.grand = cell,
        }
        if self.margins == Margins::RowTotals && matches!(at, CellRef::RowTotal(0)) {
            self.grand = cell;
        }
    }
    /// Every place in the fixed order of the table.
    pub fn places(&self) -> Vec<CellRef> {
        CountTable {
            rows: self.rows,
            cols: self.cols,
            counts: Vec::new(),
            margins: self.margins,
        }
        .places()
    }
}

impl DisclosurePolicy {
    /// A policy that cannot work (rounding to 0).
    pub fn check(&self) -> Result<(), DisclosureError> {
        if self.round_to == 0 {
            return Err(DisclosureError::RoundTo);
        }
        Ok(())
    }
    /// `n` rounded to the nearest multiple of `round_to`, halves up.
    pub fn round(&self, n: u64) -> u64 {
        let b = self.round_to.max(1);
        (n + b / 2) / b * b
    }
    /// Whether `n` is a count that must not be published (1 ..= `suppress_up_to`).
    pub fn is_small(&self, n: u64) -> bool {
        n >= 1 && n <= self.suppress_up_to
    }
    /// One count on its own: primary suppression and rounding (no table around it).
    pub fn count(&self, n: u64) -> Cell {
        if self.is_small(n) {
            Cell::Suppressed(Suppression::Primary)
        } else {
            Cell::Published(self.round(n))
        }
    }
}

/// Protect a table: primary suppression, rounding, then (if the policy says so)
/// secondary suppression until [`recoverable`] finds nothing.
pub fn protect(
    policy: &DisclosurePolicy,
    table: &CountTable,
) -> Result<ProtectedTable, DisclosureError> {
    protect_with(policy, table, &[])
}

/// [`protect`], with places the caller already knows must be suppressed (a count that is
/// suppressed in another published table, or whose complement is small): they are
/// suppressed with their reason before secondary suppression runs.
pub fn protect_with(
    policy: &DisclosurePolicy,
    table: &CountTable,
    forced: &[(CellRef, Suppression)],
) -> Result<ProtectedTable, DisclosureError> {
    protect_preferring(policy, table, forced, &[])
}

/// [`protect_with`], where secondary suppression takes the `preferred` places first (cells
/// whose statistics are unpublishable anyway, e.g. a group whose population is
/// suppressed elsewhere), before the smallest counts.
pub fn protect_preferring(
    policy: &DisclosurePolicy,
    table: &CountTable,
    forced: &[(CellRef, Suppression)],
    preferred: &[CellRef],
) -> Result<ProtectedTable, DisclosureError> {
    policy.check()?;
    if table.counts.len() != table.rows * table.cols {
        return Err(DisclosureError::Shape {
            rows: table.rows,
            cols: table.cols,
            got: table.counts.len(),
        });
    }
    let mut out = primary(policy, table);
    for (at, why) in forced {
        if valid_place(table, *at) && !out.get(*at).is_suppressed() {
            out.set(*at, Cell::Suppressed(*why));
        }
    }
    if policy.secondary {
        secondary(policy, table, &mut out, preferred);
    }
    Ok(out)
}

fn valid_place(t: &CountTable, at: CellRef) -> bool {
    match at {
        CellRef::Interior(r, c) => r < t.rows && c < t.cols,
        CellRef::RowTotal(r) => r < t.rows,
        CellRef::ColTotal(c) => c < t.cols && t.margins == Margins::Both,
        CellRef::Grand => true,
    }
}

fn primary(policy: &DisclosurePolicy, t: &CountTable) -> ProtectedTable {
    let cells = t.counts.iter().map(|n| policy.count(*n)).collect();
    let row_totals = (0..t.rows)
        .map(|r| policy.count(t.count(CellRef::RowTotal(r))))
        .collect();
    let col_totals = match t.margins {
        Margins::Both => (0..t.cols)
            .map(|c| policy.count(t.count(CellRef::ColTotal(c))))
            .collect(),
        Margins::RowTotals => Vec::new(),
    };
    ProtectedTable {
        rows: t.rows,
        cols: t.cols,
        margins: t.margins,
        cells,
        row_totals,
        col_totals,
        grand: policy.count(t.count(CellRef::Grand)),
    }
}

/// Node ids of the line graph: rows, columns, the total row, the total column; lines
/// without a published total are all one unconstrained node (`ground`).
struct Lines {
    rows: usize,
    cols: usize,
    margins: Margins,
}

impl Lines {
    fn ground(&self) -> usize {
        self.rows + self.cols + 2
    }
    fn nodes(&self) -> usize {
        self.ground() + 1
    }
    fn row(&self, r: usize) -> usize {
        r
    }
    fn col(&self, c: usize) -> usize {
        match self.margins {
            Margins::Both => self.rows + c,
            Margins::RowTotals => self.ground(),
        }
    }
    fn total_row(&self) -> usize {
        match self.margins {
            Margins::Both => self.rows + self.cols,
            Margins::RowTotals => self.ground(),
        }
    }
    fn total_col(&self) -> usize {
        match self.margins {
            Margins::Both => self.rows + self.cols + 1,
            Margins::RowTotals => self.ground(),
        }
    }
    /// The two lines a place lies on.
    fn ends(&self, at: CellRef) -> (usize, usize) {
        match at {
            CellRef::Interior(r, c) => (self.row(r), self.col(c)),
            CellRef::RowTotal(r) => (self.row(r), self.total_col()),
            CellRef::ColTotal(c) => (self.total_row(), self.col(c)),
            CellRef::Grand => (self.total_row(), self.total_col()),
        }
    }
}

fn lines_of(t: &ProtectedTable) -> Lines {
    Lines {
        rows: t.rows,
        cols: t.cols,
        margins: t.margins,
    }
}

/// The suppressed places whose value follows exactly from the published cells and totals
/// (bridges of the graph of suppressed places). Empty for a safe table. In a one-way
/// table the grand total is its row total, so only [`CellRef::RowTotal`] is reported.
pub fn recoverable(t: &ProtectedTable) -> Vec<CellRef> {
    let lines = lines_of(t);
    let suppressed: Vec<CellRef> = places_of(t)
        .into_iter()
        .filter(|p| t.get(*p).is_suppressed())
        .collect();
    suppressed
        .iter()
        .copied()
        .filter(|p| is_bridge(&lines, &suppressed, *p))
        .collect()
}

/// The places of a table, without the duplicate grand total of a one-way table.
fn places_of(t: &ProtectedTable) -> Vec<CellRef> {
    t.places()
}

fn is_bridge(lines: &Lines, suppressed: &[CellRef], edge: CellRef) -> bool {
    let (a, b) = lines.ends(edge);
    if a == b {
        return false;
    }
    let mut dsu = Dsu::new(lines.nodes());
    for p in suppressed.iter().filter(|p| **p != edge) {
        let (u, v) = lines.ends(*p);
        dsu.union(u, v);
    }
    dsu.find(a) != dsu.find(b)
}

struct Dsu(Vec<usize>);

impl Dsu {
    fn new(n: usize) -> Dsu {
        Dsu((0..n).collect())
    }
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut y = x;
        while self.0[y] != r {
            let next = self.0[y];
            self.0[y] = r;
            y = next;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra] = rb;
        }
    }
}

/// The price of suppressing a place as a complement: small non-zero counts first, zeros
/// after them, totals last.
fn price(policy: &DisclosurePolicy, t: &CountTable, at: CellRef, preferred: &[CellRef]) -> u128 {
    if preferred.contains(&at) {
        return 0;
    }
    let n = t.count(at) as u128;
    let base = match at {
        CellRef::Interior(..) => 0,
        _ => 1u128 << 64,
    };
    let zero = if n == 0 {
        policy.suppress_up_to as u128 + 1
    } else {
        0
    };
    base + n + zero
}

fn secondary(
    policy: &DisclosurePolicy,
    table: &CountTable,
    out: &mut ProtectedTable,
    preferred: &[CellRef],
) {
    let lines = lines_of(out);
    let places = places_of(out);
    // Each round suppresses at least one more place, so this ends.
    for _ in 0..=places.len() {
        let Some(bridge) = recoverable(out).into_iter().next() else {
            return;
        };
        match cheapest_cycle(policy, table, out, (&lines, &places, preferred), bridge) {
            Some(path) if !path.is_empty() => {
                for p in path {
                    out.set(p, Cell::Suppressed(Suppression::Secondary));
                }
            }
            _ => {
                // No way round the cell: suppress the whole table.
                for p in &places {
                    if !out.get(*p).is_suppressed() {
                        out.set(*p, Cell::Suppressed(Suppression::Secondary));
                    }
                }
                return;
            }
        }
    }
}

/// The unsuppressed places on the cheapest path between the two lines of `bridge` that
/// does not use it (Dijkstra; suppressed places cost nothing).
fn cheapest_cycle(
    policy: &DisclosurePolicy,
    table: &CountTable,
    out: &ProtectedTable,
    (lines, places, preferred): (&Lines, &[CellRef], &[CellRef]),
    bridge: CellRef,
) -> Option<Vec<CellRef>> {
    let n = lines.nodes();
    let mut adj: Vec<Vec<(usize, CellRef, u128)>> = vec![Vec::new(); n];
    for p in places.iter().copied().filter(|p| *p != bridge) {
        let (u, v) = lines.ends(p);
        if u == v {
            continue;
        }
        let w = if out.get(p).is_suppressed() {
            0
        } else {
            price(policy, table, p, preferred) + 1
        };
        adj[u].push((v, p, w));
        adj[v].push((u, p, w));
    }
    let (src, dst) = lines.ends(bridge);
    let mut dist = vec![u128::MAX; n];
    let mut prev: Vec<Option<(usize, CellRef)>> = vec![None; n];
    let mut done = vec![false; n];
    dist[src] = 0;
    loop {
        let u = (0..n)
            .filter(|i| !done[*i] && dist[*i] != u128::MAX)
            .min_by_key(|i| dist[*i])?;
        if u == dst {
            break;
        }
        done[u] = true;
        for (v, p, w) in &adj[u] {
            let d = dist[u].saturating_add(*w);
            if d < dist[*v] {
                dist[*v] = d;
                prev[*v] = Some((u, *p));
            }
        }
    }
    let mut path = Vec::new();
    let mut at = dst;
    while let Some((u, p)) = prev[at] {
        if !out.get(p).is_suppressed() {
            path.push(p);
        }
        at = u;
    }
    Some(path)
}

/// A one-way breakdown protected: each group's count and the total, with the counts
/// whose complement (`denominators[i] − counts[i]`) is small suppressed too when
/// denominators are given.
pub fn protect_breakdown(
    policy: &DisclosurePolicy,
    counts: &[u64],
    denominators: Option<&[u64]>,
) -> Result<(Vec<Cell>, Cell), DisclosureError> {
    protect_breakdown_preferring(policy, counts, denominators, &[])
}

/// [`protect_breakdown`], where secondary suppression takes the groups marked in
/// `preferred` first (e.g. groups whose denominator is suppressed, so their rates are
/// unpublishable anyway).
pub fn protect_breakdown_preferring(
    policy: &DisclosurePolicy,
    counts: &[u64],
    denominators: Option<&[u64]>,
    preferred: &[bool],
) -> Result<(Vec<Cell>, Cell), DisclosureError> {
    let mut forced = Vec::new();
    if let Some(d) = denominators {
        if d.len() != counts.len() {
            return Err(DisclosureError::Length {
                what: "denominators",
                got: d.len(),
                expected: counts.len(),
            });
        }
        for (i, (n, den)) in counts.iter().zip(d).enumerate() {
            if policy.is_small(den.saturating_sub(*n)) && *n > 0 {
                forced.push((CellRef::Interior(0, i), Suppression::Complement));
            }
        }
        let (tn, td) = (counts.iter().sum::<u64>(), d.iter().sum::<u64>());
        if policy.is_small(td.saturating_sub(tn)) && tn > 0 {
            forced.push((CellRef::RowTotal(0), Suppression::Complement));
        }
    }
    let prefer: Vec<CellRef> = (0..counts.len())
        .filter(|i| preferred.get(*i).copied().unwrap_or(false))
        .map(|i| CellRef::Interior(0, i))
        .collect();
    let t = protect_preferring(
        policy,
        &CountTable::one_way(counts.to_vec()),
        &forced,
        &prefer,
    )?;
    Ok((t.cells, t.grand))
}

/// Whether a rate (or any statistic) computed from these counts may be published: never
/// when one of them is suppressed.
pub fn rate_publishable(numerator: Cell, denominator: Cell) -> bool {
    !numerator.is_suppressed() && !denominator.is_suppressed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Independent check: a suppressed place is determined when its unit vector lies in
    /// the row space of the line constraints over the unknowns (Gaussian elimination).
    fn determined_by_rank(t: &ProtectedTable) -> Vec<CellRef> {
        let places = t.places();
        let unknown: Vec<CellRef> = places
            .iter()
            .copied()
            .filter(|p| t.get(*p).is_suppressed())
            .collect();
        // Constraints: each row with its row total; each column and the total row with
        // the grand total when all margins are published.
        let mut eqs: Vec<Vec<CellRef>> = Vec::new();
        for r in 0..t.rows {
            let mut e: Vec<CellRef> = (0..t.cols).map(|c| CellRef::Interior(r, c)).collect();
            e.push(CellRef::RowTotal(r));
            eqs.push(e);
        }
        if t.margins == Margins::Both {
            for c in 0..t.cols {
                let mut e: Vec<CellRef> = (0..t.rows).map(|r| CellRef::Interior(r, c)).collect();
                e.push(CellRef::ColTotal(c));
                eqs.push(e);
            }
            let mut e: Vec<CellRef> = (0..t.cols).map(CellRef::ColTotal).collect();
            e.push(CellRef::Grand);
            eqs.push(e);
            let mut e: Vec<CellRef> = (0..t.rows).map(CellRef::RowTotal).collect();
            e.push(CellRef::Grand);
            eqs.push(e);
        }
        let m: Vec<Vec<f64>> = eqs
            .iter()
            .map(|e| {
                unknown
                    .iter()
                    .map(|u| if e.contains(u) { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        let base = rank(m.clone());
        unknown
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let mut m2 = m.clone();
                m2.push(
                    (0..unknown.len())
                        .map(|j| if j == *i { 1.0 } else { 0.0 })
                        .collect(),
                );
                rank(m2) == base
            })
            .map(|(_, u)| *u)
            .collect()
    }

    fn rank(mut m: Vec<Vec<f64>>) -> usize {
        let cols = m.first().map_or(0, |r| r.len());
        let mut r = 0;
        for c in 0..cols {
            let Some(p) = (r..m.len()).find(|i| m[*i][c].abs() > 1e-9) else {
                continue;
            };
            m.swap(r, p);
            for i in 0..m.len() {
                if i != r && m[i][c].abs() > 1e-9 {
                    let f = m[i][c] / m[r][c];
                    for k in 0..cols {
                        m[i][k] -= f * m[r][k];
                    }
                }
            }
            r += 1;
        }
        r
    }

    fn check_safe(policy: &DisclosurePolicy, t: &ProtectedTable) {
        let all = t
            .cells
            .iter()
            .chain(&t.row_totals)
            .chain(&t.col_totals)
            .chain(std::iter::once(&t.grand));
        for c in all {
            if let Some(v) = c.value() {
                assert!(!policy.is_small(v), "published {v}");
                assert_eq!(v % policy.round_to, 0, "{v} not rounded");
            }
        }
        assert!(recoverable(t).is_empty(), "{t:?}");
        assert!(determined_by_rank(t).is_empty(), "{t:?}");
    }

    #[test]
    fn rounds_to_nearest_five_and_suppresses_one_to_seven() {
        let p = DisclosurePolicy::default();
        let got: Vec<Cell> = [0, 1, 7, 8, 10, 12, 13, 17, 18, 102]
            .map(|n| p.count(n))
            .into();
        use Cell::*;
        let s = Suppressed(Suppression::Primary);
        assert_eq!(
            got,
            vec![
                Published(0),
                s,
                s,
                Published(10),
                Published(10),
                Published(10),
                Published(15),
                Published(15),
                Published(20),
                Published(100)
            ]
        );
    }

    #[test]
    fn a_lone_small_group_takes_a_second_one_with_it() {
        let p = DisclosurePolicy::default();
        let (cells, total) = protect_breakdown(&p, &[3, 40, 55, 120], None).unwrap();
        assert_eq!(cells[0], Cell::Suppressed(Suppression::Primary));
        assert_eq!(cells[1], Cell::Suppressed(Suppression::Secondary));
        assert_eq!(total, Cell::Published(220));
        assert!(cells[2..].iter().all(|c| !c.is_suppressed()));
    }

    #[test]
    fn a_two_way_table_closes_a_cycle() {
        let p = DisclosurePolicy::default();
        let t = CountTable::two_way(3, 3, vec![2, 30, 40, 50, 60, 70, 80, 90, 100]);
        let out = protect(&p, &t).unwrap();
        check_safe(&p, &out);
        let n = out.cells.iter().filter(|c| c.is_suppressed()).count();
        assert_eq!(n, 4, "{out:?}");
    }

    #[test]
    fn a_small_complement_is_suppressed() {
        let p = DisclosurePolicy::default();
        let (cells, _) = protect_breakdown(&p, &[98, 50, 60], Some(&[100, 200, 300])).unwrap();
        assert_eq!(cells[0], Cell::Suppressed(Suppression::Complement));
        assert!(cells[1].is_suppressed());
    }

    #[test]
    fn rates_from_suppressed_counts_are_not_published() {
        let p = DisclosurePolicy::default();
        assert!(!rate_publishable(p.count(3), p.count(100)));
        assert!(!rate_publishable(p.count(30), p.count(5)));
        assert!(rate_publishable(p.count(30), p.count(100)));
    }

    #[test]
    fn bad_shapes_and_policies_are_errors() {
        let p = DisclosurePolicy::default();
        let t = CountTable::two_way(2, 2, vec![1, 2, 3]);
        assert!(matches!(
            protect(&p, &t),
            Err(DisclosureError::Shape { .. })
        ));
        let bad = DisclosurePolicy { round_to: 0, ..p };
        assert_eq!(bad.check(), Err(DisclosureError::RoundTo));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
        #[test]
        fn one_way_breakdowns_are_safe(counts in proptest::collection::vec(
            prop_oneof![0u64..10, 0u64..40, 0u64..2000], 1..9)) {
            let p = DisclosurePolicy::default();
            let out = protect(&p, &CountTable::one_way(counts)).unwrap();
            check_safe(&p, &out);
        }

        #[test]
        fn two_way_tables_are_safe(rows in 1usize..5, cols in 1usize..6,
            seed in proptest::collection::vec(prop_oneof![0u64..10, 0u64..60, 0u64..900], 30)) {
            let p = DisclosurePolicy::default();
            let counts: Vec<u64> = seed.into_iter().take(rows * cols).collect();
            let t = CountTable::two_way(rows, cols, counts);
            let out = protect(&p, &t).unwrap();
            check_safe(&p, &out);
        }

        #[test]
        fn published_values_are_the_rounded_truth(counts in proptest::collection::vec(0u64..500, 1..8)) {
            let p = DisclosurePolicy::default();
            let t = CountTable::one_way(counts.clone());
            let out = protect(&p, &t).unwrap();
            for (c, n) in out.cells.iter().zip(&counts) {
                if let Some(v) = c.value() {
                    prop_assert!(v.abs_diff(*n) <= 2);
                }
            }
        }
    }
}
