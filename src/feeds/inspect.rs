//! One delivered file: its content hash and extract date, and the checks made before it
//! is read (schema drift of the header, a last row cut short, trailer rows and control
//! files).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use regex::Regex;

use super::hash::ContentHash;
use super::{Settings, SkipReason, SkippedFile};
use crate::manifest::model::{Encoding, SourceFormat};
use crate::validate::ResolvedSource;

/// Bytes kept from the start and the end of a file's text.
const ENDS: usize = 64 * 1024;

/// A file of a source, identified and (for the files a run loads) checked.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub path: PathBuf,
    /// Path relative to the landing zone (the lineage `source_file`).
    pub file: String,
    /// SHA-256 of the raw bytes, computed off the run's path ([`super::hash`]).
    pub hash: ContentHash,
    pub bytes: u64,
    pub extract_date: Option<NaiveDate>,
    /// Data rows the trailer or control file says the file holds.
    pub expected_rows: Option<u64>,
    pub expected_from: Option<&'static str>,
    /// The first and last bytes of the file's text (decompressed).
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Inspected {
    /// The record of this file as not loaded (it waits for the file's hash).
    pub fn skipped(&self, reason: SkipReason, detail: String) -> Result<SkippedFile, String> {
        Ok(SkippedFile {
            file: self.file.clone(),
            sha256: self.hash.get()?,
            bytes: self.bytes,
            extract_date: self.extract_date.map(|d| d.to_string()),
            reason,
            detail,
        })
    }
}

/// Find a file's size, first and last bytes and extract date; its hash is left to
/// [`ContentHash::get`].
pub fn identify(
    landing: &Path,
    src: &ResolvedSource,
    settings: &Settings,
    path: &Path,
) -> Result<Inspected, String> {
    let file = path
        .strip_prefix(landing)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let io = |e: std::io::Error| format!("{file}: {e}");
    let (bytes, mut head, mut tail) = read_ends(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let text = crate::ingest::scan::open(path).map_err(|e| e.to_string())?;
        (head, tail) = text_ends(text).map_err(io)?;
    }
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        head.drain(..3);
    }
    let mut f = Inspected {
        path: path.to_path_buf(),
        hash: ContentHash::of(path, &file),
        file,
        bytes,
        extract_date: None,
        expected_rows: None,
        expected_from: None,
        head,
        tail,
    };
    f.extract_date = extract_date(src, settings, &f)?;
    Ok(f)
}

/// Size of the raw bytes, with the first and last [`ENDS`] of them.
fn read_ends(path: &Path) -> std::io::Result<(u64, Vec<u8>, Vec<u8>)> {
    let mut f = std::fs::File::open(path)?;
    let bytes = f.metadata()?.len();
    let mut head = Vec::new();
    (&mut f).take(ENDS as u64).read_to_end(&mut head)?;
    let mut tail = Vec::new();
    if bytes <= ENDS as u64 {
        tail.clone_from(&head);
    } else {
        f.seek(SeekFrom::Start(bytes - ENDS as u64))?;
        f.read_to_end(&mut tail)?;
        // The file may have grown since its size was read.
        tail.drain(..tail.len().saturating_sub(ENDS));
    }
    Ok((bytes, head, tail))
}

fn text_ends(mut r: Box<dyn Read + Send>) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((head, tail));
        }
        keep_ends(&buf[..n], &mut head, &mut tail);
    }
}

fn keep_ends(chunk: &[u8], head: &mut Vec<u8>, tail: &mut Vec<u8>) {
    if head.len() < ENDS {
        let take = (ENDS - head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..take]);
    }
    tail.extend_from_slice(&chunk[chunk.len().saturating_sub(ENDS)..]);
    if tail.len() > ENDS {
        tail.drain(..tail.len() - ENDS);
    }
}

fn decode(bytes: &[u8], enc: Encoding) -> String {
    match enc {
        Encoding::Latin1 => bytes.iter().map(|b| *b as char).collect(),
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The first records of a CSV text (header first when the source has one).
fn first_records(src: &ResolvedSource, head: &[u8], n: usize) -> Vec<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(src.csv.delimiter)
        .quote(src.csv.quote)
        .has_headers(false)
        .flexible(true)
        .from_reader(head);
    rdr.byte_records()
        .take(n)
        .flatten()
        .map(|r| {
            r.iter()
                .map(|f| decode(f, src.csv.encoding).trim().to_string())
                .collect()
        })
        .collect()
}

fn extract_date(
    src: &ResolvedSource,
    settings: &Settings,
    f: &Inspected,
) -> Result<Option<NaiveDate>, String> {
    let Some(spec) = &settings.extract_date else {
        return Ok(None);
    };
    let (text, format) = if let Some(p) = &spec.pattern {
        let re = Regex::new(p).map_err(|e| {
            format!("delivery.extract_date.pattern `{p}` is not a valid regular expression: {e}")
        })?;
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let caps = re.captures(&name).ok_or_else(|| {
            format!(
                "delivery.extract_date.pattern `{p}` matches no file name: `{name}` ({}) does not match",
                f.file
            )
        })?;
        let text = caps
            .get(1)
            .or_else(|| caps.get(0))
            .map(|m| m.as_str().to_string());
        (
            text.unwrap_or_default(),
            spec.format.as_deref().unwrap_or("%Y%m%d"),
        )
    } else if let Some(c) = &spec.column {
        match column_value(src, f, c)? {
            Some(v) => (v, spec.format.as_deref().unwrap_or("%Y-%m-%d")),
            None => return Ok(None),
        }
    } else {
        return Err(
            "delivery.extract_date needs `pattern` (over the file name) or `column`".into(),
        );
    };
    NaiveDate::parse_from_str(&text, format)
        .or_else(|_| NaiveDate::parse_from_str(text.get(..10).unwrap_or(""), format))
        .map(Some)
        .map_err(|_| {
            format!(
                "{}: extract date `{text}` is not a date in format `{format}` (delivery.extract_date)",
                f.file
            )
        })
}

/// The value of `column` in the first data row (CSV and NDJSON).
fn column_value(
    src: &ResolvedSource,
    f: &Inspected,
    column: &str,
) -> Result<Option<String>, String> {
    let Some(pos) = src.columns.iter().position(|c| c == column) else {
        return Err(format!(
            "delivery.extract_date.column `{column}` is not one of the declared columns"
        ));
    };
    match src.format {
        SourceFormat::Csv => {
            let recs = first_records(src, &f.head, 2);
            let (header, row) = match (src.csv.header, recs.as_slice()) {
                (true, [h, r, ..]) => (Some(h), r),
                (false, [r, ..]) => (None, r),
                _ => return Ok(None),
            };
            let i = header.map_or(Some(pos), |h| h.iter().position(|x| x == column));
            Ok(i.and_then(|i| row.get(i))
                .filter(|v| !v.is_empty())
                .cloned())
        }
        SourceFormat::Ndjson => {
            let line = f.head.split(|b| *b == b'\n').find(|l| !l.is_empty());
            let v: Option<serde_json::Value> = line.and_then(|l| serde_json::from_slice(l).ok());
            Ok(v.and_then(|v| match v.get(column)? {
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }))
        }
        SourceFormat::Parquet => Err(format!(
            "delivery.extract_date.column is not supported for Parquet extracts ({}); use `pattern`",
            f.file
        )),
    }
}

/// Checks of a file the run loads: header drift, cut short, trailer, control file.
pub fn check_delivery(
    src: &ResolvedSource,
    settings: &Settings,
    f: &mut Inspected,
) -> Result<(), String> {
    if src.format == SourceFormat::Csv && src.csv.header {
        drift(src, f)?;
    }
    let control = settings.control.clone().unwrap_or_default();
    if let Some(re) = &control.trailer {
        f.expected_rows = Some(trailer_count(re, f)?);
        f.expected_from = Some("trailer row");
    } else {
        cut_short(src, f)?;
    }
    if let Some(name) = &control.file {
        f.expected_rows = Some(control_file_count(name, f)?);
        f.expected_from = Some("control file");
    }
    Ok(())
}

/// The header must hold every declared column; name the missing and unexpected ones.
fn drift(src: &ResolvedSource, f: &Inspected) -> Result<(), String> {
    let Some(header) = first_records(src, &f.head, 1).into_iter().next() else {
        return Ok(());
    };
    let missing: Vec<&String> = src.columns.iter().filter(|c| !header.contains(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let unexpected: Vec<&str> = header
        .iter()
        .filter(|h| !src.columns.contains(h))
        .map(|h| h.as_str())
        .collect();
    let missing_text: Vec<String> = missing
        .iter()
        .map(
            |m| match crate::diagnostics::did_you_mean(m, unexpected.iter().copied()) {
                Some(hint) => format!("`{m}` ({hint})"),
                None => format!("`{m}`"),
            },
        )
        .collect();
    let unexpected_text = if unexpected.is_empty() {
        "none".to_string()
    } else {
        unexpected
            .iter()
            .map(|u| format!("`{u}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!(
        "schema drift in {}: the header lacks declared column(s) {}; unexpected column(s): {unexpected_text}",
        f.file,
        missing_text.join(", ")
    ))
}

/// The last line of the text, and whether it ends with a line break.
fn last_line(tail: &[u8]) -> (String, bool) {
    let ends = tail.last().is_some_and(|b| *b == b'\n');
    let body = if ends { &tail[..tail.len() - 1] } else { tail };
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    (String::from_utf8_lossy(&body[start..]).into_owned(), ends)
}

fn snippet(s: &str) -> String {
    let t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// A file that ends without a line break inside a row was cut short.
fn cut_short(src: &ResolvedSource, f: &Inspected) -> Result<(), String> {
    let (line, ends) = last_line(&f.tail);
    if ends || line.trim().is_empty() {
        return Ok(());
    }
    let short = match src.format {
        SourceFormat::Csv => {
            let width = if src.csv.header {
                first_records(src, &f.head, 1)
                    .first()
                    .map_or(src.columns.len(), |h| h.len())
            } else {
                src.columns.len()
            };
            let quotes = line.bytes().filter(|b| *b == src.csv.quote).count();
            let fields = first_records(src, line.as_bytes(), 1)
                .first()
                .map_or(0, |r| r.len());
            (quotes % 2 == 1 || fields < width).then(|| format!("{fields} of {width} fields"))
        }
        SourceFormat::Ndjson => serde_json::from_str::<serde_json::Value>(line.trim())
            .is_err()
            .then(|| "not a whole JSON object".to_string()),
        SourceFormat::Parquet => None,
    };
    match short {
        Some(what) => Err(format!(
            "{}: the last row is cut short (the file ends without a line break inside a row: {what}, `{}`); the delivery is incomplete",
            f.file,
            snippet(&line)
        )),
        None => Ok(()),
    }
}

fn trailer_count(re: &str, f: &Inspected) -> Result<u64, String> {
    let rx = Regex::new(re).map_err(|e| {
        format!("delivery.control.trailer `{re}` is not a valid regular expression: {e}")
    })?;
    let mut tail = f.tail.clone();
    while tail.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        tail.pop();
    }
    let (line, _) = last_line(&tail);
    let count = rx
        .captures(line.trim())
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<u64>().ok());
    count.ok_or_else(|| {
        format!(
            "{}: expected a trailer row matching `{re}` (with the row count as its first group) as the last line; the last line is `{}` (cut short?)",
            f.file,
            snippet(&line)
        )
    })
}

fn control_file_count(template: &str, f: &Inspected) -> Result<u64, String> {
    let name = f
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = f
        .path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ctl_name = template.replace("{name}", &name).replace("{stem}", &stem);
    let ctl = f
        .path
        .parent()
        .map(|d| d.join(&ctl_name))
        .unwrap_or_else(|| PathBuf::from(&ctl_name));
    let shown = Path::new(&f.file)
        .with_file_name(&ctl_name)
        .to_string_lossy()
        .replace('\\', "/");
    let text = std::fs::read_to_string(&ctl)
        .map_err(|e| format!("{}: control file {shown} cannot be read: {e}", f.file))?;
    let re = Regex::new(r"(?mi)^\s*(?:rows\s*[=:]\s*)?(\d+)\s*$").map_err(|e| e.to_string())?;
    re.captures(&text)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<u64>().ok())
        .ok_or_else(|| {
            format!(
                "control file {shown} does not parse: expected the number of data rows, alone or as `rows=N`; it holds `{}`",
                snippet(text.trim())
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Inspected {
        Inspected {
            path: PathBuf::from("landing/x/p_20261031.csv"),
            file: "x/p_20261031.csv".into(),
            hash: ContentHash::known(""),
            bytes: text.len() as u64,
            extract_date: None,
            expected_rows: None,
            expected_from: None,
            head: text.as_bytes().to_vec(),
            tail: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn trailer_counts_and_missing_trailers() {
        assert_eq!(
            trailer_count(r"^TRL,(\d+)$", &file("a\n1\n2\nTRL,2\n")),
            Ok(2)
        );
        assert_eq!(
            trailer_count(r"^TRL,(\d+)$", &file("a\n1\n2\nTRL,2\r\n\n")),
            Ok(2)
        );
        let e = trailer_count(r"^TRL,(\d+)$", &file("a\n1\n2,x")).unwrap_err();
        assert!(e.contains("the last line is `2,x` (cut short?)"), "{e}");
        assert!(
            trailer_count("(", &file("a\n"))
                .unwrap_err()
                .contains("not a valid regular expression")
        );
    }

    #[test]
    fn last_line_and_line_breaks() {
        assert_eq!(last_line(b"a\nb\n"), ("b".to_string(), true));
        assert_eq!(last_line(b"a\nb"), ("b".to_string(), false));
        assert_eq!(last_line(b"b\r\n"), ("b".to_string(), true));
    }

    #[test]
    fn control_files_parse_alone_or_as_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = file("");
        f.path = dir.path().join("p_20261031.csv");
        for (text, want) in [
            ("12\n", Some(12)),
            ("rows=7", Some(7)),
            ("ROWS: 3\n", Some(3)),
            ("seven", None),
        ] {
            std::fs::write(dir.path().join("p_20261031.ctl"), text).unwrap();
            assert_eq!(control_file_count("{stem}.ctl", &f).ok(), want, "{text}");
        }
        let e = control_file_count("{name}.missing", &f).unwrap_err();
        assert!(
            e.contains("control file x/p_20261031.csv.missing cannot be read"),
            "{e}"
        );
    }
}
