//! The names the population stage publishes, known without data: the settings and
//! activity types a tariff prices, the urgent-care event measures and categories, every
//! measure and breakdown of the aggregates, and the segmentations, flags and conditions
//! they come from. The settings checks and the run use the same lists.

use super::config::SegmentationsFile;

/// The event-rate measures, in the order of `Person::events` of the frame.
pub const EVENT_MEASURES: [&str; 4] = [
    "emergency_admissions_12m",
    "acsc_emergency_admissions_12m",
    "ae_attendances_12m",
    "low_acuity_ae_attendances_12m",
];

/// Arrival categories.
pub const ARRIVALS: [&str; 4] = ["ambulance", "nhs111_referral", "walk_in", "recorded_other"];

/// Departure categories.
pub const DEPARTURES: [&str; 3] = ["admitted", "discharged", "not_known"];

/// Every (setting, activity type) a tariff must price.
pub const ACTIVITIES: &[(&str, &[&str])] = &[
    ("APC", &["EMERGENCY", "ELECTIVE", "OTHER"]),
    ("OP", &["OP_FIRST", "OP_FUP", "OP_PROC", "OP_UNSPECIFIED"]),
    (
        "ECDS",
        &[
            "AE_T1",
            "AE_T2",
            "AE_T3_UTC",
            "AE_T4_WIC",
            "SDEC",
            "AE_UNSPECIFIED",
        ],
    ),
    ("COMMUNITY", &["COMM_CONTACT"]),
    ("MENTAL_HEALTH", &["MH_CONTACT", "MH_BEDDAY"]),
    ("NHS111", &["NHS111_CALL"]),
    (
        "AMBULANCE",
        &[
            "AMB_HEAR_TREAT",
            "AMB_SEE_TREAT",
            "AMB_CONVEY",
            "AMB_UNSPECIFIED",
        ],
    ),
    ("GP", &["GP_CONTACT"]),
    (
        "SOCIAL_CARE",
        &["REQUEST", "ASSESSMENT", "REVIEW", "SERVICE_WEEK"],
    ),
];

/// The settings in output order.
pub fn settings() -> Vec<String> {
    ACTIVITIES.iter().map(|(s, _)| s.to_string()).collect()
}

/// Inputs for the catalogue besides the frame.
pub struct Names<'a> {
    pub segmentations: &'a [(String, Vec<String>)],
    pub flags: &'a [(String, String)],
    pub high_risk_bands: &'a [String],
    pub bands: &'a [String],
}

/// The measure names, without data (for the checks).
pub fn measure_names(conditions: &[String], n: &Names) -> Vec<String> {
    let mut v: Vec<String> = conditions
        .iter()
        .map(|c| format!("prevalence_{c}"))
        .collect();
    v.extend(["multimorbidity_2plus", "high_risk", "ethnicity_recorded"].map(String::from));
    v.extend(n.flags.iter().map(|f| format!("flag_{}", f.0)));
    v.extend(EVENT_MEASURES.map(String::from));
    v.push("cost_per_head".into());
    v.extend(n.segmentations.iter().map(|s| format!("segment:{}", s.0)));
    v.extend(
        [
            "risk_band",
            "ltc_count_band",
            "morbidity_profile",
            "ae_arrival_mode",
            "ae_departure",
        ]
        .map(String::from),
    );
    v
}

/// The breakdown names, without data.
pub fn breakdown_names(n: &Names) -> Vec<String> {
    let mut v: Vec<String> = [
        "all",
        "imd_quintile",
        "ethnic_group",
        "age_band",
        "sex",
        "practice",
        "pcn",
        "locality",
        "ltc_count_band",
        "risk_band",
    ]
    .map(String::from)
    .into();
    v.extend(n.segmentations.iter().map(|s| format!("segment:{}", s.0)));
    v
}

/// Condition features of the risk feature set.
pub fn condition_features(specs: &[crate::risk::config::FeatureSpec]) -> Vec<(String, String)> {
    specs
        .iter()
        .filter(|s| matches!(s.kind, crate::risk::config::FeatureKind::Condition { .. }))
        .map(|s| {
            (
                s.name.clone(),
                s.label.clone().unwrap_or_else(|| s.name.clone()),
            )
        })
        .collect()
}

/// The segmentations, flags and bands a catalogue is built from, held in `seg`,
/// `flags` and `bands`.
pub fn names_of<'a>(
    rules: &'a SegmentationsFile,
    seg: &'a mut Vec<(String, Vec<String>)>,
    flags: &'a mut Vec<(String, String)>,
    risk: &'a crate::risk::config::RiskSettings,
    bands: &'a mut Vec<String>,
) -> Names<'a> {
    *seg = rules
        .segmentations
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.segments.iter().map(|g| g.name.clone()).collect(),
            )
        })
        .collect();
    *flags = rules
        .flags
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                f.label.clone().unwrap_or_else(|| f.name.clone()),
            )
        })
        .collect();
    *bands = risk.bands.iter().map(|b| b.name.clone()).collect();
    Names {
        segmentations: seg,
        flags,
        high_risk_bands: &risk.high_risk_bands,
        bands,
    }
}
