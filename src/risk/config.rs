//! The `risk:` section of an ICS file: the outcome, the as-of dates a model is trained,
//! validated and scored at, the declared features (or the shipped default set), where the
//! code lists are, the model (trained or imported) and the risk bands. Every part has a
//! default, so `risk: {}` gives the shipped model over the shipped features.

use chrono::{Months, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The shipped feature set (data, not code): `reference/risk/features.yaml`.
pub const DEFAULT_FEATURES: &str = include_str!("../../reference/risk/features.yaml");

/// How one ICS scores the risk of an emergency admission.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskSettings {
    /// Days after the as-of date in which an emergency admission counts as the outcome.
    #[serde(default = "default_horizon")]
    pub horizon_days: u32,
    /// Admission methods that make a spell an emergency admission (NHS Data Dictionary
    /// ADMISSION METHOD; default 21–25, 28, 2A–2D).
    #[serde(default = "default_methods")]
    pub emergency_admission_methods: Vec<String>,
    /// The as-of dates; each defaults relative to the ICS `reference_date`.
    #[serde(default)]
    pub as_of: AsOfDates,
    /// The features; default: the shipped set (`reference/risk/features.yaml`).
    #[serde(default)]
    pub features: Option<Vec<FeatureSpec>>,
    /// A YAML file holding a list of features, relative to the ICS file (instead of `features`).
    #[serde(default)]
    pub features_file: Option<String>,
    /// Directory of code list CSV files, relative to the ICS file; default: the shipped
    /// lists in `reference/codelists/` (each file states its source and licence).
    #[serde(default)]
    pub codelists: Option<String>,
    /// The model that scores (the champion).
    #[serde(default)]
    pub model: ModelSpec,
    /// A challenger trained and reported beside the champion (default: gradient-boosted trees).
    #[serde(default = "default_challenger")]
    pub challenger: Option<ModelSpec>,
    /// Risk bands by rank within the scored population, highest first; a person falls in
    /// the first band whose `top_percent` covers their rank (the last band has none).
    #[serde(default = "default_bands")]
    pub bands: Vec<Band>,
    /// Bands whose people are "high risk": every one gets an explanation card.
    #[serde(default = "default_high_risk")]
    pub high_risk_bands: Vec<String>,
    /// Factors listed per person.
    #[serde(default = "default_top")]
    pub top_factors: usize,
}

impl Default for RiskSettings {
    fn default() -> Self {
        RiskSettings {
            horizon_days: default_horizon(),
            emergency_admission_methods: default_methods(),
            as_of: AsOfDates::default(),
            features: None,
            features_file: None,
            codelists: None,
            model: ModelSpec::default(),
            challenger: default_challenger(),
            bands: default_bands(),
            high_risk_bands: default_high_risk(),
            top_factors: default_top(),
        }
    }
}

/// When a model is trained, validated and scored (dates as YYYY-MM-DD). Training rows
/// come from every `train` date (their outcome windows must end by `validate`),
/// validation from `validate` (its window must end by the data's reference date),
/// scores from `score`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AsOfDates {
    /// Default: 12 and 9 months before `validate`.
    #[serde(default)]
    pub train: Option<Vec<String>>,
    /// Default: 6 months before `score`.
    #[serde(default)]
    pub validate: Option<String>,
    /// Default: the ICS `reference_date`.
    #[serde(default)]
    pub score: Option<String>,
}

/// The three kinds of as-of date, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedAsOf {
    #[serde(with = "ymd_list")]
    pub train: Vec<NaiveDate>,
    #[serde(with = "ymd")]
    pub validate: NaiveDate,
    #[serde(with = "ymd")]
    pub score: NaiveDate,
}

fn date(setting: &str, s: &str) -> Result<NaiveDate, SettingError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| problem(setting, format!("`{s}` is not a date (YYYY-MM-DD)")))
}

impl AsOfDates {
    /// Fill defaults from the reference date.
    pub fn resolve(&self, reference: NaiveDate) -> Result<ResolvedAsOf, SettingError> {
        let score = match &self.score {
            Some(s) => date("as_of.score", s)?,
            None => reference,
        };
        let validate = match &self.validate {
            Some(s) => date("as_of.validate", s)?,
            None => months_before(score, 6),
        };
        let train = match &self.train {
            Some(v) => v
                .iter()
                .map(|s| date("as_of.train", s))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![months_before(validate, 12), months_before(validate, 9)],
        };
        if train.is_empty() {
            return Err(problem("as_of.train", "needs at least one date"));
        }
        Ok(ResolvedAsOf {
            train,
            validate,
            score,
        })
    }
}

/// Serde for a date as `YYYY-MM-DD` text.
pub mod ymd {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.format("%Y-%m-%d").to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let t = String::deserialize(d)?;
        NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(serde::de::Error::custom)
    }
}

/// Serde for a list of dates as `YYYY-MM-DD` texts.
pub mod ymd_list {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &[NaiveDate], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(d.iter().map(|d| d.format("%Y-%m-%d").to_string()))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The last day of the month `n` months before `d`'s month when `d` is a month end, else
/// the same day `n` months earlier.
pub fn months_before(d: NaiveDate, n: u32) -> NaiveDate {
    use chrono::Datelike;
    let month_end = d.succ_opt().is_some_and(|n| n.day() == 1);
    let back = d.checked_sub_months(Months::new(n)).unwrap_or(d);
    if !month_end {
        return back;
    }
    let first = NaiveDate::from_ymd_opt(back.year(), back.month(), 1).unwrap_or(back);
    first
        .checked_add_months(Months::new(1))
        .and_then(|f| f.pred_opt())
        .unwrap_or(back)
}

/// One declared feature: a name, a kind, its parameters, and a plain-English label.
/// (Unknown keys are refused by the kind, which receives every key but these.)
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct FeatureSpec {
    /// Column name in `gold/features` (lower case, digits, `_`).
    pub name: String,
    #[serde(flatten)]
    pub kind: FeatureKind,
    /// How a clinician reads the feature ("Emergency admissions in the last 3 months").
    #[serde(default)]
    pub label: Option<String>,
    /// Whether the model uses it (false: kept for breakdowns and cards only).
    #[serde(default = "default_true")]
    pub model_input: bool,
}

/// A window of months before the as-of date: events dated in
/// `(as_of − to_months, as_of − from_months]`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default)]
    pub from_months: u32,
    pub to_months: u32,
}

/// Kinds of feature.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureKind {
    /// Age in whole years at the as-of date (from the year and month of birth).
    Age,
    /// 1 when the person's sex (NHS Data Dictionary code) equals `equals`, else 0.
    Sex { equals: String },
    /// IMD 2019 decile (1 most deprived) of the LSOA the person lived in at the as-of date.
    ImdDecile,
    /// Ethnic group (first letter of the ethnic category), for breakdowns.
    EthnicGroup,
    /// Registered practice at the as-of date, for breakdowns and scoping.
    Practice,
    /// Primary care network of the registration at the as-of date.
    Pcn,
    /// LSOA at the as-of date.
    Lsoa,
    /// Care events in a window: `setting` (canonical care_setting code, e.g. `APC`,
    /// `ECDS`, `OP`, `COMMUNITY`, `MENTAL_HEALTH`, `NHS111`, `AMBULANCE`), optionally only
    /// emergency admissions, only elective spells, or only points of delivery listed.
    EventCount {
        setting: String,
        #[serde(default)]
        only: Option<EventFilter>,
        #[serde(default)]
        pods: Option<Vec<String>>,
        window: Window,
    },
    /// Days with a primary care record (GP contacts) in a window.
    GpContactDays { window: Window },
    /// Social care services or assessments starting in a window.
    SocialCareEvents { window: Window },
    /// 1 when a code of the code list is recorded (GP or hospital) within `lookback_months`
    /// (default: ever) before the as-of date.
    Condition {
        codelist: String,
        #[serde(default)]
        lookback_months: Option<u32>,
    },
    /// Number of the listed conditions present (long-term conditions).
    ConditionCount { codelists: Vec<String> },
    /// Charlson comorbidity index from hospital ICD-10 diagnoses (Quan 2005 codes).
    Charlson {
        #[serde(default = "default_charlson_weights")]
        weights: CharlsonWeights,
        #[serde(default = "default_index_lookback")]
        lookback_months: u32,
    },
    /// Elixhauser index (Quan 2005 codes, van Walraven 2009 weights).
    Elixhauser {
        #[serde(default = "default_index_lookback")]
        lookback_months: u32,
    },
    /// Hospital Frailty Risk Score (Gilbert 2018) over ICD-10 diagnoses.
    Hfrs {
        #[serde(default = "default_hfrs_lookback")]
        lookback_months: u32,
    },
    /// Distinct medicines issued in a window (polypharmacy).
    DistinctMedications { window: Window },
    /// 1 when the person has any record from the setting (`primary_care` = a GP feed:
    /// registration or GP record) on or before the as-of date, else 0.
    DataAvailability { setting: String },
}

/// Which spells an event count keeps.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventFilter {
    Emergency,
    Elective,
}

/// Charlson weights.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CharlsonWeights {
    Quan2011,
    Charlson1987,
}

/// The model that scores.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// L2-regularised logistic regression trained here (`c` as scikit-learn's C).
    Logistic {
        #[serde(default = "default_c")]
        c: f64,
    },
    /// Gradient-boosted trees trained here.
    Gbm {
        #[serde(default = "default_trees")]
        trees: usize,
        #[serde(default = "default_depth")]
        max_depth: usize,
        #[serde(default = "default_rate")]
        learning_rate: f64,
    },
    /// An XGBoost model saved with `Booster.save_model` (native JSON, `binary:logistic`),
    /// relative to the ICS file; its feature names must be declared features.
    Xgboost { path: String },
    /// A linear model given as JSON coefficients (docs/risk.md), relative to the ICS file.
    LinearJson { path: String },
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec::Logistic { c: default_c() }
    }
}

impl ModelSpec {
    /// Short name used in model versions.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ModelSpec::Logistic { .. } => "logistic",
            ModelSpec::Gbm { .. } => "gbm",
            ModelSpec::Xgboost { .. } => "xgboost",
            ModelSpec::LinearJson { .. } => "linear",
        }
    }
}

/// A risk band.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub name: String,
    /// Share of the scored population (in %) at or above this band; none on the last band.
    #[serde(default)]
    pub top_percent: Option<f64>,
}

fn default_true() -> bool {
    true
}
fn default_horizon() -> u32 {
    90
}
fn default_methods() -> Vec<String> {
    ["21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_challenger() -> Option<ModelSpec> {
    Some(ModelSpec::Gbm {
        trees: default_trees(),
        max_depth: default_depth(),
        learning_rate: default_rate(),
    })
}
fn default_bands() -> Vec<Band> {
    [
        ("very_high", Some(0.5)),
        ("high", Some(2.0)),
        ("rising", Some(10.0)),
        ("moderate", Some(30.0)),
        ("low", None),
    ]
    .into_iter()
    .map(|(n, p)| Band {
        name: n.into(),
        top_percent: p,
    })
    .collect()
}
fn default_high_risk() -> Vec<String> {
    vec!["very_high".into(), "high".into()]
}
fn default_top() -> usize {
    3
}
fn default_c() -> f64 {
    1.0
}
fn default_trees() -> usize {
    150
}
fn default_depth() -> usize {
    4
}
fn default_rate() -> f64 {
    0.08
}
fn default_charlson_weights() -> CharlsonWeights {
    CharlsonWeights::Quan2011
}
fn default_index_lookback() -> u32 {
    60
}
fn default_hfrs_lookback() -> u32 {
    24
}

/// A problem in the `risk:` section, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("risk.{setting}: {message}")]
pub struct SettingError {
    pub setting: String,
    pub message: String,
}

fn problem(setting: impl Into<String>, message: impl Into<String>) -> SettingError {
    SettingError {
        setting: setting.into(),
        message: message.into(),
    }
}

impl RiskSettings {
    /// The declared features: `features`, else `features_file` (read relative to `dir`),
    /// else the shipped set.
    pub fn feature_specs(&self, dir: &std::path::Path) -> Result<Vec<FeatureSpec>, SettingError> {
        if let Some(f) = &self.features {
            return Ok(f.clone());
        }
        let (name, text) = match &self.features_file {
            Some(p) => {
                let path = dir.join(p);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    problem(
                        "features_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                (path.display().to_string(), text)
            }
            None => (
                "reference/risk/features.yaml".to_string(),
                DEFAULT_FEATURES.to_string(),
            ),
        };
        let value = crate::manifest::source::parse_plain(&name, &text)
            .map_err(|e| problem("features_file", e))?;
        let list = value.get("features").cloned().unwrap_or(value);
        serde_json::from_value(list).map_err(|e| problem("features_file", format!("{name}: {e}")))
    }

    /// Semantic checks: as-of dates in order, bands well formed, thresholds sane.
    pub fn check(&self, reference: NaiveDate) -> Vec<SettingError> {
        let mut out = Vec::new();
        let a = match self.as_of.resolve(reference) {
            Ok(a) => a,
            Err(e) => return vec![e],
        };
        let h = chrono::Duration::days(self.horizon_days as i64);
        for t in &a.train {
            if *t + h > a.validate {
                out.push(problem(
                    "as_of.train",
                    format!(
                        "the outcome window of training as-of {t} ({} days) ends after the validation as-of {}; training labels would overlap validation",
                        self.horizon_days, a.validate
                    ),
                ));
            }
        }
        if a.validate + h > reference {
            out.push(problem(
                "as_of.validate",
                format!(
                    "the outcome window of {} ends {} , after the data's reference date {reference}: no outcome to validate against",
                    a.validate,
                    a.validate + h
                ),
            ));
        }
        if a.score > reference {
            out.push(problem(
                "as_of.score",
                format!("{} is after the data's reference date {reference}", a.score),
            ));
        }
        out.extend(self.check_bands());
        if self.horizon_days == 0 {
            out.push(problem("horizon_days", "must be at least 1"));
        }
        out
    }

    fn check_bands(&self) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut last = 0.0;
        for (i, b) in self.bands.iter().enumerate() {
            let at = format!("bands[{i}].top_percent");
            match (b.top_percent, i + 1 == self.bands.len()) {
                (Some(p), _) if !(p > last && p <= 100.0) => out.push(problem(
                    at,
                    format!("{p} must be above the previous band's ({last}) and at most 100"),
                )),
                (Some(p), _) => last = p,
                (None, false) => out.push(problem(at, "only the last band may omit top_percent")),
                (None, true) => {}
            }
        }
        for h in &self.high_risk_bands {
            if !self.bands.iter().any(|b| &b.name == h) {
                out.push(problem(
                    "high_risk_bands",
                    format!(
                        "`{h}` is not a band (bands: {})",
                        self.bands
                            .iter()
                            .map(|b| b.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        out
    }
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// The shares of the population flagged for recall@k and PPV@k, in %.
pub const K_PERCENT: [f64; 4] = [0.5, 1.0, 2.0, 5.0];

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn as_of_defaults_follow_month_ends() {
        let a = AsOfDates::default().resolve(d("2026-10-31")).unwrap();
        assert_eq!(a.score, d("2026-10-31"));
        assert_eq!(a.validate, d("2026-04-30"));
        assert_eq!(a.train, vec![d("2025-04-30"), d("2025-07-31")]);
    }

    #[test]
    fn shipped_features_parse() {
        let f = RiskSettings::default()
            .feature_specs(std::path::Path::new("."))
            .unwrap();
        assert!(f.len() > 20);
        assert!(
            f.iter()
                .any(|f| matches!(f.kind, FeatureKind::Charlson { .. }))
        );
    }

    #[test]
    fn overlapping_windows_are_refused() {
        let mut s = RiskSettings::default();
        s.as_of.train = Some(vec!["2026-03-31".into()]);
        s.as_of.validate = Some("2026-04-30".into());
        let p = s.check(d("2026-10-31"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].setting, "as_of.train");
    }
}
