//! The synthetic people (the truth) and how each source system records them: missing
//! or mistyped NHS numbers, nicknames and typos, day/month swapped dates of birth, stale
//! postcodes, twins.

use chrono::{Datelike, Duration, NaiveDate};

use super::hazard::Process;
use super::health::{self, Health};
use super::history::History;
use super::names::{ETHNICITY, FEMALE, MALE, NICKNAMES, SURNAMES};
use super::rng::Rng;
use super::writers::Writers;
use super::{PRACTICES, World};

/// One synthetic person (the truth).
pub(super) struct Person {
    pub id: String,
    /// The person's number (the digits of `id`), for local identifiers.
    pub n: u64,
    pub nhs: String,
    pub given: String,
    pub family: String,
    pub sex: u8,
    pub dob: NaiveDate,
    /// Date of birth as a day from the world's origin.
    pub dob_day: i32,
    /// Age in whole years at the extract date.
    pub age: i64,
    pub postcode: String,
    pub old_postcode: Option<String>,
    pub lsoa: usize,
    pub imd_decile: u8,
    pub ethnicity: &'static str,
    pub practice: usize,
    pub health: Health,
    /// `T…` of the twin this person was born with, or empty.
    pub twin_of: String,
}

/// A valid NHS number (modulus 11) unique to person `p`.
fn nhs_number(p: u64) -> String {
    let mut base = 450_000_000 + p * 7;
    loop {
        let d: Vec<u32> = format!("{base:09}")
            .chars()
            .map(|c| c as u32 - 48)
            .collect();
        let s: u32 = d.iter().enumerate().map(|(i, x)| x * (10 - i as u32)).sum();
        let c = (11 - s % 11) % 11;
        if c != 10 {
            return format!("{base:09}{c}");
        }
        base += 1;
    }
}

/// What a twin shares with the person born before: (person, dob, surname, postcode,
/// LSOA, ethnicity).
pub(super) struct TwinSeed(usize, NaiveDate, String, String, usize, &'static str);

/// The people, one at a time; 1% are followed by a twin.
pub(super) struct Population {
    pending_twin: Option<TwinSeed>,
}

impl Population {
    pub(super) fn new() -> Population {
        Population { pending_twin: None }
    }

    pub(super) fn next(&mut self, rng: &mut Rng, p: usize, world: &World) -> Person {
        let mut person = make_person(rng, p, world);
        if let Some(TwinSeed(q, dob, family, postcode, lsoa, eth)) = self.pending_twin.take() {
            person.dob = dob;
            person.family = family;
            person.postcode = postcode;
            person.lsoa = lsoa;
            person.imd_decile = world.places.lsoas[lsoa].decile;
            person.ethnicity = eth;
            person.twin_of = format!("T{q:07}");
        } else if rng.chance(0.01) {
            self.pending_twin = Some(TwinSeed(
                p,
                person.dob,
                person.family.clone(),
                person.postcode.clone(),
                person.lsoa,
                person.ethnicity,
            ));
        }
        person.age = (world.as_of - person.dob).num_days() / 365;
        person.dob_day = world.day(person.dob);
        person.health = health::draw(rng, person.dob_day, person.imd_decile, world);
        person
    }
}

fn make_person(rng: &mut Rng, p: usize, world: &World) -> Person {
    let places = &world.places;
    let sex = if rng.chance(0.5) { 1 } else { 2 };
    let age = draw_age(rng);
    let dob = world.as_of - Duration::days(age * 365 + rng.below(365) as i64 + age / 4);
    let given = if sex == 1 {
        rng.pick(MALE)
    } else {
        rng.pick(FEMALE)
    }
    .to_string();
    let lsoa = rng.below(places.lsoas.len());
    let postcode = rng.pick(&places.postcodes[lsoa]).clone();
    let old_postcode = rng.chance(0.10).then(|| {
        let l = rng.below(places.lsoas.len());
        rng.pick(&places.postcodes[l]).clone()
    });
    Person {
        id: format!("T{p:07}"),
        n: p as u64,
        nhs: nhs_number(p as u64),
        given,
        family: rng.pick(SURNAMES).to_string(),
        sex,
        dob,
        dob_day: 0,
        age,
        postcode,
        old_postcode,
        lsoa,
        imd_decile: places.lsoas[lsoa].decile,
        ethnicity: draw_ethnicity(rng),
        practice: rng.below(PRACTICES.len()),
        health: Health::default(),
        twin_of: String::new(),
    }
}

fn draw_age(rng: &mut Rng) -> i64 {
    let band = rng.f();
    (if band < 0.20 {
        rng.below(18)
    } else if band < 0.48 {
        18 + rng.below(22)
    } else if band < 0.80 {
        40 + rng.below(25)
    } else if band < 0.94 {
        65 + rng.below(15)
    } else {
        80 + rng.below(20)
    }) as i64
}

fn draw_ethnicity(rng: &mut Rng) -> &'static str {
    let mut roll = rng.below(1000) as u32;
    for (code, w) in ETHNICITY {
        if roll < *w {
            return code;
        }
        roll -= w;
    }
    "A"
}

/// A typo: two neighbouring letters swapped.
fn typo(rng: &mut Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() > 3 {
        let i = 1 + rng.below(c.len() - 2);
        c.swap(i, i + 1);
    }
    c.into_iter().collect()
}

/// Writing one person: the generator, the person and their history, the open files
/// and the world.
pub(super) struct Ctx<'a> {
    pub rng: &'a mut Rng,
    pub p: &'a Person,
    pub h: &'a History,
    pub process: &'a Process,
    pub w: &'a mut Writers,
    pub world: &'a World,
}

impl Ctx<'_> {
    /// The ground-truth row of a record written.
    /// The ground-truth row of a record dated `day` (`i32::MIN`: in every delivery).
    pub(super) fn truth_on(
        &mut self,
        day: i32,
        provider: &str,
        source: &str,
        id: &str,
    ) -> std::io::Result<()> {
        self.w
            .truth
            .records
            .row_on(day, &[provider, source, id, &self.p.id])
    }
    /// The NHS number as another system holds it: missing or (0.5%) mistyped.
    pub(super) fn nhs_as(&mut self, missing: f64) -> String {
        if self.rng.chance(missing) {
            String::new()
        } else if self.rng.chance(0.005) {
            let mut s: Vec<char> = self.p.nhs.chars().collect();
            s[9] = char::from(b'0' + ((s[9] as u8 - b'0' + 1) % 10));
            s.into_iter().collect()
        } else {
            self.p.nhs.clone()
        }
    }
    /// The date of birth, day and month swapped 1% of the time.
    pub(super) fn dob_as(&mut self) -> NaiveDate {
        let dob = self.p.dob;
        if self.rng.chance(0.01) && dob.day() <= 12 && dob.day() != dob.month() {
            NaiveDate::from_ymd_opt(dob.year(), dob.day(), dob.month()).unwrap_or(dob)
        } else {
            dob
        }
    }
    /// The postcode: the old one half the time for people who moved.
    pub(super) fn postcode_as(&mut self) -> String {
        match &self.p.old_postcode {
            Some(old) if self.rng.chance(0.5) => old.clone(),
            _ => self.p.postcode.clone(),
        }
    }
    /// The given name: nicknames and typos.
    pub(super) fn given_as(&mut self) -> String {
        if self.rng.chance(0.03)
            && let Some((_, nick)) = NICKNAMES.iter().find(|(f, _)| *f == self.p.given)
        {
            return nick.to_string();
        }
        if self.rng.chance(0.02) {
            typo(self.rng, &self.p.given)
        } else {
            self.p.given.clone()
        }
    }
    pub(super) fn family_as(&mut self) -> String {
        if self.rng.chance(0.02) {
            typo(self.rng, &self.p.family)
        } else {
            self.p.family.clone()
        }
    }
    /// Whether an event on day `d` is in the extracts (history window to the last
    /// delivery's extract date).
    pub(super) fn in_extract(&self, d: i32) -> bool {
        self.world.start <= d && d <= self.world.last_extract
    }
    pub(super) fn date(&self, d: i32) -> NaiveDate {
        self.world.date(d)
    }
}
