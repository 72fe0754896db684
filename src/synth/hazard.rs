//! The known risk process of emergency admissions: a daily hazard per person
//!
//! h(t) = exp(α + age(t) + Σ conditions present at t + β_f·frailty(t) + β_d·deprivation
//!            + β_90·min(n_90(t), 2) + β_365·min(n_365(t), 3) + latent),
//!
//! zero while the person is in hospital, where n_90 and n_365 count the person's
//! emergency admissions in the 90 and 365 days before t (self-exciting). Admissions are
//! drawn day by day (P(admitted on day t) = 1 − exp(−h(t))), so the probability of at
//! least one admission in (T, T+90] given everything up to T is exactly
//! 1 − exp(−Σ h(t)) with h computed as if no admission happened in the window.

use super::codes::CONDITIONS;
use super::health::{Health, YEAR, frailty};
use super::rng::Rng;

/// Baseline log daily hazard (at 50, no conditions, least deprived, latent 0).
const ALPHA: f64 = -9.3;
const AGE_PER_YEAR: f64 = 0.022;
const FRAILTY: f64 = 0.8;
const DEPRIVATION: f64 = 0.6;
const LAST_90: f64 = 0.6;
const LAST_365: f64 = 0.25;
/// Outcome horizon of the truth, days.
pub(super) const HORIZON: i32 = 90;

/// One emergency admission: admission and discharge day (from the world's origin).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Admission {
    pub day: i32,
    pub discharge: i32,
}

/// The log hazard of one person without the recent-admission terms, day by day from
/// the origin to the end of the stream (so the process and the truth share it).
pub(super) struct Process {
    base: Vec<f64>,
}

/// Age effect (log scale): rising through adult life, raised in infancy.
fn age_effect(age: f64) -> f64 {
    if age < 2.0 {
        -0.4
    } else if age < 18.0 {
        -1.3
    } else {
        AGE_PER_YEAR * (age - 50.0)
    }
}

impl Process {
    /// `dob` as a day from the origin; `end` the last day of the stream.
    pub(super) fn new(h: &Health, dob: i32, end: i32) -> Process {
        let fixed = ALPHA + DEPRIVATION * h.deprivation + h.latent;
        let mut base = Vec::with_capacity(end.max(0) as usize + 1);
        let (mut conds, mut frailing) = (0.0, 0);
        let mut next = 0;
        for d in 0..=end {
            while next < h.onsets.len() && h.onsets[next].1 <= d {
                let c = &CONDITIONS[h.onsets[next].0];
                conds += c.log_hr;
                frailing += usize::from(c.frailing);
                next += 1;
            }
            let age = f64::from(d - dob) / YEAR;
            let frail = frailty(age, next, frailing, h.frail_u);
            base.push(fixed + age_effect(age) + conds + FRAILTY * frail);
        }
        Process { base }
    }

    /// The daily hazard on day `d` given the admissions before it (none in a stay).
    pub(super) fn hazard(&self, d: i32, before: &[Admission]) -> f64 {
        if before.iter().any(|a| a.day <= d && d <= a.discharge) {
            return 0.0;
        }
        self.level(d, before)
    }

    /// The daily hazard on day `d` out of hospital: the person's current level of
    /// emergency risk (what drives their other urgent care use).
    pub(super) fn level(&self, d: i32, before: &[Admission]) -> f64 {
        let (mut n90, mut n365) = (0, 0);
        for a in before {
            let ago = d - a.day;
            if (1..=90).contains(&ago) {
                n90 += 1;
            }
            if (1..=365).contains(&ago) {
                n365 += 1;
            }
        }
        let recent = LAST_90 * f64::from(n90.min(2)) + LAST_365 * f64::from(n365.min(3));
        (self.base[d as usize] + recent).exp()
    }

    /// Emergency admissions from day 0 to the end; `los` draws a length of stay.
    pub(super) fn simulate(
        &self,
        rng: &mut Rng,
        mut los: impl FnMut(&mut Rng, i32) -> i32,
    ) -> Vec<Admission> {
        let mut adms: Vec<Admission> = Vec::new();
        let mut need = rng.exp1();
        let mut d = 0;
        while (d as usize) < self.base.len() {
            need -= self.hazard(d, &adms);
            if need <= 0.0 {
                let stay = los(rng, d).max(0);
                adms.push(Admission {
                    day: d,
                    discharge: d + stay,
                });
                need = rng.exp1();
                d += stay;
            }
            d += 1;
        }
        adms
    }

    /// P(at least one emergency admission in (t, t + HORIZON]) given the admissions up
    /// to day `t`.
    pub(super) fn risk(&self, adms: &[Admission], t: i32) -> f64 {
        let known: Vec<Admission> = adms.iter().copied().filter(|a| a.day <= t).collect();
        let last = (t + HORIZON).min(self.base.len() as i32 - 1);
        let total: f64 = (t + 1..=last).map(|d| self.hazard(d, &known)).sum();
        1.0 - (-total).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The truth probability equals the frequency of admissions when the window is
    /// simulated many times from the same history.
    #[test]
    fn risk_is_the_probability_of_the_process() {
        let h = Health {
            onsets: vec![(3, 100), (2, 400)],
            frail_u: 0.5,
            latent: 0.8,
            deprivation: 1.0,
            ..Default::default()
        };
        let dob = -(82.0 * YEAR) as i32;
        let p = Process::new(&h, dob, 900);
        let history = vec![Admission {
            day: 700,
            discharge: 706,
        }];
        let t = 703;
        let want = p.risk(&history, t);
        assert!(want > 0.2 && want < 0.9, "{want}");
        let mut rng = Rng(11);
        let n = 20_000;
        let mut hits = 0;
        for _ in 0..n {
            let mut adms = history.clone();
            let mut need = rng.exp1();
            for d in t + 1..=t + HORIZON {
                need -= p.hazard(d, &adms);
                if need <= 0.0 {
                    adms.push(Admission {
                        day: d,
                        discharge: d,
                    });
                    hits += 1;
                    break;
                }
            }
        }
        let got = hits as f64 / n as f64;
        let se = (want * (1.0 - want) / n as f64).sqrt();
        assert!(
            (got - want).abs() < 4.0 * se,
            "simulated {got}, exact {want}"
        );
        // In hospital: no hazard.
        assert_eq!(p.hazard(705, &history), 0.0);
        assert!(p.hazard(707, &history) > p.hazard(707, &[]));
    }
}
