//! The person frame: one row per person of the score-date population (everyone in
//! `gold/features` at the as-of date) with what every aggregate breaks down by (age
//! band, ESP band, sex, IMD quintile, ethnic group, practice, PCN, locality, risk band,
//! segments) and what it counts (conditions, flags, urgent care, cost).

use std::collections::HashMap;

use datafusion::prelude::SessionContext;

use super::PopulationError;
use super::inputs::{collect, numbers, texts};

/// "Not known" for a missing breakdown value.
pub const NOT_KNOWN: &str = "Not known";

/// One person.
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub key: String,
    pub age: u32,
    pub sex: String,
    pub imd_decile: Option<u8>,
    pub ethnic_group: String,
    pub practice: String,
    pub pcn: String,
    pub lsoa: String,
    pub locality: String,
    pub risk_band: String,
    /// Condition flags in the order of [`Frame::conditions`].
    pub conditions: Vec<bool>,
    pub ltc_count: u32,
    /// Segment index per segmentation.
    pub segments: Vec<usize>,
    pub traces: Vec<String>,
    pub flags: Vec<bool>,
    /// Urgent-care event counts in the 12 months before the as-of date, in the order of
    /// [`super::uec::EVENT_MEASURES`].
    pub events: [u64; 4],
    /// Cost per setting in the cost year, in the order of [`Frame::settings`].
    pub cost: Vec<f64>,
}

/// The whole population at the as-of date.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub persons: Vec<Person>,
    /// Condition feature names (the morbidity profile).
    pub conditions: Vec<String>,
    pub condition_labels: Vec<String>,
    /// Cost settings, in output order.
    pub settings: Vec<String>,
    pub index: HashMap<String, usize>,
}

/// The age band of the `age_band` breakdown.
pub fn age_band(age: u32) -> &'static str {
    match age {
        0..=17 => "0-17",
        18..=39 => "18-39",
        40..=64 => "40-64",
        65..=79 => "65-79",
        _ => "80+",
    }
}

/// Sex as the NHS Data Dictionary codes it.
pub fn sex_label(code: Option<&str>) -> &'static str {
    match code.map(str::trim) {
        Some("1") => "Male",
        Some("2") => "Female",
        _ => NOT_KNOWN,
    }
}

/// LSOA (2011) → its MSOA, the locality: LSOA names are the MSOA's name plus a letter
/// ("Leeds 001A" lies in "Leeds 001").
pub fn localities() -> HashMap<String, String> {
    crate::refdata::imd2019()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let name = r.lsoa_name.trim();
            let msoa = name
                .strip_suffix(|c: char| c.is_ascii_alphabetic())
                .unwrap_or(name)
                .trim()
                .to_string();
            (r.lsoa11, msoa)
        })
        .collect()
}

/// Register `person_features` (features + risk band + IMD quintile) and read the frame.
pub async fn load(
    ctx: &SessionContext,
    conditions: &[(String, String)],
) -> Result<Frame, PopulationError> {
    let view = ctx
        .sql(
            "SELECT f.*, s.band AS risk_band, CAST(FLOOR((f.imd_decile + 1) / 2) AS BIGINT) AS imd_quintile \
             FROM features f LEFT JOIN (SELECT person_key, MIN(band) AS band FROM scores GROUP BY person_key) s ON s.person_key = f.person_key",
        )
        .await
        .map_err(|e| PopulationError::Query {
            what: "person features".into(),
            message: e.to_string(),
        })?
        .into_view();
    ctx.register_table("person_features", view)
        .map_err(|e| PopulationError::Query {
            what: "person features".into(),
            message: e.to_string(),
        })?;
    let conds: Vec<String> = conditions
        .iter()
        .map(|(c, _)| format!("pf.\"{c}\""))
        .collect();
    let extra = if conds.is_empty() {
        String::new()
    } else {
        format!(", {}", conds.join(", "))
    };
    let sql = format!(
        "SELECT pf.person_key, pf.age, pf.imd_decile, pf.ethnic_group, pf.practice, pf.pcn, pf.lsoa, pf.risk_band, p.sex{extra} \
         FROM person_features pf LEFT JOIN (SELECT person_key, MIN(sex) AS sex FROM pop_person GROUP BY person_key) p ON p.person_key = pf.person_key ORDER BY pf.person_key"
    );
    let b = collect(ctx, "person frame", &sql).await?;
    let keys = texts(&b, "person_key")?;
    let ages = numbers(&b, "age")?;
    let imd = numbers(&b, "imd_decile")?;
    let text = |c: &str| texts(&b, c);
    let (eth, prac, pcn, lsoa, band, sex) = (
        text("ethnic_group")?,
        text("practice")?,
        text("pcn")?,
        text("lsoa")?,
        text("risk_band")?,
        text("sex")?,
    );
    let flags: Vec<Vec<Option<f64>>> = conditions
        .iter()
        .map(|(c, _)| numbers(&b, c))
        .collect::<Result<_, _>>()?;
    let loc = localities();
    let known = |v: &Option<String>| {
        v.clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| NOT_KNOWN.into())
    };
    let mut frame = Frame {
        conditions: conditions.iter().map(|c| c.0.clone()).collect(),
        condition_labels: conditions.iter().map(|c| c.1.clone()).collect(),
        ..Default::default()
    };
    for i in 0..keys.len() {
        let conditions: Vec<bool> = flags.iter().map(|f| f[i].unwrap_or(0.0) > 0.0).collect();
        let lsoa = known(&lsoa[i]);
        let p = Person {
            key: keys[i].clone().unwrap_or_default(),
            age: ages[i].unwrap_or(0.0).max(0.0) as u32,
            sex: sex_label(sex[i].as_deref()).to_string(),
            imd_decile: imd[i].map(|d| d as u8),
            ethnic_group: known(&eth[i]),
            practice: known(&prac[i]),
            pcn: known(&pcn[i]),
            locality: loc.get(&lsoa).cloned().unwrap_or_else(|| NOT_KNOWN.into()),
            lsoa,
            risk_band: known(&band[i]),
            ltc_count: conditions.iter().filter(|c| **c).count() as u32,
            conditions,
            ..Default::default()
        };
        frame.index.insert(p.key.clone(), frame.persons.len());
        frame.persons.push(p);
    }
    Ok(frame)
}

impl Person {
    /// IMD quintile (1 = most deprived) as text.
    pub fn imd_quintile(&self) -> String {
        match self.imd_decile {
            Some(d) if d >= 1 => format!("{}", d.div_ceil(2)),
            _ => NOT_KNOWN.into(),
        }
    }
    /// The morbidity profile: the conditions present, `;`-joined (`none` without any).
    pub fn profile(&self, names: &[String]) -> String {
        let v: Vec<&str> = names
            .iter()
            .zip(&self.conditions)
            .filter(|(_, c)| **c)
            .map(|(n, _)| n.as_str())
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(";")
        }
    }
    /// Long-term condition count band.
    pub fn ltc_band(&self) -> &'static str {
        match self.ltc_count {
            0 => "0",
            1 => "1",
            2 | 3 => "2-3",
            _ => "4+",
        }
    }
}
