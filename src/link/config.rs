//! The `linkage:` section of an ICS file: blocking rules, comparisons and their levels,
//! how m and u are trained, thresholds, and survivorship per attribute. Every part has
//! a default that matches the NHS practice in `docs/linkage.md`, so an ICS file can say
//! only what it changes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostics::Finding;

/// How one ICS links records into persons.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkageSettings {
    /// Match weight at or above which two clusters link. A match weight is log2 of the
    /// posterior odds: the prior (how likely two random records are one person) plus
    /// each comparison's log2(m/u); 6.64 is a match probability of 0.99.
    #[serde(default = "default_link_threshold")]
    pub link_threshold: f64,
    /// Pairs at or above this weight but below `link_threshold` go to clerical review
    /// (3.17 is a match probability of 0.9).
    #[serde(default = "default_review_threshold")]
    pub review_threshold: f64,
    /// Candidate pairs: records agreeing on every attribute of at least one rule
    /// (an OR of ANDs).
    #[serde(default = "default_blocking")]
    pub blocking: Vec<Vec<Attribute>>,
    /// The comparisons scored on each candidate pair, in order.
    #[serde(default = "default_comparisons")]
    pub comparisons: Vec<ComparisonSpec>,
    /// How m and u are estimated.
    #[serde(default)]
    pub training: Training,
    /// Date-of-birth tolerance of the second deterministic tier and of the chaining
    /// guard: two dates of birth are compatible when equal, day/month swapped, or (with
    /// `same_year`) in the same year.
    #[serde(default = "default_true")]
    pub dob_same_year_compatible: bool,
    /// How the spine chooses each attribute among a person's records.
    #[serde(default)]
    pub survivorship: Survivorship,
    /// Postcode → LSOA 2011 lookup (`postcode,lsoa11` or the ONS Postcode Directory),
    /// relative to the ICS file: with it the spine gets `address_period`.
    #[serde(default)]
    pub postcode_lsoa11: Option<String>,
    /// Nickname table (`name,nickname` CSV, relative to the ICS file) for the
    /// `nickname` level; default: the table shipped in `reference/nicknames.csv`.
    #[serde(default)]
    pub nicknames: Option<String>,
}

impl Default for LinkageSettings {
    fn default() -> Self {
        LinkageSettings {
            link_threshold: default_link_threshold(),
            review_threshold: default_review_threshold(),
            blocking: default_blocking(),
            comparisons: default_comparisons(),
            training: Training::default(),
            dob_same_year_compatible: true,
            survivorship: Survivorship::default(),
            postcode_lsoa11: None,
            nicknames: None,
        }
    }
}

/// A value derived from an identity row for blocking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// NHS number.
    NhsNumber,
    GivenName,
    FamilyName,
    GivenNameSoundex,
    FamilyNameSoundex,
    DateOfBirth,
    /// Date of birth with day and month in either order (agrees on swaps).
    DateOfBirthAnyOrder,
    BirthYear,
    Sex,
    Postcode,
    PostcodeSector,
    PostcodeDistrict,
}

impl Attribute {
    /// The compared field this attribute is derived from (training leaves the m of a
    /// field used for blocking untouched).
    pub fn field(self) -> Field {
        match self {
            Attribute::NhsNumber => Field::NhsNumber,
            Attribute::GivenName | Attribute::GivenNameSoundex => Field::GivenName,
            Attribute::FamilyName | Attribute::FamilyNameSoundex => Field::FamilyName,
            Attribute::DateOfBirth | Attribute::DateOfBirthAnyOrder | Attribute::BirthYear => {
                Field::DateOfBirth
            }
            Attribute::Sex => Field::Sex,
            Attribute::Postcode | Attribute::PostcodeSector | Attribute::PostcodeDistrict => {
                Field::Postcode
            }
        }
    }
}

/// An identity field that can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    NhsNumber,
    GivenName,
    FamilyName,
    DateOfBirth,
    Sex,
    Postcode,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::NhsNumber => "nhs_number",
            Field::GivenName => "given_name",
            Field::FamilyName => "family_name",
            Field::DateOfBirth => "date_of_birth",
            Field::Sex => "sex",
            Field::Postcode => "postcode",
        }
    }
}

/// One comparison: a field and its agreement levels, best first. A pair that reaches
/// none of the levels is at the implicit level `different`; a pair with the field
/// missing on either side contributes nothing.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComparisonSpec {
    /// The identity field compared.
    pub field: Field,
    /// Agreement levels, best first (1 to 6).
    pub levels: Vec<Level>,
    /// Weight exact agreement by how common the value is (a shared rare surname is
    /// stronger evidence than a shared common one).
    #[serde(default)]
    pub term_frequency: bool,
    /// Postcode only: compare against every postcode of the other cluster (address
    /// history), not just the record's own.
    #[serde(default)]
    pub history: bool,
}

/// An agreement level.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Exact,
    /// Jaro–Winkler similarity at least this (names).
    JaroWinkler(f64),
    /// Same Soundex code (names).
    Soundex,
    /// One is a nickname of the other, or both of one name (given names).
    Nickname,
    /// Day and month swapped (date of birth).
    DayMonthSwap,
    /// Same year and month (date of birth).
    SameYearMonth,
    /// Same year (date of birth).
    SameYear,
    /// Same postcode sector, e.g. `LS6 2` (postcode).
    Sector,
    /// Same postcode district, e.g. `LS6` (postcode).
    District,
    /// NHS numbers one digit apart or with two adjacent digits transposed.
    OneEdit,
}

impl Level {
    pub fn label(&self) -> String {
        match self {
            Level::Exact => "exact".into(),
            Level::JaroWinkler(t) => format!("jaro_winkler >= {t}"),
            Level::Soundex => "soundex".into(),
            Level::Nickname => "nickname".into(),
            Level::DayMonthSwap => "day/month swapped".into(),
            Level::SameYearMonth => "same year and month".into(),
            Level::SameYear => "same year".into(),
            Level::Sector => "same sector".into(),
            Level::District => "same district".into(),
            Level::OneEdit => "one edit".into(),
        }
    }
    /// Whether the level applies to the field.
    pub fn fits(&self, f: Field) -> bool {
        match self {
            Level::Exact => true,
            Level::JaroWinkler(t) => {
                matches!(f, Field::GivenName | Field::FamilyName) && (0.0..=1.0).contains(t)
            }
            Level::Soundex => matches!(f, Field::GivenName | Field::FamilyName),
            Level::Nickname => f == Field::GivenName,
            Level::DayMonthSwap | Level::SameYearMonth | Level::SameYear => f == Field::DateOfBirth,
            Level::Sector | Level::District => f == Field::Postcode,
            Level::OneEdit => f == Field::NhsNumber,
        }
    }
}

/// How m and u are estimated.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Random record pairs drawn to estimate u (almost all are non-matches).
    #[serde(default = "default_u_pairs")]
    pub u_sample_pairs: usize,
    /// EM sessions: each blocks on these rules and estimates m of the comparisons whose
    /// field is not blocked on; a comparison's m is the mean over its sessions.
    #[serde(default = "default_em_blocking")]
    pub em_blocking: Vec<Vec<Attribute>>,
    /// Most pairs one EM session looks at (a deterministic sample beyond that).
    #[serde(default = "default_em_pairs")]
    pub em_max_pairs: usize,
    /// Most EM iterations per session (fewer when the estimates settle).
    #[serde(default = "default_em_iterations")]
    pub em_max_iterations: usize,
    /// Seed of the u sample (the same seed and data give the same model).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            u_sample_pairs: default_u_pairs(),
            em_blocking: default_em_blocking(),
            em_max_pairs: default_em_pairs(),
            em_max_iterations: default_em_iterations(),
            seed: default_seed(),
        }
    }
}

/// How a surviving value is chosen among a person's records.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Records from registered GP lists first, then providers in this order, then the
    /// rest; the first non-null value wins.
    SourceRank { providers: Vec<String> },
    /// The most frequent non-null value (ties: the smallest).
    MostFrequent,
    /// The value of the record with the latest date (registration start).
    MostRecent,
    /// The first non-null value by provider id (a fixed, reproducible order).
    FirstNonNull,
}

/// Survivorship per attribute of the spine's `person`, `registration` and
/// `address_period`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Survivorship {
    /// Ethnic category (default: GP records first).
    #[serde(default = "rule_gp_first")]
    pub ethnic_category: Rule,
    /// Sex (default: the most frequent value).
    #[serde(default = "rule_most_frequent")]
    pub sex: Rule,
    /// Date of birth (default: the most frequent value).
    #[serde(default = "rule_most_frequent")]
    pub date_of_birth: Rule,
    /// The current postcode (and its LSOA) of `person`.
    #[serde(default = "rule_most_recent")]
    pub postcode: Rule,
    /// The current registration: the latest start wins; `source_rank` breaks ties.
    #[serde(default = "rule_most_recent")]
    pub registration: Rule,
}

impl Default for Survivorship {
    fn default() -> Self {
        Survivorship {
            ethnic_category: rule_gp_first(),
            sex: rule_most_frequent(),
            date_of_birth: rule_most_frequent(),
            postcode: rule_most_recent(),
            registration: rule_most_recent(),
        }
    }
}

fn rule_gp_first() -> Rule {
    Rule::SourceRank { providers: vec![] }
}
fn rule_most_frequent() -> Rule {
    Rule::MostFrequent
}
fn rule_most_recent() -> Rule {
    Rule::MostRecent
}
fn default_true() -> bool {
    true
}
fn default_link_threshold() -> f64 {
    6.64
}
fn default_review_threshold() -> f64 {
    3.17
}
fn default_u_pairs() -> usize {
    5_000_000
}
fn default_em_pairs() -> usize {
    2_000_000
}
fn default_em_iterations() -> usize {
    25
}
fn default_seed() -> u64 {
    42
}
fn default_blocking() -> Vec<Vec<Attribute>> {
    use Attribute::*;
    vec![
        vec![DateOfBirthAnyOrder],
        vec![FamilyNameSoundex, BirthYear],
        vec![PostcodeSector, BirthYear],
    ]
}
fn default_em_blocking() -> Vec<Vec<Attribute>> {
    use Attribute::*;
    vec![vec![DateOfBirth], vec![GivenName, FamilyName]]
}
fn default_comparisons() -> Vec<ComparisonSpec> {
    let c = |field, levels: Vec<Level>, term_frequency, history| ComparisonSpec {
        field,
        levels,
        term_frequency,
        history,
    };
    vec![
        c(
            Field::GivenName,
            vec![
                Level::Exact,
                Level::JaroWinkler(0.92),
                Level::Nickname,
                Level::Soundex,
            ],
            true,
            false,
        ),
        c(
            Field::FamilyName,
            vec![Level::Exact, Level::JaroWinkler(0.92), Level::Soundex],
            true,
            false,
        ),
        c(
            Field::DateOfBirth,
            vec![Level::Exact, Level::DayMonthSwap, Level::SameYear],
            false,
            false,
        ),
        c(
            Field::Postcode,
            vec![Level::Exact, Level::Sector, Level::District],
            true,
            true,
        ),
        c(Field::Sex, vec![Level::Exact], false, false),
    ]
}

impl LinkageSettings {
    /// Problems the types cannot express (they already refuse unknown names), located by
    /// JSON pointers relative to the `linkage:` section, with stable `ONB091x` codes.
    pub fn check(&self) -> Vec<Finding> {
        let mut p = self.check_thresholds();
        p.extend(self.check_blocking());
        p.extend(self.check_comparisons());
        p
    }

    fn check_thresholds(&self) -> Vec<Finding> {
        if self.review_threshold <= self.link_threshold {
            return Vec::new();
        }
        vec![
            Finding::new(
                "ONB0910",
                "/review_threshold",
                format!(
                    "linkage.review_threshold ({}) is above link_threshold ({})",
                    self.review_threshold, self.link_threshold
                ),
            )
            .or_at("/link_threshold")
            .label("above link_threshold")
            .help("pairs between review_threshold and link_threshold go to clerical review; lower review_threshold or raise link_threshold"),
        ]
    }

    fn check_blocking(&self) -> Vec<Finding> {
        let mut p = Vec::new();
        if let Some(i) = self.blocking.iter().position(Vec::is_empty) {
            p.push(
                Finding::new(
                    "ONB0911",
                    format!("/blocking/{i}"),
                    "linkage.blocking: a rule names no attribute",
                )
                .label("empty rule"),
            );
        } else if self.blocking.is_empty() {
            p.push(
                Finding::new(
                    "ONB0911",
                    "/blocking",
                    "linkage.blocking needs at least one rule, each naming an attribute",
                )
                .label("no rules"),
            );
        }
        if let Some(i) = self.training.em_blocking.iter().position(Vec::is_empty) {
            p.push(
                Finding::new(
                    "ONB0911",
                    format!("/training/em_blocking/{i}"),
                    "linkage.training.em_blocking: a rule names no attribute",
                )
                .label("empty rule"),
            );
        }
        p
    }

    fn check_comparisons(&self) -> Vec<Finding> {
        let mut p = Vec::new();
        if self.comparisons.is_empty() || self.comparisons.len() > 8 {
            p.push(
                Finding::new(
                    "ONB0912",
                    "/comparisons",
                    "linkage.comparisons needs 1 to 8 comparisons",
                )
                .label(format!("{} comparisons", self.comparisons.len())),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.comparisons.iter().enumerate() {
            let at = format!("/comparisons/{i}");
            let name = c.field.name();
            if !seen.insert(c.field) {
                let msg = format!("linkage.comparisons[{i}]: `{name}` is compared twice");
                p.push(Finding::new("ONB0912", format!("{at}/field"), msg).label("compared twice"));
            }
            if c.levels.is_empty() || c.levels.len() > 6 {
                let msg = format!("linkage.comparisons[{i}] ({name}): needs 1 to 6 levels");
                p.push(
                    Finding::new("ONB0912", format!("{at}/levels"), msg)
                        .label(format!("{} levels", c.levels.len())),
                );
            }
            for (j, l) in c
                .levels
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.fits(c.field))
            {
                let msg = format!(
                    "linkage.comparisons[{i}]: level `{}` does not apply to `{name}`",
                    l.label()
                );
                p.push(
                    Finding::new("ONB0913", format!("{at}/levels/{j}"), msg)
                        .label("does not apply"),
                );
            }
            if c.history && c.field != Field::Postcode {
                let msg = format!("linkage.comparisons[{i}]: `history` applies to postcode only");
                p.push(
                    Finding::new("ONB0913", format!("{at}/history"), msg).label("postcode only"),
                );
            }
        }
        p
    }
}
