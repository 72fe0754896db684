//! Reference data: deprivation by LSOA and postcode → LSOA lookups, read in their
//! published formats.
//!
//! * IMD 2019 (MHCLG "File 1", OGL v3): a copy ships in
//!   `examples/northshire/reference/imd2019/` and is embedded in the binary. The loader
//!   takes the published CSV as is: byte-order mark, quoted ranks with thousands
//!   separators (`"29,199"`), decile 1 = most deprived.
//! * Postcode → LSOA: the synthetic lookup that `onboard synth` writes (`postcode,lsoa11`)
//!   or the ONS Postcode Directory's published CSV (`pcd`/`pcd2`/`pcds` … `lsoa11` …).

use std::collections::HashMap;
use std::path::Path;

/// The embedded IMD 2019 file.
pub const IMD2019_CSV: &str =
    include_str!("../examples/northshire/reference/imd2019/IMD2019_LSOA11_England.csv");

/// One LSOA's deprivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdRow {
    pub lsoa11: String,
    pub lsoa_name: String,
    pub lad_code: String,
    pub lad_name: String,
    pub rank: u32,
    pub decile: u8,
}

fn records(text: &str) -> Result<(Vec<String>, Vec<csv::StringRecord>), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for r in rdr.records() {
        rows.push(r.map_err(|e| e.to_string())?);
    }
    Ok((header, rows))
}

fn find(header: &[String], names: &[&str]) -> Option<usize> {
    header
        .iter()
        .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
}

/// Parse the IMD 2019 "File 1" CSV.
pub fn parse_imd2019(text: &str) -> Result<Vec<ImdRow>, String> {
    let (header, rows) = records(text)?;
    let col = |names: &[&str]| {
        find(&header, names).ok_or_else(|| format!("IMD file has no column {}", names[0]))
    };
    let (c_lsoa, c_name, c_lad, c_ladn, c_rank, c_dec) = (
        col(&["LSOA code (2011)"])?,
        col(&["LSOA name (2011)"])?,
        col(&["Local Authority District code (2019)"])?,
        col(&["Local Authority District name (2019)"])?,
        col(&[
            "Index of Multiple Deprivation (IMD) Rank",
            "Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived)",
        ])?,
        col(&[
            "Index of Multiple Deprivation (IMD) Decile",
            "Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs)",
        ])?,
    );
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let get = |c: usize| r.get(c).unwrap_or("").trim().to_string();
            let rank: u32 = get(c_rank)
                .replace(',', "")
                .parse()
                .map_err(|_| format!("IMD row {}: bad rank `{}`", i + 2, get(c_rank)))?;
            let decile: u8 = get(c_dec)
                .parse()
                .map_err(|_| format!("IMD row {}: bad decile `{}`", i + 2, get(c_dec)))?;
            if !(1..=10).contains(&decile) {
                return Err(format!("IMD row {}: decile {decile} outside 1..10", i + 2));
            }
            Ok(ImdRow {
                lsoa11: get(c_lsoa),
                lsoa_name: get(c_name),
                lad_code: get(c_lad),
                lad_name: get(c_ladn),
                rank,
                decile,
            })
        })
        .collect()
}

/// The embedded IMD 2019.
pub fn imd2019() -> Result<Vec<ImdRow>, String> {
    parse_imd2019(IMD2019_CSV)
}

/// Normalise a postcode for lookups (upper case, no spaces).
fn key(pc: &str) -> String {
    pc.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Postcode → LSOA 2011 from a synthetic lookup (`postcode,lsoa11`) or the ONS Postcode
/// Directory CSV (`pcds` or `pcd`, and `lsoa11`). Postcodes are matched without spaces.
pub fn load_postcode_lookup(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_postcode_lookup(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse_postcode_lookup(text: &str) -> Result<HashMap<String, String>, String> {
    let (header, rows) = records(text)?;
    let pc = find(&header, &["postcode", "pcds", "pcd", "pcd2"])
        .ok_or("no postcode column (postcode, pcds, pcd or pcd2)")?;
    let lsoa = find(&header, &["lsoa11", "lsoa11cd"]).ok_or("no lsoa11 column")?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((key(r.get(pc)?), r.get(lsoa)?.trim().to_string())))
        .filter(|(p, l)| !p.is_empty() && !l.is_empty())
        .collect())
}

/// Look a postcode up in a lookup built by [`load_postcode_lookup`].
pub fn lsoa_of<'a>(lookup: &'a HashMap<String, String>, postcode: &str) -> Option<&'a str> {
    lookup.get(&key(postcode)).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imd_in_published_format() {
        let rows = imd2019().unwrap();
        assert_eq!(rows.len(), 32_844);
        let first = &rows[0];
        assert_eq!(first.lsoa11, "E01000001");
        assert_eq!(first.rank, 29_199, "thousands separator handled");
        assert_eq!(first.decile, 9);
        let leeds = rows.iter().filter(|r| r.lad_code == "E08000035").count();
        assert_eq!(leeds, 482);
        for d in 1..=10u8 {
            let n = rows.iter().filter(|r| r.decile == d).count();
            assert!(n == 3284 || n == 3285, "decile {d}: {n}");
        }
    }

    #[test]
    fn postcode_lookup_formats() {
        let synthetic = "postcode,lsoa11\nLS1 1AB,E01011365\n";
        let m = parse_postcode_lookup(synthetic).unwrap();
        assert_eq!(lsoa_of(&m, "ls11ab"), Some("E01011365"));
        let onspd = "\u{feff}pcd,pcd2,pcds,dointr,doterm,oscty,lsoa11,msoa11\n\"LS1 1AB\",\"LS1  1AB\",\"LS1 1AB\",\"198001\",\"\",\"E99999999\",\"E01011365\",\"E02002330\"\n";
        let m = parse_postcode_lookup(onspd).unwrap();
        assert_eq!(lsoa_of(&m, "LS1 1AB"), Some("E01011365"));
        assert!(parse_postcode_lookup("a,b\n1,2\n").is_err());
    }
}
