//! The ground truth written beside the landing zone (`truth/`): which person every
//! record belongs to, each person's true attributes, and the emergency admissions
//! after each truth as-of date with their exact probability under the risk process.

use chrono::Datelike;

use super::codes::CONDITIONS;
use super::hazard::HORIZON;
use super::health::YEAR;
use super::people::Ctx;
use super::sinks::{Csv, FileNames, Spec};
use super::{PRACTICES, SynthSummary, TruthPoint, World, acute, d_iso};

const PERSON_RECORDS: Spec = Spec::csv(
    "person_records.csv",
    &[
        "provider_id",
        "source",
        "source_record_id",
        "true_person_id",
    ],
);
const OUTCOMES: Spec = Spec::csv(
    "outcomes_90d.csv",
    &[
        "true_person_id",
        "as_of_date",
        "horizon_days",
        "emergency_admissions",
        "first_admission_date",
        "risk_probability",
    ],
);
const PEOPLE: Spec = Spec::csv(
    "people.csv",
    &[
        "true_person_id",
        "nhs_number",
        "sex",
        "birth_year",
        "age",
        "lsoa11",
        "imd_decile",
        "ethnic_category",
        "conditions",
        "frailty",
        "prior_emergency_admissions_12m",
        "practice_ods",
        "twin_of",
    ],
);

const ONSETS: Spec = Spec::csv(
    "condition_onsets.csv",
    &[
        "true_person_id",
        "condition",
        "onset_date",
        "present_at_as_of",
    ],
);
const ADMISSIONS: Spec = Spec::csv(
    "emergency_admissions.csv",
    &[
        "true_person_id",
        "spell_id",
        "admission_date",
        "discharge_date",
        "admission_method",
        "in_extract",
    ],
);

/// The open truth files.
pub(super) struct TruthFiles {
    pub records: Csv,
    outcomes: Csv,
    people: Csv,
    onsets: Csv,
    admissions: Csv,
}

impl TruthFiles {
    /// The truth files; `deliveries` (extract date YYYY-MM-DD, day) get their own
    /// `deliveries/<date>/person_records.csv` beside the base one.
    pub(super) fn create(
        dir: &FileNames,
        base: i32,
        deliveries: &[(String, i32)],
    ) -> std::io::Result<TruthFiles> {
        let csv = |spec| Csv::create(&dir.path(spec, ""), spec);
        let mut targets = vec![(dir.path(&PERSON_RECORDS, ""), base)];
        for (date, day) in deliveries {
            let p = dir
                .root
                .join("deliveries")
                .join(date)
                .join(PERSON_RECORDS.path);
            targets.push((p, *day));
        }
        Ok(TruthFiles {
            records: Csv::create_each(&targets, &PERSON_RECORDS)?,
            outcomes: csv(&OUTCOMES)?,
            people: csv(&PEOPLE)?,
            onsets: csv(&ONSETS)?,
            admissions: csv(&ADMISSIONS)?,
        })
    }
    pub(super) fn finish(self) -> std::io::Result<()> {
        for c in [
            self.records,
            self.outcomes,
            self.people,
            self.onsets,
            self.admissions,
        ] {
            c.finish()?;
        }
        Ok(())
    }
}

/// Running totals per truth as-of date.
pub(super) struct Tally {
    points: Vec<TruthPoint>,
    risk_sums: Vec<f64>,
    in_extracts: u64,
}

impl Tally {
    pub(super) fn new(world: &World) -> Tally {
        Tally {
            points: world
                .truth_days
                .iter()
                .map(|d| TruthPoint {
                    as_of_date: d_iso(world.date(*d)),
                    ..Default::default()
                })
                .collect(),
            risk_sums: vec![0.0; world.truth_days.len()],
            in_extracts: 0,
        }
    }
    pub(super) fn summary(mut self, world: &World, people: usize) -> SynthSummary {
        for (p, s) in self.points.iter_mut().zip(&self.risk_sums) {
            p.mean_risk_probability = (s / people.max(1) as f64 * 1e6).round() / 1e6;
        }
        SynthSummary {
            people,
            people_with_emergency_admission_90d: self
                .points
                .iter()
                .find(|p| p.as_of_date == d_iso(world.as_of))
                .map_or(0, |p| p.people_with_emergency_admission_90d),
            history_start: d_iso(world.date(world.start)),
            emergency_admissions_in_extracts: self.in_extracts,
            truth: self.points,
            ..Default::default()
        }
    }
}

/// The person's truth: outcomes at every truth as-of date, attributes, condition onsets
/// and emergency admissions.
pub(super) fn write(c: &mut Ctx, tally: &mut Tally) -> std::io::Result<()> {
    outcomes(c, tally)?;
    person(c)?;
    onsets(c)?;
    admissions(c, tally)
}

/// One row per truth as-of date: admissions in (t, t + 90] and their exact probability.
fn outcomes(c: &mut Ctx, tally: &mut Tally) -> std::io::Result<()> {
    let p = c.p;
    let adult = |t: i32| f64::from(t - p.dob_day) / YEAR >= 18.0;
    for (i, &t) in c.world.truth_days.iter().enumerate() {
        let window: Vec<i32> =
            c.h.admissions
                .iter()
                .map(|a| a.day)
                .filter(|d| *d > t && *d <= t + HORIZON)
                .collect();
        let risk = c.process.risk(&c.h.admissions, t);
        let point = &mut tally.points[i];
        if adult(t) {
            point.adults += 1;
            point.adults_with_emergency_admission_90d += u64::from(!window.is_empty());
        }
        point.people_with_emergency_admission_90d += u64::from(!window.is_empty());
        tally.risk_sums[i] += risk;
        let first = window
            .first()
            .map(|d| d_iso(c.date(*d)))
            .unwrap_or_default();
        c.w.truth.outcomes.row(&[
            &p.id,
            &d_iso(c.date(t)),
            &HORIZON.to_string(),
            &window.len().to_string(),
            &first,
            &format!("{risk:.6}"),
        ])?;
    }
    Ok(())
}

/// The person's row of `people.csv` (as at the extract date).
fn person(c: &mut Ctx) -> std::io::Result<()> {
    let p = c.p;
    let x = c.world.extract;
    let conds: Vec<&str> = p
        .health
        .conditions_at(x)
        .map(|k| CONDITIONS[k].key)
        .collect();
    let prior =
        c.h.admissions
            .iter()
            .filter(|a| a.day <= x && a.day > x - 365)
            .count();
    let frailty = p.health.frailty_at(f64::from(x - p.dob_day) / YEAR, x);
    c.w.truth.people.row(&[
        &p.id,
        &p.nhs,
        &p.sex.to_string(),
        &p.dob.year().to_string(),
        &p.age.to_string(),
        &c.world.places.lsoas[p.lsoa].lsoa11,
        &p.imd_decile.to_string(),
        p.ethnicity,
        &conds.join(";"),
        &format!("{frailty:.3}"),
        &prior.to_string(),
        PRACTICES[p.practice].0,
        &p.twin_of,
    ])
}

fn onsets(c: &mut Ctx) -> std::io::Result<()> {
    for &(k, d) in &c.p.health.onsets {
        let present = if d <= c.world.extract {
            "true"
        } else {
            "false"
        };
        let date = d_iso(c.date(d.max(c.p.dob_day)));
        c.w.truth
            .onsets
            .row(&[&c.p.id, CONDITIONS[k].key, &date, present])?;
    }
    Ok(())
}

/// Every emergency admission of the history window and horizon, with its spell id.
fn admissions(c: &mut Ctx, tally: &mut Tally) -> std::io::Result<()> {
    for (k, s) in c.h.spells.iter().enumerate() {
        if !s.emergency {
            continue;
        }
        // In the base extract (the monthly deliveries hold later ones too).
        let in_extract = c.world.start <= s.day && s.day <= c.world.extract;
        tally.in_extracts += u64::from(in_extract);
        c.w.truth.admissions.row(&[
            &c.p.id,
            &acute::spell_id(&c.p.id, k),
            &d_iso(c.date(s.day)),
            &d_iso(c.date(s.discharge)),
            s.method,
            if in_extract { "true" } else { "false" },
        ])?;
    }
    Ok(())
}
