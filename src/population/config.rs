//! The `population:` section of an ICS file: the segmentations and flags (shipped in
//! `reference/population/segmentations.yaml`: Bridges to Health and Core20PLUS5, editable),
//! which measures and breakdowns the inequality tables publish, the tariff that costs
//! events without a provider cost, the ACSC code list, what counts as a low-acuity A&E
//! attendance, and the disclosure policy. Every part has a default: `population: {}`
//! (or no section at all) publishes everything the shipped files declare.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostics::{Finding, did_you_mean};
use crate::disclosure::DisclosurePolicy;

/// The shipped segmentations and flags (data, not code).
pub const DEFAULT_SEGMENTATIONS: &str =
    include_str!("../../reference/population/segmentations.yaml");
/// The shipped tariff (unit costs per setting and activity type).
pub const DEFAULT_TARIFF: &str = include_str!("../../reference/population/tariff.csv");
/// The shipped chronic ACSC ICD-10 list.
pub const DEFAULT_ACSC: &str = include_str!("../../reference/codelists/acsc_chronic_icd10.csv");
/// The 2013 European Standard Population.
pub const ESP2013: &str = include_str!("../../reference/population/esp2013.csv");

/// How one ICS segments its population and publishes population-health aggregates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PopulationSettings {
    /// The as-of date of the aggregates (YYYY-MM-DD); default `risk.as_of.score`.
    #[serde(default)]
    pub as_of: Option<String>,
    /// Segmentations (each person in exactly one segment of each); default: the shipped
    /// file `reference/population/segmentations.yaml` (Bridges to Health).
    #[serde(default)]
    pub segmentations: Option<Vec<Segmentation>>,
    /// Flags (a person may carry several: Core20PLUS5 and any the ICS declares); default:
    /// the shipped file's flags.
    #[serde(default)]
    pub flags: Option<Vec<Flag>>,
    /// A YAML file with `segmentations:` and `flags:` (relative to the ICS file), instead
    /// of the shipped one; `segmentations` and `flags` given inline win over it.
    #[serde(default)]
    pub segmentations_file: Option<String>,
    /// The measures the inequality tables publish; default every known measure
    /// (docs/population.md lists them).
    #[serde(default)]
    pub measures: Option<Vec<String>>,
    /// The breakdowns each measure is published by; default every known breakdown.
    #[serde(default)]
    pub breakdowns: Option<Vec<String>>,
    /// Unit costs per setting and activity type (CSV, relative to the ICS file) for
    /// events without a provider-supplied cost; default `reference/population/tariff.csv`.
    #[serde(default)]
    pub tariff: Option<String>,
    /// Chronic ambulatory care sensitive conditions (CSV of ICD-10 prefixes); default
    /// `reference/codelists/acsc_chronic_icd10.csv`.
    #[serde(default)]
    pub acsc_codelist: Option<String>,
    /// ECDS acuity codes (SNOMED CT) of a low-acuity attendance; default standard and
    /// non-urgent.
    #[serde(default = "default_low_acuity")]
    pub low_acuity_codes: Vec<String>,
    /// ECDS discharge codes (SNOMED CT) that mean the person was admitted (not a
    /// low-acuity attendance); default 306706006 (discharge to ward).
    #[serde(default = "default_admitted")]
    pub admitted_discharge_codes: Vec<String>,
    /// ECDS arrival mode codes (SNOMED CT) that mean arrival by ambulance; with no
    /// arrival mode recorded, the arrival is derived from ambulance and 111 records.
    #[serde(default)]
    pub ambulance_arrival_codes: Vec<String>,
    /// Small-number suppression, rounding and secondary suppression of every aggregate.
    #[serde(default)]
    pub disclosure: DisclosurePolicy,
}

impl Default for PopulationSettings {
    fn default() -> Self {
        PopulationSettings {
            as_of: None,
            segmentations: None,
            flags: None,
            segmentations_file: None,
            measures: None,
            breakdowns: None,
            tariff: None,
            acsc_codelist: None,
            low_acuity_codes: default_low_acuity(),
            admitted_discharge_codes: default_admitted(),
            ambulance_arrival_codes: Vec::new(),
            disclosure: DisclosurePolicy::default(),
        }
    }
}

fn default_low_acuity() -> Vec<String> {
    vec!["1077241000000103".into(), "1077251000000100".into()]
}
fn default_admitted() -> Vec<String> {
    vec!["306706006".into()]
}

/// How a segmentation assigns a person to a segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentMode {
    /// Segments are tried in order; the first whose rule holds wins (a hierarchy, as
    /// Bridges to Health). A person no rule takes is an error unless a segment says
    /// `otherwise: true`.
    #[default]
    Priority,
    /// Every person must satisfy exactly one rule: a person matching two is an error
    /// (overlapping segments), one matching none too (a gap).
    Exclusive,
}

/// One segmentation: named segments with rules over the person features.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Segmentation {
    /// Name (lower case, digits, `_`): the breakdown `segment:<name>`.
    pub name: String,
    /// What the segmentation is (for the report).
    #[serde(default)]
    pub label: Option<String>,
    /// `priority` (default: first matching rule wins) or `exclusive`.
    #[serde(default)]
    pub mode: SegmentMode,
    /// The segments, in priority order.
    pub segments: Vec<Segment>,
}

/// One segment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Name (lower case, digits, `_`).
    pub name: String,
    /// How a commissioner reads it.
    #[serde(default)]
    pub label: Option<String>,
    /// A SQL condition over the person features (`gold/features` columns, `risk_band`,
    /// `imd_quintile`), e.g. `dementia = 1 OR (age >= 65 AND hfrs >= 5)`.
    #[serde(default)]
    pub when: Option<String>,
    /// The segment of everyone no earlier rule takes (priority mode only; last segment).
    #[serde(default)]
    pub otherwise: bool,
}

/// A flag: a SQL condition over the person features; a person may carry many.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    /// Name (lower case, digits, `_`): the measure `flag_<name>`.
    pub name: String,
    /// How a commissioner reads it.
    #[serde(default)]
    pub label: Option<String>,
    /// Which family it belongs to (`core20`, `plus`, `clinical_area`, or the ICS's own).
    #[serde(default)]
    pub group: Option<String>,
    /// The SQL condition.
    pub when: String,
}

/// The shipped (or declared) segmentations file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentationsFile {
    #[serde(default)]
    pub segmentations: Vec<Segmentation>,
    #[serde(default)]
    pub flags: Vec<Flag>,
}

/// A setting that cannot be used, naming it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("population.{setting}: {message}")]
pub struct PopulationSettingError {
    pub code: &'static str,
    pub setting: String,
    pub message: String,
}

pub fn problem(
    code: &'static str,
    setting: impl Into<String>,
    message: impl Into<String>,
) -> PopulationSettingError {
    PopulationSettingError {
        code,
        setting: setting.into(),
        message: message.into(),
    }
}

impl PopulationSettingError {
    /// As a located finding of the ICS file.
    pub fn finding(&self) -> Finding {
        Finding::at_setting(
            self.code,
            &format!("population.{}", self.setting),
            self.message.clone(),
        )
        .or_at("/population")
    }
}

impl PopulationSettings {
    /// The segmentations and flags in force: inline, else the declared file, else the
    /// shipped one.
    pub fn segmentations_and_flags(
        &self,
        dir: &Path,
    ) -> Result<SegmentationsFile, PopulationSettingError> {
        let file = match &self.segmentations_file {
            Some(p) => {
                let path = dir.join(p);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    problem(
                        "ONB0940",
                        "segmentations_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                parse_segmentations(&path.display().to_string(), &text)?
            }
            None => parse_segmentations(
                "reference/population/segmentations.yaml",
                DEFAULT_SEGMENTATIONS,
            )?,
        };
        Ok(SegmentationsFile {
            segmentations: self.segmentations.clone().unwrap_or(file.segmentations),
            flags: self.flags.clone().unwrap_or(file.flags),
        })
    }

    /// The tariff text and where it came from.
    pub fn tariff_text(&self, dir: &Path) -> Result<(String, String), PopulationSettingError> {
        read_or_default(
            dir,
            self.tariff.as_deref(),
            "tariff",
            DEFAULT_TARIFF,
            "reference/population/tariff.csv",
        )
    }

    /// The ACSC code list text and where it came from.
    pub fn acsc_text(&self, dir: &Path) -> Result<(String, String), PopulationSettingError> {
        read_or_default(
            dir,
            self.acsc_codelist.as_deref(),
            "acsc_codelist",
            DEFAULT_ACSC,
            "reference/codelists/acsc_chronic_icd10.csv",
        )
    }
}

fn read_or_default(
    dir: &Path,
    path: Option<&str>,
    setting: &str,
    default: &str,
    default_name: &str,
) -> Result<(String, String), PopulationSettingError> {
    match path {
        Some(p) => {
            let path: PathBuf = dir.join(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                problem(
                    "ONB0940",
                    setting,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Ok((path.display().to_string(), text))
        }
        None => Ok((default_name.to_string(), default.to_string())),
    }
}

/// Parse a segmentations YAML file.
pub fn parse_segmentations(
    name: &str,
    text: &str,
) -> Result<SegmentationsFile, PopulationSettingError> {
    let value = crate::manifest::source::parse_plain(name, text)
        .map_err(|e| problem("ONB0940", "segmentations_file", e.to_string()))?;
    serde_json::from_value(value)
        .map_err(|e| problem("ONB0940", "segmentations_file", format!("{name}: {e}")))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Structural checks of segmentations and flags (names, `otherwise`, rules present):
/// ONB0943. Rules over unknown features are checked against the feature columns by
/// `check::check_rules` (ONB0942).
pub fn check_structure(f: &SegmentationsFile) -> Vec<PopulationSettingError> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in f.segmentations.iter().enumerate() {
        let at = format!("segmentations[{i}]");
        if !valid_name(&s.name) || !seen.insert(s.name.clone()) {
            out.push(problem(
                "ONB0943",
                format!("{at}.name"),
                format!("segmentation name `{}` is empty, not lower case with digits and `_`, or repeated", s.name),
            ));
        }
        out.extend(check_segments(s, &at));
    }
    let mut flags = std::collections::BTreeSet::new();
    for (i, fl) in f.flags.iter().enumerate() {
        if !valid_name(&fl.name) || !flags.insert(fl.name.clone()) {
            out.push(problem(
                "ONB0943",
                format!("flags[{i}].name"),
                format!(
                    "flag name `{}` is empty, not lower case with digits and `_`, or repeated",
                    fl.name
                ),
            ));
        }
    }
    out
}

fn check_segments(s: &Segmentation, at: &str) -> Vec<PopulationSettingError> {
    let mut out = Vec::new();
    if s.segments.is_empty() {
        out.push(problem(
            "ONB0943",
            format!("{at}.segments"),
            format!("segmentation `{}` has no segments", s.name),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    let last = s.segments.len().saturating_sub(1);
    for (j, g) in s.segments.iter().enumerate() {
        let here = format!("{at}.segments[{j}]");
        if !valid_name(&g.name) || !names.insert(g.name.clone()) {
            out.push(problem("ONB0943", format!("{here}.name"), format!("segment name `{}` of `{}` is empty, not lower case with digits and `_`, or repeated", g.name, s.name)));
        }
        let msg = match (g.otherwise, g.when.is_some()) {
            (true, true) => Some("has both `when` and `otherwise: true`; give one"),
            (false, false) => {
                Some("needs a `when` rule (or `otherwise: true` on the last segment)")
            }
            (true, false) if s.mode == SegmentMode::Exclusive => Some(
                "`otherwise` is for priority segmentations; an exclusive one needs a rule per segment",
            ),
            (true, false) if j != last => Some("`otherwise: true` must be the last segment"),
            _ => None,
        };
        if let Some(m) = msg {
            out.push(problem(
                "ONB0943",
                here,
                format!("segment `{}` of `{}` {m}", g.name, s.name),
            ));
        }
    }
    out
}

/// The known measure and breakdown names, for the checks.
pub struct Catalogue {
    pub measures: Vec<String>,
    pub breakdowns: Vec<String>,
}

/// Unknown measures or breakdowns named in the settings (ONB0941), with a did-you-mean.
pub fn check_names(s: &PopulationSettings, cat: &Catalogue) -> Vec<PopulationSettingError> {
    let mut out = Vec::new();
    for (key, list, known) in [
        ("measures", &s.measures, &cat.measures),
        ("breakdowns", &s.breakdowns, &cat.breakdowns),
    ] {
        for (i, m) in list.iter().flatten().enumerate() {
            if !known.contains(m) {
                let what = &key[..key.len() - 1];
                let hint = did_you_mean(m, known.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("known: {}", known.join(", ")));
                out.push(problem(
                    "ONB0941",
                    format!("{key}[{i}]"),
                    format!("unknown {what} `{m}`; {hint}"),
                ));
            }
        }
    }
    out
}
