//! The `operations:` section of an ICS file: where each month's delivery arrives, who
//! is referred, when the model is retrained and promoted, and when feature drift is
//! flagged. Every part has a default, so `operations: {}` (or no section) gives the
//! documented behaviour (docs/operations.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostics::Finding;

/// How the ICS runs the model month by month.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationsSettings {
    /// Where the delivery of each month lands, relative to the ICS file; `{date}` is the
    /// extract date (YYYY-MM-DD). Default `deliveries/{date}` (what `onboard synth
    /// --months` writes).
    #[serde(default = "default_deliveries")]
    pub deliveries: String,
    /// Who gets a case referral at each scored as-of date.
    #[serde(default)]
    pub referral: ReferralSettings,
    /// When `onboard refresh` retrains the models (default: never, only on command).
    #[serde(default)]
    pub retrain: RetrainSettings,
    /// When a retrained champion replaces the one that scores.
    #[serde(default)]
    pub promotion: PromotionSettings,
    /// Population stability index thresholds for feature drift between refreshes.
    #[serde(default)]
    pub drift: DriftSettings,
}

impl Default for OperationsSettings {
    fn default() -> Self {
        OperationsSettings {
            deliveries: default_deliveries(),
            referral: ReferralSettings::default(),
            retrain: RetrainSettings::default(),
            promotion: PromotionSettings::default(),
            drift: DriftSettings::default(),
        }
    }
}

/// The referral threshold: the top `top_percent` of the scored population, or everyone
/// in the listed `bands` (one of the two).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferralSettings {
    /// Refer the highest-ranked share of the population, in % (default 1 when `bands`
    /// is not given).
    #[serde(default)]
    pub top_percent: Option<f64>,
    /// Refer everyone in these risk bands (names from `risk.bands`).
    #[serde(default)]
    pub bands: Option<Vec<String>>,
    /// The team the referrals are for (FHIR `ServiceRequest.performerType` text).
    #[serde(default = "default_team")]
    pub team: String,
}

/// When to retrain: every `every_months` refreshes, or when recall at `k_percent` of a
/// monitored as-of date falls below `recall_floor` (either or both).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrainSettings {
    /// Retrain after this many monthly refreshes since the last training.
    #[serde(default)]
    pub every_months: Option<u32>,
    /// Retrain when the monitored recall at `k_percent` is below this share (0–1).
    #[serde(default)]
    pub recall_floor: Option<f64>,
    /// The k of the recall floor: 0.5, 1, 2 or 5 (% of the population flagged).
    #[serde(default = "default_k")]
    pub k_percent: f64,
}

impl Default for RetrainSettings {
    fn default() -> Self {
        RetrainSettings {
            every_months: None,
            recall_floor: None,
            k_percent: default_k(),
        }
    }
}

/// A retrained champion is promoted when its AUROC at its validation as-of date is at
/// least the promoted model's AUROC there minus `max_auroc_drop`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionSettings {
    /// Largest AUROC loss accepted against the model that scores now (default 0.005).
    #[serde(default = "default_drop")]
    pub max_auroc_drop: f64,
}

impl Default for PromotionSettings {
    fn default() -> Self {
        PromotionSettings {
            max_auroc_drop: default_drop(),
        }
    }
}

/// PSI thresholds: `warn` (default 0.1, a moderate shift) and `alert` (0.25, a major one).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftSettings {
    #[serde(default = "default_warn")]
    pub warn: f64,
    #[serde(default = "default_alert")]
    pub alert: f64,
    /// Bins of a continuous feature (deciles of the earlier refresh by default).
    #[serde(default = "default_bins")]
    pub bins: usize,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            warn: default_warn(),
            alert: default_alert(),
            bins: default_bins(),
        }
    }
}

fn default_deliveries() -> String {
    "deliveries/{date}".into()
}
fn default_team() -> String {
    "Community multidisciplinary team".into()
}
fn default_k() -> f64 {
    5.0
}
fn default_drop() -> f64 {
    0.005
}
fn default_warn() -> f64 {
    0.1
}
fn default_alert() -> f64 {
    0.25
}
fn default_bins() -> usize {
    10
}

/// The referral rule, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Threshold {
    TopPercent { top_percent: f64 },
    Bands { bands: Vec<String> },
}

impl ReferralSettings {
    pub fn threshold(&self) -> Threshold {
        match (&self.bands, self.top_percent) {
            (Some(b), None) => Threshold::Bands { bands: b.clone() },
            (_, p) => Threshold::TopPercent {
                top_percent: p.unwrap_or(1.0),
            },
        }
    }
}

impl OperationsSettings {
    /// Checks the types cannot express (ONB0930–ONB0934), pointers relative to the
    /// section; `bands` are the names of `risk.bands`.
    pub fn check(&self, bands: &[String]) -> Vec<Finding> {
        let mut out = Vec::new();
        if !self.deliveries.contains("{date}") {
            out.push(
                Finding::new(
                    "ONB0930",
                    "/deliveries",
                    format!(
                        "operations.deliveries `{}` has no `{{date}}`: each month's delivery needs its own place",
                        self.deliveries
                    ),
                )
                .label("no {date}")
                .help("e.g. `deliveries: deliveries/{date}` (the extract date, YYYY-MM-DD)"),
            );
        }
        out.extend(self.referral.check(bands));
        out.extend(self.retrain.check());
        let drop = self.promotion.max_auroc_drop;
        if !(0.0..=1.0).contains(&drop) {
            out.push(Finding::new(
                "ONB0933",
                "/promotion/max_auroc_drop",
                format!("operations.promotion.max_auroc_drop {drop} is not between 0 and 1"),
            ));
        }
        out.extend(self.drift.check());
        out
    }
}

impl ReferralSettings {
    fn check(&self, bands: &[String]) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.top_percent.is_some() && self.bands.is_some() {
            out.push(
                Finding::new(
                    "ONB0931",
                    "/referral/bands",
                    "operations.referral declares both `top_percent` and `bands`: the threshold is one or the other",
                )
                .or_at("/referral")
                .help("keep `top_percent: 1` (the top 1 %) or `bands: [very_high]`"),
            );
        }
        if let Some(p) = self.top_percent
            && !(p > 0.0 && p <= 100.0)
        {
            out.push(Finding::new(
                "ONB0931",
                "/referral/top_percent",
                format!("operations.referral.top_percent {p} is not in (0, 100]"),
            ));
        }
        for (i, b) in self.bands.iter().flatten().enumerate() {
            if !bands.contains(b) {
                let help = crate::diagnostics::did_you_mean(b, bands.iter().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!("the bands of `risk.bands` are {}", bands.join(", "))
                    });
                out.push(
                    Finding::new(
                        "ONB0931",
                        format!("/referral/bands/{i}"),
                        format!("operations.referral.bands: `{b}` is not a risk band"),
                    )
                    .label("unknown band")
                    .help(help),
                );
            }
        }
        if self.bands.as_ref().is_some_and(|b| b.is_empty()) {
            out.push(Finding::new(
                "ONB0931",
                "/referral/bands",
                "operations.referral.bands is empty: nobody would be referred",
            ));
        }
        out
    }
}

impl RetrainSettings {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.every_months == Some(0) {
            out.push(Finding::new(
                "ONB0932",
                "/retrain/every_months",
                "operations.retrain.every_months must be at least 1",
            ));
        }
        if let Some(r) = self.recall_floor
            && !(r > 0.0 && r <= 1.0)
        {
            out.push(
                Finding::new(
                    "ONB0932",
                    "/retrain/recall_floor",
                    format!("operations.retrain.recall_floor {r} is not a share in (0, 1]"),
                )
                .help("e.g. `recall_floor: 0.35` (35 % of admitted people in the top k %)"),
            );
        }
        if !crate::risk::config::K_PERCENT.contains(&self.k_percent) {
            out.push(
                Finding::new(
                    "ONB0932",
                    "/retrain/k_percent",
                    format!(
                        "operations.retrain.k_percent {} is not one of the monitored k: 0.5, 1, 2, 5",
                        self.k_percent
                    ),
                )
                .or_at("/retrain"),
            );
        }
        out
    }
}

impl DriftSettings {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if !(self.warn > 0.0 && self.warn <= self.alert) {
            out.push(
                Finding::new(
                    "ONB0934",
                    "/drift/warn",
                    format!(
                        "operations.drift: warn {} must be above 0 and at most alert {}",
                        self.warn, self.alert
                    ),
                )
                .or_at("/drift/alert")
                .or_at("/drift"),
            );
        }
        if !(2..=100).contains(&self.bins) {
            out.push(Finding::new(
                "ONB0934",
                "/drift/bins",
                format!(
                    "operations.drift.bins {} is not between 2 and 100",
                    self.bins
                ),
            ));
        }
        out
    }
}
