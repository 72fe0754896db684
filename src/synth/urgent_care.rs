//! Urgent care: NHS 111 calls (Parquet) and ambulance incidents (CSV).

use super::people::Ctx;
use super::sinks::Spec;
use super::{d_dmy, d_iso};

/// Parquet, all columns text.
pub(super) const NHS111: Spec = Spec::csv(
    "urgent_care/nhs111/calls_{year}.parquet",
    &[
        "CallID",
        "NHSNumber",
        "DOB",
        "Sex",
        "Postcode",
        "CallStartTime",
        "Disposition",
    ],
);
pub(super) const AMBULANCE: Spec = Spec::csv(
    "urgent_care/ambulance/incidents_{year}.csv",
    &[
        "IncidentID",
        "NHSNo",
        "DateOfBirth",
        "Gender",
        "IncidentPostcode",
        "CallDateTime",
        "Category",
        "Outcome",
        "ConveyedToSite",
    ],
);

pub(super) fn write(c: &mut Ctx) -> std::io::Result<()> {
    calls_111(c)?;
    ambulance(c)
}

fn calls_111(c: &mut Ctx) -> std::io::Result<()> {
    let p = c.p;
    let mut days: Vec<i32> =
        c.h.calls_111
            .iter()
            .copied()
            .filter(|d| c.in_extract(*d))
            .collect();
    days.sort();
    for (k, d) in days.into_iter().enumerate() {
        let id = format!("111-{}-{k}", &p.id[1..]);
        let nhs = c.nhs_as(0.10);
        let t = c.date(d);
        let dob = d_iso(c.dob_as());
        let pc = c.postcode_as();
        let at = format!(
            "{} {:02}:{:02}:00",
            d_iso(t),
            c.rng.below(24),
            c.rng.below(60)
        );
        let disposition = c.rng.one(&["Dx02", "Dx05", "Dx11", "Dx75", "Dx06"]);
        c.w.nhs111.row_on(
            d,
            &[
                Some(&id),
                (!nhs.is_empty()).then_some(nhs.as_str()),
                Some(&dob),
                Some(if p.sex == 1 { "M" } else { "F" }),
                Some(&pc),
                Some(&at),
                Some(disposition),
            ],
        )?;
        c.truth_on(d, "nhs111-nwas", "calls", &id)?;
    }
    Ok(())
}

fn ambulance(c: &mut Ctx) -> std::io::Result<()> {
    let p = c.p;
    let mut incidents: Vec<(i32, bool)> =
        c.h.ambulance
            .iter()
            .copied()
            .filter(|x| c.in_extract(x.0))
            .collect();
    incidents.sort();
    for (k, (d, conveyed)) in incidents.into_iter().enumerate() {
        let id = format!("AMB-{}-{k}", &p.id[1..]);
        let nhs = c.nhs_as(0.15);
        let t = c.date(d);
        let outcome = if conveyed {
            "CONVEY"
        } else {
            c.rng.one(&["ST", "HT", "HT"])
        };
        let dob = d_dmy(c.dob_as());
        let pc = c.postcode_as();
        let at = format!("{} {:02}:{:02}", d_dmy(t), c.rng.below(24), c.rng.below(60));
        let category = c.rng.one(&["C1", "C2", "C2", "C3", "C4"]);
        c.w.ambulance.row_on(
            d,
            &[
                &id,
                &nhs,
                &dob,
                if p.sex == 1 { "M" } else { "F" },
                &pc,
                &at,
                category,
                outcome,
                if outcome == "CONVEY" { "RXX01" } else { "" },
            ],
        )?;
        c.truth_on(d, "ambulance-yas", "incidents", &id)?;
    }
    Ok(())
}
