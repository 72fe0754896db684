//! A synthetic ICS: a landing zone of provider extracts in their native shapes, with
//! real-world faults, and the ground truth to measure linkage and risk against.
//!
//! People are generated one at a time from a seeded generator and written straight to
//! the extract files (bounded memory, whatever the population). They live in real LSOAs
//! of one local authority (IMD 2019), so deprivation is realistic; their postcodes are
//! synthetic (a synthetic postcode → LSOA lookup is written alongside, clearly marked).
//! A known risk process (age, multimorbidity, frailty, deprivation, prior emergency use,
//! noise) drives both the history in the extracts and the emergency admissions in the
//! 90 days after the as-of date, which appear only in `truth/`.
//!
//! Layout: [`rng`] the generator, [`places`] LSOAs and postcodes, [`people`] the people
//! and how systems record them, one module per setting ([`gp`], [`acute`],
//! [`community`], [`mental_health`], [`social_care`], [`urgent_care`]), [`truth`] the
//! ground truth, [`sinks`] and [`writers`] the files.

mod acute;
mod community;
mod gp;
mod mental_health;
mod names;
mod people;
mod places;
mod rng;
mod sinks;
mod social_care;
mod truth;
mod urgent_care;
mod writers;

use std::path::PathBuf;

use chrono::{Datelike, NaiveDate};

use people::{Ctx, Population};
use places::Places;
use rng::Rng;
use sinks::FileNames;
use writers::Writers;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub patients: usize,
    pub seed: u64,
    pub out: PathBuf,
    /// Extracts hold events up to this date; outcomes are the 90 days after it.
    pub as_of: NaiveDate,
    /// Local authority whose LSOAs the population lives in.
    pub lad_code: String,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            patients: 20_000,
            seed: 42,
            out: PathBuf::from("synth"),
            as_of: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(),
            lad_code: "E08000035".into(),
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SynthSummary {
    pub people: usize,
    pub records: u64,
    pub records_by_source: std::collections::BTreeMap<String, u64>,
    pub people_with_emergency_admission_90d: u64,
}

/// Long-term conditions: (key, ICD-10 with dot, SNOMED CT, CTV3).
pub(super) const CONDITIONS: &[(&str, &str, &str, &str)] = &[
    ("hypertension", "I10.X", "38341003", "XE0Ub"),
    ("diabetes", "E11.9", "44054006", "X40J5"),
    ("copd", "J44.9", "13645005", "H3..."),
    ("heart_failure", "I50.9", "84114007", "G58.."),
    ("ckd", "N18.3", "709044004", "X30Iz"),
    ("atrial_fibrillation", "I48.9", "49436004", "G573."),
    ("dementia", "F03.X", "52448006", "XE1Z6"),
    ("asthma", "J45.9", "195967001", "H33.."),
    ("depression", "F32.9", "35489007", "X00SO"),
    ("stroke", "I63.9", "230690007", "X00D1"),
    ("cancer", "C50.9", "254837009", "B34.."),
];

/// Routine observations: (SNOMED, CTV3, unit, low, high).
pub(super) const OBSERVATIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("271649006", "2469.", "mmHg", 95.0, 185.0),
    ("27113001", "22A..", "kg", 45.0, 130.0),
    ("60621009", "22K..", "kg/m2", 17.0, 45.0),
    ("1000731000000107", "XaERp", "mmol/mol", 30.0, 110.0),
];

/// Practices: (ODS code, system). Matches `providers/`.
pub(super) const PRACTICES: &[(&str, &str)] = &[
    ("F81001", "emis"),
    ("F81002", "emis"),
    ("F81010", "systmone"),
];

fn d_dmy(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}
fn d_iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// What every person is generated against.
struct World {
    as_of: NaiveDate,
    places: Places,
}

/// Write a synthetic ICS under `opts.out`: `landing/`, `truth/`, `reference/`.
pub fn generate(opts: &SynthOptions) -> Result<SynthSummary, String> {
    let io = |e: std::io::Error| e.to_string();
    let world = World {
        as_of: opts.as_of,
        places: Places::of(&opts.lad_code)?,
    };
    let (landing, truth_dir) = (opts.out.join("landing"), opts.out.join("truth"));
    let reference = opts.out.join("reference");
    for d in [&landing, &truth_dir, &reference] {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    world.places.write_lookup(&reference).map_err(io)?;
    let names = |root| FileNames {
        root,
        date: opts.as_of.format("%Y%m%d").to_string(),
        year: opts.as_of.year().to_string(),
    };
    let mut w = Writers::create(&names(&landing), &names(&truth_dir)).map_err(io)?;
    let mut rng = Rng(opts.seed ^ 0x5eed_0b0a_4d00);
    let mut summary = SynthSummary {
        people: opts.patients,
        ..Default::default()
    };
    let mut population = Population::new();
    for n in 0..opts.patients {
        let person = population.next(&mut rng, n, &world);
        let mut c = Ctx {
            rng: &mut rng,
            p: &person,
            w: &mut w,
            world: &world,
        };
        if write_person(&mut c).map_err(io)? {
            summary.people_with_emergency_admission_90d += 1;
        }
    }
    summary.records_by_source = w.counts();
    summary.records = summary.records_by_source.values().sum();
    w.finish().map_err(io)?;
    let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(opts.out.join("synth.json"), json).map_err(io)?;
    Ok(summary)
}

/// One person's records in every setting, then their truth.
fn write_person(c: &mut Ctx) -> std::io::Result<bool> {
    gp::write(c)?;
    acute::write(c)?;
    community::write(c)?;
    mental_health::write(c)?;
    social_care::write(c)?;
    urgent_care::write(c)?;
    let admitted = truth::outcomes(c)?;
    truth::person(c)?;
    Ok(admitted)
}
