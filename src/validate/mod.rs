//! Stage 2 of the pipeline: raw manifests → resolved manifests, with every problem found.
//!
//! `validate` loads each manifest (stage 1), checks it against the JSON Schema, runs the
//! semantic checks ([`semantic`]), checks declared columns against real extract headers
//! when asked (`--data`/`--sample`), and checks what spans files (duplicate provider ids).
//! It never stops at the first problem.

pub mod field;
pub mod resolved;
pub mod rules;
pub mod semantic;
pub mod sql;
pub mod transforms;
pub mod values;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean, display_path};
use crate::manifest::model::Encoding;
use crate::manifest::model::SourceFormat;
use crate::manifest::source::child;
pub use resolved::*;
use semantic::Checker;

/// What to validate and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Project root: provider templates are under `templates/providers/`, and map files
    /// must stay inside it. Defaults to the nearest ancestor holding `templates/`.
    pub root: Option<PathBuf>,
    /// A landing zone to check declared columns against real headers.
    pub data: Option<PathBuf>,
    /// One extract file to check against the source whose path matches it.
    pub sample: Option<PathBuf>,
    /// ICS files to check (besides those recognised by content among the paths), with
    /// the manifests they name.
    pub ics: Vec<PathBuf>,
}

/// The result of a validation run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub diagnostics: Diagnostics,
    /// Display names of the files checked (ICS files first, then manifests).
    pub files: Vec<String>,
    /// Manifests without errors, resolved.
    pub manifests: Vec<ResolvedManifest>,
}

pub use crate::manifest::collect_files;

/// The project root for `path`: the nearest ancestor (of the file or the current
/// directory) that holds a `templates/` directory, else the current directory.
pub fn find_root(start: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let abs = if start.is_absolute() {
        start.to_path_buf()
    } else {
        cwd.join(start)
    };
    let mut cur: Option<&Path> = Some(abs.as_path());
    while let Some(d) = cur {
        if d.join("templates").is_dir() {
            return d.to_path_buf();
        }
        cur = d.parent();
    }
    cwd
}

/// Validate manifests and ICS files (files or directories). An ICS file (recognised by
/// its content, or given in [`Options::ics`]) is checked itself, and the manifests it
/// names are checked with the rest (each file once). Provider ids must be unique within
/// each deployment: among the manifests of one ICS file, and among those given directly.
pub fn validate_paths(paths: &[PathBuf], opts: &Options) -> std::io::Result<Outcome> {
    let mut outcome = Outcome::default();
    let planned = with_ics_providers(collect_files(paths)?, opts, &mut outcome)?;
    let root = opts.root.clone().unwrap_or_else(|| {
        find_root(
            planned
                .first()
                .map(|p| p.path.as_path())
                .unwrap_or(Path::new(".")),
        )
    });
    let checker = Checker::new(&root);
    let mut provider_ids = ProviderIds::new();
    for Planned { path, groups } in &planned {
        outcome.files.push(display_path(path));
        let mut diags = Diagnostics::default();
        let Some(loaded) = crate::manifest::load(path, &root, &mut diags) else {
            outcome.diagnostics.extend(diags);
            continue;
        };
        crate::manifest::schema::check(&loaded.doc, &mut diags);
        let resolved = semantic::check(&checker, &loaded, &mut diags);
        check_provider_id(&loaded, groups, &mut provider_ids, &mut diags);
        if opts.data.is_some() || opts.sample.is_some() {
            check_data(&loaded, opts, &mut diags);
        }
        let ok = !diags.has_errors();
        outcome.diagnostics.extend(diags);
        if ok && let Some(r) = resolved {
            outcome.manifests.push(r);
        }
    }
    Ok(outcome)
}

/// A manifest to check and the deployments it belongs to (0: the paths given directly;
/// `i`: the `i`-th ICS file).
struct Planned {
    path: PathBuf,
    groups: Vec<usize>,
}

/// (deployment, provider id) → where it was first declared (file, line).
type ProviderIds = HashMap<(usize, String), (String, usize)>;

/// A provider id already used in one of the manifest's deployments (ONB0601).
fn check_provider_id(
    loaded: &crate::manifest::Loaded,
    groups: &[usize],
    seen: &mut ProviderIds,
    diags: &mut Diagnostics,
) {
    let Some(id) = loaded
        .doc
        .value
        .pointer("/provider/id")
        .and_then(|v| v.as_str())
    else {
        return;
    };
    let at = loaded.doc.spans.value("/provider/id");
    for g in groups {
        match seen.get(&(*g, id.to_string())) {
            Some((file, line)) => diags.push(
                Diagnostic::new(
                    "ONB0601",
                    format!("provider id `{id}` is already used by {file}:{line}"),
                )
                .at_opt(at.clone())
                .label("duplicate provider id")
                .help("provider ids are unique across the ICS; rename one of them"),
            ),
            None => {
                let line = at.as_ref().map(|s| s.start.line).unwrap_or(0);
                seen.insert((*g, id.to_string()), (display_path(&loaded.path), line));
            }
        }
    }
}

/// Check the ICS files among `files` (and in `opts.ics`) into `outcome`; returns the
/// manifests to check: the other files and those the ICS files name, each once with
/// the deployments it belongs to.
fn with_ics_providers(
    files: Vec<PathBuf>,
    opts: &Options,
    outcome: &mut Outcome,
) -> std::io::Result<Vec<Planned>> {
    let canonical = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let forced: Vec<PathBuf> = opts.ics.iter().map(canonical).collect();
    let (mut ics, direct): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|f| forced.contains(&canonical(f)) || crate::ics::is_ics_file(f));
    ics.extend(opts.ics.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    ics.retain(|p| seen.insert(canonical(p)));
    let mut planned: Vec<Planned> = Vec::new();
    let mut index: HashMap<PathBuf, usize> = HashMap::new();
    let mut add = |path: PathBuf, group: usize| {
        let i = *index.entry(canonical(&path)).or_insert_with(|| {
            planned.push(Planned {
                path,
                groups: Vec::new(),
            });
            planned.len() - 1
        });
        if !planned[i].groups.contains(&group) {
            planned[i].groups.push(group);
        }
    };
    direct.into_iter().for_each(|p| add(p, 0));
    for (g, path) in ics.iter().enumerate() {
        let checked = crate::ics::read(path);
        outcome.files.push(checked.name.clone());
        outcome.diagnostics.extend(checked.diagnostics);
        let Some(parsed) = checked.parsed else {
            continue;
        };
        let named: Vec<PathBuf> = (parsed.file.providers.iter())
            .map(|p| crate::manifest::lexically_normal(&parsed.resolve(p)))
            .filter(|p| p.exists()) // a missing one is ONB0905
            .collect();
        collect_files(&named)?
            .into_iter()
            .for_each(|p| add(p, g + 1));
    }
    Ok(planned)
}

/// Compare each source's declared columns with the header of a real extract.
fn check_data(loaded: &crate::manifest::Loaded, opts: &Options, diags: &mut Diagnostics) {
    let Some(sources) = loaded.doc.value.get("sources").and_then(|s| s.as_object()) else {
        return;
    };
    let n_sources = sources.len();
    for (id, sv) in sources {
        let Ok(src) = serde_json::from_value::<crate::manifest::model::Source>(sv.clone()) else {
            continue;
        };
        let base = child("/sources", id);
        let spans = &loaded.doc.spans;
        let Some(file) = data_file(&src, opts, n_sources, &base, spans, diags) else {
            continue;
        };
        match read_header(&file, &src) {
            Ok(header) => compare_header(&src, &file, &header, &base, spans, diags),
            Err(e) => diags.push(
                Diagnostic::new(
                    "ONB0804",
                    format!("cannot read the header of {}: {e}", display_path(&file)),
                )
                .at_opt(spans.value(&child(&base, "path"))),
            ),
        }
    }
}

/// The extract to check a source against: `--sample` when its name matches the source's
/// path pattern (or the manifest has one source), else the first file under `--data`
/// matching the pattern (ONB0803 when none does).
fn data_file(
    src: &crate::manifest::model::Source,
    opts: &Options,
    n_sources: usize,
    base: &str,
    spans: &crate::manifest::source::SpanIndex,
    diags: &mut Diagnostics,
) -> Option<PathBuf> {
    if let Some(sample) = &opts.sample {
        let file_name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        };
        let matches = glob::Pattern::new(&file_name(Path::new(&src.path)))
            .map(|p| p.matches(&file_name(sample)))
            .unwrap_or(false);
        return (matches || n_sources == 1).then(|| sample.clone());
    }
    let data = opts.data.as_ref()?;
    if !semantic::path_stays_inside(&src.path) {
        return None;
    }
    let pattern = data.join(&src.path);
    let mut found: Vec<PathBuf> = glob::glob(&pattern.to_string_lossy())
        .map(|g| g.flatten().filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    found.sort();
    let first = found.into_iter().next();
    if first.is_none() {
        diags.push(
            Diagnostic::new(
                "ONB0803",
                format!(
                    "no file under {} matches `{}`",
                    display_path(data),
                    src.path
                ),
            )
            .at_opt(spans.value(&child(base, "path")))
            .label("no matching extract"),
        );
    }
    first
}

/// Declared columns missing from the header (ONB0801), header columns not declared
/// (ONB0802, a warning).
fn compare_header(
    src: &crate::manifest::model::Source,
    file: &Path,
    header: &[String],
    base: &str,
    spans: &crate::manifest::source::SpanIndex,
    diags: &mut Diagnostics,
) {
    for (i, c) in src.columns.iter().enumerate() {
        if header.iter().any(|h| h == c) {
            continue;
        }
        diags.push(
            Diagnostic::new(
                "ONB0801",
                format!(
                    "column `{c}` is not in the header of {}",
                    display_path(file)
                ),
            )
            .at_opt(spans.value(&format!("{base}/columns/{i}")))
            .label("missing from data")
            .help_opt(
                did_you_mean(c, header.iter().map(String::as_str))
                    .or_else(|| Some(format!("the extract has: {}", header.join(", ")))),
            ),
        );
    }
    let extra: Vec<&str> = (header.iter())
        .filter(|h| !src.columns.contains(h))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        diags.push(
            Diagnostic::new(
                "ONB0802",
                format!(
                    "{} has columns the manifest does not declare: {}",
                    display_path(file),
                    extra.join(", ")
                ),
            )
            .at_opt(spans.key(&child(base, "columns")))
            .label("undeclared columns are ignored"),
        );
    }
}

/// Column names of an extract: CSV header line, Parquet schema, or the keys of the
/// first NDJSON object. Names are trimmed; a UTF-8 byte-order mark is dropped.
pub fn read_header(
    file: &Path,
    src: &crate::manifest::model::Source,
) -> Result<Vec<String>, String> {
    match src.format {
        SourceFormat::Parquet => {
            use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
            let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
            let reader = SerializedFileReader::new(f).map_err(|e| e.to_string())?;
            let schema = reader.metadata().file_metadata().schema_descr_ptr();
            Ok(schema
                .root_schema()
                .get_fields()
                .iter()
                .map(|f| f.name().to_string())
                .collect())
        }
        SourceFormat::Ndjson => {
            let line = first_line(file, 1 << 20)?;
            let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&line).trim())
                .map_err(|e| e.to_string())?;
            Ok(v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default())
        }
        SourceFormat::Csv => {
            let opts = src.csv.clone();
            let delim = opts
                .as_ref()
                .and_then(|o| o.delimiter.as_ref())
                .and_then(|d| d.bytes().next())
                .unwrap_or(b',');
            let quote = opts
                .as_ref()
                .and_then(|o| o.quote.as_ref())
                .and_then(|d| d.bytes().next())
                .unwrap_or(b'"');
            let latin1 = opts.as_ref().and_then(|o| o.encoding) == Some(Encoding::Latin1);
            let line = first_line(file, 1 << 20)?;
            let text = if latin1 {
                line.iter().map(|b| *b as char).collect::<String>()
            } else {
                String::from_utf8(line)
                    .map_err(|_| "header is not UTF-8 (set `csv.encoding: latin-1`?)".to_string())?
            };
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            Ok(split_csv_line(
                text.trim_end_matches(['\r', '\n']),
                delim as char,
                quote as char,
            ))
        }
    }
}

fn first_line(file: &Path, limit: usize) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut reader: Box<dyn Read> = if file.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        if let Some(pos) = buf[..n].iter().position(|b| *b == b'\n') {
            out.extend_from_slice(&buf[..pos]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > limit {
            return Err("first line is longer than 1 MiB".into());
        }
    }
    Ok(out)
}

/// Split one CSV line, honouring quotes.
pub fn split_csv_line(line: &str, delim: char, quote: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_q {
            if c == quote {
                if chars.peek() == Some(&quote) {
                    cur.push(quote);
                    chars.next();
                } else {
                    in_q = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == quote {
            in_q = true;
        } else if c == delim {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    out.push(cur.trim().to_string());
    out
}
