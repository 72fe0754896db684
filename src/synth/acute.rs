//! The acute trust: SUS APC spells with a diagnosis-per-row file, SUS outpatient
//! attendances and ECDS emergency care attendances.

use chrono::{Duration, NaiveDate};

use super::people::Ctx;
use super::sinks::Spec;
use super::{CONDITIONS, d_iso};

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

/// A spell to write.
struct Spell {
    adm: NaiveDate,
    dis: NaiveDate,
    los: usize,
    emergency: bool,
}

/// Spells (emergency history and electives), their diagnoses, outpatients, A&E.
pub(super) fn write(c: &mut Ctx) -> std::io::Result<()> {
    let hosp = hospital_number(c);
    let p = c.p;
    let electives = c.rng.poisson(0.04 + 0.03 * p.conditions.len() as f64);
    let mut spell_no = 0;
    for k in 0..(p.prior_emergency + electives) {
        let emergency = k < p.prior_emergency;
        let adm = c.day_in_last(365);
        let los = if emergency {
            c.rng.poisson(4.0 + 3.0 * p.frailty)
        } else {
            c.rng.poisson(0.6)
        };
        let dis = adm + Duration::days(los as i64);
        if dis > c.world.as_of {
            continue;
        }
        spell_no += 1;
        let id = format!("S{}-{spell_no}", &p.id[1..]);
        let s = Spell {
            adm,
            dis,
            los,
            emergency,
        };
        spell(c, &hosp, &id, &s)?;
    }
    outpatients(c, &hosp)?;
    for _ in 0..c
        .rng
        .poisson(0.12 + 0.08 * p.conditions.len() as f64 + 0.3 * p.prior_emergency as f64)
    {
        let nhs = c.nhs_as(0.04);
        let dob = c.dob_as();
        let date = c.day_in_last(365);
        ecds(c, &hosp, date, false, &Recorded { nhs, dob })?;
    }
    Ok(())
}

fn spell(c: &mut Ctx, hosp: &str, id: &str, s: &Spell) -> std::io::Result<()> {
    let p = c.p;
    let method = if s.emergency {
        c.rng.one(&["21", "21", "21", "22", "2A", "2B", "2D", "24"])
    } else {
        c.rng.one(&["11", "12", "13"])
    };
    let eth = if c.rng.chance(0.92) { p.ethnicity } else { "" };
    let cost = format!(
        "{:.2}",
        if s.emergency {
            1800.0 + s.los as f64 * 420.0
        } else {
            950.0 + c.rng.f() * 1500.0
        }
    );
    let dob = c.dob_as();
    let nhs = c.nhs_as(0.03);
    let pc = c.postcode_as();
    let adm_at = format!(
        "{} {:02}:{:02}",
        d_iso(s.adm),
        c.rng.below(24),
        c.rng.below(60)
    );
    c.w.apc_spells.row(&[
        id,
        &nhs,
        hosp,
        &d_iso(dob),
        &p.sex.to_string(),
        &pc,
        eth,
        &adm_at,
        &d_iso(s.dis),
        method,
        if s.emergency { "19" } else { "51" },
        "1",
        if s.emergency { "FD01A" } else { "HC12B" },
        &cost,
        "RXX01",
    ])?;
    c.truth("acute-rxx", "spells", id)?;
    diagnoses(c, hosp, id, s.adm)?;
    if method == "21" {
        ecds(c, hosp, s.adm, true, &Recorded { nhs, dob })?;
    }
    Ok(())
}

fn diagnoses(c: &mut Ctx, hosp: &str, id: &str, adm: NaiveDate) -> std::io::Result<()> {
    let conds = &c.p.conditions;
    let n_diag = 1 + c.rng.below(3).min(conds.len());
    for pos in 1..=n_diag {
        let code = if pos <= conds.len() {
            CONDITIONS[conds[pos - 1]].1
        } else {
            "R69.X"
        };
        let code = if c.rng.chance(0.5) {
            code.replace('.', "")
        } else {
            code.to_string()
        };
        c.w.apc_diagnoses
            .row(&[id, hosp, &pos.to_string(), &code, &d_iso(adm)])?;
        c.truth("acute-rxx", "diagnoses", &format!("{id}-{pos}"))?;
    }
    Ok(())
}

fn outpatients(c: &mut Ctx, hosp: &str) -> std::io::Result<()> {
    let p = c.p;
    for k in 0..c.rng.poisson(0.25 + 0.35 * p.conditions.len() as f64) {
        let id = format!("OP{}-{k}", &p.id[1..]);
        let date = c.day_in_last(365);
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
        c.w.op.row(&[
            &id,
            &nhs,
            hosp,
            &d_iso(dob),
            &p.sex.to_string(),
            &pc,
            &d_iso(date),
            status,
            first,
            function,
            "WF01A",
            &cost,
        ])?;
        c.truth("acute-rxx-op", "attendances", &id)?;
    }
    Ok(())
}

fn ecds(
    c: &mut Ctx,
    hosp: &str,
    date: NaiveDate,
    admitted: bool,
    r: &Recorded,
) -> std::io::Result<()> {
    let p = c.p;
    let id = format!("E{}-{}", &p.id[1..], c.w.ecds.rows);
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
    c.w.ecds.row(&[
        &id,
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
    ])?;
    c.truth("acute-rxx-ecds", "attendances", &id)
}
