//! Reading YAML with positions.
//!
//! A manifest is parsed once with saphyr's marked loader. The tree is turned into a
//! `serde_json::Value` (what the JSON Schema check and serde see) and a [`SpanIndex`] that
//! maps every JSON pointer of that value to the spans of its key and value in the file.
//! Anchors and aliases are refused (no alias bombs), duplicate keys are errors, and files
//! over [`MAX_FILE_BYTES`] are not parsed at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::diagnostics::{Diagnostic, Finding, Pos, SourceFile, Span};

/// Manifests larger than this are refused (ONB0002).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Spans of one node: its key (for mapping entries) and its value.
#[derive(Debug, Clone)]
pub struct NodeSpans {
    pub key: Option<Span>,
    pub value: Span,
}

/// JSON pointer → spans, for every node of a document.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    map: BTreeMap<String, NodeSpans>,
}

impl SpanIndex {
    /// The span of the value at `pointer`, or of its nearest ancestor that exists.
    pub fn value(&self, pointer: &str) -> Option<Span> {
        self.find(pointer).map(|n| n.value.clone())
    }

    /// The span of the key at `pointer` (falling back to its value, then to ancestors).
    pub fn key(&self, pointer: &str) -> Option<Span> {
        self.find(pointer)
            .map(|n| n.key.clone().unwrap_or_else(|| n.value.clone()))
    }

    /// Exact lookup, no fallback.
    pub fn get(&self, pointer: &str) -> Option<&NodeSpans> {
        self.map.get(pointer)
    }

    fn find(&self, pointer: &str) -> Option<&NodeSpans> {
        let mut p = pointer;
        loop {
            if let Some(n) = self.map.get(p) {
                return Some(n);
            }
            if p.is_empty() {
                return None;
            }
            p = match p.rfind('/') {
                Some(i) => &p[..i],
                None => "",
            };
        }
    }

    /// Overlay `other` on `self`: nodes of `other` win; where `other` replaces a subtree,
    /// the old subtree's entries go.
    pub fn overlay(&mut self, other: SpanIndex, replaced: &[String]) {
        for r in replaced {
            let prefix = format!("{r}/");
            self.map.retain(|k, _| !k.starts_with(&prefix));
        }
        for (k, v) in other.map {
            self.map.insert(k, v);
        }
    }

    pub fn insert(&mut self, pointer: String, spans: NodeSpans) {
        self.map.insert(pointer, spans);
    }

    pub fn remove_subtree(&mut self, pointer: &str) {
        let prefix = format!("{pointer}/");
        self.map
            .retain(|k, _| k.as_str() != pointer && !k.starts_with(&prefix));
    }
}

/// Escape one reference token of a JSON pointer (RFC 6901).
pub fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Append a key to a pointer.
pub fn child(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", escape_token(key))
}

/// A parsed YAML document with its positions.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: Arc<SourceFile>,
    pub value: Value,
    pub spans: SpanIndex,
}

impl Document {
    /// A [`Finding`] of a typed check as a diagnostic at its place in this document.
    pub fn locate(&self, f: Finding) -> Diagnostic {
        let span = f
            .pointers
            .iter()
            .find_map(|p| self.spans.get(p).map(|n| n.value.clone()))
            .or_else(|| f.pointers.first().and_then(|p| self.spans.value(p)));
        let mut d = Diagnostic::new(f.code, f.message).at_opt(span);
        d.label = f.label;
        d.help = f.help;
        d
    }
}

/// Parse `file` as one YAML document. Problems come back as located diagnostics.
pub fn parse(file: &Arc<SourceFile>) -> Result<Document, Vec<Diagnostic>> {
    if file.text.len() > MAX_FILE_BYTES {
        return Err(vec![
            Diagnostic::new(
                "ONB0002",
                format!(
                    "file is {} bytes; manifests over {} bytes are refused",
                    file.text.len(),
                    MAX_FILE_BYTES
                ),
            )
            .at(Span::file_start(file.clone()))
            .help("split the provider into several manifests, or move shared structure into a provider template"),
        ]);
    }
    let mut loader = saphyr::YamlLoader::<MarkedYaml>::default();
    loader.alias_limit(0);
    let mut parser = saphyr_parser::Parser::new_from_str(&file.text);
    let load_result = parser.load(&mut loader, true);
    let err = match load_result {
        Err(e) => Some(e),
        Ok(()) => loader.error().cloned(),
    };
    if let Some(e) = err {
        return Err(vec![scan_error(file, &e)]);
    }
    let docs = loader.into_documents();
    if docs.len() != 1 {
        let (msg, at) = if docs.is_empty() {
            (
                "the file holds no YAML document".to_string(),
                Span::file_start(file.clone()),
            )
        } else {
            (
                format!(
                    "the file holds {} YAML documents; a manifest is one document",
                    docs.len()
                ),
                span_of(file, &docs[1]),
            )
        };
        return Err(vec![
            Diagnostic::new("ONB0006", msg)
                .at(at)
                .help("remove the `---` separators: one manifest per file"),
        ]);
    }
    let mut spans = SpanIndex::default();
    let mut diags = Vec::new();
    let value = convert(file, &docs[0], String::new(), None, &mut spans, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Document {
        file: file.clone(),
        value,
        spans,
    })
}

fn scan_error(file: &Arc<SourceFile>, e: &saphyr::ScanError) -> Diagnostic {
    let m = e.marker();
    let pos = Pos {
        line: m.line().max(1),
        column: m.col() + 1,
    };
    let span = Span::new(file.clone(), pos, pos);
    let info = e.info();
    if info.contains("duplicated key") {
        Diagnostic::new("ONB0005", "duplicate key in mapping")
            .at(span)
            .label("second occurrence")
            .help("each key may appear once; remove or rename one of them")
    } else if info.contains("alias") || info.contains("anchor") {
        Diagnostic::new("ONB0004", "YAML aliases are not allowed in manifests")
            .at(span)
            .label("alias used here")
            .help("write the value out, or share structure through a provider template (`uses:`)")
    } else {
        Diagnostic::new("ONB0003", format!("YAML syntax error: {info}"))
            .at(span)
            .label("here")
    }
}

fn span_of(file: &Arc<SourceFile>, node: &MarkedYaml) -> Span {
    let s = node.span.start;
    let e = node.span.end;
    Span::new(
        file.clone(),
        Pos {
            line: s.line().max(1),
            column: s.col() + 1,
        },
        Pos {
            line: e.line().max(1),
            column: e.col() + 1,
        },
    )
}

fn scalar_to_json(s: &Scalar) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.into_inner().to_string())),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn key_string(node: &MarkedYaml) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.into_inner().to_string()),
        YamlData::Value(Scalar::Null) => Some("null".to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        YamlData::Tagged(_, inner) => key_string(inner),
        _ => None,
    }
}

fn convert(
    file: &Arc<SourceFile>,
    node: &MarkedYaml,
    pointer: String,
    key: Option<Span>,
    spans: &mut SpanIndex,
    diags: &mut Vec<Diagnostic>,
) -> Value {
    let here = span_of(file, node);
    spans.insert(
        pointer.clone(),
        NodeSpans {
            key,
            value: here.clone(),
        },
    );
    match &node.data {
        YamlData::Value(s) => scalar_to_json(s),
        YamlData::Representation(s, _, _) => Value::String(s.to_string()),
        YamlData::Tagged(_, inner) => convert(file, inner, pointer, None, spans, diags),
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(file, item, format!("{pointer}/{i}"), None, spans, diags))
                .collect(),
        ),
        YamlData::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter() {
                let kspan = span_of(file, k);
                let Some(name) = key_string(k) else {
                    diags.push(
                        Diagnostic::new("ONB0102", "mapping keys must be plain scalars")
                            .at(kspan)
                            .label("complex key"),
                    );
                    continue;
                };
                if name == "<<" {
                    diags.push(
                        Diagnostic::new("ONB0004", "YAML merge keys (`<<`) are not allowed in manifests")
                            .at(kspan)
                            .label("merge key")
                            .help("write the keys out, or share structure through a provider template (`uses:`)"),
                    );
                    continue;
                }
                let p = child(&pointer, &name);
                let v = convert(file, v, p, Some(kspan), spans, diags);
                out.insert(name, v);
            }
            Value::Object(out)
        }
        YamlData::Alias(_) => {
            diags.push(
                Diagnostic::new("ONB0004", "YAML aliases are not allowed in manifests")
                    .at(here)
                    .label("alias"),
            );
            Value::Null
        }
        YamlData::BadValue => {
            diags.push(Diagnostic::new("ONB0003", "YAML value could not be read").at(here));
            Value::Null
        }
    }
}

/// Parse YAML that is not a manifest (canonical schemas, ICS files) into JSON, with a
/// plain error message. Used for trusted files shipped with the project.
pub fn parse_plain(name: &str, text: &str) -> Result<Value, String> {
    let file = SourceFile::new(name, text);
    parse(&file).map(|d| d.value).map_err(|ds| {
        ds.iter()
            .map(|d| format!("{}:{}:{}: {}", name, d.line(), d.column(), d.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}
