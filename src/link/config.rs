//! The `linkage:` section of an ICS file: blocking rules, comparisons and their levels,
//! how m and u are trained, thresholds, and survivorship per attribute. Every part has
//! a default that matches the NHS practice in `docs/linkage.md`, so an ICS file can say
//! only what it changes.

use serde::{Deserialize, Serialize};

/// How one ICS links records into persons.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    /// How each surviving attribute of the spine's `person` is chosen.
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
    /// Which pairs are considered: every pair (`link_and_dedupe`), only pairs from
    /// different sources (`link_only`: two registers linked against each other), or only
    /// pairs within one source (`dedupe_only`). A source is one provider's source.
    #[serde(default)]
    pub link_type: LinkType,
    /// Identity attributes the ICS declares beyond the canonical ones, by name: each is
    /// held in one of the canonical slots `attribute_1` … `attribute_4` of
    /// `person_identity` (a provider maps its column there) and has a type that decides
    /// how it is standardised and which comparison levels apply. Like every identity
    /// field it stays in the identity zone.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, DeclaredAttribute>,
}

/// Which record pairs linkage considers.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    /// Every pair, within and across sources (the default).
    #[default]
    LinkAndDedupe,
    /// Only pairs whose records come from different sources.
    LinkOnly,
    /// Only pairs whose records come from the same source.
    DedupeOnly,
}

impl LinkType {
    /// Whether a pair of records from sources `a` and `b` is considered.
    pub fn allows(self, a: u32, b: u32) -> bool {
        match self {
            LinkType::LinkAndDedupe => true,
            LinkType::LinkOnly => a != b,
            LinkType::DedupeOnly => a == b,
        }
    }
}

/// An identity attribute declared by the ICS.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredAttribute {
    /// The `person_identity` slot holding it: `attribute_1` … `attribute_4`.
    pub slot: String,
    /// How it is standardised and compared.
    #[serde(rename = "type")]
    pub kind: AttributeType,
}

/// The type of an identity attribute: decides standardisation and the levels allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttributeType {
    /// A personal name: upper case, punctuation removed; Soundex and nickname levels.
    Name,
    /// A date (`YYYY-MM-DD` or `YYYYMMDD`): swap, same year/month, days apart.
    Date,
    /// A postcode: upper case, spaces normalised; sector and district levels (UK).
    Postcode,
    /// Free text such as an address line: upper case, punctuation and repeated spaces
    /// removed.
    FreeText,
    /// An identifier (local id, telephone): letters and digits only, upper case;
    /// one-edit and numeric-distance levels.
    Identifier,
}

/// The `person_identity` slots that hold ICS-declared attributes.
pub const ATTRIBUTE_SLOTS: [&str; 4] = ["attribute_1", "attribute_2", "attribute_3", "attribute_4"];

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
            link_type: LinkType::default(),
            attributes: Default::default(),
        }
    }
}

/// A value derived from an identity row for blocking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
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
    /// The exact standardised value of any other comparable field (a canonical one
    /// such as `other_local_id` or `address_line_1`, or a declared attribute).
    #[serde(untagged)]
    Exact(Field),
}

impl Attribute {
    /// The compared field this attribute is derived from (training leaves the m of a
    /// field used for blocking untouched).
    pub fn field(&self) -> Field {
        match self {
            Attribute::Exact(f) => f.clone(),
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

/// An identity field that can be compared: a canonical `person_identity` field, or an
/// attribute declared in `linkage.attributes` (by its declared name).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    NhsNumber,
    GivenName,
    FamilyName,
    DateOfBirth,
    Sex,
    Postcode,
    /// Middle or other names.
    OtherNames,
    /// A family name the person had before (e.g. a maiden name).
    PreviousFamilyName,
    #[serde(rename = "address_line_1")]
    AddressLine1,
    #[serde(rename = "address_line_2")]
    AddressLine2,
    #[serde(rename = "address_line_3")]
    AddressLine3,
    /// A further local identifier (with `other_local_id_issuer`), compared as
    /// `issuer:id`.
    OtherLocalId,
    Telephone,
    /// An attribute declared in `linkage.attributes`.
    #[serde(untagged)]
    Declared(String),
}

impl Field {
    pub fn name(&self) -> &str {
        match self {
            Field::NhsNumber => "nhs_number",
            Field::GivenName => "given_name",
            Field::FamilyName => "family_name",
            Field::DateOfBirth => "date_of_birth",
            Field::Sex => "sex",
            Field::Postcode => "postcode",
            Field::OtherNames => "other_names",
            Field::PreviousFamilyName => "previous_family_name",
            Field::AddressLine1 => "address_line_1",
            Field::AddressLine2 => "address_line_2",
            Field::AddressLine3 => "address_line_3",
            Field::OtherLocalId => "other_local_id",
            Field::Telephone => "telephone",
            Field::Declared(n) => n,
        }
    }
    /// The type of the field (None for sex, compared exactly; None for an attribute
    /// the settings do not declare).
    pub fn kind(&self, s: &LinkageSettings) -> Option<AttributeType> {
        use AttributeType::*;
        Some(match self {
            Field::NhsNumber | Field::OtherLocalId | Field::Telephone => Identifier,
            Field::GivenName
            | Field::FamilyName
            | Field::OtherNames
            | Field::PreviousFamilyName => Name,
            Field::DateOfBirth => Date,
            Field::Postcode => Postcode,
            Field::AddressLine1 | Field::AddressLine2 | Field::AddressLine3 => FreeText,
            Field::Sex => return None,
            Field::Declared(n) => return s.attributes.get(n).map(|a| a.kind),
        })
    }
    /// The `person_identity` column holding the field.
    pub fn column<'a>(&'a self, s: &'a LinkageSettings) -> Option<&'a str> {
        match self {
            Field::Declared(n) => s.attributes.get(n).map(|a| a.slot.as_str()),
            f => Some(f.name()),
        }
    }
}

/// One comparison: a field and its agreement levels, best first. A pair that reaches
/// none of the levels is at the implicit level `different`; a pair with the field
/// missing on either side contributes nothing.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComparisonSpec {
    /// The field compared.
    pub field: Field,
    /// Agreement levels, best first (the types allow: see `Level`).
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
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Exact,
    /// Jaro–Winkler similarity at least this (text).
    JaroWinkler(f64),
    /// Levenshtein (edit) distance at most this (text, dates as digits).
    Levenshtein(u32),
    /// Damerau–Levenshtein distance (edits and adjacent transpositions) at most this.
    DamerauLevenshtein(u32),
    /// Same Soundex code (names).
    Soundex,
    /// One is a nickname of the other, or both of one name (names).
    Nickname,
    /// Given and family names recorded the other way round (`given_name` and
    /// `family_name` only: this record's given name is the other's family name and the
    /// other way round).
    NamesSwapped,
    /// Day and month swapped (dates).
    DayMonthSwap,
    /// Same year and month (dates).
    SameYearMonth,
    /// Same year (dates).
    SameYear,
    /// At most this many days apart (dates).
    WithinDays(u32),
    /// Same postcode sector, e.g. `LS6 2` (postcodes).
    Sector,
    /// Same postcode district, e.g. `LS6` (postcodes).
    District,
    /// One digit apart or two adjacent digits transposed (identifiers).
    OneEdit,
    /// Both numbers, at most this far apart (identifiers).
    NumericWithin(f64),
}

impl Level {
    pub fn label(&self) -> String {
        match self {
            Level::Exact => "exact".into(),
            Level::JaroWinkler(t) => format!("jaro_winkler >= {t}"),
            Level::Levenshtein(n) => format!("levenshtein <= {n}"),
            Level::DamerauLevenshtein(n) => format!("damerau_levenshtein <= {n}"),
            Level::Soundex => "soundex".into(),
            Level::Nickname => "nickname".into(),
            Level::NamesSwapped => "names swapped".into(),
            Level::DayMonthSwap => "day/month swapped".into(),
            Level::SameYearMonth => "same year and month".into(),
            Level::SameYear => "same year".into(),
            Level::WithinDays(n) => format!("within {n} days"),
            Level::Sector => "same sector".into(),
            Level::District => "same district".into(),
            Level::OneEdit => "one edit".into(),
            Level::NumericWithin(x) => format!("within {x}"),
        }
    }
    /// Whether the level applies to a field of this type (None: sex, exact only).
    pub fn fits(&self, kind: Option<AttributeType>) -> bool {
        use AttributeType::*;
        let Some(k) = kind else {
            return *self == Level::Exact;
        };
        match self {
            Level::Exact => true,
            Level::JaroWinkler(t) => k != Date && (0.0..=1.0).contains(t),
            Level::Levenshtein(_) | Level::DamerauLevenshtein(_) => true,
            Level::Soundex | Level::Nickname | Level::NamesSwapped => k == Name,
            Level::DayMonthSwap | Level::SameYearMonth | Level::SameYear | Level::WithinDays(_) => {
                k == Date
            }
            Level::Sector | Level::District => k == Postcode,
            Level::OneEdit => k == Identifier,
            Level::NumericWithin(x) => k == Identifier && *x >= 0.0,
        }
    }
}

/// How m and u are estimated.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    /// Most EM iterations of one session.
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
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Survivorship {
    #[serde(default = "rule_gp_first")]
    pub ethnic_category: Rule,
    #[serde(default = "rule_most_frequent")]
    pub sex: Rule,
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
    /// Problems located by JSON pointers relative to the `linkage:` section, with stable
    /// codes: ONB0910 thresholds, ONB0911 blocking, ONB0912 comparisons, ONB0913 a level
    /// that does not apply, ONB0909 the rest.
    pub fn check(&self) -> Vec<crate::diagnostics::Finding> {
        self.problems().iter().map(|m| self.locate(m)).collect()
    }

    /// A problem's code and place, from the setting its message starts with.
    fn locate(&self, m: &str) -> crate::diagnostics::Finding {
        use crate::diagnostics::Finding;
        let rest = m.strip_prefix("linkage.").unwrap_or(m);
        let setting: String = rest
            .chars()
            .take_while(|c| !matches!(c, ':' | ' '))
            .collect();
        if setting == "review_threshold" {
            return Finding::at_setting("ONB0910", "review_threshold", m)
                .or_at("/link_threshold")
                .label("above link_threshold")
                .help("pairs between review_threshold and link_threshold go to clerical review; lower review_threshold or raise link_threshold");
        }
        if m.contains("does not apply") || m.contains("applies to postcode only") {
            return Finding::at_setting("ONB0913", &self.level_setting(&setting, m), m);
        }
        let code = if setting.starts_with("blocking") || setting.starts_with("training.em_blocking")
        {
            "ONB0911"
        } else if setting.starts_with("comparisons") {
            "ONB0912"
        } else {
            "ONB0909"
        };
        Finding::at_setting(code, &setting, m)
    }

    /// `comparisons[i].levels[j]` of a "level `x` does not apply" message, else the setting.
    fn level_setting(&self, setting: &str, m: &str) -> String {
        let i: Option<usize> = setting
            .strip_prefix("comparisons[")
            .and_then(|r| r.split(']').next())
            .and_then(|n| n.parse().ok());
        let level = m.split('`').nth(1);
        match (i.and_then(|i| self.comparisons.get(i)), level) {
            (Some(c), Some(l)) if m.contains("level `") => {
                match c.levels.iter().position(|x| x.label() == l) {
                    Some(j) => format!("{setting}.levels[{j}]"),
                    None => setting.to_string(),
                }
            }
            (Some(_), _) if m.contains("`history`") => format!("{setting}.history"),
            _ => setting.to_string(),
        }
    }

    /// Problems a loader reports (the types already refuse unknown names), each naming
    /// the setting it is about.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.review_threshold > self.link_threshold {
            p.push(format!(
                "linkage.review_threshold ({}) is above link_threshold ({})",
                self.review_threshold, self.link_threshold
            ));
        }
        if self.blocking.is_empty() || self.blocking.iter().any(Vec::is_empty) {
            p.push("linkage.blocking needs at least one rule, each naming an attribute".into());
        }
        if self.comparisons.is_empty() || self.comparisons.len() > MAX_COMPARISONS {
            p.push(format!(
                "linkage.comparisons needs 1 to {MAX_COMPARISONS} comparisons"
            ));
        }
        self.check_attributes(&mut p);
        self.check_comparisons(&mut p);
        for (setting, rules) in [
            ("linkage.blocking", &self.blocking),
            ("linkage.training.em_blocking", &self.training.em_blocking),
        ] {
            for (i, rule) in rules.iter().enumerate() {
                for a in rule {
                    if let Attribute::Exact(f) = a {
                        if f.kind(self).is_none() && *f != Field::Sex {
                            p.push(format!(
                                "{setting}[{i}]: `{}` is neither a blocking attribute nor a declared attribute (linkage.attributes)",
                                f.name()
                            ));
                        }
                    }
                }
            }
        }
        if self.training.em_blocking.iter().any(Vec::is_empty) {
            p.push("linkage.training.em_blocking: a rule names no attribute".into());
        }
        p
    }

    fn check_attributes(&self, p: &mut Vec<String>) {
        let mut slots = std::collections::HashSet::new();
        for (name, a) in &self.attributes {
            if !ATTRIBUTE_SLOTS.contains(&a.slot.as_str()) {
                p.push(format!(
                    "linkage.attributes.{name}.slot: `{}` is not one of {}",
                    a.slot,
                    ATTRIBUTE_SLOTS.join(", ")
                ));
            }
            if !slots.insert(a.slot.as_str()) {
                p.push(format!(
                    "linkage.attributes.{name}.slot: `{}` holds another attribute already",
                    a.slot
                ));
            }
            let canonical: Result<Field, _> = serde_json::from_value(serde_json::json!(name));
            if !matches!(canonical, Ok(Field::Declared(_))) || name.is_empty() {
                p.push(format!(
                    "linkage.attributes.{name}: the name of a canonical field cannot be declared again"
                ));
            }
        }
    }

    fn check_comparisons(&self, p: &mut Vec<String>) {
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.comparisons.iter().enumerate() {
            let name = c.field.name();
            if !seen.insert(c.field.clone()) {
                p.push(format!(
                    "linkage.comparisons[{i}]: `{name}` is compared twice"
                ));
            }
            let kind = c.field.kind(self);
            if let Field::Declared(n) = &c.field {
                if kind.is_none() {
                    p.push(format!(
                        "linkage.comparisons[{i}]: `{n}` is neither a canonical identity field nor declared in linkage.attributes"
                    ));
                    continue;
                }
            }
            if c.levels.is_empty() || c.levels.len() > 6 {
                p.push(format!(
                    "linkage.comparisons[{i}] ({name}): needs 1 to 6 levels"
                ));
            }
            for l in &c.levels {
                if *l == Level::NamesSwapped
                    && !matches!(c.field, Field::GivenName | Field::FamilyName)
                {
                    p.push(format!(
                        "linkage.comparisons[{i}]: level `names_swapped` applies to given_name and family_name only, not `{name}`"
                    ));
                } else if !l.fits(kind) {
                    p.push(format!(
                        "linkage.comparisons[{i}]: level `{}` does not apply to `{name}`{}",
                        l.label(),
                        kind.map(|k| format!(" (type {k:?})")).unwrap_or_default()
                    ));
                }
            }
            if c.history && c.field != Field::Postcode {
                p.push(format!(
                    "linkage.comparisons[{i}]: `history` applies to postcode only"
                ));
            }
            if c.term_frequency && matches!(kind, None | Some(AttributeType::Date)) {
                p.push(format!(
                    "linkage.comparisons[{i}]: `term_frequency` does not apply to `{name}`"
                ));
            }
        }
    }
}

/// Most comparisons one model holds (a comparison pattern packs 8 bits a comparison
/// into 128 bits).
pub const MAX_COMPARISONS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    /// Field names in settings are the canonical column names; others are declared
    /// attributes.
    #[test]
    fn field_names_round_trip() {
        for name in [
            "given_name",
            "address_line_1",
            "address_line_3",
            "other_local_id",
            "previous_family_name",
            "suburb",
        ] {
            let f: Field = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(f.name(), name);
        }
        let a: Attribute = serde_json::from_value(serde_json::json!("address_line_2")).unwrap();
        assert_eq!(a, Attribute::Exact(Field::AddressLine2));
        let a: Attribute = serde_json::from_value(serde_json::json!("birth_year")).unwrap();
        assert_eq!(a, Attribute::BirthYear);
    }
}
