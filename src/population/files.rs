//! The stage's versioned data files, parsed and checked: the tariff of unit costs per
//! setting and activity type, and the ACSC list of ICD-10 prefixes.

use std::collections::{BTreeMap, HashSet};

use super::catalogue::ACTIVITIES;

/// A parsed tariff: unit cost per (setting, activity), its file and version.
#[derive(Debug, Clone)]
pub struct Tariff {
    pub file: String,
    pub version: String,
    pub rows: BTreeMap<(String, String), f64>,
}

impl Tariff {
    /// Parse `setting,activity,unit_cost[,unit]` (lines starting `#` are notes; `# version:`
    /// names the version) and check every activity type of [`ACTIVITIES`] is priced.
    pub fn parse(file: &str, text: &str) -> Result<Tariff, String> {
        let mut rows = BTreeMap::new();
        let mut version = String::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if let Some(v) = l.strip_prefix("# version:") {
                version = v.trim().to_string();
            }
            if l.is_empty() || l.starts_with('#') || l.starts_with("setting,") {
                continue;
            }
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let cost = f
                .get(2)
                .and_then(|c| c.parse::<f64>().ok())
                .filter(|c| *c >= 0.0);
            match (f.first(), f.get(1), cost) {
                (Some(s), Some(a), Some(c)) if !s.is_empty() && !a.is_empty() => {
                    rows.insert((s.to_string(), a.to_string()), c);
                }
                _ => {
                    return Err(format!(
                        "tariff {file}:{}: expected `setting,activity,unit_cost` with a non-negative cost, got `{l}`",
                        i + 1
                    ));
                }
            }
        }
        let missing: Vec<String> = ACTIVITIES
            .iter()
            .flat_map(|(s, acts)| acts.iter().map(move |a| (*s, *a)))
            .filter(|(s, a)| !rows.contains_key(&(s.to_string(), a.to_string())))
            .map(|(s, a)| format!("`{a}` of setting `{s}`"))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "tariff {file} has no unit cost for activity type {} (every activity type in docs/population.md needs a row)",
                missing.join(", ")
            ));
        }
        Ok(Tariff {
            file: file.to_string(),
            version,
            rows,
        })
    }
}

/// The ACSC list: `condition,code` rows of ICD-10 prefixes (no dots).
pub fn parse_acsc(name: &str, text: &str) -> Result<HashSet<String>, String> {
    let mut out = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with("condition,") {
            continue;
        }
        match l
            .split(',')
            .nth(1)
            .map(|c| c.trim().replace('.', "").to_uppercase())
        {
            Some(c) if (3..=4).contains(&c.len()) => {
                out.insert(c);
            }
            _ => {
                return Err(format!(
                    "{name}:{}: expected `condition,code` with a 3- or 4-character ICD-10 prefix, got `{l}`",
                    i + 1
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(format!("{name} lists no codes"));
    }
    Ok(out)
}
