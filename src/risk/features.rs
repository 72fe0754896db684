//! Declared features compiled to one SQL query (and so one DataFusion plan) over the
//! spine, relative to an as-of date: one row per person in the population at that date,
//! a numeric column per model feature, text columns for breakdowns, an `ev_<feature>`
//! evidence column for each feature that has evidence (latest date and provider, or the
//! categories or codes behind an index), and the outcome when its window has passed.
//!
//! Only the spine is read (`linkage/spine/`), so no identifier can reach a feature.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{Duration, NaiveDate};

use super::codelists::{Codelists, IndexWeight};
use super::config::{
    CharlsonWeights, EventFilter, FeatureKind, FeatureSpec, RiskSettings, Window, months_before,
};

/// A compiled feature query for one as-of date.
#[derive(Debug, Clone)]
pub struct FeatureQuery {
    pub as_of: NaiveDate,
    pub sql: String,
    pub columns: Vec<FeatureColumn>,
    /// Whether the outcome window `(as_of, as_of + horizon]` lies within the data.
    pub outcome_known: bool,
}

/// One column of `gold/features`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureColumn {
    pub name: String,
    pub label: String,
    pub model_input: bool,
    pub numeric: bool,
    /// The kind, as declared (`event_count`, `charlson`, …).
    pub kind: String,
    pub evidence: bool,
}

/// The outcome column of `gold/features`.
pub const OUTCOME: &str = "outcome_emergency_admission";

/// A feature that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    #[error("feature `{feature}`: unknown code list `{name}`{hint} (code lists: {known})")]
    UnknownCodelist {
        feature: String,
        name: String,
        hint: String,
        known: String,
    },
    #[error("feature `{0}` is declared twice")]
    Duplicate(String),
    #[error(
        "feature name `{0}` must be lower case letters, digits and `_`, starting with a letter"
    )]
    BadName(String),
    #[error("feature `{feature}`: {message}")]
    Invalid { feature: String, message: String },
    #[error("{0}")]
    Codelist(String),
}

/// Everything a query needs besides the specs.
pub struct Inputs<'a> {
    pub settings: &'a RiskSettings,
    pub codelists: &'a Codelists,
    /// The last date the data cover (the run's reference date).
    pub data_end: NaiveDate,
}

fn lit(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `(lo, hi]` of a window before `as_of`.
fn bounds(as_of: NaiveDate, w: &Window) -> (NaiveDate, NaiveDate) {
    (
        months_before(as_of, w.to_months),
        months_before(as_of, w.from_months),
    )
}

fn in_window(col: &str, as_of: NaiveDate, w: &Window) -> String {
    let (lo, hi) = bounds(as_of, w);
    format!("{col} > {} AND {col} <= {}", lit(lo), lit(hi))
}

/// Check names and code lists before compiling.
pub fn check(specs: &[FeatureSpec], codelists: &Codelists) -> Vec<FeatureError> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let known = codelists.condition_lists();
    for s in specs {
        let ok = s
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && s.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok || s.name.starts_with("ev_") || s.name == OUTCOME {
            out.push(FeatureError::BadName(s.name.clone()));
        }
        if !seen.insert(s.name.clone()) {
            out.push(FeatureError::Duplicate(s.name.clone()));
        }
        let lists: Vec<&String> = match &s.kind {
            FeatureKind::Condition { codelist, .. } => vec![codelist],
            FeatureKind::ConditionCount { codelists } => codelists.iter().collect(),
            _ => vec![],
        };
        for l in lists {
            if !known.contains(l) {
                let hint = crate::diagnostics::did_you_mean(l, known.iter().map(String::as_str))
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                out.push(FeatureError::UnknownCodelist {
                    feature: s.name.clone(),
                    name: l.clone(),
                    hint,
                    known: known.join(", "),
                });
            }
        }
        if let Some(w) = window_of(&s.kind)
            && w.from_months >= w.to_months
        {
            out.push(FeatureError::Invalid {
                feature: s.name.clone(),
                message: format!(
                    "window from_months {} must be below to_months {}",
                    w.from_months, w.to_months
                ),
            });
        }
    }
    out
}

fn window_of(k: &FeatureKind) -> Option<&Window> {
    match k {
        FeatureKind::EventCount { window, .. }
        | FeatureKind::GpContactDays { window }
        | FeatureKind::SocialCareEvents { window }
        | FeatureKind::DistinctMedications { window } => Some(window),
        _ => None,
    }
}

/// The care-event windows of the features: (feature, setting, months back).
pub fn event_windows(specs: &[FeatureSpec]) -> Vec<(String, String, u32)> {
    specs
        .iter()
        .filter_map(|s| match &s.kind {
            FeatureKind::EventCount {
                setting, window, ..
            } => Some((s.name.clone(), setting.clone(), window.to_months)),
            _ => None,
        })
        .collect()
}

/// Query parts collected per source table.
#[derive(Default)]
struct Parts {
    care_event: Vec<String>,
    observation: Vec<String>,
    social_care: Vec<String>,
    medication: Vec<String>,
    conditions: Vec<String>,
    extra_ctes: Vec<String>,
    joins: Vec<String>,
    select: Vec<String>,
    columns: Vec<FeatureColumn>,
}

impl Parts {
    fn column(&mut self, s: &FeatureSpec, numeric: bool, evidence: bool, kind: &str) {
        self.columns.push(FeatureColumn {
            name: s.name.clone(),
            label: s.label.clone().unwrap_or_else(|| s.name.replace('_', " ")),
            model_input: s.model_input && numeric,
            numeric,
            kind: kind.into(),
            evidence,
        });
    }
}

/// Compile the features into one query for `as_of`.
pub fn compile(
    specs: &[FeatureSpec],
    inputs: &Inputs,
    as_of: NaiveDate,
) -> Result<FeatureQuery, FeatureError> {
    if let Some(e) = check(specs, inputs.codelists).into_iter().next() {
        return Err(e);
    }
    let mut p = Parts::default();
    for s in specs {
        add_feature(&mut p, s, inputs, as_of)?;
    }
    let horizon = Duration::days(inputs.settings.horizon_days as i64);
    let outcome_known = as_of + horizon <= inputs.data_end;
    let sql = assemble(&p, inputs, as_of, outcome_known);
    Ok(FeatureQuery {
        as_of,
        sql,
        columns: p.columns,
        outcome_known,
    })
}

/// One feature's columns and query parts, by family.
fn add_feature(
    p: &mut Parts,
    s: &FeatureSpec,
    inputs: &Inputs,
    as_of: NaiveDate,
) -> Result<(), FeatureError> {
    use FeatureKind as K;
    match &s.kind {
        K::Age | K::Sex { .. } | K::ImdDecile | K::EthnicGroup | K::Practice | K::Pcn | K::Lsoa => {
            add_person(p, s, inputs, as_of)
        }
        K::EventCount { .. }
        | K::GpContactDays { .. }
        | K::SocialCareEvents { .. }
        | K::DistinctMedications { .. }
        | K::DataAvailability { .. } => add_activity(p, s, inputs, as_of),
        K::Condition { .. } | K::ConditionCount { .. } => add_condition(p, s, inputs, as_of),
        K::Charlson { .. } | K::Elixhauser { .. } | K::Hfrs { .. } => {
            add_index(p, s, inputs, as_of)
        }
    }
}

/// Demographics, geography and breakdown columns.
fn add_person(
    p: &mut Parts,
    s: &FeatureSpec,
    _inputs: &Inputs,
    as_of: NaiveDate,
) -> Result<(), FeatureError> {
    let n = &s.name;
    match &s.kind {
        FeatureKind::Age => {
            p.select.push(format!(
                "CAST(date_part('year', {a}) - date_part('year', pop.birth_year_month) - CASE WHEN date_part('month', {a}) < date_part('month', pop.birth_year_month) THEN 1 ELSE 0 END AS DOUBLE) AS {n}",
                a = lit(as_of)
            ));
            p.column(s, true, false, "age");
        }
        FeatureKind::Sex { equals } => {
            p.select.push(format!(
                "CAST(CASE WHEN pop.sex = {} THEN 1 WHEN pop.sex IS NULL THEN NULL ELSE 0 END AS DOUBLE) AS {n}",
                quote(equals)
            ));
            p.column(s, true, false, "sex");
        }
        FeatureKind::ImdDecile => {
            p.select
                .push(format!("CAST(imd.imd_decile AS DOUBLE) AS {n}"));
            p.column(s, true, false, "imd_decile");
        }
        FeatureKind::EthnicGroup => {
            p.select
                .push(format!("{} AS {n}", ethnic_group("pop.ethnic_category")));
            p.column(s, false, false, "ethnic_group");
        }
        FeatureKind::Practice => text_column(p, s, "reg.practice_ods", "practice"),
        FeatureKind::Pcn => text_column(p, s, "reg.pcn_code", "pcn"),
        FeatureKind::Lsoa => text_column(p, s, "addr.lsoa11", "lsoa"),
        // Other kinds belong to the other adders (see `add_feature`).
        _ => {}
    }
    Ok(())
}

/// Counts of activity in windows, and data availability.
fn add_activity(
    p: &mut Parts,
    s: &FeatureSpec,
    inputs: &Inputs,
    as_of: NaiveDate,
) -> Result<(), FeatureError> {
    let n = &s.name;
    match &s.kind {
        FeatureKind::EventCount {
            setting,
            only,
            pods,
            window,
        } => {
            let mut cond = format!(
                "setting = {} AND {}",
                quote(setting),
                in_window("d", as_of, window)
            );
            match only {
                Some(EventFilter::Emergency) => {
                    let _ = write!(
                        cond,
                        " AND admission_method IN ({})",
                        methods(inputs.settings)
                    );
                }
                Some(EventFilter::Elective) => {
                    cond.push_str(" AND admission_method IN ('11', '12', '13')")
                }
                None => {}
            }
            if let Some(pods) = pods {
                let list: Vec<String> = pods.iter().map(|x| quote(x)).collect();
                let _ = write!(cond, " AND pod IN ({})", list.join(", "));
            }
            count_with_evidence(&mut p.care_event, n, &cond, None);
            numeric_from(p, s, "ce", "event_count");
        }
        FeatureKind::GpContactDays { window } => {
            let cond = in_window("d", as_of, window);
            count_with_evidence(&mut p.observation, n, &cond, Some("d"));
            numeric_from(p, s, "obs", "gp_contact_days");
        }
        FeatureKind::SocialCareEvents { window } => {
            count_with_evidence(&mut p.social_care, n, &in_window("d", as_of, window), None);
            numeric_from(p, s, "sc", "social_care_events");
        }
        FeatureKind::DistinctMedications { window } => {
            let cond = in_window("d", as_of, window);
            count_with_evidence(&mut p.medication, n, &cond, Some("code"));
            numeric_from(p, s, "med", "distinct_medications");
        }
        FeatureKind::DataAvailability { setting } => {
            let expr = match setting.as_str() {
                "primary_care" => {
                    "CASE WHEN gp_seen.person_key IS NULL THEN 0 ELSE 1 END".to_string()
                }
                other => {
                    let c = format!("setting = {}", quote(&other.to_ascii_uppercase()));
                    p.care_event
                        .push(format!("MAX(CASE WHEN {c} THEN 1 ELSE 0 END) AS {n}"));
                    format!("coalesce(ce.{n}, 0)")
                }
            };
            p.select.push(format!("CAST({expr} AS DOUBLE) AS {n}"));
            p.column(s, true, false, "data_availability");
        }
        // Other kinds belong to the other adders (see `add_feature`).
        _ => {}
    }
    Ok(())
}

/// Conditions from code lists.
fn add_condition(
    p: &mut Parts,
    s: &FeatureSpec,
    _inputs: &Inputs,
    as_of: NaiveDate,
) -> Result<(), FeatureError> {
    let n = &s.name;
    match &s.kind {
        FeatureKind::Condition {
            codelist,
            lookback_months,
        } => {
            let mut cond = format!("codelist = {}", quote(codelist));
            if let Some(m) = lookback_months {
                let _ = write!(cond, " AND d > {}", lit(months_before(as_of, *m)));
            }
            p.conditions
                .push(format!("MAX(CASE WHEN {cond} THEN 1 ELSE 0 END) AS {n}"));
            p.conditions.push(format!(
                "concat(CAST(COUNT(CASE WHEN {cond} THEN 1 END) AS VARCHAR), '|', MAX(CASE WHEN {cond} THEN concat(CAST(d AS VARCHAR), '|', provider_id) END)) AS ev_{n}"
            ));
            numeric_from(p, s, "cond", "condition");
        }
        FeatureKind::ConditionCount { codelists } => {
            let list: Vec<String> = codelists.iter().map(|x| quote(x)).collect();
            p.conditions.push(format!(
                "COUNT(DISTINCT CASE WHEN codelist IN ({}) THEN codelist END) AS {n}",
                list.join(", ")
            ));
            p.conditions.push(format!(
                // Sorted, so the evidence is the same text on every run.
                "NULLIF(array_to_string(array_sort(array_agg(DISTINCT CASE WHEN codelist IN ({}) THEN codelist END)), ';'), '') AS ev_{n}",
                list.join(", ")
            ));
            numeric_from(p, s, "cond", "condition_count");
        }
        // Other kinds belong to the other adders (see `add_feature`).
        _ => {}
    }
    Ok(())
}

/// Morbidity indices (Charlson, Elixhauser, HFRS).
fn add_index(
    p: &mut Parts,
    s: &FeatureSpec,
    inputs: &Inputs,
    as_of: NaiveDate,
) -> Result<(), FeatureError> {
    let n = &s.name;
    match &s.kind {
        FeatureKind::Charlson {
            weights,
            lookback_months,
        } => {
            let col = match weights {
                CharlsonWeights::Quan2011 => "quan2011",
                CharlsonWeights::Charlson1987 => "charlson1987",
            };
            let w = inputs
                .codelists
                .index_weights("charlson_weights.csv", col)
                .map_err(|e| FeatureError::Codelist(e.to_string()))?;
            index_feature(
                p,
                s,
                "charlson_map",
                &w,
                months_before(as_of, *lookback_months),
            );
        }
        FeatureKind::Elixhauser { lookback_months } => {
            let w = inputs
                .codelists
                .index_weights("elixhauser_weights_vanwalraven2009.csv", "weight")
                .map_err(|e| FeatureError::Codelist(e.to_string()))?;
            index_feature(
                p,
                s,
                "elixhauser_map",
                &w,
                months_before(as_of, *lookback_months),
            );
        }
        FeatureKind::Hfrs { lookback_months } => {
            let cte = format!("ix_{n}");
            p.extra_ctes.push(format!(
                "{cte} AS (SELECT x.person_key, SUM(w.weight) AS score, string_agg(x.code3, ';' ORDER BY w.weight DESC, x.code3) AS ev FROM (SELECT DISTINCT person_key, left(code, 3) AS code3 FROM icd WHERE d > {lo}) x JOIN hfrs_weights w ON w.code3 = x.code3 GROUP BY x.person_key)",
                lo = lit(months_before(as_of, *lookback_months))
            ));
            p.joins.push(format!(
                "LEFT JOIN {cte} ON {cte}.person_key = pop.person_key"
            ));
            p.select
                .push(format!("CAST(coalesce({cte}.score, 0) AS DOUBLE) AS {n}"));
            p.select.push(format!("{cte}.ev AS ev_{n}"));
            p.column(s, true, true, "hfrs");
        }
        // Other kinds belong to the other adders (see `add_feature`).
        _ => {}
    }
    Ok(())
}

fn text_column(p: &mut Parts, s: &FeatureSpec, expr: &str, kind: &str) {
    p.select.push(format!("{expr} AS {}", s.name));
    p.column(s, false, false, kind);
}

/// A count of the rows (or of the distinct values of `distinct_of`) meeting `cond`,
/// and the latest such row's `date|provider` as evidence.
fn count_with_evidence(aggs: &mut Vec<String>, n: &str, cond: &str, distinct_of: Option<&str>) {
    aggs.push(match distinct_of {
        Some(v) => format!("COUNT(DISTINCT CASE WHEN {cond} THEN {v} END) AS {n}"),
        None => format!("COUNT(CASE WHEN {cond} THEN 1 END) AS {n}"),
    });
    aggs.push(format!(
        "MAX(CASE WHEN {cond} THEN concat(CAST(d AS VARCHAR), '|', provider_id) END) AS ev_{n}"
    ));
}

fn numeric_from(p: &mut Parts, s: &FeatureSpec, cte: &str, kind: &str) {
    let n = &s.name;
    p.select
        .push(format!("CAST(coalesce({cte}.{n}, 0) AS DOUBLE) AS {n}"));
    p.select.push(format!("{cte}.ev_{n} AS ev_{n}"));
    p.column(s, true, true, kind);
}

fn methods(s: &RiskSettings) -> String {
    s.emergency_admission_methods
        .iter()
        .map(|m| quote(m))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ethnic_group(col: &str) -> String {
    format!(
        "CASE WHEN left({col}, 1) IN ('A', 'B', 'C') THEN 'White' WHEN left({col}, 1) IN ('D', 'E', 'F', 'G') THEN 'Mixed' WHEN left({col}, 1) IN ('H', 'J', 'K', 'L') THEN 'Asian' WHEN left({col}, 1) IN ('M', 'N', 'P') THEN 'Black' WHEN left({col}, 1) IN ('R', 'S') THEN 'Other' ELSE 'Not known' END"
    )
}

/// A weighted morbidity index over ICD-10 prefixes: categories present (any code
/// matching a 3- or 4-character prefix, since every prefix of these maps is one or the
/// other), hierarchy applied, weights summed.
fn index_feature(p: &mut Parts, s: &FeatureSpec, map: &str, w: &[IndexWeight], lo: NaiveDate) {
    let n = &s.name;
    let cte = format!("ix_{n}");
    let flags: Vec<String> = w
        .iter()
        .map(|c| {
            format!(
                "MAX(CASE WHEN category = {} THEN 1 ELSE 0 END) AS c_{}",
                quote(&c.category),
                c.category
            )
        })
        .collect();
    p.extra_ctes.push(format!(
        "{cte} AS (SELECT person_key, {}, string_agg(category, ';' ORDER BY category) AS ev FROM (SELECT DISTINCT i.person_key, m.category FROM icd i JOIN {map} m ON m.code_prefix = left(i.code, 3) WHERE i.d > {l} UNION SELECT DISTINCT i.person_key, m.category FROM icd i JOIN {map} m ON m.code_prefix = left(i.code, 4) WHERE i.d > {l}) GROUP BY person_key)",
        flags.join(", "),
        l = lit(lo)
    ));
    let terms: Vec<String> = w
        .iter()
        .filter(|c| c.weight != 0.0)
        .map(|c| match &c.excluded_by {
            Some(x) => format!(
                "{cte}.c_{} * (1 - {cte}.c_{x}) * ({})",
                c.category, c.weight
            ),
            None => format!("{cte}.c_{} * ({})", c.category, c.weight),
        })
        .collect();
    let score = if terms.is_empty() {
        "0".to_string()
    } else {
        terms.join(" + ")
    };
    p.joins.push(format!(
        "LEFT JOIN {cte} ON {cte}.person_key = pop.person_key"
    ));
    p.select
        .push(format!("CAST(coalesce({score}, 0) AS DOUBLE) AS {n}"));
    p.select.push(format!("{cte}.ev AS ev_{n}"));
    p.column(
        s,
        true,
        true,
        if map.starts_with("charlson") {
            "charlson"
        } else {
            "elixhauser"
        },
    );
}

/// Distinct prefix lengths of the ICD-10 entries of the condition code lists.
fn prefix_lengths(c: &Codelists) -> BTreeSet<usize> {
    c.tables
        .values()
        .filter(|t| t.header.first().is_some_and(|h| h == "codelist"))
        .flat_map(|t| t.rows.iter())
        .filter(|r| r[1].eq_ignore_ascii_case("ICD10"))
        .map(|r| r[2].replace('.', "").len())
        .collect()
}

fn aggregate_cte(name: &str, from: &str, aggs: &[String]) -> Option<String> {
    (!aggs.is_empty()).then(|| {
        format!(
            "{name} AS (SELECT person_key, {} FROM {from} GROUP BY person_key)",
            aggs.join(", ")
        )
    })
}

fn assemble(p: &Parts, inputs: &Inputs, as_of: NaiveDate, outcome_known: bool) -> String {
    let a = lit(as_of);
    let mut ctes = vec![
        format!(
            "seen AS (SELECT person_key FROM registration WHERE registration_start IS NULL OR registration_start <= {a} UNION SELECT person_key FROM care_event WHERE CAST(start_ts AS DATE) <= {a} UNION SELECT person_key FROM observation WHERE observed_date <= {a})"
        ),
        format!(
            "pop AS (SELECT person_key, birth_year_month, sex, ethnic_category FROM person WHERE birth_year_month <= {a} AND person_key IN (SELECT person_key FROM seen))"
        ),
        format!(
            "gp_seen AS (SELECT DISTINCT person_key FROM registration WHERE registration_start IS NULL OR registration_start <= {a} UNION SELECT DISTINCT person_key FROM observation WHERE observed_date <= {a})"
        ),
        format!(
            "reg AS (SELECT person_key, practice_ods, pcn_code FROM (SELECT person_key, practice_ods, pcn_code, ROW_NUMBER() OVER (PARTITION BY person_key ORDER BY registration_start DESC NULLS LAST, practice_ods) AS rn FROM registration WHERE (registration_start IS NULL OR registration_start <= {a}) AND (registration_end IS NULL OR registration_end > {a})) WHERE rn = 1)"
        ),
        format!(
            "addr AS (SELECT person_key, lsoa11 FROM (SELECT person_key, lsoa11, ROW_NUMBER() OVER (PARTITION BY person_key ORDER BY \"current\" DESC, valid_from DESC NULLS LAST, lsoa11) AS rn FROM address_period WHERE (valid_from IS NULL OR valid_from <= {a}) AND (valid_to IS NULL OR valid_to > {a})) WHERE rn = 1)"
        ),
        format!(
            "ce_rows AS (SELECT person_key, setting, pod, admission_method, provider_id, CAST(start_ts AS DATE) AS d FROM care_event WHERE CAST(start_ts AS DATE) <= {a})"
        ),
        format!(
            "obs_rows AS (SELECT person_key, provider_id, observed_date AS d FROM observation WHERE observed_date <= {a})"
        ),
        format!(
            "sc_rows AS (SELECT person_key, provider_id, start_date AS d FROM social_care_service WHERE start_date <= {a})"
        ),
        format!(
            "med_rows AS (SELECT person_key, provider_id, code, issue_date AS d FROM medication WHERE issue_date <= {a})"
        ),
        format!(
            "codes AS (SELECT person_key, code_system, code, d, provider_id FROM (SELECT person_key, upper(code_system) AS code_system, code, observed_date AS d, provider_id FROM observation UNION ALL SELECT person_key, 'ICD10' AS code_system, coalesce(code_normalised, icd10_normalise(code_original)) AS code, diagnosis_date AS d, provider_id FROM diagnosis) WHERE d <= {a} AND code IS NOT NULL)"
        ),
        "icd AS (SELECT person_key, code, d, provider_id FROM codes WHERE code_system = 'ICD10')"
            .to_string(),
    ];
    let mut cond_union = vec!["SELECT c.person_key, l.codelist, c.d, c.provider_id FROM codes c JOIN codelist_codes l ON l.is_prefix = 'false' AND c.code_system = l.code_system AND c.code = l.code".to_string()];
    for len in prefix_lengths(inputs.codelists) {
        cond_union.push(format!("SELECT i.person_key, l.codelist, i.d, i.provider_id FROM icd i JOIN codelist_codes l ON l.is_prefix = 'true' AND left(i.code, {len}) = l.code"));
    }
    ctes.push(format!("cond_rows AS ({})", cond_union.join(" UNION ALL ")));
    let mut joins = vec![
        "LEFT JOIN reg ON reg.person_key = pop.person_key".to_string(),
        "LEFT JOIN addr ON addr.person_key = pop.person_key".to_string(),
        "LEFT JOIN imd_lsoa imd ON imd.lsoa11 = addr.lsoa11".to_string(),
        "LEFT JOIN gp_seen ON gp_seen.person_key = pop.person_key".to_string(),
    ];
    for (name, from, aggs) in [
        ("ce", "ce_rows", &p.care_event),
        ("obs", "obs_rows", &p.observation),
        ("sc", "sc_rows", &p.social_care),
        ("med", "med_rows", &p.medication),
        ("cond", "cond_rows", &p.conditions),
    ] {
        if let Some(c) = aggregate_cte(name, from, aggs) {
            ctes.push(c);
            joins.push(format!(
                "LEFT JOIN {name} ON {name}.person_key = pop.person_key"
            ));
        }
    }
    ctes.extend(p.extra_ctes.iter().cloned());
    joins.extend(p.joins.iter().cloned());
    let outcome = if outcome_known {
        let end = as_of + Duration::days(inputs.settings.horizon_days as i64);
        ctes.push(format!(
            "outcome AS (SELECT DISTINCT person_key FROM care_event WHERE setting = 'APC' AND admission_method IN ({}) AND CAST(start_ts AS DATE) > {a} AND CAST(start_ts AS DATE) <= {})",
            methods(inputs.settings),
            lit(end)
        ));
        joins.push("LEFT JOIN outcome ON outcome.person_key = pop.person_key".into());
        "outcome.person_key IS NOT NULL".to_string()
    } else {
        "CAST(NULL AS BOOLEAN)".to_string()
    };
    format!(
        "WITH {}\nSELECT pop.person_key, {a} AS as_of_date, {},\n  {outcome} AS {OUTCOME}\nFROM pop\n{}\nORDER BY pop.person_key",
        ctes.join(",\n"),
        p.select.join(",\n  "),
        joins.join("\n")
    )
}
