//! Every aggregate the stage publishes, as tidy rows (one measure, breakdown, group,
//! statistic and value a row), each count through [`crate::disclosure`] before it is
//! written: one-way breakdowns with their total, partitions (segments, risk bands,
//! condition-count bands, A&E arrival and departure) as two-way tables with their
//! margins, linked to the population table so a count suppressed there stays suppressed.
//! Rates, intervals and costs are published only when the counts behind them are.

use std::collections::BTreeMap;

use super::catalogue::{ARRIVALS, DEPARTURES, EVENT_MEASURES, Names};
use super::frame::{Frame, NOT_KNOWN, Person, age_band};
use super::stats::{self, Estimate, StandardPopulation};
use super::uec::Attendance;
use crate::disclosure::{
    Cell, CellRef, CountTable, DisclosureError, DisclosurePolicy, Suppression, protect_breakdown,
    protect_breakdown_preferring, protect_preferring, protect_with, rate_publishable,
};

/// One published value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub measure: String,
    pub breakdown: String,
    pub group: String,
    /// The category of a partition (segment, band, setting…); none for one-way measures.
    pub category: Option<String>,
    pub statistic: &'static str,
    pub unit: &'static str,
    pub value: Option<f64>,
    pub lower_95: Option<f64>,
    pub upper_95: Option<f64>,
    pub status: &'static str,
}

/// The group "All" (the total of a breakdown).
pub const ALL: &str = "All";

/// What a measure counts.
pub enum Kind {
    /// Persons with a property (a proportion of the group).
    Proportion(Box<dyn Fn(&Person) -> bool + Send + Sync>),
    /// Events of the person (index into [`Person::events`]), a rate per 1,000 a year.
    Events(usize),
    /// Cost per head in the cost year, in total and per setting.
    Cost,
    /// Persons by category: categories and the person's category.
    Partition(Vec<String>, Box<dyn Fn(&Person) -> usize + Send + Sync>),
    /// A&E attendances by arrival (`true`) or departure.
    Attendances(bool),
}

/// A named measure.
pub struct Measure {
    pub name: String,
    pub label: String,
    pub kind: Kind,
}

/// A breakdown: every person's group.
pub struct Breakdown {
    pub name: String,
    pub groups: Vec<String>,
    pub of: Vec<usize>,
}

/// Build the measures over a frame.
pub fn measures(frame: &Frame, n: &Names) -> Vec<Measure> {
    let mut v = Vec::new();
    for (i, c) in frame.conditions.iter().enumerate() {
        v.push(Measure {
            name: format!("prevalence_{c}"),
            label: format!("{} (recorded prevalence)", frame.condition_labels[i]),
            kind: Kind::Proportion(Box::new(move |p: &Person| p.conditions[i])),
        });
    }
    let high: Vec<String> = n.high_risk_bands.to_vec();
    let fixed: [(&str, &str, Kind); 3] = [
        (
            "multimorbidity_2plus",
            "Two or more long-term conditions",
            Kind::Proportion(Box::new(|p: &Person| p.ltc_count >= 2)),
        ),
        (
            "high_risk",
            "In a high-risk band of emergency admission",
            Kind::Proportion(Box::new(move |p: &Person| high.contains(&p.risk_band))),
        ),
        (
            "ethnicity_recorded",
            "Ethnic group recorded",
            Kind::Proportion(Box::new(|p: &Person| p.ethnic_group != NOT_KNOWN)),
        ),
    ];
    for (name, label, kind) in fixed {
        v.push(Measure {
            name: name.into(),
            label: label.into(),
            kind,
        });
    }
    for (k, f) in n.flags.iter().enumerate() {
        v.push(Measure {
            name: format!("flag_{}", f.0),
            label: f.1.clone(),
            kind: Kind::Proportion(Box::new(move |p: &Person| p.flags[k])),
        });
    }
    let labels = [
        "Emergency admissions",
        "Emergency admissions for chronic ACSCs",
        "A&E attendances",
        "Low-acuity A&E attendances",
    ];
    for (i, m) in EVENT_MEASURES.iter().enumerate() {
        v.push(Measure {
            name: m.to_string(),
            label: format!("{} (last 12 months)", labels[i]),
            kind: Kind::Events(i),
        });
    }
    v.push(Measure {
        name: "cost_per_head".into(),
        label: "Cost of care per head".into(),
        kind: Kind::Cost,
    });
    for (s, (name, segs)) in n.segmentations.iter().enumerate() {
        v.push(Measure {
            name: format!("segment:{name}"),
            label: format!("Segments of {name}"),
            kind: Kind::Partition(segs.clone(), Box::new(move |p: &Person| p.segments[s])),
        });
    }
    let bands = n.bands.to_vec();
    let bands2 = bands.clone();
    v.push(Measure {
        name: "risk_band".into(),
        label: "Risk band".into(),
        kind: Kind::Partition(
            with_not_known(bands),
            Box::new(move |p: &Person| {
                bands2
                    .iter()
                    .position(|b| *b == p.risk_band)
                    .unwrap_or(bands2.len())
            }),
        ),
    });
    let ltc: Vec<String> = ["0", "1", "2-3", "4+"].map(String::from).into();
    let ltc2 = ltc.clone();
    v.push(Measure {
        name: "ltc_count_band".into(),
        label: "Number of long-term conditions".into(),
        kind: Kind::Partition(
            ltc,
            Box::new(move |p: &Person| ltc2.iter().position(|b| b == p.ltc_band()).unwrap_or(0)),
        ),
    });
    let mut profiles: Vec<String> = frame
        .persons
        .iter()
        .map(|p| p.profile(&frame.conditions))
        .collect();
    profiles.sort();
    profiles.dedup();
    let names = frame.conditions.clone();
    let index: BTreeMap<String, usize> = profiles
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, p)| (p, i))
        .collect();
    v.push(Measure {
        name: "morbidity_profile".into(),
        label: "Combination of long-term conditions".into(),
        kind: Kind::Partition(
            profiles,
            Box::new(move |p: &Person| index.get(&p.profile(&names)).copied().unwrap_or(0)),
        ),
    });
    v.push(Measure {
        name: "ae_arrival_mode".into(),
        label: "A&E attendances by arrival".into(),
        kind: Kind::Attendances(true),
    });
    v.push(Measure {
        name: "ae_departure".into(),
        label: "A&E attendances by departure".into(),
        kind: Kind::Attendances(false),
    });
    v
}

fn with_not_known(mut v: Vec<String>) -> Vec<String> {
    v.push(NOT_KNOWN.into());
    v
}

/// Build a breakdown over the frame.
pub fn breakdown(frame: &Frame, name: &str, segmentations: &[(String, Vec<String>)]) -> Breakdown {
    let value = |p: &Person| -> String {
        match name {
            "all" => ALL.into(),
            "imd_quintile" => p.imd_quintile(),
            "ethnic_group" => p.ethnic_group.clone(),
            "age_band" => age_band(p.age).into(),
            "sex" => p.sex.clone(),
            "practice" => p.practice.clone(),
            "pcn" => p.pcn.clone(),
            "locality" => p.locality.clone(),
            "ltc_count_band" => p.ltc_band().into(),
            "risk_band" => p.risk_band.clone(),
            other => {
                let seg = other.strip_prefix("segment:").unwrap_or(other);
                segmentations
                    .iter()
                    .position(|s| s.0 == seg)
                    .and_then(|s| segmentations[s].1.get(p.segments[s]).cloned())
                    .unwrap_or_else(|| NOT_KNOWN.into())
            }
        }
    };
    let values: Vec<String> = frame.persons.iter().map(value).collect();
    let mut groups: Vec<String> = values.clone();
    groups.sort_by(|a, b| (a == NOT_KNOWN).cmp(&(b == NOT_KNOWN)).then(a.cmp(b)));
    groups.dedup();
    let idx: BTreeMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let of = values.iter().map(|v| idx[v.as_str()]).collect();
    Breakdown {
        name: name.into(),
        groups,
        of,
    }
}

/// Everything [`publish`] needs.
pub struct Context<'a> {
    pub frame: &'a Frame,
    pub attendances: &'a [Attendance],
    pub esp: &'a StandardPopulation,
    pub policy: &'a DisclosurePolicy,
}

/// The rows of one measure by one breakdown.
pub fn publish(c: &Context, m: &Measure, b: &Breakdown) -> Result<Vec<Row>, DisclosureError> {
    let pops = group_counts(c.frame, b, |_| 1);
    let (pop_cells, pop_total) = protect_breakdown(c.policy, &pops, None)?;
    let out = Out {
        measure: &m.name,
        breakdown: &b.name,
    };
    match &m.kind {
        Kind::Proportion(f) => proportion(c, &out, b, f.as_ref(), &pops, (&pop_cells, pop_total)),
        Kind::Events(i) => events(c, &out, b, *i, &pops, (&pop_cells, pop_total)),
        Kind::Cost => Ok(cost(c, &out, b, &pops, (&pop_cells, pop_total))),
        Kind::Partition(cats, f) => {
            if m.name == "morbidity_profile" && b.name != "all" {
                return Ok(Vec::new());
            }
            let of: Vec<usize> = c.frame.persons.iter().map(|p| f(p)).collect();
            let counts = cross(cats.len(), b, of.iter().copied().enumerate());
            partition(c, &out, b, cats, &counts, &pop_cells, "persons")
        }
        Kind::Attendances(arrival) => {
            let cats: Vec<String> = if *arrival {
                ARRIVALS.map(String::from).into()
            } else {
                DEPARTURES.map(String::from).into()
            };
            let pairs = c
                .attendances
                .iter()
                .map(|a| (a.person, if *arrival { a.arrival } else { a.departure }));
            let counts = cross(cats.len(), b, pairs);
            let totals = group_counts(c.frame, b, |p| p.events[2]);
            let (linked, _) = protect_breakdown(c.policy, &totals, None)?;
            partition(c, &out, b, &cats, &counts, &linked, "attendances")
        }
    }
}

/// The population rows of a breakdown (measure `population`).
pub fn population(c: &Context, b: &Breakdown) -> Result<Vec<Row>, DisclosureError> {
    let pops = group_counts(c.frame, b, |_| 1);
    let (cells, total) = protect_breakdown(c.policy, &pops, None)?;
    let out = Out {
        measure: "population",
        breakdown: &b.name,
    };
    let all: Vec<Cell> = cells.iter().copied().chain([total]).collect();
    Ok(slots(b)
        .into_iter()
        .map(|(i, g)| out.count(g, None, all[i], "persons"))
        .collect())
}

struct Out<'a> {
    measure: &'a str,
    breakdown: &'a str,
}

impl Out<'_> {
    fn row(
        &self,
        group: &str,
        category: Option<&str>,
        statistic: &'static str,
        unit: &'static str,
    ) -> Row {
        Row {
            measure: self.measure.into(),
            breakdown: self.breakdown.into(),
            group: group.into(),
            category: category.map(String::from),
            statistic,
            unit,
            value: None,
            lower_95: None,
            upper_95: None,
            status: "published",
        }
    }
    fn count(&self, group: &str, category: Option<&str>, cell: Cell, unit: &'static str) -> Row {
        let mut r = self.row(group, category, "count", unit);
        r.value = cell.value().map(|v| v as f64);
        r.status = cell.status();
        r
    }
    fn estimate(
        &self,
        group: &str,
        category: Option<&str>,
        statistic: &'static str,
        unit: &'static str,
        e: Option<Estimate>,
        publish: bool,
    ) -> Row {
        let mut r = self.row(group, category, statistic, unit);
        match e {
            Some(e) if publish => {
                r.value = Some(e.value);
                r.lower_95 = Some(e.lower);
                r.upper_95 = Some(e.upper);
            }
            Some(_) => r.status = "suppressed_rate",
            None => r.status = "not_calculated",
        }
        r
    }
}

/// Per-group sums of `f` over the frame.
fn group_counts(frame: &Frame, b: &Breakdown, f: impl Fn(&Person) -> u64) -> Vec<u64> {
    let mut v = vec![0u64; b.groups.len()];
    for (p, g) in frame.persons.iter().zip(&b.of) {
        v[*g] += f(p);
    }
    v
}

/// Counts by (category, group), row-major.
fn cross(cats: usize, b: &Breakdown, items: impl Iterator<Item = (usize, usize)>) -> Vec<u64> {
    let mut v = vec![0u64; cats * b.groups.len()];
    for (person, cat) in items {
        if cat < cats {
            v[cat * b.groups.len() + b.of[person]] += 1;
        }
    }
    v
}

/// Per group and ESP band: (numerators, persons).
fn by_band(c: &Context, b: &Breakdown, num: impl Fn(&Person) -> u64) -> Vec<(Vec<u64>, Vec<u64>)> {
    let n = c.esp.len();
    let mut v = vec![(vec![0u64; n], vec![0u64; n]); b.groups.len() + 1];
    for (p, g) in c.frame.persons.iter().zip(&b.of) {
        let band = c.esp.band(p.age);
        for slot in [*g, b.groups.len()] {
            v[slot].0[band] += num(p);
            v[slot].1[band] += 1;
        }
    }
    v
}

type Pops<'a> = (&'a [Cell], Cell);

/// Groups whose population is suppressed: their rates are unpublishable anyway, so
/// secondary suppression takes their counts first.
fn dead(pops: &[Cell]) -> Vec<bool> {
    pops.iter().map(|c| c.is_suppressed()).collect()
}

/// The slots a breakdown publishes: each group, then the total; breakdown `all` has
/// only the total (its one group is the total).
fn slots(b: &Breakdown) -> Vec<(usize, &str)> {
    let groups = b.groups.iter().map(String::as_str).chain([ALL]).enumerate();
    groups
        .filter(|(i, _)| b.name != "all" || *i == b.groups.len())
        .collect()
}

/// How a measure's rates are stated: persons as a percentage (Wilson interval), or
/// events per 1,000 persons a year (Byar interval); the DSR in the same unit.
struct RateKind {
    counted: &'static str,
    crude_unit: &'static str,
    dsr_unit: &'static str,
    per: f64,
    crude: fn(u64, u64, f64) -> Option<Estimate>,
}

const PERSONS_PERCENT: RateKind = RateKind {
    counted: "persons",
    crude_unit: "percent",
    dsr_unit: "percent, age-standardised (ESP 2013)",
    per: 100.0,
    crude: stats::wilson,
};

const EVENTS_PER_1000: RateKind = RateKind {
    counted: "events",
    crude_unit: "per 1,000 persons a year",
    dsr_unit: "per 1,000 a year, age-standardised (ESP 2013)",
    per: 1000.0,
    crude: stats::crude_rate,
};

fn proportion(
    c: &Context,
    out: &Out,
    b: &Breakdown,
    f: &(dyn Fn(&Person) -> bool + Send + Sync),
    pops: &[u64],
    pc: Pops,
) -> Result<Vec<Row>, DisclosureError> {
    let num = |p: &Person| u64::from(f(p));
    rates(c, out, b, &num, Some(pops), pops, pc, &PERSONS_PERCENT)
}

fn events(
    c: &Context,
    out: &Out,
    b: &Breakdown,
    k: usize,
    pops: &[u64],
    pc: Pops,
) -> Result<Vec<Row>, DisclosureError> {
    let num = |p: &Person| p.events[k];
    rates(c, out, b, &num, None, pops, pc, &EVENTS_PER_1000)
}

/// Counts per group through disclosure control (suppression preferring to keep the
/// cells of `prefer`), with crude and age-standardised rates where publishable.
#[allow(clippy::too_many_arguments)]
fn rates(
    c: &Context,
    out: &Out,
    b: &Breakdown,
    num: &dyn Fn(&Person) -> u64,
    prefer: Option<&[u64]>,
    pops: &[u64],
    pc: Pops,
    kind: &RateKind,
) -> Result<Vec<Row>, DisclosureError> {
    let counts = group_counts(c.frame, b, num);
    let (cells, total) = protect_breakdown_preferring(c.policy, &counts, prefer, &dead(pc.0))?;
    let bands = by_band(c, b, num);
    let weights = c.esp.weights();
    let mut rows = Vec::new();
    let (all_counts, all_pops): (u64, u64) = (counts.iter().sum(), pops.iter().sum());
    for (i, g) in slots(b) {
        let (cell, pop, n, d) = if i < b.groups.len() {
            (cells[i], pc.0[i], counts[i], pops[i])
        } else {
            (total, pc.1, all_counts, all_pops)
        };
        let ok = rate_publishable(cell, pop);
        rows.push(out.count(g, None, cell, kind.counted));
        let crude = (kind.crude)(n, d, kind.per);
        rows.push(out.estimate(g, None, "crude_rate", kind.crude_unit, crude, ok));
        if b.name != "age_band" {
            let e = stats::dsr(&bands[i].0, &bands[i].1, &weights, kind.per);
            rows.push(out.estimate(g, None, "dsr", kind.dsr_unit, e, ok));
        }
    }
    Ok(rows)
}

fn cost(c: &Context, out: &Out, b: &Breakdown, pops: &[u64], pc: Pops) -> Vec<Row> {
    let settings = &c.frame.settings;
    let groups = b.groups.len();
    let mut sums = vec![vec![0.0f64; settings.len() + 1]; groups + 1];
    // Persons with any cost, per slot and setting: a total of 1–7 persons' costs is
    // suppressed like their count.
    let mut payers = vec![vec![0u64; settings.len() + 1]; groups + 1];
    for (p, g) in c.frame.persons.iter().zip(&b.of) {
        for slot in [*g, groups] {
            for (s, v) in p.cost.iter().enumerate() {
                sums[slot][s] += v;
                sums[slot][settings.len()] += v;
                payers[slot][s] += u64::from(*v > 0.0);
            }
            payers[slot][settings.len()] += u64::from(p.cost.iter().any(|v| *v > 0.0));
        }
    }
    let all_pops: u64 = pops.iter().sum();
    let mut rows = Vec::new();
    for (i, g) in slots(b) {
        let (pop, d) = if i < groups {
            (pc.0[i], pops[i])
        } else {
            (pc.1, all_pops)
        };
        let cats = settings.iter().map(|s| Some(s.as_str())).chain([None]);
        for (s, cat) in cats.enumerate() {
            let total = sums[i][s];
            for (stat, unit, v) in [
                ("total_cost", "GBP", total),
                (
                    "cost_per_head",
                    "GBP per person",
                    if d > 0 { total / d as f64 } else { 0.0 },
                ),
            ] {
                let mut r = out.row(g, cat, stat, unit);
                if pop.is_suppressed() {
                    r.status = "suppressed_rate";
                } else if c.policy.is_small(payers[i][s]) {
                    r.status = "suppressed_primary";
                } else {
                    r.value = Some((v * 100.0).round() / 100.0);
                }
                rows.push(r);
            }
        }
    }
    rows
}

/// A partition (categories × groups) with its margins; linked to the group totals
/// published elsewhere (`linked`: the protected totals per group).
fn partition(
    c: &Context,
    out: &Out,
    b: &Breakdown,
    cats: &[String],
    counts: &[u64],
    linked: &[Cell],
    unit: &'static str,
) -> Result<Vec<Row>, DisclosureError> {
    let groups = b.groups.len();
    let mut rows = Vec::new();
    if b.name == "all" {
        let per: Vec<u64> = (0..cats.len()).map(|k| counts[k * groups]).collect();
        let t = protect_with(c.policy, &CountTable::one_way(per.clone()), &[])?;
        let total: u64 = per.iter().sum();
        for (k, cat) in cats.iter().enumerate() {
            rows.push(out.count(ALL, Some(cat), t.cells[k], unit));
            let ok = rate_publishable(t.cells[k], t.grand);
            rows.push(out.estimate(
                ALL,
                Some(cat),
                "percent",
                "percent of the group",
                stats::wilson(per[k], total, 100.0),
                ok,
            ));
        }
        rows.push(out.count(ALL, Some(ALL), t.grand, unit));
        return Ok(rows);
    }
    let forced: Vec<(CellRef, Suppression)> = linked
        .iter()
        .enumerate()
        .filter(|(_, cell)| cell.is_suppressed())
        .map(|(g, _)| (CellRef::ColTotal(g), Suppression::Linked))
        .collect();
    let table = CountTable::two_way(cats.len(), groups, counts.to_vec());
    // Cells of a group whose total is suppressed have no publishable share: take them first.
    let prefer: Vec<CellRef> = forced
        .iter()
        .filter_map(|(at, _)| match at {
            CellRef::ColTotal(g) => Some(*g),
            _ => None,
        })
        .flat_map(|g| (0..cats.len()).map(move |k| CellRef::Interior(k, g)))
        .collect();
    let t = protect_preferring(c.policy, &table, &forced, &prefer)?;
    let col_total = |g: usize| (0..cats.len()).map(|k| counts[k * groups + g]).sum::<u64>();
    for (k, cat) in cats.iter().enumerate() {
        for (g, name) in b.groups.iter().enumerate() {
            let cell = t.get(CellRef::Interior(k, g));
            rows.push(out.count(name, Some(cat), cell, unit));
            let ok = rate_publishable(cell, t.get(CellRef::ColTotal(g)));
            rows.push(out.estimate(
                name,
                Some(cat),
                "percent",
                "percent of the group",
                stats::wilson(counts[k * groups + g], col_total(g), 100.0),
                ok,
            ));
        }
        rows.push(out.count(ALL, Some(cat), t.get(CellRef::RowTotal(k)), unit));
    }
    for (g, name) in b.groups.iter().enumerate() {
        rows.push(out.count(name, Some(ALL), t.get(CellRef::ColTotal(g)), unit));
    }
    rows.push(out.count(ALL, Some(ALL), t.get(CellRef::Grand), unit));
    Ok(rows)
}
