//! A synthetic ICS: a landing zone of provider extracts in their native shapes, with
//! real-world faults, and the ground truth to measure linkage and risk against.
//!
//! People are generated one at a time from a seeded generator and written straight to
//! the extract files (bounded memory, whatever the population). They live in real LSOAs
//! of one local authority (IMD 2019), so deprivation is realistic; their postcodes are
//! synthetic (a synthetic postcode → LSOA lookup is written alongside, clearly marked).
//!
//! Each person has a longitudinal history: conditions with onset dates, and events in
//! every setting over `history_years` before the extract date. Emergency admissions come
//! from a known daily hazard ([`hazard`]: age, conditions, frailty, deprivation, recent
//! emergency admissions, a latent effect); the stream runs to 90 days past the extract
//! date, the extracts hold what happened up to it, and `truth/` holds the admissions in
//! the 90 days after each truth as-of date with their exact probability.
//!
//! Layout: [`rng`] the generator, [`places`] LSOAs and postcodes, [`people`] the people
//! and how systems record them, [`codes`] the clinical code tables, [`health`]
//! conditions and frailty over time, [`hazard`] the risk process, [`history`] every
//! event, one module per setting ([`gp`], [`acute`], [`community`], [`mental_health`],
//! [`social_care`], [`urgent_care`]), [`truth`] the ground truth, [`sinks`] and
//! [`writers`] the files.

mod acute;
mod codes;
mod community;
mod gp;
mod hazard;
mod health;
mod history;
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

use chrono::{Datelike, Duration, Months, NaiveDate};

use hazard::Process;
use history::Subject;
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
    /// The extract date: extracts hold events up to this date.
    pub as_of: NaiveDate,
    /// Local authority whose LSOAs the population lives in.
    pub lad_code: String,
    /// Years of history before `as_of` in the extracts.
    pub history_years: u32,
    /// Truth as-of dates: every this many month-ends back 24 months from `as_of`.
    pub truth_every_months: u32,
    /// Monthly deliveries after `as_of`: the same people's extracts at each of the next
    /// `months` month-ends, under `deliveries/<YYYY-MM-DD>/` (0: none).
    pub months: u32,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            patients: 20_000,
            seed: 42,
            out: PathBuf::from("synth"),
            as_of: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(),
            lad_code: "E08000035".into(),
            history_years: 3,
            truth_every_months: 3,
            months: 0,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SynthSummary {
    pub people: usize,
    pub records: u64,
    pub records_by_source: std::collections::BTreeMap<String, u64>,
    /// People with an emergency admission in the 90 days after `as_of`.
    pub people_with_emergency_admission_90d: u64,
    /// First day of the history window in the extracts.
    pub history_start: String,
    /// Emergency admissions (spells) in the extracts.
    pub emergency_admissions_in_extracts: u64,
    /// Per truth as-of date: people, those with an emergency admission in the next 90
    /// days, and the mean true risk.
    pub truth: Vec<TruthPoint>,
    /// The monthly deliveries after the as-of date (`--months`): extract date and
    /// directory, oldest first.
    pub deliveries: Vec<DeliveryWritten>,
}

/// One monthly delivery written.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeliveryWritten {
    pub extract_date: String,
    pub landing: PathBuf,
}

/// The outcome at one truth as-of date, over everyone.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TruthPoint {
    pub as_of_date: String,
    pub people_with_emergency_admission_90d: u64,
    pub adults_with_emergency_admission_90d: u64,
    pub adults: u64,
    pub mean_risk_probability: f64,
}

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

/// What every person is generated against: the places and the calendar. Days count
/// from `origin`, a year before the history window (a burn-in for the self-exciting
/// hazard, never written).
struct World {
    as_of: NaiveDate,
    places: Places,
    origin: NaiveDate,
    /// First day of the history window.
    start: i32,
    /// The extract date.
    extract: i32,
    /// The extract dates of the monthly deliveries after it, oldest first.
    deliveries: Vec<i32>,
    /// The last extract date (of the last delivery, else `extract`).
    last_extract: i32,
    /// Last day of the stream (90 days past the last extract).
    end: i32,
    /// Truth as-of dates, oldest first.
    truth_days: Vec<i32>,
}

impl World {
    fn new(opts: &SynthOptions) -> Result<World, String> {
        if opts.truth_every_months == 0 || opts.history_years == 0 {
            return Err("synth: --truth-every-months and history years must be at least 1".into());
        }
        let window = Months::new(12 * opts.history_years);
        let start = opts.as_of.checked_sub_months(window).ok_or_else(|| {
            format!(
                "synth: as-of {} minus the history window is out of range",
                opts.as_of
            )
        })?;
        let origin = start - Duration::days(365);
        let day = |d: NaiveDate| (d - origin).num_days() as i32;
        let deliveries: Vec<i32> = delivery_dates(opts.as_of, opts.months)?
            .into_iter()
            .map(day)
            .collect();
        let last_extract = deliveries.last().copied().unwrap_or(day(opts.as_of));
        let mut truth_days: Vec<i32> = truth_dates(opts.as_of, opts.truth_every_months)
            .into_iter()
            .map(day)
            .filter(|d| *d >= day(start))
            .chain(deliveries.iter().copied())
            .collect();
        truth_days.sort();
        truth_days.dedup();
        Ok(World {
            as_of: opts.as_of,
            places: Places::of(&opts.lad_code)?,
            origin,
            start: day(start),
            extract: day(opts.as_of),
            deliveries,
            last_extract,
            end: last_extract + hazard::HORIZON,
            truth_days,
        })
    }
    fn date(&self, d: i32) -> NaiveDate {
        self.origin + Duration::days(i64::from(d))
    }
    fn day(&self, date: NaiveDate) -> i32 {
        (date - self.origin).num_days() as i32
    }
}

/// The extract dates of `months` monthly deliveries after `as_of`: month-ends when
/// `as_of` is one, else the same day of each following month.
fn delivery_dates(as_of: NaiveDate, months: u32) -> Result<Vec<NaiveDate>, String> {
    let month_end = (as_of + Duration::days(1)).day() == 1;
    (1..=months)
        .map(|m| {
            let d = if month_end {
                (as_of + Duration::days(1))
                    .checked_add_months(Months::new(m))
                    .map(|d| d - Duration::days(1))
            } else {
                as_of.checked_add_months(Months::new(m))
            };
            d.ok_or_else(|| format!("synth: as-of {as_of} plus {m} months is out of range"))
        })
        .collect()
}

/// `as_of` and every `every`-th month-end before it, back 24 months.
fn truth_dates(as_of: NaiveDate, every: u32) -> Vec<NaiveDate> {
    let first = as_of.with_day(1).unwrap_or(as_of);
    let mut dates = vec![as_of];
    let mut back = every;
    while back <= 24 {
        let month_end = first
            .checked_sub_months(Months::new(back))
            .and_then(|m| m.checked_add_months(Months::new(1)))
            .map(|m| m - Duration::days(1));
        dates.extend(month_end.filter(|d| *d < as_of));
        back += every;
    }
    dates
}

/// A generator per person, so a person's data depends only on the seed and their number.
fn person_rng(seed: u64, n: usize) -> Rng {
    let mut r = Rng(seed ^ 0x5eed_0b0a_4d00 ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    r.next();
    r
}

/// Write a synthetic ICS under `opts.out`: `landing/`, `truth/`, `reference/`.
pub fn generate(opts: &SynthOptions) -> Result<SynthSummary, String> {
    let io = |e: std::io::Error| e.to_string();
    let world = World::new(opts)?;
    let (landing, truth_dir) = (opts.out.join("landing"), opts.out.join("truth"));
    let reference = opts.out.join("reference");
    for d in [&landing, &truth_dir, &reference] {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    world.places.write_lookup(&reference).map_err(io)?;
    let names = |root, date: NaiveDate| FileNames {
        root,
        date: date.format("%Y%m%d").to_string(),
        year: date.year().to_string(),
    };
    let roots: Vec<(PathBuf, i32)> = world
        .deliveries
        .iter()
        .map(|d| (delivery_dir(&opts.out, world.date(*d)), *d))
        .collect();
    let mut deliveries = vec![(names(&landing, opts.as_of), world.extract)];
    for (root, d) in &roots {
        deliveries.push((names(root, world.date(*d)), *d));
    }
    let mut w = Writers::create(&deliveries, &names(&truth_dir, opts.as_of)).map_err(io)?;
    let mut tally = truth::Tally::new(&world);
    let mut population = Population::new();
    for n in 0..opts.patients {
        let mut rng = person_rng(opts.seed, n);
        let person = population.next(&mut rng, n, &world);
        let process = Process::new(&person.health, person.dob_day, world.end);
        let subject = Subject {
            health: &person.health,
            dob: person.dob_day,
            process: &process,
        };
        let h = history::generate(&mut rng, &subject, &world);
        let mut c = Ctx {
            rng: &mut rng,
            p: &person,
            h: &h,
            process: &process,
            w: &mut w,
            world: &world,
        };
        write_person(&mut c, &mut tally).map_err(io)?;
    }
    let mut summary = tally.summary(&world, opts.patients);
    summary.deliveries = roots
        .iter()
        .map(|(root, d)| DeliveryWritten {
            extract_date: d_iso(world.date(*d)),
            landing: root.clone(),
        })
        .collect();
    summary.records_by_source = w.counts();
    summary.records = summary.records_by_source.values().sum();
    w.finish().map_err(io)?;
    let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(opts.out.join("synth.json"), json).map_err(io)?;
    Ok(summary)
}

/// Where the monthly delivery of `extract_date` goes: a landing zone of its own.
pub fn delivery_dir(out: &std::path::Path, extract_date: NaiveDate) -> PathBuf {
    out.join("deliveries")
        .join(extract_date.format("%Y-%m-%d").to_string())
}

/// One person's records in every setting, then their truth.
fn write_person(c: &mut Ctx, tally: &mut truth::Tally) -> std::io::Result<()> {
    gp::write(c)?;
    acute::write(c)?;
    community::write(c)?;
    mental_health::write(c)?;
    social_care::write(c)?;
    urgent_care::write(c)?;
    truth::write(c, tally)
}
