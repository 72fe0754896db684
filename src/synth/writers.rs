//! Every extract file of one synthetic ICS, opened together, counted and committed
//! together.

use std::collections::BTreeMap;

use super::sinks::{Csv, FileNames, Ndjson, ParquetSink, Spec, Target};
use super::{PRACTICES, acute, community, gp, mental_health, social_care, truth, urgent_care};

/// The extracts of one EMIS practice.
pub(super) struct EmisFiles {
    pub patients: Csv,
    pub registrations: Csv,
    pub observations: Csv,
    pub medications: Csv,
}

/// All open extract files.
pub(super) struct Writers {
    pub emis: Vec<EmisFiles>,
    pub s1_patients: Csv,
    pub s1_codes: Csv,
    pub s1_medications: Csv,
    pub apc_spells: Csv,
    pub apc_diagnoses: Csv,
    pub op: Csv,
    pub ecds: Csv,
    pub csds: Csv,
    pub mhsds: Ndjson,
    pub asc: Csv,
    pub nhs111: ParquetSink,
    pub ambulance: Csv,
    pub truth: truth::TruthFiles,
}

impl Writers {
    /// Open every extract of every delivery (the base extract first), and the truth.
    pub(super) fn create(
        deliveries: &[(FileNames, i32)],
        truth_dir: &FileNames,
    ) -> std::io::Result<Writers> {
        let targets = |spec: &Spec, ods: &str| -> Vec<Target> {
            deliveries
                .iter()
                .map(|(n, d)| (n.path(spec, ods), *d))
                .collect()
        };
        let csv = |spec: &Spec| Csv::create_each(&targets(spec, ""), spec);
        let emis_csv = |spec: &Spec, ods: &str| Csv::create_each(&targets(spec, ods), spec);
        let emis = PRACTICES
            .iter()
            .filter(|p| p.1 == "emis")
            .map(|(ods, _)| {
                Ok(EmisFiles {
                    patients: emis_csv(&gp::EMIS_PATIENTS, ods)?,
                    registrations: emis_csv(&gp::EMIS_REGISTRATIONS, ods)?,
                    observations: emis_csv(&gp::EMIS_OBSERVATIONS, ods)?,
                    medications: emis_csv(&gp::EMIS_MEDICATIONS, ods)?,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Writers {
            emis,
            s1_patients: csv(&gp::S1_PATIENTS)?,
            s1_codes: csv(&gp::S1_CODES)?,
            s1_medications: csv(&gp::S1_MEDICATIONS)?,
            apc_spells: csv(&acute::APC_SPELLS)?,
            apc_diagnoses: csv(&acute::APC_DIAGNOSES)?,
            op: csv(&acute::OP_ATTENDANCES)?,
            ecds: csv(&acute::ECDS)?,
            csds: csv(&community::CSDS)?,
            mhsds: Ndjson::create_each(&targets(&mental_health::MHSDS, ""))?,
            asc: csv(&social_care::ASC_CLD)?,
            nhs111: ParquetSink::create_each(
                &targets(&urgent_care::NHS111, ""),
                urgent_care::NHS111.header,
            )?,
            ambulance: csv(&urgent_care::AMBULANCE)?,
            truth: truth::TruthFiles::create(
                truth_dir,
                deliveries.first().map_or(i32::MAX, |d| d.1),
                &deliveries
                    .iter()
                    .skip(1)
                    .map(|(n, d)| {
                        let t = &n.date;
                        (format!("{}-{}-{}", &t[..4], &t[4..6], &t[6..]), *d)
                    })
                    .collect::<Vec<_>>(),
            )?,
        })
    }

    /// Rows written per source (the keys of `synth.json`).
    pub(super) fn counts(&self) -> BTreeMap<String, u64> {
        let emis = |f: fn(&EmisFiles) -> &Csv| self.emis.iter().map(|e| f(e).rows).sum::<u64>();
        [
            ("gp/emis/patients", emis(|e| &e.patients)),
            ("gp/emis/registrations", emis(|e| &e.registrations)),
            ("gp/emis/observations", emis(|e| &e.observations)),
            ("gp/emis/medications", emis(|e| &e.medications)),
            ("gp/systmone/patients", self.s1_patients.rows),
            ("gp/systmone/coded_events", self.s1_codes.rows),
            ("gp/systmone/medications", self.s1_medications.rows),
            ("acute/apc_spells", self.apc_spells.rows),
            ("acute/apc_diagnoses", self.apc_diagnoses.rows),
            ("acute/op_attendances", self.op.rows),
            ("acute/ecds", self.ecds.rows),
            ("community/csds_contacts", self.csds.rows),
            ("mental_health/mhsds_contacts", self.mhsds.rows),
            ("social_care/asc_cld", self.asc.rows),
            ("urgent_care/nhs111_calls", self.nhs111.rows),
            ("urgent_care/ambulance_incidents", self.ambulance.rows),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Flush and move every file into place.
    pub(super) fn finish(self) -> std::io::Result<()> {
        for e in self.emis {
            e.patients.finish()?;
            e.registrations.finish()?;
            e.observations.finish()?;
            e.medications.finish()?;
        }
        for c in [
            self.s1_patients,
            self.s1_codes,
            self.s1_medications,
            self.apc_spells,
            self.apc_diagnoses,
            self.op,
            self.ecds,
            self.csds,
            self.asc,
            self.ambulance,
        ] {
            c.finish()?;
        }
        self.mhsds.finish()?;
        self.nhs111.finish()?;
        self.truth.finish()
    }
}
