//! Mental health services (MHSDS-like care contacts, NDJSON, gender identity codes).

use serde_json::{Value, json};

use super::d_iso;
use super::people::Ctx;
use super::sinks::Spec;

/// NDJSON: only the path is used.
pub(super) const MHSDS: Spec = Spec::csv("mental_health/RXA/mhsds_contacts_{year}.ndjson", &[]);

pub(super) fn write(c: &mut Ctx) -> std::io::Result<()> {
    let p = c.p;
    let mut days: Vec<i32> =
        c.h.mental_health
            .iter()
            .copied()
            .filter(|d| c.in_extract(*d))
            .collect();
    days.sort();
    for (k, d) in days.into_iter().enumerate() {
        let id = format!("M{}-{k}", &p.id[1..]);
        let nhs = c.nhs_as(0.05);
        let dob = d_iso(c.dob_as());
        let gender = if c.rng.chance(0.02) {
            "Z".to_string()
        } else {
            p.sex.to_string()
        };
        let pc = c.postcode_as();
        let date = d_iso(c.date(d));
        let team = c.rng.one(&["A05", "C02", "C10", "E01"]);
        let attend = c.rng.one(&["5", "5", "6", "7", "2"]);
        let obj = json!({
            "CareContactId": id,
            "NHSNumber": if nhs.is_empty() { Value::Null } else { Value::String(nhs) },
            "PersonBirthDate": dob, "GenderIdentity": gender,
            "EthnicCategory": p.ethnicity, "Postcode": pc, "CareContDate": date,
            "ServTeamTypeRefToMH": team, "AttendOrDNACode": attend,
        });
        c.w.mhsds.row_on(d, &obj)?;
        c.truth_on(d, "mental-health-rxa", "contacts", &id)?;
    }
    Ok(())
}
