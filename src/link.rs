//! Record linkage (first slice): person-key candidates of a published run joined into
//! persons.
//!
//! 1. Same-record evidence: a record carrying a valid NHS number and a provider-local
//!    id links the two keys (GP events keyed by practice id join the patient's NHS key).
//! 2. Probabilistic (Fellegi–Sunter with fixed m/u; thresholds from the ICS file's
//!    `linkage:` section): clusters without a valid NHS number
//!    are compared, within blocks (date of birth, day/month-swapped date of birth,
//!    surname Soundex + birth year), to the other clusters on given name, family name,
//!    date of birth, postcode and sex; links at or above the link threshold are taken,
//!    pairs in the band below it go to a clerical-review queue with their explanation.
//! 3. A guard: two clusters holding different valid NHS numbers never merge.
//!
//! The result is a link map `candidate key → person_key` (stable: derived from the
//! smallest NHS number in the cluster, else the smallest candidate key).
//! 4. The spine: silver tables re-keyed to the linked person, and a `person` table by
//!    survivorship.
//!
//! Not yet here: EM estimation of m, term-frequency adjustment, registration and
//! address-period survivorship, a linkage report.

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Date32Type};
use datafusion::prelude::ParquetReadOptions;

use crate::pseudonymise::Key;
use crate::udf::text;

/// One identity row of the identity zone.
#[derive(Debug, Clone, Default)]
struct Row {
    key: Option<String>,
    nhs: Option<String>,
    given: Option<String>,
    family: Option<String>,
    dob: Option<i32>,
    sex: Option<String>,
    postcode: Option<String>,
    local: Option<String>,
    issuer: Option<String>,
    /// A recorded ethnic category (A–S; not Z, 99 or missing).
    ethnicity: bool,
    /// From a registered list (a source that maps to person_identity).
    registered: bool,
    provider: String,
}

/// What linkage did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LinkSummary {
    pub identity_rows: usize,
    pub candidate_keys: usize,
    pub persons: usize,
    pub same_record_links: usize,
    pub probabilistic_links: usize,
    pub nhs_conflicts_refused: usize,
    /// Pairs between the review and link thresholds (written to clerical_review.ndjson).
    pub clerical_review_pairs: usize,
    /// Identity rows by provider and how they were linked: `nhs_number` (valid NHS
    /// number), `same_record` (local id joined through a record carrying both),
    /// `probabilistic` (joined to a cluster with an NHS number), `unlinked`.
    pub rows_by_provider_and_tier:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>>,
    /// Best match weight of each cluster without an NHS number, in bins of 2 (`"-4"` is
    /// [-4, -2)); clusters with no candidate in any block are not counted.
    pub match_weight_histogram: std::collections::BTreeMap<i32, usize>,
    /// Registered persons (clusters holding a GP-list record).
    pub registered_persons: usize,
    /// Share of registered persons whose GP record has a recorded ethnic category.
    pub ethnicity_recorded_before: f64,
    /// Share with a recorded ethnic category in any linked record.
    pub ethnicity_recorded_after: f64,
}

struct UnionFind {
    parent: Vec<usize>,
    nhs: Vec<Option<String>>,
}

impl UnionFind {
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    /// Merge unless the two sides hold different valid NHS numbers.
    fn union(&mut self, a: usize, b: usize) -> Option<bool> {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return Some(false);
        }
        match (&self.nhs[ra], &self.nhs[rb]) {
            (Some(x), Some(y)) if x != y => None,
            _ => {
                let n = self.nhs[ra].clone().or_else(|| self.nhs[rb].clone());
                self.parent[rb] = ra;
                self.nhs[ra] = n;
                Some(true)
            }
        }
    }
}

/// Fellegi–Sunter weight of one comparison: log2(m/u).
fn w(m: f64, u: f64) -> f64 {
    (m / u).log2()
}

/// One comparison's contribution to a match weight.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Contribution {
    pub comparison: &'static str,
    pub level: &'static str,
    pub m: f64,
    pub u: f64,
    pub weight: f64,
}

/// Compare two identity rows: the level reached on each comparison, with its fixed
/// m and u and the weight log2(m/u). Missing values contribute nothing.
fn compare(a: &Row, b: &Row) -> Vec<Contribution> {
    let mut out = Vec::new();
    let mut add = |comparison, level, m: f64, u: f64| {
        out.push(Contribution {
            comparison,
            level,
            m,
            u,
            weight: w(m, u),
        })
    };
    let std = |s: &Option<String>| s.as_deref().and_then(text::name_standardise);
    match (std(&a.given), std(&b.given)) {
        (Some(x), Some(y)) if x == y => add("given_name", "exact", 0.90, 0.02),
        (Some(x), Some(y)) if strsim::jaro_winkler(&x, &y) >= 0.92 => {
            add("given_name", "jaro_winkler >= 0.92", 0.05, 0.005)
        }
        (Some(x), Some(y)) if text::soundex(&x) == text::soundex(&y) => {
            add("given_name", "soundex", 0.02, 0.01)
        }
        (Some(_), Some(_)) => add("given_name", "different", 0.03, 0.97),
        _ => {}
    }
    match (std(&a.family), std(&b.family)) {
        (Some(x), Some(y)) if x == y => add("family_name", "exact", 0.92, 0.01),
        (Some(x), Some(y)) if strsim::jaro_winkler(&x, &y) >= 0.92 => {
            add("family_name", "jaro_winkler >= 0.92", 0.05, 0.003)
        }
        (Some(_), Some(_)) => add("family_name", "different", 0.03, 0.98),
        _ => {}
    }
    match (a.dob, b.dob) {
        (Some(x), Some(y)) if x == y => add("date_of_birth", "exact", 0.97, 0.0003),
        (Some(x), Some(y)) if swapped(x) == Some(y) => {
            add("date_of_birth", "day/month swapped", 0.01, 0.00005)
        }
        (Some(x), Some(y)) if year(x) == year(y) => add("date_of_birth", "same year", 0.01, 0.012),
        (Some(_), Some(_)) => add("date_of_birth", "different", 0.01, 0.99),
        _ => {}
    }
    match (&a.postcode, &b.postcode) {
        (Some(x), Some(y)) if x == y => add("postcode", "exact", 0.85, 0.002),
        (Some(x), Some(y))
            if text::postcode_sector(x).is_some()
                && text::postcode_sector(x) == text::postcode_sector(y) =>
        {
            add("postcode", "same sector", 0.05, 0.02)
        }
        (Some(x), Some(y))
            if text::postcode_district(x).is_some()
                && text::postcode_district(x) == text::postcode_district(y) =>
        {
            add("postcode", "same district", 0.03, 0.05)
        }
        (Some(_), Some(_)) => add("postcode", "different", 0.07, 0.93),
        _ => {}
    }
    match (&a.sex, &b.sex) {
        (Some(x), Some(y)) if x == y => add("sex", "same", 0.98, 0.5),
        (Some(x), Some(y)) if x != "0" && y != "0" => add("sex", "different", 0.02, 0.5),
        _ => {}
    }
    out
}

/// Match weight between two identity rows.
fn match_weight(a: &Row, b: &Row) -> f64 {
    compare(a, b).iter().map(|c| c.weight).sum()
}

fn date(days: i32) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::Duration::days(days as i64))
}
fn year(days: i32) -> Option<i32> {
    use chrono::Datelike;
    date(days).map(|d| d.year())
}
fn swapped(days: i32) -> Option<i32> {
    use chrono::Datelike;
    let d = date(days)?;
    let s = chrono::NaiveDate::from_ymd_opt(d.year(), d.day(), d.month())?;
    Some((s - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// A pair sent to clerical review, with its explanation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReviewItem {
    pub key_a: String,
    pub key_b: String,
    pub total: f64,
    pub contributions: Vec<Contribution>,
}

/// Most pairs kept in the clerical-review queue of one run.
const REVIEW_LIMIT: usize = 100_000;

async fn load_rows(out: &Path) -> Result<Vec<Row>, String> {
    let ctx = crate::engine::planning_context();
    let dir = out.join("identity").join(crate::canonical::IDENTITY_ENTITY);
    let opts = ParquetReadOptions::default().table_partition_cols(vec![
        ("provider".into(), DataType::Utf8),
        ("source".into(), DataType::Utf8),
    ]);
    ctx.register_parquet("ident", dir.to_string_lossy().as_ref(), opts)
        .await
        .map_err(|e| e.to_string())?;
    let batches = ctx
        .sql("SELECT person_key, nhs_number, given_name, family_name, date_of_birth, sex, postcode, local_patient_id, local_id_issuer, ethnic_category, source_row IS NOT NULL AS registered, provider_id FROM ident")
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for b in &batches {
        let text_cols: Vec<Option<datafusion::arrow::array::ArrayRef>> = (0..b.num_columns())
            .map(|i| datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8).ok())
            .collect();
        let s = |i: usize, r: usize| -> Option<String> {
            let a = text_cols[i].as_ref()?.as_string::<i32>();
            (!a.is_null(r)).then(|| a.value(r).to_string())
        };
        let dob = b.column(4).as_primitive_opt::<Date32Type>();
        for r in 0..b.num_rows() {
            rows.push(Row {
                key: s(0, r),
                nhs: s(1, r).filter(|n| text::nhs_number_valid(n)),
                given: s(2, r),
                family: s(3, r),
                dob: dob.and_then(|d| (!d.is_null(r)).then(|| d.value(r))),
                sex: s(5, r),
                postcode: s(6, r),
                local: s(7, r),
                issuer: s(8, r),
                provider: s(11, r).unwrap_or_default(),
                ethnicity: s(9, r)
                    .is_some_and(|e| e.len() == 1 && e.as_str() < "T" && e.as_str() != "Z"),
                registered: s(10, r).as_deref() == Some("true"),
            });
        }
    }
    Ok(rows)
}

/// The explanation of a match between two candidate keys: the best-scoring pair of
/// their identity rows, comparison by comparison (a waterfall), and the decision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MatchExplanation {
    pub key_a: String,
    pub key_b: String,
    pub contributions: Vec<Contribution>,
    pub total: f64,
    pub threshold: f64,
    pub linked: bool,
}

pub async fn explain_match(
    out: &Path,
    key: &Key,
    threshold: f64,
    a: &str,
    b: &str,
) -> Result<MatchExplanation, String> {
    let rows = load_rows(out).await?;
    // A row answers to its own candidate key and to the keys its identifiers imply.
    let carries = |r: &Row, k: &str| -> bool {
        r.key.as_deref() == Some(k)
            || r.nhs
                .as_ref()
                .is_some_and(|n| key.person_key(&format!("nhs:{n}")) == k)
            || r.local.as_ref().is_some_and(|l| {
                key.person_key(&format!(
                    "local:{}:{l}",
                    r.issuer.clone().unwrap_or_default()
                )) == k
            })
    };
    let ra: Vec<&Row> = rows.iter().filter(|r| carries(r, a)).collect();
    let rb: Vec<&Row> = rows.iter().filter(|r| carries(r, b)).collect();
    if ra.is_empty() || rb.is_empty() {
        return Err(format!(
            "no identity rows for {}",
            if ra.is_empty() { a } else { b }
        ));
    }
    let mut best: Option<(f64, Vec<Contribution>)> = None;
    for x in &ra {
        for y in &rb {
            let c = compare(x, y);
            let t: f64 = c.iter().map(|c| c.weight).sum();
            if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                best = Some((t, c));
            }
        }
    }
    let (total, contributions) = best.unwrap_or_default();
    Ok(MatchExplanation {
        key_a: a.into(),
        key_b: b.into(),
        contributions,
        total,
        threshold,
        linked: total >= threshold,
    })
}

/// Link the identity zone of a published run; returns the link map (candidate key →
/// person key) and a summary.
pub async fn link(
    out: &Path,
    key: &Key,
    settings: &crate::ics::LinkageSettings,
) -> Result<(HashMap<String, String>, LinkSummary, Vec<ReviewItem>), String> {
    let rows = load_rows(out).await?;
    let mut summary = LinkSummary {
        identity_rows: rows.len(),
        ..Default::default()
    };
    // Nodes: every candidate key (and the keys a row's other identifiers imply).
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut uf = UnionFind {
        parent: Vec::new(),
        nhs: Vec::new(),
    };
    let mut node = |k: &str, nhs: Option<String>, uf: &mut UnionFind| -> usize {
        if let Some(i) = index.get(k) {
            let r = uf.find(*i);
            if uf.nhs[r].is_none() {
                uf.nhs[r] = nhs;
            }
            return *i;
        }
        let i = uf.parent.len();
        uf.parent.push(i);
        uf.nhs.push(nhs);
        index.insert(k.to_string(), i);
        i
    };
    let mut row_node = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(k) = &r.key else {
            row_node.push(None);
            continue;
        };
        let n = node(k, r.nhs.clone(), &mut uf);
        row_node.push(Some(n));
        // Same-record evidence: the row's NHS key and local-id key are one person.
        if let (Some(nhs), Some(local)) = (&r.nhs, &r.local) {
            let nk = key.person_key(&format!("nhs:{nhs}"));
            let lk = key.person_key(&format!(
                "local:{}:{local}",
                r.issuer.clone().unwrap_or_default()
            ));
            let a = node(&nk, Some(nhs.clone()), &mut uf);
            let b = node(&lk, None, &mut uf);
            match uf.union(a, b) {
                Some(true) => summary.same_record_links += 1,
                Some(false) => {}
                None => summary.nhs_conflicts_refused += 1,
            }
        }
    }
    // Which rows were keyed to an NHS number before the probabilistic step.
    let deterministic: Vec<bool> = (0..rows.len())
        .map(|i| {
            row_node[i].is_some_and(|n| {
                let r = uf.find(n);
                uf.nhs[r].is_some()
            })
        })
        .collect();
    // Probabilistic: rows of clusters without an NHS number against rows in their blocks.
    let mut review: Vec<ReviewItem> = Vec::new();
    let mut blocks: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(d) = r.dob {
            blocks.entry(format!("d:{d}")).or_default().push(i);
            if let (Some(f), Some(y)) = (r.family.as_deref().and_then(text::soundex), year(d)) {
                blocks.entry(format!("s:{f}:{y}")).or_default().push(i);
            }
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let Some(ni) = row_node[i] else { continue };
        let root = uf.find(ni);
        if uf.nhs[root].is_some() {
            continue;
        }
        let Some(d) = r.dob else { continue };
        let mut keys = vec![format!("d:{d}")];
        if let Some(s) = swapped(d) {
            keys.push(format!("d:{s}"));
        }
        if let (Some(f), Some(y)) = (r.family.as_deref().and_then(text::soundex), year(d)) {
            keys.push(format!("s:{f}:{y}"));
        }
        let mut best: Option<(f64, usize, usize)> = None;
        let mut top: Option<f64> = None;
        for k in &keys {
            for &j in blocks.get(k).map(Vec::as_slice).unwrap_or(&[]) {
                let Some(nj) = row_node[j] else { continue };
                if uf.find(nj) == uf.find(ni) {
                    continue;
                }
                let wgt = match_weight(r, &rows[j]);
                if top.is_none_or(|t| wgt > t) {
                    top = Some(wgt);
                }
                if wgt >= settings.review_threshold && best.is_none_or(|(bw, _, _)| wgt > bw) {
                    best = Some((wgt, nj, j));
                }
            }
        }
        if let Some(t) = top {
            *summary
                .match_weight_histogram
                .entry(((t / 2.0).floor() as i32) * 2)
                .or_default() += 1;
        }
        if let Some((wgt, _, j)) = best
            && wgt < settings.link_threshold
        {
            if review.len() < REVIEW_LIMIT {
                review.push(ReviewItem {
                    key_a: r.key.clone().unwrap_or_default(),
                    key_b: rows[j].key.clone().unwrap_or_default(),
                    total: wgt,
                    contributions: compare(r, &rows[j]),
                });
            }
            continue;
        }
        if let Some((_, nj, _)) = best {
            match uf.union(ni, nj) {
                Some(true) => summary.probabilistic_links += 1,
                Some(false) => {}
                None => summary.nhs_conflicts_refused += 1,
            }
        }
    }
    // Stable person keys: from the cluster's NHS number, else its smallest candidate key.
    let mut smallest: HashMap<usize, String> = HashMap::new();
    for (k, i) in &index {
        let r = uf.find(*i);
        let e = smallest.entry(r).or_insert_with(|| k.clone());
        if k < e {
            *e = k.clone();
        }
    }
    let mut map = HashMap::new();
    let mut persons = std::collections::HashSet::new();
    for (k, i) in &index {
        let r = uf.find(*i);
        let pk = match &uf.nhs[r] {
            Some(nhs) => key.person_key(&format!("person:nhs:{nhs}")),
            None => key.person_key(&format!("person:key:{}", smallest[&r])),
        };
        persons.insert(pk.clone());
        map.insert(k.clone(), pk);
    }
    // Link rates by provider and tier.
    for (i, r) in rows.iter().enumerate() {
        let tier = match row_node[i] {
            _ if r.nhs.is_some() => "nhs_number",
            Some(_) if deterministic[i] => "same_record",
            // Joined to a cluster with an NHS number by the probabilistic step.
            Some(n)
                if {
                    let root = uf.find(n);
                    uf.nhs[root].is_some()
                } =>
            {
                "probabilistic"
            }
            Some(_) => "unlinked",
            None => "unlinked",
        };
        *summary
            .rows_by_provider_and_tier
            .entry(r.provider.clone())
            .or_default()
            .entry(tier.into())
            .or_default() += 1;
    }
    // Ethnicity, the showcase of linkage: recorded on the GP list versus anywhere.
    let mut before: HashMap<usize, bool> = HashMap::new();
    let mut after: HashMap<usize, bool> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let Some(n) = row_node[i] else { continue };
        let root = uf.find(n);
        if r.registered {
            *before.entry(root).or_default() |= r.ethnicity;
        }
        *after.entry(root).or_default() |= r.ethnicity;
    }
    let registered = before.len().max(1) as f64;
    summary.registered_persons = before.len();
    summary.ethnicity_recorded_before = before.values().filter(|v| **v).count() as f64 / registered;
    summary.ethnicity_recorded_after = before
        .keys()
        .filter(|k| after.get(k).copied().unwrap_or(false))
        .count() as f64
        / registered;
    summary.candidate_keys = index.len();
    summary.persons = persons.len();
    summary.clerical_review_pairs = review.len();
    Ok((map, summary, review))
}

/// Write the link map as Parquet (`candidate_key, person_key`) via a temporary file.
pub fn write_link_map(map: &HashMap<String, String>, path: &Path) -> Result<(), String> {
    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let mut pairs: Vec<(&String, &String)> = map.iter().collect();
    pairs.sort();
    let schema = Arc::new(Schema::new(vec![
        Field::new("candidate_key", DataType::Utf8, false),
        Field::new("person_key", DataType::Utf8, false),
    ]));
    let a: ArrayRef = Arc::new(StringArray::from(
        pairs.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
    ));
    let b: ArrayRef = Arc::new(StringArray::from(
        pairs.iter().map(|p| p.1.as_str()).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), vec![a, b]).map_err(|e| e.to_string())?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension("parquet.tmp");
    let f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, schema, None)
        .map_err(|e| e.to_string())?;
    w.write(&batch).map_err(|e| e.to_string())?;
    w.close().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Build the spine from a published run and its link map, under `OUT/linkage/spine/`:
/// every silver table with `person_key` replaced by the linked person's key, and a
/// `person` table by survivorship (ethnic category: first recorded code, GP-list records
/// first; sex and date of birth: most frequent; only the year and month of birth leave
/// the identity zone). Written into a temporary directory, then renamed.
pub async fn build_spine(out: &Path, link_map: &Path) -> Result<Vec<(String, usize)>, String> {
    let ctx = crate::engine::planning_context();
    let err = |e: datafusion::error::DataFusionError| e.to_string();
    ctx.register_parquet(
        "link_map",
        link_map.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(err)?;
    let part = || {
        ParquetReadOptions::default().table_partition_cols(vec![
            ("provider".into(), DataType::Utf8),
            ("source".into(), DataType::Utf8),
        ])
    };
    let tmp = out
        .join("linkage")
        .join(format!(".spine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let mut written = Vec::new();
    let mut entities: Vec<std::path::PathBuf> = std::fs::read_dir(out.join("silver"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entities.sort();
    for (i, dir) in entities.iter().enumerate() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let t = format!("silver_{i}");
        ctx.register_parquet(&t, dir.to_string_lossy().as_ref(), part())
            .await
            .map_err(err)?;
        let df = ctx
            .sql(&format!(
                "SELECT s.* EXCLUDE (person_key, provider, source), coalesce(m.person_key, s.person_key) AS person_key \
                 FROM {t} s LEFT JOIN link_map m ON m.candidate_key = s.person_key"
            ))
            .await
            .map_err(err)?;
        let n = write_table(df, &tmp.join(&name)).await?;
        written.push((name, n));
    }
    ctx.register_parquet(
        "ident",
        out.join("identity")
            .join(crate::canonical::IDENTITY_ENTITY)
            .to_string_lossy()
            .as_ref(),
        part(),
    )
    .await
    .map_err(err)?;
    let person = ctx
        .sql(
            "WITH i AS ( \
               SELECT coalesce(m.person_key, x.person_key) AS pk, x.ethnic_category, x.sex, x.date_of_birth, \
                      x.source_row IS NOT NULL AS registered, x.provider_id \
               FROM ident x LEFT JOIN link_map m ON m.candidate_key = x.person_key WHERE x.person_key IS NOT NULL), \
             eth AS (SELECT pk, ethnic_category, provider_id, \
                       row_number() OVER (PARTITION BY pk ORDER BY registered DESC, provider_id, ethnic_category) AS rn \
                     FROM i WHERE ethnic_category IS NOT NULL AND ethnic_category NOT IN ('Z', '99')), \
             sx AS (SELECT pk, sex, row_number() OVER (PARTITION BY pk ORDER BY n DESC, sex) AS rn \
                    FROM (SELECT pk, sex, count(*) AS n FROM i WHERE sex IS NOT NULL AND sex <> '0' GROUP BY pk, sex) g), \
             dob AS (SELECT pk, date_of_birth, row_number() OVER (PARTITION BY pk ORDER BY n DESC, date_of_birth) AS rn \
                     FROM (SELECT pk, date_of_birth, count(*) AS n FROM i WHERE date_of_birth IS NOT NULL GROUP BY pk, date_of_birth) g) \
             SELECT p.pk AS person_key, CAST(date_trunc('month', d.date_of_birth) AS DATE) AS birth_year_month, s.sex, \
                    e.ethnic_category, e.provider_id AS ethnic_source_provider \
             FROM (SELECT DISTINCT pk FROM i) p \
             LEFT JOIN eth e ON e.pk = p.pk AND e.rn = 1 \
             LEFT JOIN sx s ON s.pk = p.pk AND s.rn = 1 \
             LEFT JOIN dob d ON d.pk = p.pk AND d.rn = 1",
        )
        .await
        .map_err(err)?;
    let n = write_table(person, &tmp.join("person")).await?;
    written.push(("person".into(), n));
    let spine = out.join("linkage").join("spine");
    let old = out
        .join("linkage")
        .join(format!(".spine-old-{}", std::process::id()));
    if spine.exists() {
        std::fs::rename(&spine, &old).map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, &spine).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(written)
}

/// Write a DataFrame as Parquet files into `dir`; returns the rows written.
async fn write_table(df: datafusion::dataframe::DataFrame, dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let res = df
        .write_parquet(
            &dir.to_string_lossy(),
            datafusion::dataframe::DataFrameWriteOptions::new(),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(count_of(&res))
}

fn count_of(batches: &[datafusion::arrow::array::RecordBatch]) -> usize {
    batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>()
        })
        .map(|a| a.iter().flatten().sum::<u64>() as usize)
        .sum()
}

/// The linkage report as a static HTML page (no scripts, no external resources).
pub fn report_html(s: &LinkSummary) -> String {
    use std::fmt::Write as _;
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Linkage report</title><style>\
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2733;max-width:1100px}table{border-collapse:collapse;margin:.5rem 0 1rem}\
td,th{border:1px solid #ccd;padding:.25rem .5rem;font-size:.9rem}th{background:#eef2f7}.num{text-align:right}\
.bar{display:inline-block;height:10px;background:#3a7}</style></head><body>\n<h1>Linkage report</h1>\n",
    );
    let _ = write!(
        h,
        "<p>{} identity rows, {} candidate keys linked into {} persons: {} same-record links, {} probabilistic links, \
         {} pairs for clerical review, {} merges refused because two different NHS numbers met.</p>\n",
        s.identity_rows,
        s.candidate_keys,
        s.persons,
        s.same_record_links,
        s.probabilistic_links,
        s.clerical_review_pairs,
        s.nhs_conflicts_refused
    );
    let _ = write!(
        h,
        "<h2>Ethnicity</h2><p>Of {} registered persons, {:.1}% have an ethnic category on their GP record and {:.1}% in any linked record.</p>\n",
        s.registered_persons,
        s.ethnicity_recorded_before * 100.0,
        s.ethnicity_recorded_after * 100.0
    );
    h.push_str("<h2>Identity rows by provider and how they linked</h2><table><tr><th>provider</th><th>NHS number</th><th>same record</th><th>probabilistic</th><th>unlinked</th></tr>\n");
    for (p, tiers) in &s.rows_by_provider_and_tier {
        let g = |t: &str| tiers.get(t).copied().unwrap_or(0);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(p),
            g("nhs_number"),
            g("same_record"),
            g("probabilistic"),
            g("unlinked")
        );
    }
    h.push_str("</table>\n<h2>Best match weight of clusters without an NHS number</h2><table><tr><th>weight</th><th class=num>clusters</th><th></th></tr>\n");
    let max = s
        .match_weight_histogram
        .values()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    for (bin, n) in &s.match_weight_histogram {
        let _ = writeln!(
            h,
            "<tr><td>[{}, {})</td><td class=num>{}</td><td><span class=bar style=\"width:{}px\"></span></td></tr>",
            bin,
            bin + 2,
            n,
            (n * 300) / max
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
