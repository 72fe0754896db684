//! The acute trust: SUS APC spells with a diagnosis-per-row file, SUS outpatient
//! attendances and ECDS emergency care attendances.

use chrono::NaiveDate;

use super::codes::{CONDITIONS, ELECTIVE_PRIMARY, EMERGENCY_PRIMARY, EXACERBATIONS, HFRS_CODES};
use super::d_iso;
use super::health::YEAR;
use super::history::Spell;
use super::people::Ctx;
use super::sinks::Spec;

pub(super) const APC_SPELLS: Spec = Spec::csv(
    "acute/RXX/apc_spells_{year}.csv",
    &[
        "SpellID",
        "NHSNumber",
        "LocalPatientID",
        "DOB",
        "Sex",
        "Postcode",
        "EthnicCategory",
        "AdmissionDate",
        "DischargeDate",
        "AdmissionMethod",
        "AdmissionSource",
        "DischargeMethod",
        "HRG",
        "Cost",
        "SiteCode",
    ],
);
pub(super) const APC_DIAGNOSES: Spec = Spec::csv(
    "acute/RXX/apc_diagnoses_{year}.csv",
    &[
        "SpellID",
        "LocalPatientID",
        "Position",
        "ICD10",
        "DiagnosisDate",
    ],
);
pub(super) const OP_ATTENDANCES: Spec = Spec::csv(
    "acute/RXX/op_attendances_{year}.csv",
    &[
        "AttendanceID",
        "NHSNumber",
        "LocalPatientID",
        "DOB",
        "Sex",
        "Postcode",
        "AppointmentDate",
        "AttendanceStatus",
        "FirstAttendance",
        "TreatmentFunction",
        "HRG",
        "Cost",
    ],
);
pub(super) const ECDS: Spec = Spec::csv(
    "acute/RXX/ecds_{year}.csv",
    &[
        "ECDS_ID",
        "NHS_NUMBER",
        "LOCAL_PATIENT_ID",
        "PERSON_BIRTH_DATE",
        "STATED_GENDER",
        "POSTCODE",
        "ETHNIC_CATEGORY",
        "ARRIVAL_DATE",
        "ARRIVAL_TIME",
        "DEPARTURE_DATE",
        "DEPARTMENT_TYPE",
        "ATTENDANCE_CATEGORY",
        "CHIEF_COMPLAINT",
        "ACUITY",
        "DISCHARGE_STATUS",
        "COST",
    ],
);

/// The hospital number of the person at the trust.
fn hospital_number(c: &Ctx) -> String {
    format!("H{:07}", c.p.n)
}

/// How the person appears in one acute record.
struct Recorded {
    nhs: String,
    dob: NaiveDate,
}

/// Spell ids in admission order over the whole stream (the truth uses the same).
pub(super) fn spell_id(person: &str, k: usize) -> String {
    format!("S{}-{}", &person[1..], k + 1)
}

/// Spells admitted by the extract date (and not yet discharged ones, with no
/// discharge date), their diagnoses, outpatients, A&E.
pub(super) fn write(c: &mut Ctx) -> std::io::Result<()> {
    let hosp = hospital_number(c);
    let h = c.h;
    for (k, s) in h.spells.iter().enumerate() {
        if c.in_extract(s.day) {
            spell(c, &hosp, &spell_id(&c.p.id, k), s)?;
        }
    }
    outpatients(c, &hosp)?;
    for (k, &(d, admitted)) in h.ecds.iter().enumerate() {
        if c.in_extract(d) {
            let nhs = c.nhs_as(if admitted { 0.03 } else { 0.04 });
            let dob = c.dob_as();
            let id = format!("E{}-{k}", &c.p.id[1..]);
            ecds(c, &hosp, &id, d, admitted, &Recorded { nhs, dob })?;
        }
    }
    Ok(())
}

fn spell(c: &mut Ctx, hosp: &str, id: &str, s: &Spell) -> std::io::Result<()> {
    let p = c.p;
    let los = s.discharge - s.day;
    let eth = if c.rng.chance(0.92) { p.ethnicity } else { "" };
    let cost = format!(
        "{:.2}",
        if s.emergency {
            1800.0 + f64::from(los) * 420.0
        } else {
            950.0 + c.rng.f() * 1500.0
        }
    );
    let dob = c.dob_as();
    let nhs = c.nhs_as(0.03);
    let pc = c.postcode_as();
    let adm_at = format!(
        "{} {:02}:{:02}",
        d_iso(c.date(s.day)),
        c.rng.below(24),
        c.rng.below(60)
    );
    let discharge_date = d_iso(c.date(s.discharge));
    let (sex, dob) = (p.sex.to_string(), d_iso(dob));
    // Not yet discharged at an extract date: no discharge date or method in that delivery.
    c.w.apc_spells.row_each(s.day, |extract| {
        let discharged = s.discharge <= extract;
        let row: Vec<&str> = vec![
            id,
            &nhs,
            hosp,
            &dob,
            &sex,
            &pc,
            eth,
            &adm_at,
            if discharged { &discharge_date } else { "" },
            s.method,
            if s.emergency { "19" } else { "51" },
            if discharged { "1" } else { "" },
            if s.emergency { "FD01A" } else { "HC12B" },
            &cost,
            "RXX01",
        ];
        row.into_iter().map(String::from).collect()
    })?;
    c.truth_on(s.day, "acute-rxx", "spells", id)?;
    diagnoses(c, hosp, id, s)
}

/// The diagnoses of a spell: the presenting problem (an exacerbation of a condition the
/// person has, when there is one), the conditions present, and frailty codes.
fn spell_codes(c: &mut Ctx, s: &Spell) -> Vec<&'static str> {
    let health = &c.p.health;
    let present: Vec<usize> = health.conditions_at(s.day).collect();
    let mut codes = Vec::new();
    let exacerbation = EXACERBATIONS
        .iter()
        .find(|(k, _)| present.iter().any(|&i| CONDITIONS[i].key == *k));
    codes.push(match exacerbation {
        Some((_, code)) if s.emergency && c.rng.chance(0.4) => *code,
        _ if s.emergency => c.rng.one(EMERGENCY_PRIMARY),
        _ => c.rng.one(ELECTIVE_PRIMARY),
    });
    for i in present {
        if c.rng.chance(0.85) && !codes.contains(&CONDITIONS[i].icd10) {
            codes.push(CONDITIONS[i].icd10);
        }
    }
    let age = f64::from(s.day - c.p.dob_day) / YEAR;
    let frailty = health.frailty_at(age, s.day);
    for code in HFRS_CODES {
        if c.rng.chance(0.3 * frailty) && !codes.contains(code) {
            codes.push(code);
        }
    }
    codes
}

fn diagnoses(c: &mut Ctx, hosp: &str, id: &str, s: &Spell) -> std::io::Result<()> {
    let date = d_iso(c.date(s.day));
    for (pos, code) in spell_codes(c, s).into_iter().enumerate() {
        let code = if c.rng.chance(0.5) {
            code.replace('.', "")
        } else {
            code.to_string()
        };
        let pos = (pos + 1).to_string();
        c.w.apc_diagnoses
            .row_on(s.day, &[id, hosp, &pos, &code, &date])?;
        c.truth_on(s.day, "acute-rxx", "diagnoses", &format!("{id}-{pos}"))?;
    }
    Ok(())
}

fn outpatients(c: &mut Ctx, hosp: &str) -> std::io::Result<()> {
    let p = c.p;
    let mut days: Vec<i32> =
        c.h.outpatients
            .iter()
            .copied()
            .filter(|d| c.in_extract(*d))
            .collect();
    days.sort();
    for (k, d) in days.into_iter().enumerate() {
        let id = format!("OP{}-{k}", &p.id[1..]);
        let first = if k == 0 {
            "1"
        } else {
            c.rng.one(&["2", "2", "4"])
        };
        let status = c.rng.one(&["5", "5", "5", "5", "6", "3", "2", "7"]);
        let nhs = c.nhs_as(0.03);
        let dob = c.dob_as();
        let pc = c.postcode_as();
        let function = c
            .rng
            .one(&["100", "110", "300", "320", "330", "340", "430"]);
        let cost = format!("{:.2}", 120.0 + c.rng.f() * 160.0);
        c.w.op.row_on(
            d,
            &[
                &id,
                &nhs,
                hosp,
                &d_iso(dob),
                &p.sex.to_string(),
                &pc,
                &d_iso(c.date(d)),
                status,
                first,
                function,
                "WF01A",
                &cost,
            ],
        )?;
        c.truth_on(d, "acute-rxx-op", "attendances", &id)?;
    }
    Ok(())
}

fn ecds(
    c: &mut Ctx,
    hosp: &str,
    id: &str,
    on: i32,
    admitted: bool,
    r: &Recorded,
) -> std::io::Result<()> {
    let p = c.p;
    let date = c.date(on);
    let dept = if admitted {
        "01"
    } else {
        c.rng.one(&["01", "01", "01", "03", "03", "04", "05"])
    };
    let gender = match p.sex {
        1 => "1",
        _ if c.rng.chance(0.01) => "X",
        _ => "2",
    };
    let eth = if c.rng.chance(0.85) { p.ethnicity } else { "" };
    let day = date.format("%Y%m%d").to_string();
    let time = format!("{:02}:{:02}", c.rng.below(24), c.rng.below(60));
    let complaint = c
        .rng
        .one(&["21522001", "29857009", "267036007", "422587007"]);
    let acuity = c
        .rng
        .one(&["1077251000000100", "1077241000000103", "1064891000000107"]);
    let cost = format!("{:.2}", 180.0 + c.rng.f() * 250.0);
    c.w.ecds.row_on(
        on,
        &[
            id,
            &r.nhs,
            hosp,
            &r.dob.format("%Y%m%d").to_string(),
            gender,
            &p.postcode,
            eth,
            &day,
            &time,
            &day,
            dept,
            "1",
            complaint,
            acuity,
            if admitted { "306706006" } else { "182992009" },
            &cost,
        ],
    )?;
    c.truth_on(on, "acute-rxx-ecds", "attendances", id)
}
