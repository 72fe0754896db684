//! Where the synthetic people live: the real LSOAs of one local authority (IMD 2019) and
//! synthetic postcodes in them, with the clearly marked postcode → LSOA lookup.

use std::path::Path;

use super::sinks::{Csv, Spec};
use crate::refdata::ImdRow;

/// Synthetic postcodes per LSOA.
const PER_LSOA: usize = 12;
const INWARD: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
const LOOKUP: Spec = Spec::csv("postcode_lsoa11_SYNTHETIC.csv", &["postcode", "lsoa11"]);
const README: &str = "postcode_lsoa11_SYNTHETIC.csv is SYNTHETIC: made-up postcodes assigned to real LSOA 2011 codes of the chosen local authority.\n\
     It is not the ONS Postcode Directory and must never be used for real data. onboard's loader also reads the ONSPD format (pcds, lsoa11).\n";

/// The LSOAs of the local authority and their synthetic postcodes.
pub(super) struct Places {
    pub lsoas: Vec<ImdRow>,
    pub postcodes: Vec<Vec<String>>,
}

impl Places {
    pub(super) fn of(lad_code: &str) -> Result<Places, String> {
        let lsoas: Vec<ImdRow> = crate::refdata::imd2019()?
            .into_iter()
            .filter(|r| r.lad_code == lad_code)
            .collect();
        if lsoas.is_empty() {
            return Err(format!("no LSOAs for local authority {lad_code}"));
        }
        let postcodes = (0..lsoas.len()).map(postcodes_of).collect();
        Ok(Places { lsoas, postcodes })
    }

    /// Write the synthetic lookup and its README under `reference`.
    pub(super) fn write_lookup(&self, reference: &Path) -> std::io::Result<()> {
        let mut lk = Csv::create(&reference.join(LOOKUP.path), &LOOKUP)?;
        for (i, pcs) in self.postcodes.iter().enumerate() {
            for p in pcs {
                lk.row(&[p, &self.lsoas[i].lsoa11])?;
            }
        }
        lk.finish()?;
        std::fs::write(reference.join("README.txt"), README)
    }
}

/// Postcodes shaped like real ones (LS<district> <digit><letters>), unique per LSOA.
fn postcodes_of(i: usize) -> Vec<String> {
    (0..PER_LSOA)
        .map(|k| {
            let n = i * PER_LSOA + k;
            format!(
                "LS{} {}{}{}",
                n % 29 + 1,
                (n / 29) % 10,
                INWARD[(n / 290) % 20] as char,
                INWARD[(n / 5800 + k) % 20] as char
            )
        })
        .collect()
}
