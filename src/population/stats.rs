//! The statistics of the inequality tables, as public-health analysts in England compute
//! them (the methods of the Fingertips tools and the `PHEindicatormethods` R package):
//!
//! * proportions: Wilson score interval;
//! * crude rates of events: Byar's approximation to the exact Poisson interval;
//! * directly age-standardised rates (DSR) over the 2013 European Standard Population,
//!   with the Dobson et al. (1991) interval built on Byar's limits for the total count;
//!   not calculated for fewer than [`DSR_MIN_COUNT`] events.
//!
//! All intervals are 95 %.

/// The standard normal quantile of 0.975.
pub const Z_95: f64 = 1.959_963_984_540_054;
/// DSRs are not calculated from fewer events than this (PHE practice).
pub const DSR_MIN_COUNT: u64 = 10;

/// A value with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Wilson score interval of `x` of `n`, times `multiplier` (100 for a percentage).
pub fn wilson(x: u64, n: u64, multiplier: f64) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let (x, n, z) = (x as f64, n as f64, Z_95);
    let p = x / n;
    let centre = 2.0 * x + z * z;
    let spread = z * (z * z + 4.0 * x * (1.0 - p)).sqrt();
    let denom = 2.0 * (n + z * z);
    Some(Estimate {
        value: p * multiplier,
        lower: (centre - spread) / denom * multiplier,
        upper: (centre + spread) / denom * multiplier,
    })
}

/// Byar's lower 95 % limit of a Poisson count.
pub fn byar_lower(o: f64) -> f64 {
    if o <= 0.0 {
        return 0.0;
    }
    o * (1.0 - 1.0 / (9.0 * o) - Z_95 / (3.0 * o.sqrt())).powi(3)
}

/// Byar's upper 95 % limit of a Poisson count.
pub fn byar_upper(o: f64) -> f64 {
    let o1 = o + 1.0;
    o1 * (1.0 - 1.0 / (9.0 * o1) + Z_95 / (3.0 * o1.sqrt())).powi(3)
}

/// A crude rate of `events` in `persons`, times `multiplier`, with Byar's interval.
pub fn crude_rate(events: u64, persons: u64, multiplier: f64) -> Option<Estimate> {
    if persons == 0 {
        return None;
    }
    let (o, n) = (events as f64, persons as f64);
    Some(Estimate {
        value: o / n * multiplier,
        lower: byar_lower(o) / n * multiplier,
        upper: byar_upper(o) / n * multiplier,
    })
}

/// A directly standardised rate: `counts[i]` events in `persons[i]` people of standard
/// band `i` with weight `weights[i]`, times `multiplier`; Dobson interval. Bands with no
/// people contribute nothing (their weight still counts in the total weight). `None`
/// under [`DSR_MIN_COUNT`] events or with mismatched lengths.
pub fn dsr(counts: &[u64], persons: &[u64], weights: &[f64], multiplier: f64) -> Option<Estimate> {
    if counts.len() != persons.len() || counts.len() != weights.len() {
        return None;
    }
    let total: u64 = counts.iter().sum();
    if total < DSR_MIN_COUNT {
        return None;
    }
    let w_sum: f64 = weights.iter().sum();
    let (mut rate, mut var) = (0.0, 0.0);
    for ((o, n), w) in counts.iter().zip(persons).zip(weights) {
        if *n == 0 {
            continue;
        }
        let (o, n) = (*o as f64, *n as f64);
        rate += w * o / n;
        var += w * w * o / (n * n);
    }
    let value = rate / w_sum * multiplier;
    let var = var / (w_sum * w_sum) * multiplier * multiplier;
    let o = total as f64;
    let k = (var / o).sqrt();
    Some(Estimate {
        value,
        lower: value + k * (byar_lower(o) - o),
        upper: value + k * (byar_upper(o) - o),
    })
}

/// The 2013 European Standard Population: (first age, weight) per band.
#[derive(Debug, Clone)]
pub struct StandardPopulation {
    pub name: String,
    pub bands: Vec<(u32, f64)>,
}

impl StandardPopulation {
    /// Parse the shipped CSV (`age_from,age_to,weight`, `#` lines ignored).
    pub fn parse(name: &str, text: &str) -> Result<StandardPopulation, String> {
        let mut bands = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with("age_from") {
                continue;
            }
            let f: Vec<&str> = l.split(',').collect();
            let bad = || format!("{name}:{}: expected `age_from,age_to,weight`", i + 1);
            let from: u32 = f.first().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let w: f64 = f.get(2).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            bands.push((from, w));
        }
        if bands.is_empty() || bands[0].0 != 0 {
            return Err(format!("{name}: the bands must start at age 0"));
        }
        Ok(StandardPopulation {
            name: name.to_string(),
            bands,
        })
    }
    /// The band of an age.
    pub fn band(&self, age: u32) -> usize {
        self.bands
            .iter()
            .rposition(|(from, _)| *from <= age)
            .unwrap_or(0)
    }
    pub fn weights(&self) -> Vec<f64> {
        self.bands.iter().map(|b| b.1).collect()
    }
    pub fn len(&self) -> usize {
        self.bands.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bands.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byar_limits_bracket_the_count() {
        for o in [10.0, 25.0, 400.0] {
            assert!(byar_lower(o) < o && byar_upper(o) > o);
        }
    }

    #[test]
    fn wilson_matches_a_hand_computation() {
        // 20 of 100: p = 0.2; Wilson 95 % = (0.1333, 0.2888) to 4 places.
        let e = wilson(20, 100, 1.0).unwrap();
        assert!((e.lower - 0.13333).abs() < 1e-4 && (e.upper - 0.28880).abs() < 1e-4);
    }

    #[test]
    fn the_esp_sums_to_100000() {
        let esp = StandardPopulation::parse("esp", super::super::config::ESP2013).unwrap();
        assert_eq!(esp.len(), 19);
        assert_eq!(esp.weights().iter().sum::<f64>(), 100_000.0);
        assert_eq!(
            (esp.band(0), esp.band(4), esp.band(5), esp.band(95)),
            (0, 0, 1, 18)
        );
    }
}
