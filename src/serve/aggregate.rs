//! Aggregates of the scored population the pages and the API show: the risk pyramid
//! (persons per band), deciles, and a breakdown by practice, PCN, segment, IMD quintile,
//! ethnic group, age band or sex, over the persons a principal may count (a clinician's
//! practices; everyone for the other roles), optionally filtered by drill-down values.
//! Counts pass through [`super::access::counts`]: disclosure control for commissioners.

use serde::Serialize;

use super::access::{Count, Counting};
use super::auth::Principal;
use super::config::Role;
use super::data::{Data, Person};

/// What a breakdown or a drill-down filter groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Practice,
    Pcn,
    Segment,
    ImdQuintile,
    EthnicGroup,
    AgeBand,
    Sex,
}

pub const DIMENSIONS: [Dimension; 7] = [
    Dimension::Practice,
    Dimension::Pcn,
    Dimension::Segment,
    Dimension::ImdQuintile,
    Dimension::EthnicGroup,
    Dimension::AgeBand,
    Dimension::Sex,
];

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Practice => "practice",
            Dimension::Pcn => "pcn",
            Dimension::Segment => "segment",
            Dimension::ImdQuintile => "imd_quintile",
            Dimension::EthnicGroup => "ethnic_group",
            Dimension::AgeBand => "age_band",
            Dimension::Sex => "sex",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Dimension::Practice => "Practice",
            Dimension::Pcn => "PCN",
            Dimension::Segment => "Segment",
            Dimension::ImdQuintile => "IMD quintile (1 = most deprived)",
            Dimension::EthnicGroup => "Ethnic group",
            Dimension::AgeBand => "Age band",
            Dimension::Sex => "Sex",
        }
    }

    pub fn parse(s: &str) -> Option<Dimension> {
        DIMENSIONS.into_iter().find(|d| d.name() == s)
    }

    /// The person's value (`unknown` when not recorded).
    pub fn value_of(self, p: &Person) -> String {
        let v = match self {
            Dimension::Practice => p.practice.clone(),
            Dimension::Pcn => p.pcn.clone(),
            Dimension::Segment => p.segment.clone(),
            Dimension::ImdQuintile => p.imd_quintile().map(|q| q.to_string()),
            Dimension::EthnicGroup => p.ethnic_group.clone(),
            Dimension::AgeBand => p.age_band(),
            Dimension::Sex => p
                .female
                .map(|f| if f { "female" } else { "male" }.to_string()),
        };
        v.unwrap_or_else(|| "unknown".into())
    }
}

/// Drill-down filters: only persons with these values.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filters(pub Vec<(Dimension, String)>);

impl Filters {
    /// From query parameters named like the dimensions; unknown names are ignored.
    pub fn from_query(q: &std::collections::BTreeMap<String, String>) -> Filters {
        Filters(
            DIMENSIONS
                .into_iter()
                .filter_map(|d| q.get(d.name()).map(|v| (d, v.clone())))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        )
    }

    pub fn admits(&self, p: &Person) -> bool {
        self.0.iter().all(|(d, v)| &d.value_of(p) == v)
    }

    /// The filters as a query string (`practice=F81001&sex=female`).
    pub fn query(&self) -> String {
        let pairs: Vec<(&str, &str)> = self.0.iter().map(|(d, v)| (d.name(), v.as_str())).collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// Whether a principal may count this person at all.
pub fn in_scope(who: &Principal, p: &Person) -> bool {
    who.role != Role::Clinician
        || p.practice
            .as_ref()
            .is_some_and(|pr| who.practices.iter().any(|x| x == pr))
}

/// Persons in the principal's scope that pass the filters, by rank.
pub fn selected<'a>(data: &'a Data, who: &Principal, f: &Filters) -> Vec<&'a Person> {
    data.persons
        .iter()
        .filter(|p| in_scope(who, p) && f.admits(p))
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct BandCount {
    pub band: String,
    pub persons: Count,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecileCount {
    /// 10 = the highest-risk tenth of the whole population.
    pub decile: u8,
    pub persons: Count,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub value: String,
    pub persons: Count,
    /// Persons in the high-risk bands.
    pub high_risk: Count,
    /// Persons per band, in the order of `bands`.
    pub bands: Vec<Count>,
}

/// Everything the distribution page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub as_of: String,
    pub model_version: String,
    pub filters: Vec<(Dimension, String)>,
    pub persons: Count,
    pub bands: Vec<BandCount>,
    pub deciles: Vec<DecileCount>,
    pub by: Dimension,
    pub groups: Vec<Group>,
}

pub fn distribution(data: &Data, who: &Principal, f: &Filters, by: Dimension) -> Distribution {
    let sel = selected(data, who, f);
    let counting = Counting {
        role: who.role,
        policy: &data.policy,
    };
    // Groups × bands, protected as one table: its margins are the groups' sizes, the
    // pyramid's bands and the total, so nothing suppressed can be recovered by subtraction.
    let mut values: std::collections::BTreeMap<String, Vec<&Person>> = Default::default();
    for p in &sel {
        values.entry(by.value_of(p)).or_default().push(p);
    }
    let nb = data.bands.len();
    let raw: Vec<u64> = values
        .values()
        .flat_map(|ps| {
            data.bands
                .iter()
                .map(|b| ps.iter().filter(|p| &p.band == b).count() as u64)
        })
        .collect();
    let t = counting.table(values.len(), nb, &raw);
    let bands = if values.is_empty() {
        data.bands
            .iter()
            .map(|b| BandCount {
                band: b.clone(),
                persons: Count(Some(0)),
            })
            .collect()
    } else {
        data.bands
            .iter()
            .zip(&t.col_totals)
            .map(|(b, c)| BandCount {
                band: b.clone(),
                persons: *c,
            })
            .collect()
    };
    let high: Vec<u64> = values
        .values()
        .map(|ps| {
            ps.iter()
                .filter(|p| data.high_risk_bands.contains(&p.band))
                .count() as u64
        })
        .collect();
    // Persons in the high-risk bands are a sum of cells: shown only to roles that see
    // exact counts (a commissioner adds up the band columns instead).
    let high = match who.role {
        Role::Commissioner => vec![Count(None); high.len()],
        _ => high.into_iter().map(|n| Count(Some(n))).collect(),
    };
    let groups = values
        .keys()
        .enumerate()
        .map(|(i, value)| Group {
            value: value.clone(),
            persons: t.row_totals[i],
            high_risk: high[i],
            bands: t.cells[i].clone(),
        })
        .collect();
    let per_decile: Vec<u64> = (1..=10u8)
        .rev()
        .map(|d| sel.iter().filter(|p| p.decile == d).count() as u64)
        .collect();
    let deciles = (1..=10u8)
        .rev()
        .zip(counting.breakdown(&per_decile).0)
        .map(|(decile, persons)| DecileCount { decile, persons })
        .collect();
    Distribution {
        as_of: data.as_of.format("%Y-%m-%d").to_string(),
        model_version: data.model_version.clone(),
        filters: f.0.clone(),
        persons: if values.is_empty() {
            Count(Some(0))
        } else {
            t.grand
        },
        bands,
        deciles,
        by,
        groups,
    }
}
