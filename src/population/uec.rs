//! Urgent and emergency care in the 12 months before the as-of date: emergency
//! admissions, those for chronic ambulatory care sensitive conditions (primary diagnosis
//! of the spell in the ACSC list, NHS Outcomes Framework 2.3.i), A&E attendances, the
//! low-acuity ones (acuity in `population.low_acuity_codes` and not admitted), and how
//! people arrived and left.
//!
//! The synthetic ECDS extract has no arrival mode and no investigation or treatment
//! fields, so when `arrival_mode` is empty the arrival is derived by linkage: an
//! ambulance conveyance the same or the previous day → `ambulance`, else an NHS 111 call
//! the same or the previous day → `nhs111_referral`, else `walk_in`. "Discharged with no
//! investigation or treatment" is read as acuity standard/non-urgent and not admitted.

use std::collections::{HashMap, HashSet};

use chrono::{Months, NaiveDate};
use datafusion::prelude::SessionContext;

use super::PopulationError;
use super::frame::Frame;
use super::inputs::{collect, days, texts};

/// One A&E attendance of a person of the frame.
#[derive(Debug, Clone)]
pub struct Attendance {
    pub person: usize,
    pub arrival: usize,
    pub departure: usize,
}

/// What this module needs from the settings.
pub struct UecInputs<'a> {
    pub emergency_methods: &'a [String],
    pub acsc_prefixes: &'a HashSet<String>,
    pub low_acuity: &'a [String],
    pub admitted: &'a [String],
    pub ambulance_arrival_codes: &'a [String],
}

fn list(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Count each person's urgent care and list the attendances.
pub async fn count(
    ctx: &SessionContext,
    frame: &mut Frame,
    as_of: NaiveDate,
    u: &UecInputs<'_>,
) -> Result<Vec<Attendance>, PopulationError> {
    let lo = as_of.checked_sub_months(Months::new(12)).unwrap_or(as_of);
    let (lo_s, hi_s) = (lo.format("%Y-%m-%d"), as_of.format("%Y-%m-%d"));
    let window = format!(
        "CAST(start_ts AS DATE) > DATE '{lo_s}' AND CAST(start_ts AS DATE) <= DATE '{hi_s}'"
    );
    let methods = if u.emergency_methods.is_empty() {
        "''".to_string()
    } else {
        list(u.emergency_methods)
    };
    let spells = collect(
        ctx,
        "emergency spells",
        &format!("SELECT person_key, CAST(start_ts AS DATE) AS d FROM pop_care_event WHERE setting = 'APC' AND upper(trim(admission_method)) IN ({methods}) AND {window}"),
    )
    .await?;
    let primary = primary_diagnoses(ctx, lo, as_of).await?;
    let (keys, d) = (texts(&spells, "person_key")?, days(&spells, "d")?);
    for (k, d) in keys.iter().zip(&d) {
        let (Some(k), Some(d)) = (k, d) else { continue };
        let Some(&p) = frame.index.get(k) else {
            continue;
        };
        frame.persons[p].events[0] += 1;
        let acsc = primary
            .get(&(k.clone(), *d))
            .is_some_and(|codes| codes.iter().any(|c| is_acsc(c, u.acsc_prefixes)));
        if acsc {
            frame.persons[p].events[1] += 1;
        }
    }
    attendances(ctx, frame, &window, u).await
}

fn is_acsc(code: &str, prefixes: &HashSet<String>) -> bool {
    (3..=4).any(|n| code.get(..n).is_some_and(|p| prefixes.contains(p)))
}

/// Primary diagnoses (position 1) by person and day.
async fn primary_diagnoses(
    ctx: &SessionContext,
    lo: NaiveDate,
    hi: NaiveDate,
) -> Result<HashMap<(String, i64), Vec<String>>, PopulationError> {
    let b = collect(
        ctx,
        "primary diagnoses",
        &format!(
            "SELECT person_key, diagnosis_date AS d, upper(COALESCE(code_normalised, icd10_normalise(code_original))) AS code FROM pop_diagnosis WHERE trim(position) = '1' AND diagnosis_date > DATE '{}' AND diagnosis_date <= DATE '{}'",
            lo.format("%Y-%m-%d"),
            hi.format("%Y-%m-%d")
        ),
    )
    .await?;
    let mut out: HashMap<(String, i64), Vec<String>> = HashMap::new();
    let (k, d, c) = (texts(&b, "person_key")?, days(&b, "d")?, texts(&b, "code")?);
    for ((k, d), c) in k.into_iter().zip(d).zip(c) {
        if let (Some(k), Some(d), Some(c)) = (k, d, c) {
            out.entry((k, d)).or_default().push(c);
        }
    }
    Ok(out)
}

/// Days (person, day) with an event of this query.
async fn person_days(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
) -> Result<HashSet<(String, i64)>, PopulationError> {
    let b = collect(ctx, what, sql).await?;
    let (k, d) = (texts(&b, "person_key")?, days(&b, "d")?);
    Ok(k.into_iter()
        .zip(d)
        .filter_map(|(k, d)| Some((k?, d?)))
        .collect())
}

async fn attendances(
    ctx: &SessionContext,
    frame: &mut Frame,
    window: &str,
    u: &UecInputs<'_>,
) -> Result<Vec<Attendance>, PopulationError> {
    let conveyed = person_days(ctx, "ambulance conveyances", "SELECT person_key, CAST(start_ts AS DATE) AS d FROM pop_care_event WHERE setting = 'AMBULANCE' AND pod = 'AMB_CONVEY'").await?;
    let calls = person_days(ctx, "111 calls", "SELECT person_key, CAST(start_ts AS DATE) AS d FROM pop_care_event WHERE setting = 'NHS111'").await?;
    let b = collect(
        ctx,
        "A&E attendances",
        &format!("SELECT person_key, CAST(start_ts AS DATE) AS d, trim(acuity) AS acuity, trim(discharge_destination) AS dest, trim(arrival_mode) AS arrival FROM pop_care_event WHERE setting = 'ECDS' AND {window}"),
    )
    .await?;
    let (k, d) = (texts(&b, "person_key")?, days(&b, "d")?);
    let (acuity, dest, arrival) = (
        texts(&b, "acuity")?,
        texts(&b, "dest")?,
        texts(&b, "arrival")?,
    );
    let mut out = Vec::new();
    for i in 0..k.len() {
        let (Some(key), Some(day)) = (&k[i], d[i]) else {
            continue;
        };
        let Some(&p) = frame.index.get(key) else {
            continue;
        };
        let near = |set: &HashSet<(String, i64)>| {
            set.contains(&(key.clone(), day)) || set.contains(&(key.clone(), day - 1))
        };
        let arrival = match arrival[i].as_deref().filter(|s| !s.is_empty()) {
            Some(code) if u.ambulance_arrival_codes.iter().any(|c| c == code) => 0,
            Some(_) => 3,
            None if near(&conveyed) => 0,
            None if near(&calls) => 1,
            None => 2,
        };
        let departure = match dest[i].as_deref().filter(|s| !s.is_empty()) {
            Some(c) if u.admitted.iter().any(|a| a == c) => 0,
            Some(_) => 1,
            None => 2,
        };
        let low = departure != 0
            && acuity[i]
                .as_deref()
                .is_some_and(|a| u.low_acuity.iter().any(|l| l == a));
        let person = &mut frame.persons[p];
        person.events[2] += 1;
        if low {
            person.events[3] += 1;
        }
        out.push(Attendance {
            person: p,
            arrival,
            departure,
        });
    }
    Ok(out)
}
