//! What each page and API endpoint shows, as JSON: the page renders it, the API returns
//! it, so a tool reading the API sees exactly what the role sees on the page.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::access::Counting;
use super::aggregate::{self, Dimension, Filters};
use super::auth::Principal;
use super::config::Role;
use super::data::{Data, Person};
use super::{App, ServeError};

pub const PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;

pub fn me(who: &Principal) -> Value {
    json!({
        "user": who.user,
        "name": who.name,
        "role": who.role.name(),
        "practices": who.practices,
        "sees_patient_rows": who.role != Role::Commissioner,
        "counts_disclosure_controlled": who.role == Role::Commissioner,
    })
}

/// The distribution page: pyramid, deciles and the breakdown `by` (default practice).
pub fn distribution(data: &Data, who: &Principal, q: &BTreeMap<String, String>) -> Value {
    let by = q
        .get("by")
        .and_then(|b| Dimension::parse(b))
        .unwrap_or(Dimension::Practice);
    let f = Filters::from_query(q);
    let d = aggregate::distribution(data, who, &f, by);
    let mut v = serde_json::to_value(&d).unwrap_or_default();
    v["bands_order"] = json!(data.bands);
    v["high_risk_bands"] = json!(data.high_risk_bands);
    v["dimensions"] =
        json!(aggregate::DIMENSIONS.map(|d| json!({"name": d.name(), "label": d.label()})));
    v["filter_query"] = json!(f.query());
    let next = match by {
        Dimension::Practice => Dimension::AgeBand,
        _ => Dimension::Practice,
    };
    if let Some(groups) = v["groups"].as_array_mut() {
        for g in groups {
            let value = g["value"].as_str().unwrap_or("").to_string();
            let mut drill = f.clone();
            drill.0.retain(|(d, _)| *d != by);
            drill.0.push((by, value));
            g["drill"] = json!(format!("{}&by={}", drill.query(), next.name()));
        }
    }
    v
}

/// A person's row as a patient-level list shows it (never identifiers: the person key
/// is the pseudonym, the reference is what URLs carry).
pub fn person_row(p: &Person) -> Value {
    json!({
        "reference": p.reference,
        "person_key": p.key,
        "rank": p.rank,
        "probability": p.probability,
        "percentile": p.percentile,
        "decile": p.decile,
        "band": p.band,
        "practice": p.practice,
        "pcn": p.pcn,
        "lsoa": p.lsoa,
        "age_band": p.age_band(),
        "sex": p.female.map(|f| if f { "female" } else { "male" }),
        "imd_quintile": p.imd_quintile(),
        "ethnic_group": p.ethnic_group,
        "segment": p.segment,
    })
}

/// A cohort list: the persons of a band or decile in scope, by rank, one page of them.
/// Returns the view and the person keys shown (for the audit log).
pub fn cohort(data: &Data, who: &Principal, q: &BTreeMap<String, String>) -> (Value, Vec<String>) {
    let band = q.get("band").filter(|b| data.bands.contains(b)).cloned();
    let decile = q
        .get("decile")
        .and_then(|d| d.parse::<u8>().ok())
        .filter(|d| (1..=10).contains(d));
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let size = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE);
    let f = Filters::from_query(q);
    let all: Vec<&Person> = aggregate::selected(data, who, &f)
        .into_iter()
        .filter(|p| band.as_ref().is_none_or(|b| &p.band == b))
        .filter(|p| decile.is_none_or(|d| p.decile == d))
        .collect();
    let rows: Vec<&Person> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .copied()
        .collect();
    let keys = rows.iter().map(|p| p.key.clone()).collect();
    let pages = all.len().div_ceil(size).max(1);
    let v = json!({
        "as_of": data.as_of.format("%Y-%m-%d").to_string(),
        "model_version": data.model_version,
        "band": band,
        "decile": decile,
        "bands_order": data.bands,
        "filters": f.0,
        "filter_query": f.query(),
        "persons": all.len(),
        "page": page,
        "pages": pages,
        "per_page": size,
        "rows": rows.iter().map(|p| person_row(p)).collect::<Vec<_>>(),
    });
    (v, keys)
}

/// One patient's detail: the row, the explanation card and the referral status.
pub async fn patient(app: &App, p: &Person) -> Result<Value, ServeError> {
    let card = app.data.card(p).await?;
    let mut v = person_row(p);
    v["as_of"] = json!(card.as_of_date);
    v["model_version"] = json!(card.model_version);
    v["factors"] = serde_json::to_value(&card.factors).unwrap_or_default();
    v["referral"] = app.data.referral(&p.key).await?.unwrap_or(Value::Null);
    Ok(v)
}

fn counting<'a>(data: &'a Data, who: &Principal) -> Counting<'a> {
    Counting {
        role: who.role,
        policy: &data.policy,
    }
}

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// Data quality per provider source and linkage per provider, counts as the role may see them.
pub fn quality(data: &Data, who: &Principal) -> Value {
    let sources: Vec<Value> = data
        .dq_report
        .as_ref()
        .and_then(|r| r.get("sources"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| source_quality(s, &counting(data, who)))
        .collect();
    json!({
        "run_id": data.dq_report.as_ref().and_then(|r| r.get("run_id")).cloned(),
        "sources": sources,
        "linkage": data.linkage.as_ref().map(|l| linkage_quality(l, &counting(data, who))),
    })
}

fn source_quality(s: &Value, counting: &Counting) -> Value {
    let role = counting.role;
    let raw = [
        "rows_read",
        "rows_accepted",
        "rows_quarantined",
        "rows_duplicate",
    ]
    .map(|k| num(s, k));
    let c = counting.lone(&raw);
    let lowest = s
        .get("completeness")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
        });
    json!({
        "provider": s.get("provider"),
        "source": s.get("source"),
        "entity": s.get("entity"),
        "status": s.get("status"),
        "rows_read": c[0],
        "rows_accepted": c[1],
        "rows_quarantined": c[2],
        "rows_duplicate": c[3],
        "quarantine_rate": if role == Role::Commissioner { Value::Null } else { s.get("quarantine_rate").cloned().unwrap_or(Value::Null) },
        "lowest_completeness": lowest.map(|(f, v)| json!({"field": f, "share": v})),
        "rules_failing": s.get("rule_hits").and_then(Value::as_array).map(|r| r.iter().filter(|h| num(h, "rows") > 0).count()).unwrap_or(0),
    })
}

fn linkage_quality(l: &Value, counting: &Counting) -> Value {
    let keys = [
        "identity_rows",
        "persons",
        "registered_persons",
        "probabilistic_links",
        "clerical_review_pairs",
    ];
    let c = counting.lone(&keys.map(|k| num(l, k)));
    let mut out = serde_json::Map::new();
    for (k, v) in keys.iter().zip(c) {
        out.insert((*k).into(), json!(v));
    }
    for k in ["ethnicity_recorded_before", "ethnicity_recorded_after"] {
        out.insert(k.into(), l.get(k).cloned().unwrap_or(Value::Null));
    }
    let by_provider: Vec<Value> = l
        .get("rows_by_provider_and_tier")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(provider, tiers)| {
            let t: Vec<(String, u64)> = tiers
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect();
            let c = counting
                .breakdown(&t.iter().map(|x| x.1).collect::<Vec<_>>())
                .0;
            let tiers: serde_json::Map<String, Value> = t
                .iter()
                .zip(c)
                .map(|((k, _), v)| (k.clone(), json!(v)))
                .collect();
            json!({"provider": provider, "tiers": tiers})
        })
        .collect();
    out.insert("by_provider".into(), json!(by_provider));
    Value::Object(out)
}

/// The population stage's published aggregates: one measure by one breakdown
/// (`measure`, `breakdown` query parameters), with the lists to choose from.
pub async fn population(app: &App, q: &BTreeMap<String, String>) -> Result<Value, ServeError> {
    let rows = app
        .data
        .population_rows(
            q.get("measure").map(String::as_str),
            q.get("breakdown").map(String::as_str),
        )
        .await?;
    Ok(json!({ "as_of": app.data.as_of.format("%Y-%m-%d").to_string(), "population": rows }))
}

pub fn audit(app: &App, n: usize) -> Result<Value, ServeError> {
    Ok(json!({ "records": app.audit.latest(n)? }))
}
