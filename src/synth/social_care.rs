//! Adult social care (ASC-CLD-like events): latin-1, 2021-census ethnicity text, the
//! NHS number often blank, accented names only here.

use super::d_dmy;
use super::health::YEAR;
use super::history::CareEvent;
use super::names::{ACCENTED, asc_ethnicity_text};
use super::people::Ctx;
use super::sinks::Spec;

pub(super) const ASC_CLD: Spec = Spec {
    path: "social_care/E08000035/asc_cld_{year}.csv",
    header: &[
        "LA_Person_Unique_Identifier",
        "Forename",
        "Surname",
        "NHS_Number",
        "Date_of_Birth",
        "Gender",
        "Ethnicity",
        "Postcode",
        "Event_Type",
        "Event_Start_Date",
        "Event_End_Date",
        "Service_Type",
        "Service_Component",
        "Primary_Support_Reason",
        "Unit_Cost",
        "Cost_Frequency",
        "Planned_units_per_week",
    ],
    delimiter: b',',
    latin1: true,
};

const SUPPORT_REASONS: &[&str] = &[
    "Physical Support: Personal Care Support",
    "Memory and Cognition Support",
    "Physical Support: Access and Mobility Only",
];

/// The person as the local authority holds them.
struct Client {
    la_id: String,
    nhs: String,
    given: String,
    family: String,
}

pub(super) fn write(c: &mut Ctx) -> std::io::Result<()> {
    let p = c.p;
    let events: Vec<CareEvent> =
        c.h.social_care
            .iter()
            .copied()
            .filter(|e| c.in_extract(e.start))
            .collect();
    if events.is_empty() {
        return Ok(());
    }
    let la_id = format!("LA{:07}", p.n * 3 + 1);
    let nhs = c.nhs_as(0.40);
    // Accented names survive only in the latin-1 extract.
    let given = ACCENTED
        .iter()
        .find(|(plain, _)| *plain == p.given)
        .map(|(_, a)| a.to_string())
        .unwrap_or_else(|| c.given_as());
    let family = c.family_as();
    let client = Client {
        la_id,
        nhs,
        given,
        family,
    };
    for e in events {
        event_row(c, &client, &e)?;
    }
    Ok(())
}

fn service_type(c: &Ctx, e: &CareEvent) -> &'static str {
    match e.kind {
        "Assessment" => "Short Term Support",
        "Service" => {
            let age = f64::from(e.start - c.p.dob_day) / YEAR;
            if c.p.health.frailty_at(age, e.start) > 0.6 {
                "Long Term Support: Residential"
            } else {
                "Long Term Support: Community"
            }
        }
        _ => "Long Term Support: Community",
    }
}

fn event_row(c: &mut Ctx, cl: &Client, e: &CareEvent) -> std::io::Result<()> {
    let p = c.p;
    let event = e.kind;
    let start = c.date(e.start);
    let end_date = e.end.map(|d| (d, d_dmy(c.date(d))));
    let id = format!("{}|{event}|{}", cl.la_id, d_dmy(start));
    let dob = d_dmy(c.dob_as());
    let pc = c.postcode_as();
    let reason = c.rng.one(SUPPORT_REASONS);
    let cost = format!("{:.2}", 150.0 + c.rng.f() * 800.0);
    let units = format!("{}", 2 + c.rng.below(20));
    let (start_text, service) = (d_dmy(start), service_type(c, e));
    // An end after a delivery's extract date is not known in that delivery.
    c.w.asc.row_each(e.start, |extract| {
        let end = match &end_date {
            Some((d, text)) if *d <= extract => text.as_str(),
            _ => "",
        };
        let row: Vec<&str> = vec![
            &cl.la_id,
            &cl.given,
            &cl.family,
            &cl.nhs,
            &dob,
            if p.sex == 1 { "Male" } else { "Female" },
            asc_ethnicity_text(p.ethnicity),
            &pc,
            event,
            &start_text,
            end,
            service,
            if event == "Service" { "Home Care" } else { "" },
            reason,
            &cost,
            if event == "Service" {
                "Weekly"
            } else {
                "One-off"
            },
            &units,
        ];
        row.into_iter().map(String::from).collect()
    })?;
    c.truth_on(e.start, "social-care-e08000035", "events", &id)
}
