//! Community services (CSDS-like contacts) for older multimorbid and frail people.

use super::d_iso;
use super::people::Ctx;
use super::sinks::Spec;

pub(super) const CSDS: Spec = Spec::csv(
    "community/RYA/csds_contacts_{year}.csv",
    &[
        "CareContactID",
        "NHSNumber",
        "PersonBirthDate",
        "Gender",
        "Postcode",
        "EthnicCategory",
        "CareContactDate",
        "ServiceTypeReferredTo",
        "ConsultationMediumUsed",
        "AttendanceStatus",
    ],
);

pub(super) fn write(c: &mut Ctx) -> std::io::Result<()> {
    let p = c.p;
    if !(p.age >= 65 && p.conditions.len() >= 2 || c.rng.chance(0.03)) {
        return Ok(());
    }
    for k in 0..c.rng.poisson(1.0 + 2.0 * p.frailty) {
        let id = format!("C{}-{k}", &p.id[1..]);
        let pc = c.postcode_as();
        let nhs = c.nhs_as(0.05);
        let dob = d_iso(c.dob_as());
        let eth = if c.rng.chance(0.8) { p.ethnicity } else { "99" };
        let date = d_iso(c.day_in_last(365));
        let service = c.rng.one(&["301", "302", "312", "345"]);
        let status = c.rng.one(&["5", "5", "5", "6", "2", "3"]);
        c.w.csds.row(&[
            &id,
            &nhs,
            &dob,
            &p.sex.to_string(),
            &pc,
            eth,
            &date,
            service,
            "01",
            status,
        ])?;
        c.truth("community-rya", "contacts", &id)?;
    }
    Ok(())
}
