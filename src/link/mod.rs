//! Record linkage: the candidate person keys of a published run joined into persons,
//! as the ICS file's `linkage:` section declares (`config`).
//!
//! 1. Deterministic: rows with one valid NHS number share a candidate key already;
//!    a row carrying both a valid NHS number and a provider-local id joins the local
//!    id's key to the NHS key. Rows are classed by tier (NHS number + DOB, NHS number
//!    + DOB within tolerance + sex, NHS number with a conflicting DOB, local id).
//! 2. Training (`model`): u from random pairs, m by EM, term frequencies.
//! 3. Probabilistic: clusters without an NHS number against the rows blocked with
//!    them; each such row proposes its best match. Proposals at or above the link
//!    threshold are merged best first under guards (two different valid NHS numbers
//!    never merge; a merge may not join incompatible dates of birth, which stops
//!    chains); pairs in the review band go to a clerical-review queue with their
//!    explanation.
//! 4. Stable person keys (keyed hash of the cluster's NHS number, else of its
//!    smallest candidate key), the summary for the linkage report (`report`), and the
//!    spine with survivorship (`spine`).

pub mod config;
pub mod records;
pub mod model;
pub mod spine;
pub mod report;
pub mod stage;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::pseudonymise::Key;
use config::LinkageSettings;
pub use model::Contribution;
use model::{Context, Model};
use records::{NONE, Records, key_bits, key_text};
pub use report::report_html;
pub use spine::build_spine;

/// Blocks larger than this are not compared (counted in the summary): a placeholder
/// value such as a default date of birth would otherwise make the pass quadratic.
const MAX_BLOCK: usize = 20_000;

/// Most pairs kept in the clerical-review queue of one run.
const REVIEW_LIMIT: usize = 100_000;

/// What linkage did (`linkage/summary.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkSummary {
    pub identity_rows: usize,
    /// Identity rows without any candidate key (not linkable).
    pub keyless_rows: usize,
    pub candidate_keys: usize,
    pub persons: usize,
    /// Persons that kept the key they had in the previous link map.
    pub person_keys_kept: usize,
    /// Persons with a new key (first link, or not in the previous map).
    pub person_keys_new: usize,
    pub same_record_links: usize,
    pub candidate_pairs_scored: u64,
    pub probabilistic_links: usize,
    pub nhs_conflicts_refused: usize,
    /// Links refused because they would join incompatible dates of birth.
    pub chaining_refused: usize,
    /// Blocks skipped for holding more than 20,000 rows, by blocking rule.
    pub oversized_blocks: usize,
    /// Pairs between the review and link thresholds (written to clerical_review.ndjson).
    pub clerical_review_pairs: usize,
    /// Identity rows by provider and tier: `nhs_number_dob`, `nhs_number_dob_tolerant`,
    /// `nhs_number_dob_conflict`, `nhs_number_no_dob`, `local_id`, `probabilistic`,
    /// `unlinked`.
    pub rows_by_provider_and_tier: BTreeMap<String, BTreeMap<String, usize>>,
    /// Best match weight of each row of a cluster without an NHS number, in bins of 2
    /// (`"-4"` is [-4, -2)); rows with no candidate in any block are not counted.
    pub match_weight_histogram: BTreeMap<i32, usize>,
    /// Persons holding more than one valid NHS number (the guard keeps this at 0).
    pub persons_with_several_nhs_numbers: usize,
    /// Persons whose records hold incompatible dates of birth.
    pub persons_with_conflicting_dob: usize,
    /// Registered persons (clusters holding a GP-list record).
    pub registered_persons: usize,
    /// Share of registered persons whose GP record has a recorded ethnic category.
    pub ethnicity_recorded_before: f64,
    /// Share with a recorded ethnic category in any linked record.
    pub ethnicity_recorded_after: f64,
}

/// A pair sent to clerical review, with its explanation.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    pub key_a: String,
    pub key_b: String,
    pub total: f64,
    /// 2^total / (1 + 2^total).
    pub match_probability: f64,
    pub contributions: Vec<Contribution>,
}

/// The match probability of a match weight (log2 posterior odds).
pub fn probability(w: f64) -> f64 {
    1.0 / (1.0 + (-w).exp2())
}

/// The result of linkage.
pub struct Linked {
    /// The spine's `person` rows by survivorship.
    pub persons: spine::Persons,
    /// The spine's `address_period` rows (with a postcode → LSOA lookup).
    pub addresses: Option<spine::AddressPeriods>,
    /// Candidate key → person key, sorted.
    pub map: Vec<(u128, u128)>,
    pub summary: LinkSummary,
    pub review: Vec<ReviewItem>,
    pub model: Model,
}

/// Union–find with a guard: roots carry their valid NHS number and the dates of birth
/// the guard holds them to.
struct Clusters {
    parent: Vec<u32>,
    nhs: Vec<u32>,
    /// The dates of birth the guard holds a component to, as one or more alternatives
    /// separated by 0 (no date of birth is 0): normally one, every distinct date of
    /// birth of its rows except those of the smaller side of a direct link whose two
    /// rows disagreed on the date of birth (an outlier the model accepted). When the
    /// two sides of such a link are equally large, neither is known to be the outlier:
    /// both are kept as alternatives, and later links keep the alternatives they are
    /// compatible with.
    dobs: Vec<Vec<u32>>,
    /// Rows in each component.
    size: Vec<u32>,
}

/// Most alternative date-of-birth sets a component is held to (beyond, the first ones
/// are kept).
const MAX_DOB_ALTERNATIVES: usize = 4;

impl Clusters {
    fn new(n: usize) -> Clusters {
        Clusters {
            parent: (0..n as u32).collect(),
            nhs: vec![NONE; n],
            dobs: vec![vec![]; n],
            size: vec![1; n],
        }
    }
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = p;
            x = p;
        }
        x
    }
}

/// The alternative date-of-birth sets of a component (none when it has no date of
/// birth).
fn alternatives(dobs: &[u32]) -> impl Iterator<Item = &[u32]> {
    dobs.split(|d| *d == 0).filter(|a| !a.is_empty())
}

/// Alternatives as one vector, 0-separated, duplicates (in order) dropped, at most
/// `MAX_DOB_ALTERNATIVES`.
fn join_alternatives(alts: Vec<Vec<u32>>) -> Vec<u32> {
    let mut seen: Vec<Vec<u32>> = Vec::new();
    for mut a in alts {
        a.sort_unstable();
        a.dedup();
        if !a.is_empty() && !seen.contains(&a) && seen.len() < MAX_DOB_ALTERNATIVES {
            seen.push(a);
        }
    }
    seen.join(&0)
}

/// The dates of birth a merge of two components through a link whose rows agree on the
/// date of birth is held to: each pair of alternatives (one of each side) whose dates
/// are all compatible, combined. None when no pair is (the merge would join
/// incompatible dates of birth).
fn joint_dobs(a: &[u32], b: &[u32], same_year: bool) -> Option<Vec<u32>> {
    if a.is_empty() || b.is_empty() {
        return Some(if a.is_empty() { b.to_vec() } else { a.to_vec() });
    }
    let mut out = Vec::new();
    for x in alternatives(a) {
        for y in alternatives(b) {
            let ok = x
                .iter()
                .all(|p| y.iter().all(|q| dob_compatible(*p, *q, same_year)));
            if ok {
                out.push(x.iter().chain(y).copied().collect());
            }
        }
    }
    (!out.is_empty()).then(|| join_alternatives(out))
}

/// Why a merge was refused.
enum Refused {
    Nhs,
    Dob,
}

/// The date-of-birth guard of one merge: whether the same year is compatible, and the
/// dates of birth of the two rows the link joins (row of `a`, row of `b`; 0 missing).
#[derive(Clone, Copy)]
struct DobGuard {
    same_year: bool,
    direct: (u32, u32),
}

/// Merge the clusters of `a` and `b`. With a date-of-birth guard, a link whose two rows
/// have compatible dates of birth (or one missing) may not join components holding
/// incompatible ones: a chain A–B–C through a record B that looks like both stops
/// where A's and C's dates of birth conflict. A link whose own two rows disagree on
/// the date of birth was scored above the threshold with that disagreement weighed by
/// the model (a mistyped or replaced date, everything else agreeing), so it stands;
/// the merged component is held to the larger side's dates of birth, or to either
/// side's (as alternatives) when the two are equally large.
fn union(c: &mut Clusters, a: u32, b: u32, dob_guard: Option<DobGuard>) -> Result<bool, Refused> {
    let (ra, rb) = (c.find(a), c.find(b));
    if ra == rb {
        return Ok(false);
    }
    let (na, nb) = (c.nhs[ra as usize], c.nhs[rb as usize]);
    if na != NONE && nb != NONE && na != nb {
        return Err(Refused::Nhs);
    }
    let direct_conflict =
        dob_guard.is_some_and(|g| !dob_compatible(g.direct.0, g.direct.1, g.same_year));
    let (da, db) = (&c.dobs[ra as usize], &c.dobs[rb as usize]);
    let (sa, sb) = (c.size[ra as usize], c.size[rb as usize]);
    let dobs = match dob_guard {
        Some(_) if direct_conflict => match sa.cmp(&sb) {
            std::cmp::Ordering::Greater => da.clone(),
            std::cmp::Ordering::Less => db.clone(),
            std::cmp::Ordering::Equal => join_alternatives(
                alternatives(da)
                    .chain(alternatives(db))
                    .map(<[u32]>::to_vec)
                    .collect(),
            ),
        },
        Some(g) => joint_dobs(da, db, g.same_year).ok_or(Refused::Dob)?,
        None => joint_dobs(da, db, true).unwrap_or_else(|| da.clone()),
    };
    // The larger component (by rows) is the root.
    let key = |r: u32, s: u32| (s, c.dobs[r as usize].len());
    let (root, child) = if key(ra, sa) >= key(rb, sb) {
        (ra, rb)
    } else {
        (rb, ra)
    };
    c.parent[child as usize] = root;
    c.size[root as usize] = sa + sb;
    c.nhs[root as usize] = if na != NONE { na } else { nb };
    c.dobs[child as usize] = Vec::new();
    c.dobs[root as usize] = dobs;
    Ok(true)
}

/// Two dates of birth (yyyymmdd) that can belong to one person: equal, day and month
/// swapped, one digit apart, two adjacent digits transposed (keying errors), or (when
/// allowed) the same year.
pub fn dob_compatible(a: u32, b: u32, same_year: bool) -> bool {
    if a == b || a == 0 || b == 0 {
        return true;
    }
    let digit = |v: u32, k: u32| v / 10u32.pow(k) % 10;
    let diff: Vec<u32> = (0..8).filter(|&k| digit(a, k) != digit(b, k)).collect();
    let transposed = matches!(diff.as_slice(), [i, j] if *j == i + 1
        && digit(a, *i) == digit(b, *j) && digit(a, *j) == digit(b, *i));
    model::swap(a) == b || diff.len() == 1 || transposed || (same_year && a / 10_000 == b / 10_000)
}

/// The identity rows with their deterministic clusters and the trained model.
pub struct Prepared {
    pub r: Records,
    /// Key id → deterministic cluster.
    key_cluster: Vec<u32>,
    /// Row → deterministic cluster.
    cluster: Vec<u32>,
    /// Cluster → valid NHS number or NONE.
    cluster_nhs: Vec<u32>,
    offsets: Vec<u32>,
    history: Vec<u32>,
    pub model: Model,
    same_record_links: usize,
    nhs_conflicts: usize,
}

impl Prepared {
    fn cx(&self) -> Context<'_> {
        Context {
            r: &self.r,
            cluster: &self.cluster,
            offsets: &self.offsets,
            history: &self.history,
        }
    }
}

/// Load the identity zone, cluster deterministically and train the model.
pub async fn prepare(out: &Path, key: &Key, s: &LinkageSettings) -> Result<Prepared, String> {
    let nicknames = match &s.nicknames {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("linkage.nicknames {p}: {e}"))
            .and_then(|t| records::parse_nicknames(&t))?,
        None => records::parse_nicknames(records::NICKNAMES)?,
    };
    let t = std::time::Instant::now();
    let r = records::load(out, key, nicknames, s).await?;
    let cols = s
        .comparisons
        .iter()
        .enumerate()
        .map(|(i, c)| {
            r.col_of(&c.field).ok_or_else(|| {
                format!(
                    "linkage.comparisons[{i}]: `{}` was not loaded from the identity zone",
                    c.field.name()
                )
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    tracing::info!(
        rows = r.len(),
        keys = r.keys.len(),
        secs = t.elapsed().as_secs_f64(),
        "identity rows loaded"
    );
    let nk = r.keys.len();
    let mut det = Clusters::new(nk);
    for i in 0..r.len() {
        if r.nhs[i] != NONE {
            det.nhs[r.key[i] as usize] = r.nhs[i];
        }
    }
    let (mut same_record_links, mut nhs_conflicts) = (0, 0);
    for i in 0..r.len() {
        if r.local_key[i] != NONE {
            match union(&mut det, r.key[i], r.local_key[i], None) {
                Ok(true) => same_record_links += 1,
                Ok(false) => {}
                Err(_) => nhs_conflicts += 1,
            }
        }
    }
    // Dense cluster ids.
    let mut dense = vec![NONE; nk];
    let mut key_cluster = vec![0u32; nk];
    let mut cluster_nhs = Vec::new();
    for k in 0..nk as u32 {
        let root = det.find(k) as usize;
        if dense[root] == NONE {
            dense[root] = cluster_nhs.len() as u32;
            cluster_nhs.push(det.nhs[root]);
        }
        key_cluster[k as usize] = dense[root];
    }
    let cluster: Vec<u32> = r.key.iter().map(|k| key_cluster[*k as usize]).collect();
    // Address history: the distinct postcodes of each cluster (at most 8).
    let mut pcs: Vec<(u32, u32)> = (0..r.len())
        .filter(|&i| r.postcode[i] != NONE)
        .map(|i| (cluster[i], r.postcode[i]))
        .collect();
    pcs.sort_unstable();
    pcs.dedup();
    let nc = cluster_nhs.len();
    let mut offsets = vec![0u32; nc + 1];
    let mut history = Vec::with_capacity(pcs.len());
    let mut at = 0;
    for c in 0..nc {
        offsets[c] = history.len() as u32;
        let start = at;
        while at < pcs.len() && pcs[at].0 == c as u32 {
            if at - start < 8 {
                history.push(pcs[at].1);
            }
            at += 1;
        }
    }
    offsets[nc] = history.len() as u32;
    drop(pcs);
    let mut p = Prepared {
        r,
        key_cluster,
        cluster,
        cluster_nhs,
        offsets,
        history,
        model: Model {
            lambda: 0.0,
            prior: 0.0,
            comparisons: vec![],
            u_sample_pairs: 0,
            sessions: vec![],
        },
        same_record_links,
        nhs_conflicts,
    };
    let model = {
        let cx = p.cx();
        let cl = &p.cluster;
        model::train(s, &cols, &cx, &|i, j| cl[i] == cl[j])
    };
    p.model = model;
    tracing::info!(
        secs = t.elapsed().as_secs_f64(),
        prior = p.model.prior,
        "model trained"
    );
    Ok(p)
}

/// Link the identity zone of a published run: score the candidate pairs, merge the
/// links into guarded clusters, queue the review band, give every person a stable key,
/// count what the guards saw, and build the spine's persons by survivorship.
pub async fn link(
    out: &Path,
    key: &Key,
    s: &LinkageSettings,
    lookup: Option<&std::collections::HashMap<String, String>>,
) -> Result<Linked, String> {
    let p = prepare(out, key, s).await?;
    let mut summary = LinkSummary {
        identity_rows: p.r.len() + p.r.keyless_rows,
        keyless_rows: p.r.keyless_rows,
        candidate_keys: p.r.keys.len(),
        same_record_links: p.same_record_links,
        nhs_conflicts_refused: p.nhs_conflicts,
        ..Default::default()
    };
    let (best, links) = score_candidates(&p, s, &mut summary);
    tracing::info!(
        pairs = summary.candidate_pairs_scored,
        links = links.len(),
        "candidate pairs scored"
    );
    let band = review_band(&p, s, &best, &mut summary);
    drop(best);
    let mut cl = deterministic_clusters(&p);
    merge_links(
        &mut cl,
        &p.cluster,
        &p.r.dob,
        &links,
        s.dob_same_year_compatible,
        &mut summary,
    );
    drop(links);
    let review = review_queue(&p, &mut cl, band);
    summary.clerical_review_pairs = review.len();
    let roots: Vec<u32> = (0..p.cluster_nhs.len() as u32)
        .map(|c| cl.find(c))
        .collect();
    tracing::info!(
        links = summary.probabilistic_links,
        "links merged into persons"
    );
    let person = person_keys(out, key, &p, &cl, &roots, &mut summary)?;
    let map = link_map(&p, &roots, &person);
    summary.persons = summary.person_keys_kept + summary.person_keys_new;
    count_guard_outcomes(&p, &roots, s.dob_same_year_compatible, &mut summary);
    tiers(&p, &roots, &mut summary);
    ethnicity(&p, &roots, &mut summary);
    tracing::info!(persons = summary.persons, "person keys and counts");
    let (people, addresses) = survivorship(out, &p, s, &roots, &person, lookup).await?;
    tracing::info!("survivorship");
    Ok(Linked {
        persons: people,
        addresses: lookup.map(|_| addresses),
        map,
        summary,
        review,
        model: p.model,
    })
}

/// The review band: each row's best partner when it is below the link threshold and at
/// or above the review threshold, one (the best) per pair of deterministic clusters;
/// fills the match-weight histogram on the way.
fn review_band(
    p: &Prepared,
    s: &LinkageSettings,
    best: &[(f64, u32)],
    summary: &mut LinkSummary,
) -> BTreeMap<(u32, u32), (f64, u32, u32)> {
    let mut review: BTreeMap<(u32, u32), (f64, u32, u32)> = BTreeMap::new();
    for (x, &(w, y)) in best.iter().enumerate() {
        if y == NONE {
            continue;
        }
        *summary
            .match_weight_histogram
            .entry(((w / 2.0).floor() as i32) * 2)
            .or_default() += 1;
        if w < s.link_threshold && w >= s.review_threshold {
            let (a, b) = (p.cluster[x], p.cluster[y as usize]);
            let e = review
                .entry((a.min(b), a.max(b)))
                .or_insert((w, x as u32, y));
            if w > e.0 {
                *e = (w, x as u32, y);
            }
        }
    }
    review
}

/// The deterministic clusters as the starting point of the guarded union: each with its
/// NHS number, size and the dates of birth of its rows.
fn deterministic_clusters(p: &Prepared) -> Clusters {
    let nc = p.cluster_nhs.len();
    let mut cl = Clusters::new(nc);
    cl.nhs.clone_from(&p.cluster_nhs);
    cl.size = vec![0; nc];
    for (i, &c) in p.cluster.iter().enumerate() {
        let c = c as usize;
        cl.size[c] += 1;
        let d = p.r.dob[i];
        if d != 0 && !cl.dobs[c].contains(&d) {
            cl.dobs[c].push(d);
        }
    }
    cl
}

/// The review queue: pairs of the band still apart after clustering, best first, with
/// the explanation of their weight.
fn review_queue(
    p: &Prepared,
    cl: &mut Clusters,
    band: BTreeMap<(u32, u32), (f64, u32, u32)>,
) -> Vec<ReviewItem> {
    let r = &p.r;
    let cx = p.cx();
    let mut queue: Vec<(f64, u32, u32)> = band
        .into_values()
        .filter(|(_, x, y)| cl.find(p.cluster[*x as usize]) != cl.find(p.cluster[*y as usize]))
        .collect();
    queue.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    queue.truncate(REVIEW_LIMIT);
    queue
        .iter()
        .map(|&(w, x, y)| ReviewItem {
            key_a: key_text(r.keys[r.key[x as usize] as usize]),
            key_b: key_text(r.keys[r.key[y as usize] as usize]),
            total: w,
            match_probability: probability(w),
            contributions: p.model.explain(&cx, x as usize, y as usize),
        })
        .collect()
}

/// Stable person keys, by root cluster: inherited from the previous link map where a
/// candidate key of the person was linked before, else derived from the NHS number or
/// the smallest candidate key.
fn person_keys(
    out: &Path,
    key: &Key,
    p: &Prepared,
    cl: &Clusters,
    roots: &[u32],
    summary: &mut LinkSummary,
) -> Result<Vec<u128>, String> {
    let (r, nc) = (&p.r, roots.len());
    let mut smallest = vec![u128::MAX; nc];
    for (k, &c) in p.key_cluster.iter().enumerate() {
        let root = roots[c as usize] as usize;
        smallest[root] = smallest[root].min(r.keys[k]);
    }
    let previous = read_link_map(&out.join("linkage").join("link_map.parquet"))?;
    let mut inherited = vec![u128::MAX; nc];
    for (k, &c) in p.key_cluster.iter().enumerate() {
        if let Ok(at) = previous.binary_search_by(|e| e.0.cmp(&r.keys[k])) {
            let root = roots[c as usize] as usize;
            inherited[root] = inherited[root].min(previous[at].1);
        }
    }
    let derived = |c: usize, salt: usize| -> Result<u128, String> {
        let text = match (cl.nhs[c], salt) {
            (NONE, 0) | (_, 1) => key.person_key(&format!("person:key:{}", key_text(smallest[c]))),
            (nhs, 0) => key.person_key(&format!("person:nhs:{}", r.nhs_numbers.text(nhs))),
            (_, n) => key.person_key(&format!("person:key:{}:{n}", key_text(smallest[c]))),
        };
        key_bits(&text).ok_or_else(|| "person key is not 32 hex digits".to_string())
    };
    assign_person_keys(roots, &smallest, &inherited, &derived, summary)
}

/// Candidate key → person key, sorted by candidate key.
fn link_map(p: &Prepared, roots: &[u32], person: &[u128]) -> Vec<(u128, u128)> {
    let mut map: Vec<(u128, u128)> = p
        .key_cluster
        .iter()
        .enumerate()
        .map(|(k, &c)| (p.r.keys[k], person[roots[c as usize] as usize]))
        .collect();
    map.sort_unstable();
    map
}

/// Persons holding more than one valid NHS number, and persons whose rows hold
/// incompatible dates of birth, counted from the rows (not assumed from the guard,
/// whose sets leave accepted outliers out).
fn count_guard_outcomes(p: &Prepared, roots: &[u32], same_year: bool, summary: &mut LinkSummary) {
    let r = &p.r;
    let root_of = |i: usize| roots[p.cluster[i] as usize];
    let mut held: Vec<(u32, u32)> = (0..r.len())
        .filter(|&i| r.nhs[i] != NONE)
        .map(|i| (root_of(i), r.nhs[i]))
        .collect();
    held.sort_unstable();
    held.dedup();
    summary.persons_with_several_nhs_numbers = held
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|g| g.len() > 1)
        .count();
    drop(held);
    let mut dobs: Vec<(u32, u32)> = (0..r.len())
        .filter(|&i| r.dob[i] != 0)
        .map(|i| (root_of(i), r.dob[i]))
        .collect();
    dobs.sort_unstable();
    dobs.dedup();
    summary.persons_with_conflicting_dob = dobs
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|g| {
            g.iter()
                .any(|x| g.iter().any(|y| !dob_compatible(x.1, y.1, same_year)))
        })
        .count();
}

/// Survivorship over each person's rows: the spine's persons (and their addresses when
/// a postcode lookup is given).
async fn survivorship(
    out: &Path,
    p: &Prepared,
    s: &LinkageSettings,
    roots: &[u32],
    person: &[u128],
    lookup: Option<&std::collections::HashMap<String, String>>,
) -> Result<(spine::Persons, spine::AddressPeriods), String> {
    let r = &p.r;
    let latest = spine::latest_registration(out, r).await?;
    let mut person_index = vec![NONE; roots.len()];
    let mut person_keys = Vec::new();
    for (c, &root) in roots.iter().enumerate() {
        if root as usize == c {
            person_index[c] = person_keys.len() as u32;
            person_keys.push(person[c]);
        }
    }
    let person_of_row: Vec<u32> = (0..r.len())
        .map(|i| person_index[roots[p.cluster[i] as usize] as usize])
        .collect();
    Ok(spine::survive(
        r,
        &person_of_row,
        &person_keys,
        &s.survivorship,
        &latest,
        lookup,
    ))
}

/// Score every candidate pair the blocking rules yield (each pair once, of the kind the
/// link type allows, at least one side in a cluster without an NHS number, the two not
/// already one cluster). Returns each row's best partner (weight, row; ties to the
/// lower row) and every pair at or above the link threshold (weight, lower row, higher
/// row). Nothing else is stored: memory stays linear in the rows plus the links.
fn score_candidates(
    p: &Prepared,
    s: &LinkageSettings,
    summary: &mut LinkSummary,
) -> (Vec<(f64, u32)>, Vec<(f64, u32, u32)>) {
    let r = &p.r;
    let cx = p.cx();
    let residual = |i: usize| p.cluster_nhs[p.cluster[i] as usize] == NONE;
    let mut best: Vec<(f64, u32)> = vec![(f64::NEG_INFINITY, NONE); r.len()];
    let mut links = Vec::new();
    for (ri, rule) in s.blocking.iter().enumerate() {
        let b = model::blocks(r, rule);
        for g in model::groups(&b) {
            if g.len() < 2 {
                continue;
            }
            if g.len() > MAX_BLOCK {
                summary.oversized_blocks += 1;
                continue;
            }
            for &(_, x) in g.iter().filter(|(_, x)| residual(*x as usize)) {
                let x = x as usize;
                // x's keys under the earlier rules, once for all its partners.
                let earlier: Vec<Option<u64>> = s.blocking[..ri]
                    .iter()
                    .map(|e| model::block_key(r, e, x))
                    .collect();
                for &(_, y) in g {
                    let y = y as usize;
                    if p.cluster[x] == p.cluster[y]
                        || (residual(y) && y < x)
                        || !s.link_type.allows(r.source[x], r.source[y])
                    {
                        continue;
                    }
                    // A pair an earlier rule already produced.
                    if s.blocking[..ri]
                        .iter()
                        .zip(&earlier)
                        .any(|(e, kx)| kx.is_some_and(|k| model::block_key(r, e, y) == Some(k)))
                    {
                        continue;
                    }
                    summary.candidate_pairs_scored += 1;
                    let w = p.model.score(&cx, x, y);
                    if w >= s.link_threshold {
                        links.push((w, x.min(y) as u32, x.max(y) as u32));
                    }
                    let better =
                        |b: (f64, u32), z: usize| w > b.0 || (w == b.0 && (z as u32) < b.1);
                    if better(best[x], y) {
                        best[x] = (w, y as u32);
                    }
                    if residual(y) && better(best[y], x) {
                        best[y] = (w, x as u32);
                    }
                }
            }
        }
    }
    (best, links)
}

/// Connected components over every link at or above the threshold, with the guards:
/// links are taken strongest first (ties by row, rows being in canonical order, so the
/// result does not depend on the order files were read in), and a link whose two
/// components hold different valid NHS numbers, or dates of birth that are not
/// compatible, is refused; the components carry their NHS number and every distinct
/// date of birth, so the guard is checked on the whole merged components.
fn merge_links(
    cl: &mut Clusters,
    cluster: &[u32],
    dob: &[u32],
    links: &[(f64, u32, u32)],
    same_year: bool,
    summary: &mut LinkSummary,
) {
    let mut order: Vec<u32> = (0..links.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (&links[a as usize], &links[b as usize]);
        y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2))
    });
    for i in order {
        let (_, x, y) = links[i as usize];
        let guard = DobGuard {
            same_year,
            direct: (dob[x as usize], dob[y as usize]),
        };
        match union(cl, cluster[x as usize], cluster[y as usize], Some(guard)) {
            Ok(true) => summary.probabilistic_links += 1,
            Ok(false) => {}
            Err(Refused::Nhs) => summary.nhs_conflicts_refused += 1,
            Err(Refused::Dob) => summary.chaining_refused += 1,
        }
    }
}

/// Person keys, stable across reruns and loads: a person keeps the key its candidate
/// keys had in the previous link map (the smallest such; when a previous person splits,
/// the part with the smallest candidate key keeps it), else gets the keyed hash of its
/// NHS number, else of its smallest candidate key (`derived(c, 0)`; on a clash with a
/// kept key, `derived(c, 1)`, …). Returns the key of each root cluster.
fn assign_person_keys(
    roots: &[u32],
    smallest: &[u128],
    inherited: &[u128],
    derived: &dyn Fn(usize, usize) -> Result<u128, String>,
    summary: &mut LinkSummary,
) -> Result<Vec<u128>, String> {
    let mut order: Vec<usize> = (0..roots.len())
        .filter(|&c| roots[c] as usize == c)
        .collect();
    order.sort_unstable_by_key(|&c| smallest[c]);
    let mut person = vec![0u128; roots.len()];
    let mut taken: std::collections::HashSet<u128> = Default::default();
    let mut fresh = Vec::new();
    for &c in &order {
        if inherited[c] != u128::MAX && taken.insert(inherited[c]) {
            person[c] = inherited[c];
            summary.person_keys_kept += 1;
        } else {
            fresh.push(c);
        }
    }
    for c in fresh {
        let mut salt = 0;
        let k = loop {
            let k = derived(c, salt)?;
            if taken.insert(k) {
                break k;
            }
            salt += 1;
        };
        person[c] = k;
        summary.person_keys_new += 1;
    }
    Ok(person)
}

/// The link map of a previous `link` (empty when there is none), sorted.
fn read_link_map(path: &Path) -> Result<Vec<(u128, u128)>, String> {
    use datafusion::arrow::array::AsArray;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    if !path.is_file() {
        return Ok(vec![]);
    }
    let bad = |e: String| {
        format!(
            "previous link map {} is unreadable ({e}); move it away to link from scratch",
            path.display()
        )
    };
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for b in reader {
        let b = b.map_err(|e| bad(e.to_string()))?;
        if b.num_columns() < 2 {
            return Err(bad("expected candidate_key, person_key".into()));
        }
        let (Some(c), Some(p)) = (
            b.column(0).as_string_opt::<i32>(),
            b.column(1).as_string_opt::<i32>(),
        ) else {
            return Err(bad("columns are not text".into()));
        };
        for i in 0..b.num_rows() {
            if let (Some(x), Some(y)) = (key_bits(c.value(i)), key_bits(p.value(i))) {
                out.push((x, y));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Rows by provider and linkage tier.
fn tiers(p: &Prepared, roots: &[u32], s: &mut LinkSummary) {
    let r = &p.r;
    // Roots that other clusters were merged into.
    let mut merged = vec![false; roots.len()];
    for (c, &root) in roots.iter().enumerate() {
        if root as usize != c {
            merged[root as usize] = true;
        }
    }
    // Modal date of birth and sex of each NHS-number key.
    let mut by_key: Vec<(u32, u32, u8)> = (0..r.len())
        .filter(|&i| r.nhs[i] != NONE)
        .map(|i| (r.key[i], r.dob[i], r.sex[i]))
        .collect();
    by_key.sort_unstable();
    let mut modal: std::collections::HashMap<u32, (u32, u8)> = Default::default();
    for g in by_key.chunk_by(|a, b| a.0 == b.0) {
        let mut best = (0usize, 0u32);
        for d in g.chunk_by(|a, b| a.1 == b.1) {
            if d[0].1 != 0 && d.len() > best.0 {
                best = (d.len(), d[0].1);
            }
        }
        let males = g.iter().filter(|x| x.2 == b'1').count();
        let females = g.iter().filter(|x| x.2 == b'2').count();
        let sex = match males.cmp(&females) {
            std::cmp::Ordering::Greater => b'1',
            std::cmp::Ordering::Less => b'2',
            _ => 0,
        };
        modal.insert(g[0].0, (best.1, sex));
    }
    for i in 0..r.len() {
        let c = p.cluster[i] as usize;
        let tier = if r.nhs[i] != NONE {
            let (d, sex) = modal.get(&r.key[i]).copied().unwrap_or((0, 0));
            if r.dob[i] == 0 || d == 0 {
                "nhs_number_no_dob"
            } else if r.dob[i] == d {
                "nhs_number_dob"
            } else if dob_compatible(r.dob[i], d, false)
                && (r.sex[i] == 0 || sex == 0 || r.sex[i] == sex)
            {
                "nhs_number_dob_tolerant"
            } else {
                "nhs_number_dob_conflict"
            }
        } else if p.cluster_nhs[c] != NONE {
            "local_id"
        } else if roots[c] as usize != c || merged[c] {
            "probabilistic"
        } else {
            "unlinked"
        };
        *s.rows_by_provider_and_tier
            .entry(r.providers.text(r.provider[i] as u32).to_string())
            .or_default()
            .entry(tier.into())
            .or_default() += 1;
    }
}

/// Ethnicity recorded on the GP list versus in any linked record.
fn ethnicity(p: &Prepared, roots: &[u32], s: &mut LinkSummary) {
    let r = &p.r;
    let nc = roots.len();
    // 0: not registered; 1: registered; bit 2: recorded on the GP list; bit 4: anywhere.
    let mut state = vec![0u8; nc];
    for i in 0..r.len() {
        let root = roots[p.cluster[i] as usize] as usize;
        if r.registered[i] {
            state[root] |= 1;
            if r.ethnicity[i] != 0 {
                state[root] |= 2;
            }
        }
        if r.ethnicity[i] != 0 {
            state[root] |= 4;
        }
    }
    let registered = state.iter().filter(|x| **x & 1 != 0).count();
    let before = state.iter().filter(|x| **x & 3 == 3).count();
    let after = state.iter().filter(|x| **x & 5 == 5).count();
    s.registered_persons = registered;
    s.ethnicity_recorded_before = before as f64 / registered.max(1) as f64;
    s.ethnicity_recorded_after = after as f64 / registered.max(1) as f64;
}

/// The explanation of a match between two candidate keys: the best-scoring pair of
/// their identity rows, comparison by comparison (a waterfall), and the decision.
#[derive(Debug, Clone, Serialize)]
pub struct MatchExplanation {
    pub key_a: String,
    pub key_b: String,
    pub contributions: Vec<Contribution>,
    pub total: f64,
    pub match_probability: f64,
    pub threshold: f64,
    pub linked: bool,
}

/// Explain two candidate keys under the model trained on the same run and settings.
pub async fn explain_match(
    out: &Path,
    key: &Key,
    s: &LinkageSettings,
    a: &str,
    b: &str,
) -> Result<MatchExplanation, String> {
    let p = prepare(out, key, s).await?;
    let rows = |k: &str| -> Result<Vec<usize>, String> {
        let bits =
            key_bits(k).ok_or_else(|| format!("`{k}` is not a candidate key (32 hex digits)"))?;
        let v = p.r.rows_of(bits);
        if v.is_empty() {
            return Err(format!("no identity rows for {k}"));
        }
        Ok(v)
    };
    let (ra, rb) = (rows(a)?, rows(b)?);
    let cx = p.cx();
    let mut best: Option<(f64, usize, usize)> = None;
    for &x in &ra {
        for &y in &rb {
            let t = p.model.score(&cx, x, y);
            if best.is_none_or(|(bt, _, _)| t > bt) {
                best = Some((t, x, y));
            }
        }
    }
    let (total, x, y) = best.unwrap_or((0.0, ra[0], rb[0]));
    Ok(MatchExplanation {
        key_a: a.into(),
        key_b: b.into(),
        contributions: p.model.explain(&cx, x, y),
        total,
        match_probability: probability(total),
        threshold: s.link_threshold,
        linked: total >= s.link_threshold,
    })
}

/// Rows a written record batch holds at most.
const BATCH_ROWS: usize = 65_536;

/// Write record batches as one Parquet file, atomically (`store::write_parquet`).
pub(crate) fn write_parquet(
    path: &Path,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: impl Iterator<
        Item = Result<datafusion::arrow::array::RecordBatch, datafusion::arrow::error::ArrowError>,
    >,
) -> Result<(), String> {
    crate::store::write_parquet(path, schema, batches)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Write the link map as Parquet (`candidate_key, person_key`).
pub fn write_link_map(map: &[(u128, u128)], path: &Path) -> Result<(), String> {
    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("candidate_key", DataType::Utf8, false),
        Field::new("person_key", DataType::Utf8, false),
    ]));
    let batches = map.chunks(BATCH_ROWS).map(|chunk| {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                chunk.iter().map(|e| key_text(e.0)),
            )),
            Arc::new(StringArray::from_iter_values(
                chunk.iter().map(|e| key_text(e.1)),
            )),
        ];
        RecordBatch::try_new(schema.clone(), cols)
    });
    write_parquet(path, schema.clone(), batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatible_dates_of_birth() {
        assert!(dob_compatible(19_800_312, 19_800_312, false));
        assert!(
            dob_compatible(19_800_312, 19_801_203, false),
            "day/month swap"
        );
        assert!(dob_compatible(19_800_312, 19_800_313, false), "one digit");
        assert!(!dob_compatible(19_800_312, 19_800_521, false));
        assert!(
            dob_compatible(19_800_312, 19_800_521, true),
            "same year allowed"
        );
        assert!(!dob_compatible(19_800_312, 19_900_521, true));
        assert!(
            dob_compatible(19_560_409, 19_650_409, false),
            "digits transposed"
        );
        assert!(!dob_compatible(19_560_409, 19_650_419, false));
    }

    /// A person keeps its previous key; when a previous person splits, the part with
    /// the smallest candidate key keeps it and the other gets a fresh one; a fresh key
    /// never repeats a kept one.
    #[test]
    fn person_keys_are_kept_across_loads() {
        // Roots 0, 1, 2; cluster 3 merged into 0.
        let roots = [0, 1, 2, 0];
        let smallest = [10, 20, 30, 0];
        let inherited = [7, 7, u128::MAX, 0];
        let derived = |c: usize, salt: usize| -> Result<u128, String> {
            Ok(if c == 2 && salt == 0 {
                7
            } else {
                100 + c as u128 * 10 + salt as u128
            })
        };
        let mut s = LinkSummary::default();
        let p = assign_person_keys(&roots, &smallest, &inherited, &derived, &mut s).unwrap();
        assert_eq!(
            p[0], 7,
            "the part with the smallest candidate key keeps the key"
        );
        assert_eq!(p[1], 110, "the other part gets a fresh key");
        assert_eq!(
            p[2], 121,
            "a derived key that clashes with a kept one is salted"
        );
        assert_eq!((s.person_keys_kept, s.person_keys_new), (1, 2));
    }

    /// Clustering over every link gives the same persons whatever order the links
    /// arrive in, and joins a chain of records each linked only to the next.
    #[test]
    fn components_do_not_depend_on_link_order() {
        let n = 40u32;
        let dob: Vec<u32> = (0..n).map(|i| 19_800_101 + (i % 3)).collect();
        let mut links: Vec<(f64, u32, u32)> = (0..n - 1)
            .filter(|i| i % 10 != 9)
            .map(|i| (7.0 + (i % 4) as f64, i, i + 1))
            .collect();
        let run = |links: &[(f64, u32, u32)]| {
            let mut cl = Clusters::new(n as usize);
            for i in 0..n as usize {
                cl.dobs[i] = vec![dob[i]];
            }
            let cluster: Vec<u32> = (0..n).collect();
            merge_links(
                &mut cl,
                &cluster,
                &dob,
                links,
                true,
                &mut LinkSummary::default(),
            );
            let roots: Vec<u32> = (0..n).map(|c| cl.find(c)).collect();
            // The partition as each element's smallest fellow member.
            (0..n as usize)
                .map(|i| (0..n as usize).find(|&j| roots[j] == roots[i]).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(&links);
        links.reverse();
        let mut rng = model::Rng::new(3);
        for i in (1..links.len()).rev() {
            links.swap(i, rng.below(i + 1));
        }
        assert_eq!(a, run(&links));
        assert_eq!(a[8], 0, "a chain of ten records is one person");
        assert_eq!(a[10], 10, "a missing link splits it");
    }

    /// When the two sides of an accepted link whose rows disagree on the date of birth
    /// are equally large, neither date is taken for the outlier (whichever side the
    /// link names first): a later record agreeing with either joins, and then holds
    /// the person to its date.
    #[test]
    fn an_equal_conflict_keeps_both_dates_of_birth_until_a_link_decides() {
        let g = |a, b| {
            Some(DobGuard {
                same_year: false,
                direct: (a, b),
            })
        };
        let (d, e, e2) = (19_370_407, 19_691_006, 19_691_007);
        for first in [0u32, 1] {
            let mut c = Clusters::new(4);
            for (i, x) in [d, e, d, e2].into_iter().enumerate() {
                c.dobs[i] = vec![x];
            }
            let (x, y) = (first, 1 - first);
            let dx = if first == 0 { d } else { e };
            let dy = if first == 0 { e } else { d };
            assert!(matches!(union(&mut c, x, y, g(dx, dy)), Ok(true)));
            assert!(
                matches!(union(&mut c, 2, 0, g(d, d)), Ok(true)),
                "a record agreeing with one side joins (first {first})"
            );
            assert!(
                matches!(union(&mut c, 3, 1, g(e2, e)), Err(Refused::Dob)),
                "the other side's date is now the outlier (first {first})"
            );
            assert_eq!(c.find(2), c.find(1));
            assert_ne!(c.find(3), c.find(0));
        }
        // Without a deciding record, a date compatible with either side joins.
        let mut c = Clusters::new(3);
        for (i, x) in [d, e, e2].into_iter().enumerate() {
            c.dobs[i] = vec![x];
        }
        assert!(matches!(union(&mut c, 0, 1, g(d, e)), Ok(true)));
        assert!(matches!(union(&mut c, 2, 1, g(e2, e)), Ok(true)));
    }

    /// The guard refuses a merge of two NHS numbers and of incompatible dates of birth,
    /// and a chain A–B–C stops where C's date of birth conflicts with A's.
    #[test]
    fn guarded_union_stops_chains() {
        let mut c = Clusters::new(4);
        c.nhs[0] = 1;
        c.nhs[1] = 2;
        let g = |a, b| {
            Some(DobGuard {
                same_year: false,
                direct: (a, b),
            })
        };
        assert!(matches!(union(&mut c, 0, 1, g(0, 0)), Err(Refused::Nhs)));
        c.dobs[0] = vec![19_800_312];
        c.dobs[2] = vec![19_800_313];
        c.dobs[3] = vec![19_800_323];
        assert!(matches!(
            union(&mut c, 0, 2, g(19_800_312, 19_800_313)),
            Ok(true)
        ));
        // 13 and 23 are compatible, but 12 (through the chain) and 23 are not.
        assert!(matches!(
            union(&mut c, 2, 3, g(19_800_313, 19_800_323)),
            Err(Refused::Dob)
        ));
        assert_ne!(c.find(3), c.find(0));
        assert_eq!(c.find(2), c.find(0));
        // A direct link between the two incompatible rows stands (the model weighed it).
        let mut d = Clusters::new(2);
        d.dobs[0] = vec![19_800_312];
        d.dobs[1] = vec![19_651_001];
        assert!(matches!(
            union(&mut d, 0, 1, g(19_800_312, 19_651_001)),
            Ok(true)
        ));
    }
}
