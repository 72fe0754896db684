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
    let mut days: Vec<i32> =
        c.h.community
            .iter()
            .copied()
            .filter(|d| c.in_extract(*d))
            .collect();
    days.sort();
    for (k, d) in days.into_iter().enumerate() {
        let id = format!("C{}-{k}", &p.id[1..]);
        let pc = c.postcode_as();
        let nhs = c.nhs_as(0.05);
        let dob = d_iso(c.dob_as());
        let eth = if c.rng.chance(0.8) { p.ethnicity } else { "99" };
        let date = d_iso(c.date(d));
        let service = c.rng.one(&["301", "302", "312", "345"]);
        let status = c.rng.one(&["5", "5", "5", "6", "2", "3"]);
        c.w.csds.row_on(
            d,
            &[
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
            ],
        )?;
        c.truth_on(d, "community-rya", "contacts", &id)?;
    }
    Ok(())
}
