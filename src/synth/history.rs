//! A person's events in every setting over the stream (the history window before the
//! extract date and the horizon after it): emergency admissions from the hazard
//! process, with the A&E attendances, ambulance conveyances and 111 calls around them,
//! and the other settings' contacts at rates that follow the person's age, conditions,
//! frailty and current emergency risk. Days count from the world's origin.

use super::World;
use super::codes::{ACUTE_DRUGS, CONDITIONS, PPI, STATIN};
use super::hazard::{Admission, Process};
use super::health::{Health, YEAR};
use super::rng::Rng;

/// An admitted spell.
#[derive(Clone, Debug)]
pub(super) struct Spell {
    pub day: i32,
    pub discharge: i32,
    /// NHS DD admission method (21–25, 28, 2A–2D emergency; 11–13 elective).
    pub method: &'static str,
    pub emergency: bool,
}

/// A GP-coded event: a condition code or a routine observation.
#[derive(Clone, Copy, Debug)]
pub(super) enum GpEvent {
    Condition(usize),
    Observation(usize),
}

/// A medication issue: day, drug, repeat (else acute).
#[derive(Clone, Copy, Debug)]
pub(super) struct Issue {
    pub day: i32,
    pub drug: usize,
    pub repeat: bool,
}

/// A social-care event: type, start day, end day.
#[derive(Clone, Copy, Debug)]
pub(super) struct CareEvent {
    pub kind: &'static str,
    pub start: i32,
    pub end: Option<i32>,
}

/// Everything that happens to one person.
#[derive(Default)]
pub(super) struct History {
    pub admissions: Vec<Admission>,
    /// Emergency and elective spells, by admission day.
    pub spells: Vec<Spell>,
    /// A&E attendances: (day, admitted).
    pub ecds: Vec<(i32, bool)>,
    pub outpatients: Vec<i32>,
    pub calls_111: Vec<i32>,
    /// Ambulance incidents: (day, conveyed).
    pub ambulance: Vec<(i32, bool)>,
    pub community: Vec<i32>,
    pub mental_health: Vec<i32>,
    pub social_care: Vec<CareEvent>,
    pub gp: Vec<(i32, GpEvent)>,
    pub medications: Vec<Issue>,
}

/// What history generation needs about the person.
pub(super) struct Subject<'a> {
    pub health: &'a Health,
    pub dob: i32,
    pub process: &'a Process,
}

impl Subject<'_> {
    fn age(&self, d: i32) -> f64 {
        f64::from(d - self.dob) / YEAR
    }
    fn conditions(&self, d: i32) -> usize {
        self.health.conditions_at(d).count()
    }
}

/// Generate the person's history over the world's stream.
pub(super) fn generate(rng: &mut Rng, s: &Subject, world: &World) -> History {
    let admissions = s.process.simulate(rng, |rng, d| {
        let age = s.age(d);
        let frailty = s.health.frailty_at(age, d);
        rng.poisson(1.5 + 6.0 * frailty + if age >= 75.0 { 2.0 } else { 0.0 }) as i32
    });
    let mut h = History {
        admissions,
        ..Default::default()
    };
    emergency_care(rng, s, world, &mut h);
    for b in (world.start..=world.end).step_by(BLOCK as usize) {
        block(rng, s, b, &mut h);
    }
    condition_codes(rng, s, world, &mut h);
    medications(rng, s, world, &mut h);
    social_care(rng, s, world, &mut h);
    h.spells.sort_by_key(|x| x.day);
    h.gp.sort_by_key(|x| x.0);
    h.medications.sort_by_key(|x| (x.day, x.drug));
    h
}

/// Length of the blocks over which contact rates are held constant.
const BLOCK: i32 = 30;

/// Emergency spells and what comes with them: A&E, ambulance, 111, a follow-up.
fn emergency_care(rng: &mut Rng, s: &Subject, world: &World, h: &mut History) {
    for a in h.admissions.iter().filter(|a| a.day >= world.start) {
        let age = s.age(a.day);
        let method = if rng.chance(0.75) {
            "21"
        } else if s.health.has_at("depression", a.day) && rng.chance(0.3) {
            "25"
        } else {
            rng.one(&["22", "22", "22", "2A", "2B", "24", "23", "28", "2D"])
        };
        h.spells.push(Spell {
            day: a.day,
            discharge: a.discharge,
            method,
            emergency: true,
        });
        if method == "21" {
            h.ecds.push((a.day, true));
            if rng.chance(if age >= 70.0 { 0.45 } else { 0.25 }) {
                h.ambulance.push((a.day, true));
            }
        }
        if rng.chance(0.25) {
            h.calls_111.push(a.day - rng.below(3) as i32);
        }
        if rng.chance(0.3) {
            h.outpatients.push(a.discharge + 14 + rng.below(28) as i32);
        }
        if age >= 75.0 && rng.chance(0.3) {
            h.community.push(a.discharge + 1 + rng.below(10) as i32);
        }
    }
}

/// Poisson count of events at `per_year` over a block of `BLOCK` days from `b`.
fn events_in(rng: &mut Rng, per_year: f64, b: i32, out: &mut Vec<i32>) {
    for _ in 0..rng.poisson(per_year * f64::from(BLOCK) / 365.0) {
        out.push(b + rng.below(BLOCK as usize) as i32);
    }
}

/// Contacts in one block at rates set by the state at its start.
fn block(rng: &mut Rng, s: &Subject, b: i32, h: &mut History) {
    let age = s.age(b);
    if age < 0.0 {
        return;
    }
    let n = s.conditions(b) as f64;
    let frailty = s.health.frailty_at(age, b);
    let known = h.admissions.partition_point(|a| a.day < b);
    // The person's current emergency rate per year, bounded.
    let risk = (s.process.level(b, &h.admissions[..known]) * 365.0).min(2.0);
    let mut days = Vec::new();
    events_in(rng, 0.03 + 0.03 * n, b, &mut days);
    for d in days.drain(..) {
        let method = rng.one(&["11", "12", "13"]);
        let discharge = d + rng.poisson(0.6) as i32;
        h.spells.push(Spell {
            day: d,
            discharge,
            method,
            emergency: false,
        });
    }
    events_in(rng, 0.22 + 0.3 * n, b, &mut h.outpatients);
    events_in(rng, 0.08 + 0.04 * n + 0.4 * risk, b, &mut days);
    h.ecds.extend(days.drain(..).map(|d| (d, false)));
    events_in(rng, 0.05 + 0.3 * risk, b, &mut h.calls_111);
    events_in(rng, 0.005 + 0.1 * risk, b, &mut days);
    h.ambulance
        .extend(days.drain(..).map(|d| (d, rng.chance(0.3))));
    if (age >= 65.0 && n >= 2.0) || s.health.services.community {
        events_in(rng, 0.4 + 1.2 * frailty, b, &mut h.community);
    }
    let depressed = s.health.has_at("depression", b);
    if s.health.services.mental_health || (depressed && s.health.frail_u < 0.15) {
        events_in(rng, 1.2, b, &mut h.mental_health);
    }
    let observations = 0.8 + age / 30.0 + 0.5 * n;
    events_in(rng, observations, b, &mut days);
    for d in days.drain(..) {
        let o = rng.below(super::codes::OBSERVATIONS.len());
        h.gp.push((d, GpEvent::Observation(o)));
    }
}

/// A condition is coded on its onset day and reviewed every year after.
fn condition_codes(rng: &mut Rng, s: &Subject, world: &World, h: &mut History) {
    for &(c, onset) in &s.health.onsets {
        if onset > world.end {
            continue;
        }
        h.gp.push((onset.max(s.dob), GpEvent::Condition(c)));
        let mut review = onset + 330 + rng.below(70) as i32;
        while review <= world.end {
            if review >= world.start {
                h.gp.push((review, GpEvent::Condition(c)));
            }
            review += 330 + rng.below(70) as i32;
        }
    }
}

/// Repeat issues of the conditions' medicines every 56 days from onset (and
/// preventive statins and PPIs with age), acute issues now and then.
fn medications(rng: &mut Rng, s: &Subject, world: &World, h: &mut History) {
    let mut courses: Vec<(usize, i32)> = Vec::new();
    for &(c, onset) in &s.health.onsets {
        for &drug in CONDITIONS[c].drugs {
            if !courses.iter().any(|x| x.0 == drug) && rng.chance(0.8) {
                courses.push((drug, onset + rng.below(21) as i32));
            }
        }
    }
    let at_age = |years: f64| s.dob + (years * YEAR) as i32;
    if s.health.services.statin && !courses.iter().any(|x| x.0 == STATIN) {
        courses.push((STATIN, at_age(55.0)));
    }
    if s.health.services.ppi {
        courses.push((PPI, at_age(60.0)));
    }
    for (drug, from) in courses {
        let mut d = from.max(world.start) + rng.below(56) as i32;
        while d <= world.end {
            h.medications.push(Issue {
                day: d,
                drug,
                repeat: true,
            });
            d += 56 + rng.below(7) as i32 - 3;
        }
    }
    let years = f64::from(world.end - world.start) / YEAR;
    let n = s.conditions(world.end) as f64;
    for _ in 0..rng.poisson((0.4 + 0.25 * n) * years) {
        let drug = *rng.pick(ACUTE_DRUGS);
        let day = world.start + rng.below((world.end - world.start + 1) as usize) as i32;
        if day >= s.dob {
            h.medications.push(Issue {
                day,
                drug,
                repeat: false,
            });
        }
    }
}

/// Social care: an assessment once frail (or rarely at any age), a service after it
/// for most, reviews every year.
fn social_care(rng: &mut Rng, s: &Subject, world: &World, h: &mut History) {
    let services = s.health.services;
    let first_frail = (world.start..=world.end)
        .step_by(BLOCK as usize)
        .find(|&d| {
            let age = s.age(d);
            age >= 65.0 && s.health.frailty_at(age, d) > 0.35
        });
    let start = match first_frail {
        Some(d) if services.social_care => d + rng.below(BLOCK as usize) as i32,
        _ if services.social_care_any => {
            world.start + rng.below((world.end - world.start) as usize) as i32
        }
        _ => return,
    };
    let assessed = start + rng.below(28) as i32;
    h.social_care.push(CareEvent {
        kind: "Assessment",
        start,
        end: Some(assessed),
    });
    if !rng.chance(0.7) {
        return;
    }
    let service = assessed + 7 + rng.below(21) as i32;
    let ends = rng
        .chance(0.3)
        .then(|| service + 30 + rng.below(300) as i32);
    h.social_care.push(CareEvent {
        kind: "Service",
        start: service,
        end: ends,
    });
    let mut review = service + 365;
    while review <= ends.unwrap_or(world.end).min(world.end) {
        h.social_care.push(CareEvent {
            kind: "Review",
            start: review,
            end: Some(review),
        });
        review += 365;
    }
}
