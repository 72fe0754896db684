//! Controlled re-identification of referred persons: a care team working a referral
//! needs the NHS number and name behind a person key. Granted only with the
//! pseudonymisation key the run was made with (checked against `run.json`'s key
//! fingerprint), for a declared practice scope (each person must be referred at the
//! as-of date and registered at a practice in scope), to a named user with a purpose.
//! Every request, granted or refused, is appended to `audit/reidentification.ndjson`
//! (person keys only, never identifiers). The identifiers are printed, never written
//! under `gold/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{OpsError, read_parquet_dir, text_column, ymd};
use crate::pseudonymise::Key;

/// What is asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub out: PathBuf,
    pub as_of: NaiveDate,
    pub model: Option<String>,
    /// ODS codes of the practices in scope.
    pub practices: Vec<String>,
    /// Person keys (default: every referred person of the practices in scope).
    pub persons: Vec<String>,
    pub user: String,
    pub purpose: String,
}

/// One re-identified person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Identified {
    pub person_key: String,
    pub referral_id: String,
    pub practice: Option<String>,
    pub nhs_number: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// One line of `audit/reidentification.ndjson`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    /// RFC 3339, UTC.
    pub at: String,
    pub user: String,
    pub purpose: String,
    pub as_of: String,
    pub model_version: Option<String>,
    pub practices: Vec<String>,
    pub persons_requested: Vec<String>,
    /// `granted` or `refused`.
    pub outcome: String,
    pub reason: Option<String>,
    /// Person keys whose identifiers were released.
    pub persons_reidentified: Vec<String>,
    /// Fingerprint of the key presented (never the key), when one was.
    pub key_fingerprint: Option<String>,
}

pub fn audit_path(out: &Path) -> PathBuf {
    out.join("audit").join("reidentification.ndjson")
}

/// Re-identify, auditing the request whatever the outcome.
pub fn reidentify(req: &Request, key: Result<Key, String>) -> Result<Vec<Identified>, OpsError> {
    let fingerprint = key.as_ref().ok().map(Key::fingerprint);
    let mut entry = AuditEntry {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        user: req.user.clone(),
        purpose: req.purpose.clone(),
        as_of: ymd(req.as_of),
        model_version: None,
        practices: req.practices.clone(),
        persons_requested: req.persons.clone(),
        outcome: "refused".into(),
        reason: None,
        persons_reidentified: vec![],
        key_fingerprint: fingerprint,
    };
    let result = decide(req, key, &mut entry);
    match &result {
        Ok(found) => {
            entry.outcome = "granted".into();
            entry.persons_reidentified = found.iter().map(|f| f.person_key.clone()).collect();
        }
        Err(e) => entry.reason = Some(e.to_string()),
    }
    append_audit(&req.out, &entry)?;
    result
}

fn refuse(why: impl Into<String>) -> OpsError {
    OpsError::Refused(why.into())
}

fn decide(
    req: &Request,
    key: Result<Key, String>,
    entry: &mut AuditEntry,
) -> Result<Vec<Identified>, OpsError> {
    if req.user.trim().is_empty() || req.purpose.trim().is_empty() {
        return Err(refuse("a named --user and a --purpose are required"));
    }
    if req.practices.is_empty() {
        return Err(refuse(
            "no practice scope: give the practices whose referrals you work (--practice ODS, repeatable)",
        ));
    }
    let key = key.map_err(|e| refuse(format!("it needs the pseudonymisation key: {e}")))?;
    check_key(&req.out, &key)?;
    let version = super::scoring_version(&req.out, req.as_of, req.model.as_deref())?;
    entry.model_version = Some(version.clone());
    let file = super::referrals::read(&req.out, req.as_of, &version)?;
    let chosen = choose(req, &file)?;
    let keys: BTreeSet<String> = chosen.iter().map(|r| r.person_key.clone()).collect();
    let ids = identifiers(&req.out, &keys)?;
    Ok(chosen
        .into_iter()
        .map(|r| {
            let id = ids.get(&r.person_key);
            Identified {
                person_key: r.person_key.clone(),
                referral_id: r.referral_id.clone(),
                practice: r.practice.clone(),
                nhs_number: id.and_then(|i| i.0.clone()),
                given_name: id.and_then(|i| i.1.clone()),
                family_name: id.and_then(|i| i.2.clone()),
            }
        })
        .collect())
}

/// The key must be the one the run was pseudonymised with.
fn check_key(out: &Path, key: &Key) -> Result<(), OpsError> {
    let p = out.join("run.json");
    let text = std::fs::read_to_string(&p).map_err(|e| OpsError::file(&p, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| OpsError::file(&p, e))?;
    let expected = v
        .get("key_fingerprint")
        .and_then(|f| f.as_str())
        .unwrap_or("");
    if expected != key.fingerprint() {
        return Err(refuse(format!(
            "the key given is not the key this run was pseudonymised with (fingerprint {} in {}, {} given)",
            expected,
            p.display(),
            key.fingerprint()
        )));
    }
    Ok(())
}

/// The referrals asked for, every one referred and in scope.
fn choose<'a>(
    req: &Request,
    file: &'a super::referrals::ReferralFile,
) -> Result<Vec<&'a super::referrals::Referral>, OpsError> {
    let in_scope = |r: &super::referrals::Referral| {
        r.practice
            .as_ref()
            .is_some_and(|p| req.practices.iter().any(|x| x == p))
    };
    if req.persons.is_empty() {
        return Ok(file.referrals.iter().filter(|r| in_scope(r)).collect());
    }
    let by: HashMap<&str, &super::referrals::Referral> = file
        .referrals
        .iter()
        .map(|r| (r.person_key.as_str(), r))
        .collect();
    let mut out = Vec::new();
    for p in &req.persons {
        let r = by.get(p.as_str()).ok_or_else(|| {
            refuse(format!(
                "person {p} is not referred at as-of {} (only referred persons can be re-identified)",
                file.as_of_date
            ))
        })?;
        if !in_scope(r) {
            return Err(refuse(format!(
                "person {p} is registered at {}, outside the practice scope {}",
                r.practice.as_deref().unwrap_or("no practice"),
                req.practices.join(", ")
            )));
        }
        out.push(*r);
    }
    Ok(out)
}

type Ids = (Option<String>, Option<String>, Option<String>);

/// NHS number, given and family name of each person key: the most frequent values over
/// the identity rows of its candidate keys (link map).
fn identifiers(out: &Path, persons: &BTreeSet<String>) -> Result<BTreeMap<String, Ids>, OpsError> {
    let map = out.join("linkage").join("link_map.parquet");
    let mut of: HashMap<String, String> = HashMap::new();
    for b in read_parquet_dir_or_file(&map)? {
        let c = text_column(&b, "candidate_key")?;
        let p = text_column(&b, "person_key")?;
        for (c, p) in c.into_iter().zip(p) {
            if let (Some(c), Some(p)) = (c, p)
                && persons.contains(&p)
            {
                of.insert(c, p);
            }
        }
    }
    type Tally = BTreeMap<Option<String>, usize>;
    let mut votes: BTreeMap<String, [Tally; 3]> = BTreeMap::new();
    for file in parquet_files(&out.join("identity"))? {
        for b in read_parquet_dir_or_file(&file)? {
            let cand = text_column(&b, "person_key")?;
            let col = |n: &str| text_column(&b, n).unwrap_or_else(|_| vec![None; b.num_rows()]);
            let (nhs, given, family) = (col("nhs_number"), col("given_name"), col("family_name"));
            for i in 0..b.num_rows() {
                let Some(p) = cand[i].as_ref().and_then(|c| of.get(c)) else {
                    continue;
                };
                let v = votes.entry(p.clone()).or_default();
                for (t, x) in v.iter_mut().zip([&nhs[i], &given[i], &family[i]]) {
                    if x.as_ref().is_some_and(|s| !s.is_empty()) {
                        *t.entry(x.clone()).or_default() += 1;
                    }
                }
            }
        }
    }
    let top = |t: &Tally| {
        t.iter()
            .max_by_key(|(_, n)| **n)
            .and_then(|(v, _)| v.clone())
    };
    Ok(votes
        .into_iter()
        .map(|(p, [a, b, c])| (p, (top(&a), top(&b), top(&c))))
        .collect())
}

fn read_parquet_dir_or_file(
    p: &Path,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, OpsError> {
    if p.is_dir() {
        return read_parquet_dir(p);
    }
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = std::fs::File::open(p).map_err(|e| OpsError::file(p, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| OpsError::file(p, e))?;
    reader
        .map(|b| b.map_err(|e| OpsError::file(p, e)))
        .collect()
}

/// Every Parquet file under `dir` (following the run's symlinks), sorted.
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, OpsError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .map_err(|e| OpsError::file(&d, e))?
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn append_audit(out: &Path, e: &AuditEntry) -> Result<(), OpsError> {
    let p = audit_path(out);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| OpsError::file(d, e))?;
    }
    let line = serde_json::to_string(e).map_err(|e| OpsError::Data(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(|e| OpsError::file(&p, e))?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| OpsError::file(&p, e))
}

/// The audit log, oldest first.
pub fn read_audit(out: &Path) -> Result<Vec<AuditEntry>, OpsError> {
    let p = audit_path(out);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(OpsError::file(&p, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| OpsError::file(&p, e)))
        .collect()
}
