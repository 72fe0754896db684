//! Stage 1 of the pipeline: read a provider manifest into a located JSON document.
//!
//! Owns reading files safely (size limit, UTF-8), YAML with positions ([`source`]),
//! provider templates (`uses:` + `params:`, rendered with minijinja under strict undefined
//! and merged under the manifest), the raw serde model ([`model`]) and the JSON Schema
//! check ([`schema`]). Everything here reports located diagnostics; nothing panics.

pub mod model;
pub mod schema;
pub mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diagnostics::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean, display_path};
use source::{Document, child};

/// Where provider templates live, relative to the project root.
pub const TEMPLATE_DIR: &str = "templates/providers";
/// Extension of provider templates.
pub const TEMPLATE_EXT: &str = ".yaml.j2";

/// A manifest read from disk, with its template applied.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    /// The merged document (template under manifest) and the positions of every node.
    pub doc: Document,
    /// The manifest file itself.
    pub file: Arc<SourceFile>,
    /// SHA-256 over the manifest, its template and its parameters (lineage).
    pub hash: String,
}

/// Read `path` and apply its template. `root` is the project root (templates, and the
/// limit for relative paths).
pub fn load(path: &Path, root: &Path, diags: &mut Diagnostics) -> Option<Loaded> {
    let name = display_path(path);
    let file = match read_text(path, &name) {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let doc = match source::parse(&file) {
        Ok(d) => d,
        Err(ds) => {
            for d in ds {
                diags.push(d);
            }
            return None;
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(file.text.as_bytes());
    let doc = match doc
        .value
        .get("uses")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        Some(uses) => apply_template(&doc, &uses, root, diags, &mut hasher)?,
        None => doc,
    };
    Some(Loaded {
        path: path.to_path_buf(),
        doc,
        file,
        hash: hex::encode(hasher.finalize()),
    })
}

/// Expand files and directories into the manifest files to check (`*.yaml`, `*.yml`,
/// recursively, hidden directories skipped), sorted. Missing paths are an I/O error.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// `a/b/../c` as `a/c`, without touching the file system (for display: the manifests
/// an ICS file names show as `providers/x.yaml`, not `examples/ics/../../providers/x.yaml`).
pub fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Read a file as UTF-8 text, refusing oversized files before reading them.
pub fn read_text(path: &Path, name: &str) -> Result<Arc<SourceFile>, Diagnostic> {
    let empty = SourceFile::new(name, "");
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostic::new("ONB0001", format!("cannot read file: {e}"))
            .at(Span::file_start(empty.clone()))
    })?;
    if meta.len() > source::MAX_FILE_BYTES as u64 {
        return Err(Diagnostic::new(
            "ONB0002",
            format!(
                "file is {} bytes; manifests over {} bytes are refused",
                meta.len(),
                source::MAX_FILE_BYTES
            ),
        )
        .at(Span::file_start(empty)));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::new("ONB0001", format!("cannot read file: {e}"))
            .at(Span::file_start(empty.clone()))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Diagnostic::new(
            "ONB0001",
            format!(
                "file is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
        .at(Span::file_start(empty.clone()))
        .help("save the manifest as UTF-8")
    })?;
    Ok(SourceFile::new(name, text))
}

/// Names of the provider templates available under `root`.
pub fn template_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(TEMPLATE_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(TEMPLATE_EXT))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn apply_template(
    doc: &Document,
    uses: &str,
    root: &Path,
    diags: &mut Diagnostics,
    hasher: &mut Sha256,
) -> Option<Document> {
    let uses_span = doc.spans.value("/uses");
    let path = template_path(uses, root, uses_span.clone(), diags)?;
    let tname = display_path(&path);
    let tfile = match read_text(&path, &tname) {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    hasher.update(tfile.text.as_bytes());
    let params = (doc.value.get("params"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    hasher.update(
        serde_json::to_string(&params)
            .unwrap_or_default()
            .as_bytes(),
    );

    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(200_000));
    env.set_recursion_limit(64);
    let tmpl = env
        .add_template_owned(tname.clone(), tfile.text.clone())
        .and_then(|_| env.get_template(&tname));
    let tmpl = match tmpl {
        Ok(t) => t,
        Err(e) => {
            diags.push(template_error(&tfile, &e));
            return None;
        }
    };
    let used = tmpl.undeclared_variables(false);
    for (k, _) in params.iter().filter(|(k, _)| !used.contains(*k)) {
        diags.push(
            Diagnostic::new(
                "ONB0504",
                format!("parameter `{k}` is not used by template `{uses}`"),
            )
            .at_opt(doc.spans.key(&child("/params", k)))
            .label("unused")
            .help_opt(did_you_mean(k, used.iter().map(String::as_str))),
        );
    }
    let render = |p: &serde_json::Map<String, Value>| {
        tmpl.render(minijinja::Value::from(minijinja::value::Serde(
            Value::Object(p.clone()),
        )))
    };
    let rendered = match render(&params) {
        Ok(r) => r,
        Err(e) => {
            let missing = if e.kind() == minijinja::ErrorKind::UndefinedError {
                missing_params(&used, &params, &render)
            } else {
                Vec::new()
            };
            if missing.is_empty() {
                diags.push(template_error(&tfile, &e));
            }
            for m in missing {
                diags.push(
                    Diagnostic::new(
                        "ONB0502",
                        format!(
                            "template `{uses}` needs parameter `{m}`, which `params:` does not give"
                        ),
                    )
                    .at_opt(doc.spans.key("/params").or(uses_span.clone()))
                    .label("missing parameter")
                    .help(format!("add `{m}: …` under `params:`")),
                );
            }
            return None;
        }
    };
    let rfile = SourceFile::new(tname, rendered);
    match source::parse(&rfile) {
        Ok(base) => Some(merge(base, doc.clone())),
        Err(ds) => {
            for d in ds {
                diags.push(
                    d.help("the rendered template is not valid YAML; check the parameter values"),
                );
            }
            None
        }
    }
}

/// The template file `uses:` names, or ONB0501 with did-you-mean.
fn template_path(
    uses: &str,
    root: &Path,
    uses_span: Option<Span>,
    diags: &mut Diagnostics,
) -> Option<PathBuf> {
    let valid_name = !uses.is_empty()
        && uses
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let path = root
        .join(TEMPLATE_DIR)
        .join(format!("{uses}{TEMPLATE_EXT}"));
    if valid_name && path.is_file() {
        return Some(path);
    }
    let names = template_names(root);
    let help = did_you_mean(uses, names.iter().map(String::as_str)).unwrap_or_else(|| {
        if names.is_empty() {
            format!(
                "no templates found in {}",
                display_path(&root.join(TEMPLATE_DIR))
            )
        } else {
            format!("available templates: {}", names.join(", "))
        }
    });
    diags.push(
        Diagnostic::new("ONB0501", format!("unknown provider template `{uses}`"))
            .at_opt(uses_span)
            .label("no such template")
            .help(help),
    );
    None
}

/// The parameters the template cannot do without: those whose absence alone still
/// fails when every other unknown name is given a placeholder.
fn missing_params<'u>(
    used: &'u std::collections::HashSet<String>,
    params: &serde_json::Map<String, Value>,
    render: &dyn Fn(&serde_json::Map<String, Value>) -> Result<String, minijinja::Error>,
) -> Vec<&'u String> {
    let mut candidates: Vec<&String> = used.iter().filter(|v| !params.contains_key(*v)).collect();
    candidates.sort();
    let mut missing = Vec::new();
    for c in &candidates {
        let mut trial = params.clone();
        for o in candidates.iter().filter(|o| *o != c) {
            trial.insert((*o).clone(), Value::String("placeholder".into()));
        }
        if let Err(e) = render(&trial)
            && e.kind() == minijinja::ErrorKind::UndefinedError
        {
            missing.push(*c);
        }
    }
    missing
}

fn template_error(tfile: &Arc<SourceFile>, e: &minijinja::Error) -> Diagnostic {
    let line = e.line().unwrap_or(1).max(1);
    let pos = crate::diagnostics::Pos { line, column: 1 };
    let end = crate::diagnostics::Pos {
        line,
        column: tfile.line_text(line).chars().count() + 1,
    };
    let kind = match e.kind() {
        minijinja::ErrorKind::UndefinedError => "undefined value",
        minijinja::ErrorKind::SyntaxError => "syntax error",
        _ => "render error",
    };
    Diagnostic::new(
        "ONB0503",
        format!(
            "template does not render ({kind}): {}",
            e.detail().unwrap_or(&e.to_string())
        ),
    )
    .at(Span::new(tfile.clone(), pos, end))
}

/// Deep-merge `overlay` over `base`: mappings merge key by key, anything else replaces.
pub fn merge(base: Document, overlay: Document) -> Document {
    let mut spans = base.spans;
    let mut replaced = Vec::new();
    let value = merge_values(base.value, overlay.value, "", &mut replaced);
    spans.overlay(overlay.spans, &replaced);
    Document {
        file: overlay.file,
        value,
        spans,
    }
}

fn merge_values(base: Value, overlay: Value, pointer: &str, replaced: &mut Vec<String>) -> Value {
    match (base, overlay) {
        (Value::Object(mut b), Value::Object(o)) => {
            for (k, v) in o {
                let p = child(pointer, &k);
                let merged = match b.remove(&k) {
                    Some(bv) => merge_values(bv, v, &p, replaced),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Object(b)
        }
        (_, o) => {
            replaced.push(pointer.to_string());
            o
        }
    }
}
