//! Clinical code tables of the synthetic ICS: long-term conditions (ICD-10, SNOMED CT,
//! CTV3, their effect on the emergency-admission hazard and their usual medicines),
//! routine observations, medicines (dm+d), and the diagnoses of acute spells
//! (presenting problems and Hospital Frailty Risk Score codes).
//!
//! The ICD-10 codes fall in the Charlson (Quan 2005), Elixhauser and HFRS (Gilbert 2018)
//! categories their names say. The dm+d ids are shaped like VMP ids and used for the
//! synthetic data only; check any against the dm+d release before relying on it.

/// A long-term condition.
pub(super) struct Condition {
    pub key: &'static str,
    /// ICD-10 with the dot (half the spells drop it).
    pub icd10: &'static str,
    pub snomed: &'static str,
    pub ctv3: &'static str,
    /// Log hazard ratio of an emergency admission once present.
    pub log_hr: f64,
    /// Relative frequency among people's conditions.
    pub weight: u32,
    /// Youngest age (years) at onset.
    pub min_age: i64,
    /// Indices into [`DRUGS`] issued on repeat once present.
    pub drugs: &'static [usize],
    /// Adds to frailty once present (cognition, mobility).
    pub frailing: bool,
}

/// `codes` are ICD-10, SNOMED CT and CTV3.
const fn cond(
    key: &'static str,
    codes: [&'static str; 3],
    log_hr: f64,
    weight: u32,
    min_age: i64,
    drugs: &'static [usize],
) -> Condition {
    Condition {
        key,
        icd10: codes[0],
        snomed: codes[1],
        ctv3: codes[2],
        log_hr,
        weight,
        min_age,
        drugs,
        frailing: matches!(key.as_bytes(), b"dementia" | b"stroke" | b"parkinsons"),
    }
}

/// Long-term conditions.
pub(super) const CONDITIONS: &[Condition] = &[
    cond(
        "hypertension",
        ["I10.X", "38341003", "XE0Ub"],
        0.10,
        30,
        25,
        &[0, 1],
    ),
    cond(
        "diabetes",
        ["E11.9", "44054006", "X40J5"],
        0.30,
        14,
        20,
        &[2, 3],
    ),
    cond("copd", ["J44.9", "13645005", "H3..."], 0.65, 8, 40, &[4, 5]),
    cond(
        "heart_failure",
        ["I50.9", "84114007", "G58.."],
        0.75,
        5,
        45,
        &[6, 7, 8],
    ),
    cond("ckd", ["N18.3", "709044004", "X30Iz"], 0.40, 7, 40, &[1]),
    cond(
        "atrial_fibrillation",
        ["I48.9", "49436004", "G573."],
        0.35,
        6,
        45,
        &[9, 8],
    ),
    cond(
        "dementia",
        ["F03.X", "52448006", "XE1Z6"],
        0.55,
        4,
        65,
        &[10],
    ),
    cond(
        "asthma",
        ["J45.9", "195967001", "H33.."],
        0.20,
        12,
        3,
        &[4, 11],
    ),
    cond(
        "depression",
        ["F32.9", "35489007", "X00SO"],
        0.25,
        14,
        14,
        &[12],
    ),
    cond(
        "stroke",
        ["I63.9", "230690007", "X00D1"],
        0.45,
        4,
        45,
        &[13, 3],
    ),
    cond(
        "cancer",
        ["C50.9", "254837009", "B34.."],
        0.50,
        5,
        30,
        &[14],
    ),
    cond(
        "myocardial_infarction",
        ["I21.9", "22298006", "X200E"],
        0.35,
        4,
        40,
        &[13, 3, 8],
    ),
    cond(
        "peripheral_vascular_disease",
        ["I73.9", "400047006", "G73.."],
        0.35,
        3,
        45,
        &[13],
    ),
    cond(
        "rheumatoid_arthritis",
        ["M06.9", "69896004", "N040."],
        0.20,
        3,
        25,
        &[15],
    ),
    cond(
        "parkinsons",
        ["G20.X", "49049000", "F12.."],
        0.40,
        2,
        50,
        &[16],
    ),
    cond(
        "alcohol_dependence",
        ["F10.2", "7200002", "E23.."],
        0.60,
        3,
        18,
        &[17],
    ),
    cond(
        "obesity",
        ["E66.9", "414916001", "C380."],
        0.10,
        10,
        12,
        &[],
    ),
];

/// A medicine: (dm+d VMP id, name, quantity per issue).
pub(super) const DRUGS: &[(&str, &str, u32)] = &[
    ("319773006", "Amlodipine 5mg tablets", 56),
    ("318885001", "Ramipril 5mg capsules", 56),
    ("325278007", "Metformin 500mg tablets", 112),
    ("320000009", "Atorvastatin 20mg tablets", 56),
    (
        "320176004",
        "Salbutamol 100micrograms/dose inhaler CFC free",
        2,
    ),
    (
        "396003008",
        "Tiotropium bromide 18microgram inhalation powder capsules",
        60,
    ),
    ("317972000", "Furosemide 40mg tablets", 56),
    ("318590006", "Bisoprolol 2.5mg tablets", 56),
    ("703907005", "Apixaban 5mg tablets", 112),
    ("318420003", "Digoxin 125microgram tablets", 56),
    ("321720001", "Donepezil 10mg tablets", 56),
    (
        "320136006",
        "Beclometasone 100micrograms/dose inhaler CFC free",
        2,
    ),
    ("321949006", "Sertraline 50mg tablets", 56),
    ("319740004", "Clopidogrel 75mg tablets", 56),
    ("408051007", "Letrozole 2.5mg tablets", 56),
    ("330167006", "Methotrexate 2.5mg tablets", 48),
    ("321881007", "Co-careldopa 25mg/100mg tablets", 168),
    ("776211003", "Thiamine 100mg tablets", 56),
    ("317335000", "Omeprazole 20mg gastro-resistant capsules", 56),
    ("323509004", "Amoxicillin 500mg capsules", 21),
    ("324357003", "Nitrofurantoin 50mg capsules", 28),
    ("322236009", "Paracetamol 500mg tablets", 100),
];
/// Acute (one-off) issues: indices into [`DRUGS`].
pub(super) const ACUTE_DRUGS: &[usize] = &[19, 19, 20, 21];
pub(super) const STATIN: usize = 3;
pub(super) const PPI: usize = 18;

/// Routine observations: (SNOMED, CTV3, unit, low, high).
pub(super) const OBSERVATIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("271649006", "2469.", "mmHg", 95.0, 185.0),
    ("27113001", "22A..", "kg", 45.0, 130.0),
    ("60621009", "22K..", "kg/m2", 17.0, 45.0),
    ("1000731000000107", "XaERp", "mmol/mol", 30.0, 110.0),
];

/// Presenting problems of emergency spells (ICD-10, primary position).
pub(super) const EMERGENCY_PRIMARY: &[&str] = &[
    "J18.9", "N39.0", "R07.4", "R10.4", "R55.X", "A41.9", "J22.X", "K92.2", "L03.1",
];
/// Primary diagnoses of elective spells.
pub(super) const ELECTIVE_PRIMARY: &[&str] = &[
    "H25.9", "K80.2", "M17.9", "N40.X", "K57.3", "M16.9", "K40.9",
];
/// Exacerbations that replace the presenting problem when the condition is present.
pub(super) const EXACERBATIONS: &[(&str, &str)] = &[
    ("copd", "J44.1"),
    ("heart_failure", "I50.0"),
    ("asthma", "J45.9"),
    ("atrial_fibrillation", "I48.9"),
];
/// Hospital Frailty Risk Score codes recorded on spells of frail people.
pub(super) const HFRS_CODES: &[&str] = &[
    "W19.X", "R29.6", "N39.0", "F05.9", "R41.0", "R26.8", "E86.X", "R54.X", "Z74.0", "L89.9",
];
