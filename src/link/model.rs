//! The Fellegi–Sunter model: what level each comparison reaches on a pair of identity
//! rows, m and u per level, and how they are trained. u comes from random pairs (almost
//! all non-matches); m from expectation–maximisation over blocked pairs, one session
//! per training blocking rule, each leaving the m of its blocked fields alone. Exact
//! agreement on a field with `term_frequency` is weighted by how common the value is.

use serde::Serialize;

use super::config::{Attribute, AttributeType, ComparisonSpec, Field, Level, LinkageSettings};
use super::records::{Col, NONE, Records};

/// A comparison whose field is missing on either side.
pub const MISSING: u8 = u8::MAX;

/// A comparison with its trained parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub field: Field,
    /// Level labels, best first; the last is `different`.
    pub levels: Vec<String>,
    #[serde(skip)]
    pub spec: ComparisonSpec,
    /// The column of the identity rows it reads.
    #[serde(skip)]
    pub col: Col,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
    /// log2(m/u) per level (exact agreement may be adjusted by term frequency).
    pub weights: Vec<f64>,
    /// Which EM sessions estimated m (empty: m kept at its starting values).
    pub m_estimated_in: Vec<usize>,
    pub term_frequency: bool,
    #[serde(skip)]
    tf: Vec<f64>,
}

/// One EM session.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub blocking: Vec<Attribute>,
    /// Comparisons whose estimate this session dropped (exact agreement came out as
    /// evidence against a match: EM found the wrong mode).
    pub rejected: Vec<Field>,
    /// Pairs in the session's blocks, and how many EM looked at.
    pub blocked_pairs: f64,
    /// Pairs (of the kind the link type allows) whose two rows both have every
    /// attribute of the rule: the pairs the session's matches are a share of (a field
    /// missing on some rows lowers both counts alike, so the prior stays sound).
    pub present_pairs: f64,
    pub pairs: u64,
    pub patterns: usize,
    pub iterations: usize,
    pub converged: bool,
    /// Share of the session's pairs that are matches, as EM estimated it.
    pub lambda: f64,
}

/// The trained model (written to `linkage/model.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    /// Probability that two random identity rows are the same person, from the EM
    /// sessions (matches found in a session's blocks over all row pairs).
    pub lambda: f64,
    /// log2(lambda / (1 - lambda)): where every match weight starts.
    pub prior: f64,
    pub comparisons: Vec<Comparison>,
    pub u_sample_pairs: u64,
    pub sessions: Vec<Session>,
}

/// One comparison's contribution to a match weight.
#[derive(Debug, Clone, Serialize)]
pub struct Contribution {
    pub comparison: String,
    pub level: String,
    pub m: f64,
    pub u: f64,
    pub weight: f64,
    /// The agreeing value's frequency, when term frequency adjusted the weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term_frequency: Option<f64>,
}

/// What a comparison can see beyond the two rows: the postcodes of each row's
/// deterministic cluster (address history), as compressed rows.
pub struct Context<'a> {
    pub r: &'a Records,
    /// Row → its deterministic cluster.
    pub cluster: &'a [u32],
    /// Cluster c's postcodes are `history[offsets[c]..offsets[c + 1]]`.
    pub offsets: &'a [u32],
    pub history: &'a [u32],
}

impl Context<'_> {
    fn history_of(&self, i: usize) -> &[u32] {
        let c = self.cluster[i] as usize;
        &self.history[self.offsets[c] as usize..self.offsets[c + 1] as usize]
    }
}

/// The date (yyyymmdd) with day and month swapped; 0 when that is no other date.
pub fn swap(ymd: u32) -> u32 {
    let (y, m, d) = (ymd / 10_000, ymd / 100 % 100, ymd % 100);
    if d > 12 || d == m {
        return 0;
    }
    y * 10_000 + d * 100 + m
}

fn one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    match diff.as_slice() {
        [_] => true,
        [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
        _ => false,
    }
}

/// The level a comparison reaches on rows `i` and `j`, and the agreeing value (for
/// term frequency) when it is exact.
pub fn level(spec: &ComparisonSpec, col: Col, cx: &Context, i: usize, j: usize) -> (u8, u32) {
    let r = cx.r;
    if spec.history && col == Col::Postcode {
        let (ha, hb) = (cx.history_of(i), cx.history_of(j));
        if ha.is_empty() || hb.is_empty() {
            return (MISSING, NONE);
        }
        let mut best = (spec.levels.len() as u8, NONE);
        for &a in ha {
            for &b in hb {
                let l = level_of_values(spec, col, r, a, b);
                if l.0 < best.0 {
                    best = l;
                }
            }
        }
        return best;
    }
    let (a, b) = (r.value(col, i), r.value(col, j));
    if a == NONE || b == NONE {
        return (MISSING, NONE);
    }
    let (l, v) = level_of_values(spec, col, r, a, b);
    match spec.levels.iter().position(|x| *x == Level::NamesSwapped) {
        Some(p) if (l as usize) > p && names_swapped(r, col, i, j) => (p as u8, NONE),
        _ => (l, v),
    }
}

/// Given and family names the other way round on rows `i` and `j` (names share one
/// interner, so the ids compare across the two columns).
fn names_swapped(r: &Records, col: Col, i: usize, j: usize) -> bool {
    if !matches!(col, Col::Given | Col::Family) {
        return false;
    }
    let (gi, fi, gj, fj) = (r.given[i], r.family[i], r.given[j], r.family[j]);
    gi != NONE && fi != NONE && gi != fi && gi == fj && fi == gj
}

/// Days since 1970-01-01 of a yyyymmdd date.
fn days(ymd: u32) -> Option<i64> {
    chrono::NaiveDate::from_ymd_opt((ymd / 10_000) as i32, ymd / 100 % 100, ymd % 100).map(|d| {
        d.signed_duration_since(chrono::NaiveDate::default())
            .num_days()
    })
}

/// The first level two present values reach (equal values reach the first level).
fn level_of_values(spec: &ComparisonSpec, col: Col, r: &Records, a: u32, b: u32) -> (u8, u32) {
    let last = spec.levels.len() as u8;
    if a == b {
        return (0, a);
    }
    let kind = r.kind_of(col);
    let texts = std::cell::OnceCell::new();
    let text = || -> (&str, &str) {
        let t = texts.get_or_init(|| (r.value_text(col, a), r.value_text(col, b)));
        (&*t.0, &*t.1)
    };
    for (l, lv) in spec.levels.iter().enumerate() {
        let hit = match lv {
            Level::Exact => false,
            Level::JaroWinkler(t) => {
                let (x, y) = text();
                strsim::jaro_winkler(x, y) >= *t
            }
            Level::Levenshtein(n) => {
                let (x, y) = text();
                strsim::levenshtein(x, y) <= *n as usize
            }
            Level::DamerauLevenshtein(n) => {
                let (x, y) = text();
                strsim::damerau_levenshtein(x, y) <= *n as usize
            }
            Level::Soundex if kind == Some(AttributeType::Name) => {
                let (x, y) = (r.name_soundex[a as usize], r.name_soundex[b as usize]);
                x != NONE && x == y
            }
            Level::Nickname if kind == Some(AttributeType::Name) => {
                let (x, y) = (&r.name_groups[a as usize], &r.name_groups[b as usize]);
                x.iter().any(|g| y.contains(g))
            }
            Level::DayMonthSwap => swap(a) == b,
            Level::SameYearMonth => a / 100 == b / 100,
            Level::SameYear => a / 10_000 == b / 10_000,
            Level::WithinDays(n) => match (days(a), days(b)) {
                (Some(x), Some(y)) => (x - y).abs() <= *n as i64,
                _ => false,
            },
            Level::Sector | Level::District if kind == Some(AttributeType::Postcode) => {
                let area = if *lv == Level::Sector {
                    &r.sector
                } else {
                    &r.district
                };
                let s = area[a as usize];
                s != NONE && s == area[b as usize]
            }
            Level::OneEdit => {
                let (x, y) = text();
                one_edit(x, y)
            }
            Level::NumericWithin(d) => {
                let (x, y) = text();
                match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => (x - y).abs() <= *d,
                    _ => false,
                }
            }
            _ => false,
        };
        if hit {
            return (l as u8, a);
        }
    }
    (last, NONE)
}

impl Comparison {
    /// The weight of level `l` with agreeing value `v`.
    pub fn weight(&self, l: u8, v: u32) -> f64 {
        if l == MISSING {
            return 0.0;
        }
        if l == 0 && self.term_frequency && v != NONE {
            if let Some(f) = self.tf.get(v as usize) {
                return (self.m[0] / f.max(1e-9)).log2();
            }
        }
        self.weights[l as usize]
    }
    fn tf_of(&self, l: u8, v: u32) -> Option<f64> {
        (l == 0 && self.term_frequency && v != NONE)
            .then(|| self.tf.get(v as usize).copied())
            .flatten()
    }
}

impl Model {
    /// Match weight of rows `i` and `j`: the prior plus each comparison's weight
    /// (log2 of the posterior odds that they are one person).
    pub fn score(&self, cx: &Context, i: usize, j: usize) -> f64 {
        self.prior
            + self
                .comparisons
                .iter()
                .map(|c| {
                    let (l, v) = level(&c.spec, c.col, cx, i, j);
                    c.weight(l, v)
                })
                .sum::<f64>()
    }
    /// Comparison-by-comparison explanation of rows `i` and `j`.
    pub fn explain(&self, cx: &Context, i: usize, j: usize) -> Vec<Contribution> {
        let prior = Contribution {
            comparison: "prior".into(),
            level: "two random records match".into(),
            m: self.lambda,
            u: 1.0 - self.lambda,
            weight: self.prior,
            term_frequency: None,
        };
        std::iter::once(prior)
            .chain(self.comparisons.iter().filter_map(|c| {
                let (l, v) = level(&c.spec, c.col, cx, i, j);
                (l != MISSING).then(|| Contribution {
                    comparison: c.field.name().to_string(),
                    level: c.levels[l as usize].clone(),
                    m: c.m[l as usize],
                    u: c.tf_of(l, v).unwrap_or(c.u[l as usize]),
                    weight: c.weight(l, v),
                    term_frequency: c.tf_of(l, v),
                })
            }))
            .collect()
    }
}

/// splitmix64: a small, seedable generator (the model must be reproducible).
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The value of a blocking attribute for row `i` (None when missing).
pub fn attribute(r: &Records, a: &Attribute, i: usize) -> Option<u64> {
    let some = |v: u32| (v != NONE).then_some(v as u64);
    match a {
        Attribute::NhsNumber => some(r.nhs[i]),
        Attribute::GivenName => some(r.given[i]),
        Attribute::FamilyName => some(r.family[i]),
        Attribute::GivenNameSoundex => {
            some(r.given[i]).and_then(|g| some(r.name_soundex[g as usize]))
        }
        Attribute::FamilyNameSoundex => {
            some(r.family[i]).and_then(|g| some(r.name_soundex[g as usize]))
        }
        Attribute::DateOfBirth => (r.dob[i] != 0).then_some(r.dob[i] as u64),
        Attribute::DateOfBirthAnyOrder => {
            let d = r.dob[i];
            let s = swap(d);
            (d != 0).then_some(if s != 0 { d.min(s) } else { d } as u64)
        }
        Attribute::BirthYear => (r.dob[i] != 0).then_some((r.dob[i] / 10_000) as u64),
        Attribute::Sex => (r.sex[i] != 0).then_some(r.sex[i] as u64),
        Attribute::Postcode => some(r.postcode[i]),
        Attribute::PostcodeSector => some(r.postcode[i]).and_then(|p| some(r.sector[p as usize])),
        Attribute::PostcodeDistrict => {
            some(r.postcode[i]).and_then(|p| some(r.district[p as usize]))
        }
        Attribute::Exact(f) => r.col_of(f).and_then(|c| some(r.value(c, i))),
    }
}

/// The block key of row `i` under a rule (None when any attribute is missing).
pub fn block_key(r: &Records, rule: &[Attribute], i: usize) -> Option<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (n, a) in rule.iter().enumerate() {
        let v = attribute(r, a, i)?;
        h = (h ^ v ^ ((n as u64) << 56)).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    Some(h)
}

/// Rows grouped by block key under a rule: (key, row) sorted by key.
pub fn blocks(r: &Records, rule: &[Attribute]) -> Vec<(u64, u32)> {
    let mut v: Vec<(u64, u32)> = (0..r.len())
        .filter_map(|i| block_key(r, rule, i).map(|k| (k, i as u32)))
        .collect();
    v.sort_unstable();
    v
}

/// Iterate the groups of a sorted block list.
pub fn groups(v: &[(u64, u32)]) -> impl Iterator<Item = &[(u64, u32)]> {
    v.chunk_by(|a, b| a.0 == b.0)
}

fn pack(levels: &[u8]) -> u128 {
    levels
        .iter()
        .enumerate()
        .fold(0u128, |acc, (k, l)| acc | ((*l as u128) << (8 * k)))
}

/// Train the model on the rows: u from random pairs, m by EM sessions, term
/// frequencies from the rows. `same_cluster` says whether two rows are already one
/// person (those pairs are left out of the u sample).
pub fn train(
    s: &LinkageSettings,
    cols: &[Col],
    cx: &Context,
    same_cluster: &dyn Fn(usize, usize) -> bool,
) -> Model {
    let r = cx.r;
    let n = r.len();
    let specs = &s.comparisons;
    let allowed = |i: usize, j: usize| s.link_type.allows(r.source[i], r.source[j]);
    let nl: Vec<usize> = specs.iter().map(|c| c.levels.len() + 1).collect();
    // u: level frequencies over random pairs.
    let mut rng = Rng::new(s.training.seed);
    let mut counts: Vec<Vec<f64>> = nl.iter().map(|k| vec![0.0; *k]).collect();
    let mut drawn = 0u64;
    if n >= 2 {
        let mut tries = 0usize;
        while (drawn as usize) < s.training.u_sample_pairs && tries < 4 * s.training.u_sample_pairs
        {
            tries += 1;
            let (i, j) = (rng.below(n), rng.below(n));
            if i == j || !allowed(i, j) || same_cluster(i, j) {
                continue;
            }
            drawn += 1;
            for (c, spec) in specs.iter().enumerate() {
                let (l, _) = level(spec, cols[c], cx, i, j);
                if l != MISSING {
                    counts[c][l as usize] += 1.0;
                }
            }
        }
    }
    let u: Vec<Vec<f64>> = counts
        .iter()
        .map(|c| {
            let t: f64 = c.iter().sum::<f64>() + 0.5 * c.len() as f64;
            c.iter().map(|x| (x + 0.5) / t).collect()
        })
        .collect();
    // m: starting values from rows sharing a valid NHS number (labelled matches),
    // then EM sessions.
    let start = labelled_m(r, cx, specs, cols, &nl);
    let mut sums: Vec<Vec<f64>> = nl.iter().map(|k| vec![0.0; *k]).collect();
    let mut estimated_in: Vec<Vec<usize>> = vec![vec![]; specs.len()];
    let mut sessions = Vec::new();
    for (si, rule) in s.training.em_blocking.iter().enumerate() {
        let fixed: Vec<bool> = specs
            .iter()
            .map(|c| rule.iter().any(|a| a.field() == c.field))
            .collect();
        let (patterns, pairs, blocked_pairs) =
            session_patterns(r, cx, rule, specs, cols, s, si as u64);
        let present_pairs = allowed_pairs(r, rule, s.link_type);
        let (m, lambda, iterations, converged) =
            em(&patterns, &start, &u, &fixed, s.training.em_max_iterations);
        let mut rejected = Vec::new();
        for c in 0..specs.len() {
            // A session whose estimate makes exact agreement evidence against a match
            // has found the wrong mode; its estimate for that comparison is dropped.
            if !fixed[c] && pairs > 0 && m[c][0] <= u[c][0] {
                rejected.push(specs[c].field.clone());
                continue;
            }
            if !fixed[c] && pairs > 0 {
                estimated_in[c].push(si);
                for l in 0..nl[c] {
                    sums[c][l] += m[c][l];
                }
            }
        }
        sessions.push(Session {
            present_pairs,
            blocking: rule.clone(),
            rejected,
            blocked_pairs,
            pairs,
            patterns: patterns.len(),
            iterations,
            converged,
            lambda,
        });
    }
    let comparisons = specs
        .iter()
        .enumerate()
        .map(|(c, spec)| {
            let m: Vec<f64> = if estimated_in[c].is_empty() {
                start[c].clone()
            } else {
                let k = estimated_in[c].len() as f64;
                sums[c].iter().map(|x| (x / k).max(1e-6)).collect()
            };
            let m = no_worse_than_different(m, &u[c]);
            let weights = m.iter().zip(&u[c]).map(|(m, u)| (m / u).log2()).collect();
            let mut levels: Vec<String> = spec.levels.iter().map(Level::label).collect();
            levels.push("different".into());
            Comparison {
                field: spec.field.clone(),
                levels,
                spec: spec.clone(),
                m,
                u: u[c].clone(),
                weights,
                m_estimated_in: estimated_in[c].clone(),
                term_frequency: spec.term_frequency,
                tf: if spec.term_frequency {
                    term_frequencies(r, cols[c])
                } else {
                    vec![]
                },
                col: cols[c],
            }
        })
        .collect();
    let lambda = sessions
        .iter()
        .map(|x| x.lambda * x.blocked_pairs / x.present_pairs.max(1.0))
        .fold(0.0, f64::max)
        .clamp(1e-12, 0.5);
    Model {
        lambda,
        prior: (lambda / (1.0 - lambda)).log2(),
        comparisons,
        u_sample_pairs: drawn,
        sessions,
    }
}

/// Partial agreement is never stronger evidence against a match than disagreement:
/// where EM saw almost no matches at a level, raise its m so its weight is at least
/// that of `different` (the last level), then renormalise.
fn no_worse_than_different(mut m: Vec<f64>, u: &[f64]) -> Vec<f64> {
    let last = m.len() - 1;
    let floor = m[last] / u[last];
    for l in 0..last {
        m[l] = m[l].max(u[l] * floor);
    }
    let t: f64 = m.iter().sum();
    m.iter().map(|x| x / t).collect()
}

/// Starting m: level frequencies over pairs of rows sharing a valid NHS number (at
/// most 200,000 pairs), smoothed; a comparison without such pairs starts at 0.9 for
/// exact agreement and the rest spread evenly.
fn labelled_m(
    r: &Records,
    cx: &Context,
    specs: &[ComparisonSpec],
    cols: &[Col],
    nl: &[usize],
) -> Vec<Vec<f64>> {
    let mut rows: Vec<(u128, u32)> = (0..r.len())
        .filter(|&i| r.nhs[i] != NONE)
        .map(|i| (r.keys[r.key[i] as usize], i as u32))
        .collect();
    rows.sort_unstable();
    let mut counts: Vec<Vec<f64>> = nl.iter().map(|k| vec![0.5; *k]).collect();
    let mut pairs = 0;
    'outer: for g in rows.chunk_by(|a, b| a.0 == b.0) {
        for w in g.windows(2) {
            for (c, spec) in specs.iter().enumerate() {
                let (l, _) = level(spec, cols[c], cx, w[0].1 as usize, w[1].1 as usize);
                if l != MISSING {
                    counts[c][l as usize] += 1.0;
                }
            }
            pairs += 1;
            if pairs >= 200_000 {
                break 'outer;
            }
        }
    }
    counts
        .iter()
        .map(|c| {
            let t: f64 = c.iter().sum();
            if t < 0.5 * c.len() as f64 + 10.0 {
                let mut m = vec![0.1 / (c.len() as f64 - 1.0).max(1.0); c.len()];
                m[0] = 0.9;
                m
            } else {
                c.iter().map(|x| x / t).collect()
            }
        })
        .collect()
}

/// Relative frequency of each value of a column over the rows.
fn term_frequencies(r: &Records, col: Col) -> Vec<f64> {
    let size = r.value_count(col);
    if size == 0 {
        return vec![];
    }
    let mut c = vec![0.0f64; size];
    let mut total = 0.0f64;
    for i in 0..r.len() {
        let v = r.value(col, i);
        if v != NONE {
            c[v as usize] += 1.0;
            total += 1.0;
        }
    }
    c.iter_mut().for_each(|x| *x /= total.max(1.0));
    c
}

/// Pairs of rows the link type allows among `counts` rows per source.
fn pairs_of(counts: &[f64], link_type: super::config::LinkType) -> f64 {
    use super::config::LinkType;
    let t: f64 = counts.iter().sum();
    let within: f64 = counts.iter().map(|n| n * (n - 1.0) / 2.0).sum();
    match link_type {
        LinkType::LinkAndDedupe => t * (t - 1.0) / 2.0,
        LinkType::DedupeOnly => within,
        LinkType::LinkOnly => t * (t - 1.0) / 2.0 - within,
    }
}

/// Allowed pairs whose two rows both have every attribute of `rule`.
fn allowed_pairs(r: &Records, rule: &[Attribute], link_type: super::config::LinkType) -> f64 {
    let mut counts = vec![0.0f64; r.sources.len().max(1)];
    for i in 0..r.len() {
        if block_key(r, rule, i).is_some() {
            counts[r.source[i] as usize] += 1.0;
        }
    }
    pairs_of(&counts, link_type)
}

/// Allowed pairs within one block.
fn block_pairs(r: &Records, g: &[(u64, u32)], link_type: super::config::LinkType) -> f64 {
    if link_type == super::config::LinkType::LinkAndDedupe {
        let k = g.len() as f64;
        return k * (k - 1.0) / 2.0;
    }
    let mut per: std::collections::BTreeMap<u32, f64> = Default::default();
    for &(_, i) in g {
        *per.entry(r.source[i as usize]).or_default() += 1.0;
    }
    pairs_of(&per.into_values().collect::<Vec<_>>(), link_type)
}

/// Comparison patterns (levels packed, with counts) of the pairs blocked by `rule`;
/// past `em_max_pairs` a deterministic random sample of each block.
fn session_patterns(
    r: &Records,
    cx: &Context,
    rule: &[Attribute],
    specs: &[ComparisonSpec],
    cols: &[Col],
    s: &LinkageSettings,
    salt: u64,
) -> (std::collections::BTreeMap<u128, f64>, u64, f64) {
    let b = blocks(r, rule);
    let total: f64 = groups(&b).map(|g| block_pairs(r, g, s.link_type)).sum();
    let allowed = |i: usize, j: usize| s.link_type.allows(r.source[i], r.source[j]);
    let rate = (s.training.em_max_pairs as f64 / total.max(1.0)).min(1.0);
    let seed = s.training.seed ^ salt.wrapping_mul(0x9e37_79b9);
    let mut out: std::collections::BTreeMap<u128, f64> = Default::default();
    let mut pairs = 0u64;
    let mut levels = vec![0u8; specs.len()];
    let mut add = |i: usize, j: usize, out: &mut std::collections::BTreeMap<u128, f64>| {
        for (c, spec) in specs.iter().enumerate() {
            levels[c] = level(spec, cols[c], cx, i, j).0;
        }
        *out.entry(pack(&levels)).or_default() += 1.0;
    };
    for g in groups(&b) {
        let k = g.len();
        if k < 2 {
            continue;
        }
        // Seeded by the block's first row, so the sample does not depend on the order
        // blocks are visited in.
        let mut rng = Rng::new(seed ^ (g[0].1 as u64).wrapping_mul(0xff51_afd7_ed55_8ccd));
        let all = block_pairs(r, g, s.link_type);
        if rate >= 1.0 {
            for x in 0..k {
                for y in x + 1..k {
                    if allowed(g[x].1 as usize, g[y].1 as usize) {
                        add(g[x].1 as usize, g[y].1 as usize, &mut out);
                        pairs += 1;
                    }
                }
            }
            continue;
        }
        let want = all * rate;
        let mut draw = want.floor() as usize;
        if (rng.next() as f64 / u64::MAX as f64) < want.fract() {
            draw += 1;
        }
        for _ in 0..draw {
            let x = rng.below(k);
            let mut y = rng.below(k - 1);
            if y >= x {
                y += 1;
            }
            if !allowed(g[x].1 as usize, g[y].1 as usize) {
                continue;
            }
            add(g[x].1 as usize, g[y].1 as usize, &mut out);
            pairs += 1;
        }
    }
    (out, pairs, total)
}

/// Expectation–maximisation of m and the match share over comparison patterns, u
/// fixed; comparisons marked `fixed` (blocked on) are left out of the likelihood.
fn em(
    patterns: &std::collections::BTreeMap<u128, f64>,
    start: &[Vec<f64>],
    u: &[Vec<f64>],
    fixed: &[bool],
    max_iter: usize,
) -> (Vec<Vec<f64>>, f64, usize, bool) {
    let nc = start.len();
    let mut m = start.to_vec();
    let mut lambda = 0.3;
    let pats: Vec<(Vec<u8>, f64)> = patterns
        .iter()
        .map(|(p, n)| ((0..nc).map(|c| (p >> (8 * c)) as u8).collect(), *n))
        .collect();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        iterations += 1;
        let mut acc: Vec<Vec<f64>> = m.iter().map(|v| vec![0.0; v.len()]).collect();
        let (mut matched, mut total) = (0.0, 0.0);
        for (p, n) in &pats {
            let (mut pm, mut pu) = (lambda, 1.0 - lambda);
            for c in 0..nc {
                let l = p[c];
                if fixed[c] || l == MISSING {
                    continue;
                }
                pm *= m[c][l as usize];
                pu *= u[c][l as usize];
            }
            let w = if pm + pu > 0.0 { pm / (pm + pu) } else { 0.0 };
            matched += n * w;
            total += n;
            for c in 0..nc {
                let l = p[c];
                if !fixed[c] && l != MISSING {
                    acc[c][l as usize] += n * w;
                }
            }
        }
        let mut delta: f64 = 0.0;
        for c in 0..nc {
            if fixed[c] {
                continue;
            }
            let t: f64 = acc[c].iter().sum();
            if t <= 0.0 {
                continue;
            }
            for l in 0..m[c].len() {
                let v = (acc[c][l] / t).max(1e-6);
                delta = delta.max((v - m[c][l]).abs());
                m[c][l] = v;
            }
        }
        lambda = (matched / total.max(1.0)).clamp(1e-6, 1.0 - 1e-6);
        if delta < 1e-5 {
            converged = true;
            break;
        }
    }
    (m, lambda, iterations, converged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EM recovers m and the match share from the expected pattern counts of a known
    /// model (u fixed at its true values, as training fixes it from random pairs).
    #[test]
    fn em_recovers_known_m() {
        let m = [
            vec![0.85, 0.10, 0.05],
            vec![0.9, 0.07, 0.03],
            vec![0.95, 0.05],
        ];
        let u = [
            vec![0.01, 0.04, 0.95],
            vec![0.02, 0.08, 0.90],
            vec![0.5, 0.5],
        ];
        let lambda = 0.2;
        let mut patterns = std::collections::BTreeMap::new();
        for a in 0..3u8 {
            for b in 0..3u8 {
                for c in 0..2u8 {
                    let pm = lambda * m[0][a as usize] * m[1][b as usize] * m[2][c as usize];
                    let pu =
                        (1.0 - lambda) * u[0][a as usize] * u[1][b as usize] * u[2][c as usize];
                    patterns.insert(pack(&[a, b, c]), 1e6 * (pm + pu));
                }
            }
        }
        let start = vec![vec![0.6, 0.2, 0.2], vec![0.6, 0.2, 0.2], vec![0.6, 0.4]];
        let (est, l, _, converged) = em(&patterns, &start, &u, &[false, false, false], 500);
        assert!(converged);
        assert!((l - lambda).abs() < 1e-3, "lambda {l}");
        for c in 0..3 {
            for k in 0..m[c].len() {
                assert!(
                    (est[c][k] - m[c][k]).abs() < 1e-3,
                    "m[{c}][{k}] = {}",
                    est[c][k]
                );
            }
        }
    }

    #[test]
    fn partial_agreement_never_weighs_below_disagreement() {
        let u = [0.01, 0.02, 0.97];
        let m = no_worse_than_different(vec![0.95, 1e-6, 0.05], &u);
        let w: Vec<f64> = m.iter().zip(&u).map(|(m, u)| (m / u).log2()).collect();
        assert!(w[1] >= w[2] - 1e-9, "{w:?}");
        assert!((m.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w[0] > w[1]);
    }

    #[test]
    fn day_month_swap_and_levels() {
        assert_eq!(swap(19_800_312), 19_801_203);
        assert_eq!(swap(19_800_313), 0, "day 13 cannot be a month");
        assert_eq!(swap(19_800_303), 0, "same day and month is not a swap");
        assert!(one_edit("9434765919", "9434765918"));
        assert!(one_edit("9434765919", "9434756919"));
        assert!(!one_edit("9434765919", "9434756918"));
    }

    #[test]
    fn names_recorded_the_other_way_round_reach_the_swap_level() {
        let mut r = Records::default();
        for (g, f) in [
            ("OLIVER", "HARGREAVES"),
            ("HARGREAVES", "OLIVER"),
            ("OLIVER", "OLIVER"),
        ] {
            let (g, f) = (r.names.id(g), r.names.id(f));
            r.given.push(g);
            r.family.push(f);
        }
        r.name_soundex = vec![NONE; r.names.len()];
        r.name_groups = vec![Box::new([]); r.names.len()];
        let spec = ComparisonSpec {
            field: Field::GivenName,
            levels: vec![Level::Exact, Level::NamesSwapped, Level::JaroWinkler(0.9)],
            term_frequency: false,
            history: false,
        };
        let cx = Context {
            r: &r,
            cluster: &[0, 1, 2],
            offsets: &[0, 0, 0, 0],
            history: &[],
        };
        assert_eq!(level(&spec, Col::Given, &cx, 0, 1).0, 1, "swapped");
        assert_eq!(
            level(&spec, Col::Family, &cx, 0, 1).0,
            1,
            "swapped, seen from the family name"
        );
        assert_eq!(
            level(&spec, Col::Given, &cx, 0, 2).0,
            0,
            "equal given names are exact"
        );
        assert_eq!(
            level(&spec, Col::Given, &cx, 1, 2).0,
            3,
            "one name in common is not a swap"
        );
    }

    #[test]
    fn rng_is_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert!((0..100).all(|_| a.next() == b.next()));
        assert!((0..1000).all(|_| a.below(10) < 10));
    }
}
