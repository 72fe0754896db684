//! The plain-Rust logic behind the UDFs: NHS number, postcode, clinical code and name
//! normalisation, and lenient date parsing. Kept free of Arrow so it is easy to test.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

/// The digits of `s`, or `None` when there are none.
pub fn digits_only(s: &str) -> Option<String> {
    let d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if d.is_empty() { None } else { Some(d) }
}

/// NHS number modulus-11 check on 10 digits (spaces and dashes ignored). Numbers with
/// all ten digits the same are refused (HES validity rule).
pub fn nhs_number_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() == 10 && b.iter().all(u8::is_ascii_digit) {
        // The usual shape, checked without a branch per character.
        return modulus_11_valid(&std::array::from_fn(|i| b[i] - b'0'));
    }
    let mut digits = [0u8; 10];
    let mut n = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                if n == 10 {
                    return false;
                }
                digits[n] = c - b'0';
                n += 1;
            }
            b' ' | b'-' => {}
            _ => return false,
        }
    }
    n == 10 && modulus_11_valid(&digits)
}

/// The NHS number check on ten digits: not all the same, and the tenth the modulus-11
/// check digit of the first nine (a remainder giving 10 is never valid).
fn modulus_11_valid(digits: &[u8; 10]) -> bool {
    if digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10u32).rev())
        .map(|(d, weight)| u32::from(*d) * weight)
        .sum();
    match 11 - (sum % 11) {
        11 => digits[9] == 0,
        10 => false,
        c => u32::from(digits[9]) == c,
    }
}

/// Normalise a postcode for storage: well-formed UK postcodes become `OUTWARD INWARD`
/// upper case; anything else is kept upper-cased with single spaces, so that the rule
/// `postcode_valid` can still report it. Blank gives `None`.
pub fn postcode_normalise(s: &str) -> Option<String> {
    if let Some(p) = uk_postcode(s) {
        return Some(p);
    }
    let t = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    if t.is_empty() { None } else { Some(t) }
}

/// A well-formed UK postcode as `OUTWARD INWARD` upper case; `None` when it is not
/// shaped like one. Pseudo-postcodes starting `ZZ99` are treated as invalid.
pub fn uk_postcode(s: &str) -> Option<String> {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if compact.len() < 5 || compact.len() > 7 || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let ib = inward.as_bytes();
    if !ib[0].is_ascii_digit() || !ib[1].is_ascii_alphabetic() || !ib[2].is_ascii_alphabetic() {
        return None;
    }
    if inward[1..].chars().any(|c| "CIKMOV".contains(c)) {
        return None;
    }
    let ob = outward.as_bytes();
    // Outward: A9, A99, A9A, AA9, AA99, AA9A.
    let shape: String = ob
        .iter()
        .map(|b| {
            if b.is_ascii_digit() {
                '9'
            } else if b.is_ascii_alphabetic() {
                'A'
            } else {
                '?'
            }
        })
        .collect();
    if !matches!(
        shape.as_str(),
        "A9" | "A99" | "A9A" | "AA9" | "AA99" | "AA9A"
    ) {
        return None;
    }
    if outward.starts_with("ZZ") {
        return None;
    }
    Some(format!("{outward} {inward}"))
}

/// `LS1 1AB` → `LS1 1`.
pub fn postcode_sector(s: &str) -> Option<String> {
    let p = uk_postcode(s)?;
    Some(p[..p.len() - 2].to_string())
}

/// `LS1 1AB` → `LS1`.
pub fn postcode_district(s: &str) -> Option<String> {
    let p = uk_postcode(s)?;
    Some(p[..p.len() - 4].to_string())
}

/// ICD-10: upper case, no dot, no dagger/asterisk, no filler `X` or `-` after 3 chars.
pub fn icd10(s: &str) -> Option<String> {
    let mut c: String = s
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    while c.len() > 3 && c.ends_with('X') {
        c.pop();
    }
    let b = c.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_alphabetic() || !b[1].is_ascii_digit() {
        return None;
    }
    Some(c)
}

/// OPCS-4: upper case, no dot.
pub fn opcs4(s: &str) -> Option<String> {
    let c: String = s
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let b = c.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_alphabetic() || !b[1..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(c)
}

/// SNOMED CT concept id: 6–18 digits.
pub fn snomed(s: &str) -> Option<String> {
    let t = s.trim();
    if (6..=18).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) && !t.starts_with('0') {
        Some(t.to_string())
    } else {
        None
    }
}

/// Read v2 / CTV3: trimmed, padded with `.` to five characters.
pub fn read_code(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t.len() > 5 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        return None;
    }
    let mut out = t.to_string();
    while out.len() < 5 {
        out.push('.');
    }
    Some(out)
}

/// Name standardisation for linkage.
pub fn name_standardise(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut last_space = true;
    for ch in s.chars() {
        let folded = fold_accent(ch);
        for c in folded.chars() {
            if c.is_ascii_alphabetic() {
                out.push(c.to_ascii_uppercase());
                last_space = false;
            } else if c == '-' || c == '\'' {
                out.push(c);
                last_space = false;
            } else if (c.is_whitespace() || c == '.' || c == ',') && !last_space {
                out.push(' ');
                last_space = true;
            }
        }
    }
    let t = out.trim().to_string();
    if t.is_empty() { None } else { Some(t) }
}

fn fold_accent(c: char) -> String {
    let s = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
        'æ' | 'Æ' => "AE",
        'ç' | 'Ç' => "C",
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => "E",
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => "I",
        'ñ' | 'Ñ' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "O",
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
        'ý' | 'ÿ' | 'Ý' => "Y",
        'ß' => "SS",
        '’' | '‘' => "'",
        other => return other.to_string(),
    };
    s.to_string()
}

/// American Soundex.
pub fn soundex(s: &str) -> Option<String> {
    let letters: Vec<char> = s
        .chars()
        .flat_map(|c| fold_accent(c).chars().collect::<Vec<_>>())
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let first = *letters.first()?;
    let code = |c: char| match c {
        'B' | 'F' | 'P' | 'V' => '1',
        'C' | 'G' | 'J' | 'K' | 'Q' | 'S' | 'X' | 'Z' => '2',
        'D' | 'T' => '3',
        'L' => '4',
        'M' | 'N' => '5',
        'R' => '6',
        'H' | 'W' => 'h',
        _ => '0',
    };
    let mut out = String::from(first);
    let mut last = code(first);
    for &c in &letters[1..] {
        let d = code(c);
        if d == 'h' {
            continue;
        }
        if d != '0' && d != last {
            out.push(d);
            if out.len() == 4 {
                break;
            }
        }
        last = d;
    }
    while out.len() < 4 {
        out.push('0');
    }
    Some(out)
}

/// Days since 1970-01-01 of a valid calendar date.
fn days(y: i32, m: u32, d: u32) -> Option<i32> {
    let date = NaiveDate::from_ymd_opt(y, m, d)?;
    Some(date.num_days_from_ce() - 719_163)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Fast paths for the two formats almost every extract uses.
fn parse_common(t: &str, f: &str) -> Option<Option<i32>> {
    let b = t.as_bytes();
    match f {
        "%d/%m/%Y" => {
            // d/m/Y with 1–2 digit day and month, 4-digit year (chrono accepts both).
            let mut parts = b.split(|c| *c == b'/');
            let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some()
                || d.is_empty()
                || d.len() > 2
                || m.is_empty()
                || m.len() > 2
                || y.len() != 4
            {
                return Some(None);
            }
            Some(days(digits(y)? as i32, digits(m)?, digits(d)?))
        }
        "%Y-%m-%d" => {
            if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
                return None;
            }
            Some(days(
                digits(&b[..4])? as i32,
                digits(&b[5..7])?,
                digits(&b[8..])?,
            ))
        }
        _ => None,
    }
}

/// Parse a date with the first fitting format; days since 1970-01-01.
pub fn parse_date_days(s: &str, formats: &[String]) -> Option<i32> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    for f in formats {
        match parse_common(t, f) {
            Some(Some(d)) => return Some(d),
            Some(None) => continue,
            None => {}
        }
        if let Some(d) = parse_date_chrono(t, f) {
            return Some(d);
        }
    }
    None
}

fn parse_date_chrono(t: &str, f: &str) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    if let Ok(d) = NaiveDate::parse_from_str(t, f) {
        return i32::try_from((d - epoch).num_days()).ok();
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
        return i32::try_from((dt.date() - epoch).num_days()).ok();
    }
    None
}

/// Parse a timestamp with the first fitting format (a date-only format gives midnight);
/// microseconds since the epoch.
pub fn parse_timestamp_micros(s: &str, formats: &[String]) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    for f in formats {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Some(dt.and_utc().timestamp_micros());
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, f) {
            return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros());
        }
    }
    None
}

/// Whether a strftime format is well formed and names at least a year, month and day
/// (or a day of year). Returns a reason when not.
pub fn check_date_format(f: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    let mut has = (false, false, false);
    for item in StrftimeItems::new(f) {
        match item {
            Item::Error => return Err(format!("`{f}` is not a valid strftime format")),
            Item::Numeric(n, _) => {
                use chrono::format::Numeric::*;
                match n {
                    Year | YearDiv100 | YearMod100 | IsoYear => has.0 = true,
                    Month => has.1 = true,
                    Day => has.2 = true,
                    Ordinal => {
                        has.1 = true;
                        has.2 = true
                    }
                    Timestamp => has = (true, true, true),
                    _ => {}
                }
            }
            Item::Fixed(
                chrono::format::Fixed::ShortMonthName | chrono::format::Fixed::LongMonthName,
            ) => has.1 = true,
            Item::Fixed(chrono::format::Fixed::RFC2822 | chrono::format::Fixed::RFC3339) => {
                has = (true, true, true)
            }
            _ => {}
        }
    }
    if has == (true, true, true) {
        Ok(())
    } else {
        Err(format!(
            "`{f}` does not contain a full date (year, month and day)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers() {
        assert!(nhs_number_valid("9434765919"));
        assert!(nhs_number_valid("943 476 5919"));
        assert!(nhs_number_valid("4010232137"));
        assert!(!nhs_number_valid("0000000000"), "all-same digits refused");
        assert!(!nhs_number_valid("0000000060"));
        assert!(!nhs_number_valid("1234567890"));
        assert!(!nhs_number_valid("9876544321"));
        assert!(!nhs_number_valid("94347659190"));
        assert!(!nhs_number_valid("943476591"));
        assert!(!nhs_number_valid("943476591A"));
    }

    /// The same check stated independently, over characters.
    fn nhs_number_valid_by_chars(s: &str) -> bool {
        let digits: Vec<u32> = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| c.to_digit(10))
            .collect::<Option<_>>()
            .unwrap_or_default();
        if digits.len() != 10 || digits.iter().all(|d| *d == digits[0]) {
            return false;
        }
        let sum: u32 = (0..9).map(|i| digits[i] * (10 - i as u32)).sum();
        match 11 - sum % 11 {
            11 => digits[9] == 0,
            10 => false,
            c => digits[9] == c,
        }
    }

    proptest::proptest! {
        #[test]
        fn the_nhs_number_check_agrees_with_a_check_by_characters(
            s in "[0-9 \\-]{0,13}|[0-9]{10}|[0-9]{3} [0-9]{3} [0-9]{4}|\\PC{0,12}"
        ) {
            proptest::prop_assert_eq!(nhs_number_valid(&s), nhs_number_valid_by_chars(&s), "{:?}", s);
        }
    }

    #[test]
    fn postcodes() {
        assert_eq!(uk_postcode("ls11ab").as_deref(), Some("LS1 1AB"));
        assert_eq!(uk_postcode(" SW1A 1AA ").as_deref(), Some("SW1A 1AA"));
        assert_eq!(uk_postcode("M1 1AE").as_deref(), Some("M1 1AE"));
        assert_eq!(uk_postcode("ZZ99 3VZ"), None);
        assert_eq!(uk_postcode("LS1 1AI"), None);
        assert_eq!(uk_postcode("12345"), None);
        assert_eq!(postcode_sector("LS11AB").as_deref(), Some("LS1 1"));
        assert_eq!(postcode_district("SW1A1AA").as_deref(), Some("SW1A"));
        assert_eq!(
            postcode_normalise(" zz99  3vz").as_deref(),
            Some("ZZ99 3VZ")
        );
        assert_eq!(postcode_normalise("ls11ab").as_deref(), Some("LS1 1AB"));
    }

    #[test]
    fn codes() {
        assert_eq!(icd10("I10.X").as_deref(), Some("I10"));
        assert_eq!(icd10("e11.9").as_deref(), Some("E119"));
        assert_eq!(icd10("J44.1 ").as_deref(), Some("J441"));
        assert_eq!(icd10("1234"), None);
        assert_eq!(opcs4("w40.1").as_deref(), Some("W401"));
        assert_eq!(snomed("22298006").as_deref(), Some("22298006"));
        assert_eq!(snomed("12a"), None);
        assert_eq!(read_code("G30").as_deref(), Some("G30.."));
        assert_eq!(read_code("XaJYk").as_deref(), Some("XaJYk"));
    }

    #[test]
    fn names() {
        assert_eq!(
            name_standardise("  o'brien-smith ").as_deref(),
            Some("O'BRIEN-SMITH")
        );
        assert_eq!(name_standardise("Zoë  Ann").as_deref(), Some("ZOE ANN"));
        assert_eq!(name_standardise(" . "), None);
        assert_eq!(soundex("Robert").as_deref(), Some("R163"));
        assert_eq!(soundex("Rupert").as_deref(), Some("R163"));
        assert_eq!(soundex("Ashcraft").as_deref(), Some("A261"));
        assert_eq!(soundex("Tymczak").as_deref(), Some("T522"));
    }

    #[test]
    fn dates() {
        let f = vec!["%d/%m/%Y".to_string(), "%Y-%m-%d".to_string()];
        assert_eq!(parse_date_days("01/01/1970", &f), Some(0));
        assert_eq!(parse_date_days("1970-01-02", &f), Some(1));
        assert_eq!(parse_date_days("31/02/1970", &f), None);
        assert_eq!(parse_date_days("", &f), None);
        assert_eq!(
            parse_timestamp_micros("1970-01-01", &["%Y-%m-%d".to_string()]),
            Some(0)
        );
        let dmy = vec!["%d/%m/%Y".to_string()];
        assert_eq!(parse_date_days("1/2/1970", &dmy), Some(31));
        assert_eq!(parse_date_days("29/02/2023", &dmy), None);
        assert_eq!(
            parse_date_days("29/02/2024", &dmy),
            parse_date_chrono("29/02/2024", "%d/%m/%Y")
        );
        assert_eq!(parse_date_days("01/01/20245", &dmy), None);
        assert_eq!(
            parse_date_days("2024-02-29", &["%Y-%m-%d".to_string()]),
            parse_date_chrono("2024-02-29", "%Y-%m-%d")
        );
        assert!(check_date_format("%d/%m/%Y").is_ok());
        assert!(check_date_format("%d/%m").is_err());
        assert!(check_date_format("%Q").is_err());
        assert!(check_date_format("%d %b %Y").is_ok());
    }
}
