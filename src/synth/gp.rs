//! GP records at the registered practice: EMIS Web (comma CSV, dd/mm/yyyy, SNOMED CT,
//! text ethnicity) and SystmOne (pipe-delimited, spaced headers, date-times, CTV3).

use chrono::{Duration, NaiveDate};

use super::codes::{CONDITIONS, DRUGS, OBSERVATIONS};
use super::history::{GpEvent, Issue};
use super::names::{ctv3_ethnicity_text, emis_ethnicity_text};
use super::people::Ctx;
use super::sinks::Spec;
use super::{PRACTICES, d_dmy, d_iso};

pub(super) const EMIS_PATIENTS: Spec = Spec::csv(
    "gp/emis/{ods}/patients_{date}.csv",
    &[
        "PatientGuid",
        "NHSNumber",
        "Forenames",
        "Surname",
        "DateOfBirth",
        "Sex",
        "Postcode",
        "EthnicOrigin",
    ],
);
pub(super) const EMIS_REGISTRATIONS: Spec = Spec::csv(
    "gp/emis/{ods}/registrations_{date}.csv",
    &[
        "PatientGuid",
        "NHSNumber",
        "DateOfBirth",
        "RegisteredDate",
        "DeregisteredDate",
        "RegistrationType",
    ],
);
pub(super) const EMIS_OBSERVATIONS: Spec = Spec::csv(
    "gp/emis/{ods}/observations_{date}.csv",
    &[
        "ObservationGuid",
        "PatientGuid",
        "EffectiveDate",
        "SnomedCTConceptId",
        "Value",
        "NumericUnit",
    ],
);
pub(super) const EMIS_MEDICATIONS: Spec = Spec::csv(
    "gp/emis/{ods}/medications_{date}.csv",
    &[
        "IssueRecordGuid",
        "PatientGuid",
        "IssueDate",
        "DmdCode",
        "DrugName",
        "Quantity",
        "CourseType",
    ],
);
pub(super) const S1_PATIENTS: Spec = Spec {
    path: "gp/systmone/F81010/SRPatient_{date}.csv",
    header: &[
        "Patient ID",
        "NHS Number",
        "First Name",
        "Surname",
        "Date Of Birth",
        "Gender",
        "Postcode",
        "Ethnicity",
    ],
    delimiter: b'|',
    latin1: false,
};
pub(super) const S1_CODES: Spec = Spec {
    path: "gp/systmone/F81010/SRCode_{date}.csv",
    header: &[
        "RowIdentifier",
        "IDPatient",
        "DateEvent",
        "CTV3Code",
        "NumericValue",
    ],
    delimiter: b'|',
    latin1: false,
};

pub(super) const S1_MEDICATIONS: Spec = Spec {
    path: "gp/systmone/F81010/SRPrimaryCareMedication_{date}.csv",
    header: &[
        "RowIdentifier",
        "IDPatient",
        "DateEvent",
        "DMDCode",
        "Drug",
        "Quantity",
        "IssueType",
    ],
    delimiter: b'|',
    latin1: false,
};

/// The person's record at their practice.
pub(super) fn write(c: &mut Ctx) -> std::io::Result<()> {
    let (ods, system) = PRACTICES[c.p.practice];
    let eth_recorded = c.rng.chance(0.70);
    let gp_local = format!("{}-{:07}", ods, c.p.n);
    let reg_start = c.world.as_of
        - Duration::days(30 + c.rng.below(365 * 15) as i64).min(c.world.as_of - c.p.dob);
    if system == "emis" {
        let e = PRACTICES
            .iter()
            .filter(|x| x.1 == "emis")
            .position(|x| x.0 == ods)
            .unwrap_or(0);
        let gp = Gp {
            e,
            provider: format!("emis-{}", ods.to_lowercase()),
            local: gp_local,
        };
        emis_patient(c, &gp, eth_recorded)?;
        emis_registration(c, &gp, reg_start)?;
        emis_observations(c, &gp)?;
        emis_medications(c, &gp)
    } else {
        systmone(c, eth_recorded)?;
        systmone_codes(c)?;
        systmone_medications(c)
    }
}

/// An EMIS practice record: which practice file, the provider id, the patient GUID.
struct Gp {
    e: usize,
    provider: String,
    local: String,
}

fn emis_patient(c: &mut Ctx, gp: &Gp, eth_recorded: bool) -> std::io::Result<()> {
    let p = c.p;
    let eth_text = if eth_recorded {
        emis_ethnicity_text(p.ethnicity)
    } else {
        ""
    };
    let dob = if c.rng.chance(0.05) {
        d_iso(p.dob)
    } else {
        d_dmy(p.dob)
    };
    let dob = if c.rng.chance(0.001) {
        "31/02/1980".to_string()
    } else {
        dob
    };
    let sex = if p.sex == 1 { "M" } else { "F" };
    let copies = if c.rng.chance(0.005) { 2 } else { 1 };
    for k in 0..copies {
        // A duplicate registration: new GUID, often with a name variant.
        let (guid, given, family) = if k == 0 {
            (gp.local.clone(), p.given.clone(), p.family.clone())
        } else {
            (format!("{}-DUP", gp.local), c.given_as(), c.family_as())
        };
        c.w.emis[gp.e].patients.row(&[
            &guid,
            &p.nhs,
            &given,
            &family,
            &dob,
            sex,
            &p.postcode,
            eth_text,
        ])?;
        c.truth_on(i32::MIN, &gp.provider, "patients", &guid)?;
    }
    Ok(())
}

fn emis_registration(c: &mut Ctx, gp: &Gp, reg_start: NaiveDate) -> std::io::Result<()> {
    let p = c.p;
    c.w.emis[gp.e].registrations.row(&[
        &gp.local,
        &p.nhs,
        &d_dmy(p.dob),
        &d_dmy(reg_start),
        "",
        "GMS",
    ])?;
    c.truth_on(i32::MIN, &gp.provider, "registrations", &gp.local)
}

/// The GP events in the extract: condition codes from onset (any date), observations
/// in the history window.
fn gp_events(c: &Ctx) -> Vec<(i32, GpEvent)> {
    c.h.gp
        .iter()
        .copied()
        .filter(|(d, e)| {
            *d <= c.world.last_extract && (matches!(e, GpEvent::Condition(_)) || c.in_extract(*d))
        })
        .collect()
}

/// A code and value of a GP event (SNOMED for EMIS, else CTV3), value and unit.
fn coded(c: &mut Ctx, e: GpEvent, snomed: bool) -> (&'static str, String, &'static str) {
    match e {
        GpEvent::Condition(k) => {
            let cond = &CONDITIONS[k];
            (
                if snomed { cond.snomed } else { cond.ctv3 },
                String::new(),
                "",
            )
        }
        GpEvent::Observation(o) => {
            let o = &OBSERVATIONS[o];
            let value = format!("{:.1}", o.3 + c.rng.f() * (o.4 - o.3));
            (if snomed { o.0 } else { o.1 }, value, o.2)
        }
    }
}

fn emis_observations(c: &mut Ctx, gp: &Gp) -> std::io::Result<()> {
    for (k, (d, e)) in gp_events(c).into_iter().enumerate() {
        let id = format!("{}-O{k}", gp.local);
        let (code, value, unit) = coded(c, e, true);
        let row = [
            id.as_str(),
            gp.local.as_str(),
            &d_dmy(c.date(d)),
            code,
            &value,
            unit,
        ];
        if c.rng.chance(0.00005) {
            c.w.emis[gp.e].observations.ragged_on(d, &row)?;
        } else {
            c.w.emis[gp.e].observations.row_on(d, &row)?;
        }
        c.truth_on(d, &gp.provider, "observations", &id)?;
    }
    Ok(())
}

/// Medication issues in the history window.
fn issues(c: &Ctx) -> Vec<Issue> {
    c.h.medications
        .iter()
        .copied()
        .filter(|i| c.in_extract(i.day) && i.day >= c.p.dob_day)
        .collect()
}

fn emis_medications(c: &mut Ctx, gp: &Gp) -> std::io::Result<()> {
    for (k, i) in issues(c).into_iter().enumerate() {
        let id = format!("{}-M{k}", gp.local);
        let (code, name, quantity) = DRUGS[i.drug];
        let date = d_dmy(c.date(i.day));
        c.w.emis[gp.e].medications.row_on(
            i.day,
            &[
                &id,
                &gp.local,
                &date,
                code,
                name,
                &quantity.to_string(),
                if i.repeat { "Repeat" } else { "Acute" },
            ],
        )?;
        c.truth_on(i.day, &gp.provider, "medications", &id)?;
    }
    Ok(())
}

fn s1_id(c: &Ctx) -> String {
    format!("{}", 500_000_000 + c.p.n)
}

fn systmone(c: &mut Ctx, eth_recorded: bool) -> std::io::Result<()> {
    let p = c.p;
    let s1_id = s1_id(c);
    let nhs_spaced = format!("{} {} {}", &p.nhs[..3], &p.nhs[3..6], &p.nhs[6..]);
    let eth = if eth_recorded {
        ctv3_ethnicity_text(p.ethnicity)
    } else {
        ""
    };
    let given = c.given_as();
    let family = c.family_as();
    c.w.s1_patients.row(&[
        &s1_id,
        &nhs_spaced,
        &given,
        &family,
        &format!("{} 00:00:00", d_iso(p.dob)),
        if p.sex == 1 { "Male" } else { "Female" },
        &p.postcode,
        eth,
    ])?;
    c.truth_on(i32::MIN, "systmone-f81010", "patients", &s1_id)
}

fn systmone_codes(c: &mut Ctx) -> std::io::Result<()> {
    let s1_id = s1_id(c);
    for (k, (d, e)) in gp_events(c).into_iter().enumerate() {
        let id = format!("{s1_id}-{k}");
        let (code, value, _) = coded(c, e, false);
        let at = format!("{} 10:{:02}:00", d_iso(c.date(d)), c.rng.below(60));
        c.w.s1_codes.row_on(d, &[&id, &s1_id, &at, code, &value])?;
        c.truth_on(d, "systmone-f81010", "coded_events", &id)?;
    }
    Ok(())
}

fn systmone_medications(c: &mut Ctx) -> std::io::Result<()> {
    let s1_id = s1_id(c);
    for (k, i) in issues(c).into_iter().enumerate() {
        let id = format!("{s1_id}-M{k}");
        let (code, name, quantity) = DRUGS[i.drug];
        let at = format!("{} 09:{:02}:00", d_iso(c.date(i.day)), c.rng.below(60));
        c.w.s1_medications.row_on(
            i.day,
            &[
                &id,
                &s1_id,
                &at,
                code,
                name,
                &quantity.to_string(),
                if i.repeat { "Repeat" } else { "Acute" },
            ],
        )?;
        c.truth_on(i.day, "systmone-f81010", "medications", &id)?;
    }
    Ok(())
}
