//! A person's health over time: long-term conditions with onset dates (some before the
//! history window, some during it), frailty that grows with age and conditions, and
//! the person-level latent effect on their emergency-admission hazard.

use super::World;
use super::codes::CONDITIONS;
use super::rng::Rng;

/// Days in a year, for ages.
pub(super) const YEAR: f64 = 365.25;

/// Which services a person uses besides the hazard-driven ones (drawn once).
#[derive(Clone, Copy, Default)]
pub(super) struct Services {
    /// Known to community services without being old and multimorbid.
    pub community: bool,
    /// In contact with mental health services.
    pub mental_health: bool,
    /// Assessed by social care once frail (60% of those who become frail).
    pub social_care: bool,
    /// A rare social-care client of any age.
    pub social_care_any: bool,
    /// Takes a statin / a PPI for prevention once old enough.
    pub statin: bool,
    pub ppi: bool,
}

/// A person's health: conditions with onset days, frailty and latent risk.
#[derive(Clone, Default)]
pub(super) struct Health {
    /// (condition index, onset day), by onset day; days count from the world's origin
    /// and may be negative (onset before the origin).
    pub onsets: Vec<(usize, i32)>,
    /// Person-level frailty noise in [0, 1).
    pub frail_u: f64,
    /// Person-level latent log hazard ratio.
    pub latent: f64,
    /// 0 (least deprived decile) .. 1 (most deprived).
    pub deprivation: f64,
    pub services: Services,
}

impl Health {
    /// Conditions present on day `d`.
    pub(super) fn conditions_at(&self, d: i32) -> impl Iterator<Item = usize> + '_ {
        self.onsets.iter().filter(move |o| o.1 <= d).map(|o| o.0)
    }
    pub(super) fn has_at(&self, key: &str, d: i32) -> bool {
        self.conditions_at(d).any(|c| CONDITIONS[c].key == key)
    }
    /// Frailty in [0, 1] on day `d` at `age` years: from 65, with age, conditions and
    /// cognitive or mobility conditions.
    pub(super) fn frailty_at(&self, age: f64, d: i32) -> f64 {
        if age < 65.0 {
            return 0.0;
        }
        let (mut n, mut frailing) = (0, 0);
        for c in self.conditions_at(d) {
            n += 1;
            frailing += usize::from(CONDITIONS[c].frailing);
        }
        frailty(age, n, frailing, self.frail_u)
    }
}

/// Frailty at `age` with `n` conditions, `frailing` of them cognitive or mobility ones.
pub(super) fn frailty(age: f64, n: usize, frailing: usize, frail_u: f64) -> f64 {
    if age < 65.0 {
        return 0.0;
    }
    ((age - 65.0) / 30.0 * 0.5 + n as f64 * 0.06 + frailing as f64 * 0.12 + frail_u * 0.1).min(1.0)
}

/// Draw a person's health: `dob` and the world's end as days from the origin.
pub(super) fn draw(rng: &mut Rng, dob: i32, imd_decile: u8, world: &World) -> Health {
    let age_end = f64::from(world.end - dob) / YEAR;
    let deprivation = f64::from(10 - i32::from(imd_decile).min(10)) / 9.0;
    let lambda = 0.05 + (age_end / 28.0).powf(1.6) * 0.35 + deprivation * 0.4;
    let n_cond = rng.poisson(lambda).min(CONDITIONS.len());
    let mut onsets: Vec<(usize, i32)> = Vec::new();
    let total: u32 = CONDITIONS.iter().map(|c| c.weight).sum();
    let mut tries = 0;
    while onsets.len() < n_cond && tries < 40 {
        tries += 1;
        let c = weighted(rng, total);
        let cond = &CONDITIONS[c];
        if onsets.iter().any(|o| o.0 == c) || age_end < cond.min_age as f64 + 1.0 {
            continue;
        }
        // Onset uniform over the years since the condition's youngest age (at most 25).
        let span = ((age_end - cond.min_age as f64).min(25.0) * YEAR) as i32;
        onsets.push((c, world.end - rng.below(span.max(1) as usize) as i32));
    }
    onsets.sort_by_key(|o| (o.1, o.0));
    let services = Services {
        community: rng.chance(0.03),
        mental_health: rng.chance(0.04),
        social_care: rng.chance(0.6),
        social_care_any: rng.chance(0.005),
        statin: rng.chance(0.4),
        ppi: rng.chance(0.25),
    };
    Health {
        onsets,
        frail_u: rng.f(),
        latent: 0.3 * rng.normal(),
        deprivation,
        services,
    }
}

fn weighted(rng: &mut Rng, total: u32) -> usize {
    let mut roll = rng.below(total as usize) as u32;
    for (i, c) in CONDITIONS.iter().enumerate() {
        if roll < c.weight {
            return i;
        }
        roll -= c.weight;
    }
    0
}
