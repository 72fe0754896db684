//! The ground truth written beside the landing zone (`truth/`): which person every
//! record belongs to, each person's true attributes, and the emergency admissions
//! after each truth as-of date with their exact probability under the risk process.

use chrono::{Datelike, Duration};

use super::people::Ctx;
use super::sinks::{Csv, FileNames, Spec};
use super::{CONDITIONS, PRACTICES, d_iso};

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

/// The open truth files.
pub(super) struct TruthFiles {
    pub records: Csv,
    outcomes: Csv,
    people: Csv,
}

impl TruthFiles {
    pub(super) fn create(dir: &FileNames) -> std::io::Result<TruthFiles> {
        let csv = |spec| Csv::create(&dir.path(spec, ""), spec);
        Ok(TruthFiles {
            records: csv(&PERSON_RECORDS)?,
            outcomes: csv(&OUTCOMES)?,
            people: csv(&PEOPLE)?,
        })
    }
    pub(super) fn finish(self) -> std::io::Result<()> {
        self.records.finish()?;
        self.outcomes.finish()?;
        self.people.finish()
    }
}

/// The person's outcome rows; returns whether they had an emergency admission in the
/// 90 days after the as-of date.
pub(super) fn outcomes(c: &mut Ctx) -> std::io::Result<bool> {
    let p = c.p;
    let as_of = c.world.as_of;
    let admitted = c.rng.chance(p.risk);
    let (n_adm, first) = if admitted {
        let n = 1 + usize::from(c.rng.chance(0.15));
        (n, d_iso(as_of + Duration::days(1 + c.rng.below(90) as i64)))
    } else {
        (0, String::new())
    };
    c.w.truth.outcomes.row(&[
        &p.id,
        &d_iso(as_of),
        "90",
        &n_adm.to_string(),
        &first,
        &format!("{:.5}", p.risk),
    ])?;
    Ok(admitted)
}

/// The person's row of `people.csv`.
pub(super) fn person(c: &mut Ctx) -> std::io::Result<()> {
    let p = c.p;
    let conds: Vec<&str> = p.conditions.iter().map(|k| CONDITIONS[*k].0).collect();
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
        &format!("{:.3}", p.frailty),
        &p.prior_emergency.to_string(),
        PRACTICES[p.practice].0,
        &p.twin_of,
    ])
}
