//! The ICS deployment file (`examples/<ics>/ics.yaml`): which providers, where the
//! landing zone and outputs are, the reference date, where the pseudonymisation key
//! comes from, engine limits and record linkage. Paths are relative to the file.
//!
//! The file is a first-class document, read like a provider manifest: YAML with
//! positions, a JSON Schema generated from the types below (`onboard schema --ics`,
//! `schemas/ics.schema.json`) checked with every error at its `file:line:col` with an
//! `ONB09xx` code and a did-you-mean, then the semantic checks of each section
//! ([`check`]) as located findings. [`Ics::load`] returns all problems at once.
//!
//! A section added to [`IcsFile`] (a struct deriving `Deserialize`, `Serialize` and
//! `JsonSchema` with `#[serde(deny_unknown_fields)]`) gets located schema diagnostics
//! for free; its semantic checks go in [`check`] (see docs/architecture.md).

pub mod check;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostics::{Diagnostic, Diagnostics, Summary, display_path, render_human};
use crate::manifest::schema::{DocumentKind, SchemaCheck};
use crate::manifest::source::Document;

/// An ICS deployment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "onboard ICS deployment file")]
pub struct IcsFile {
    /// Which ICS this is.
    pub ics: IcsMeta,
    /// Manifest files or directories.
    pub providers: Vec<String>,
    /// Landing zone holding the extracts.
    pub landing: String,
    /// Output directory.
    #[serde(default = "default_output")]
    pub output: String,
    /// Date rules such as `not_in_future` compare against (YYYY-MM-DD); default today.
    #[serde(default)]
    pub reference_date: Option<String>,
    /// Where the pseudonymisation key comes from (never the key itself).
    #[serde(default)]
    pub pseudonymisation: Pseudonymisation,
    /// Engine limits.
    #[serde(default)]
    pub engine: EngineSettings,
    /// A threshold breach in any source fails the whole run (default: only that source).
    #[serde(default)]
    pub fail_run_on_breach: bool,
    /// Record linkage (`onboard link`, docs/linkage.md).
    #[serde(default)]
    pub linkage: LinkageSettings,
    /// Risk scoring (`onboard risk …`, docs/risk.md).
    #[serde(default)]
    pub risk: crate::risk::config::RiskSettings,
    /// Population health analytics (`onboard population …`, docs/population.md); checked
    /// when written (without it, `onboard population` uses the shipped defaults).
    #[serde(default)]
    pub population: Option<crate::population::config::PopulationSettings>,
    /// How this ICS is deployed (`onboard render`; docs/deploy.md).
    #[serde(default)]
    pub deploy: Option<crate::deploy::settings::DeploySettings>,
    /// ICS-wide defaults of the per-source `delivery` settings (docs/manifest-reference.md).
    #[serde(default)]
    pub feeds: FeedDefaults,
    /// The dashboard: users, roles, scopes and sign-in (`onboard serve`; docs/serve.md).
    #[serde(default)]
    pub serve: Option<crate::serve::config::ServeSettings>,
    /// Model operations: monthly refresh, monitoring, referrals (`onboard refresh`,
    /// docs/operations.md).
    #[serde(default)]
    pub operations: crate::ops::config::OperationsSettings,
}

/// Defaults for every source's `delivery` block; a source's own setting wins.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedDefaults {
    /// What a source with no matching file does: `carry_forward` (default), `empty`, `fail_run`.
    #[serde(default)]
    pub on_missing: Option<crate::manifest::model::OnProblem>,
    /// What a failing source does: `carry_forward` (default), `empty`, `fail_run`.
    #[serde(default)]
    pub on_failure: Option<crate::manifest::model::OnProblem>,
    /// Days after which carried-forward data is too old (default: no limit).
    #[serde(default)]
    pub max_carry_forward_age: Option<u32>,
    /// Largest row-count change against the previous good load, as a share (default: no check).
    #[serde(default)]
    pub max_row_change: Option<f64>,
}

pub use crate::engine::{EngineSettings, parse_bytes};
pub use crate::link::config::LinkageSettings;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IcsMeta {
    /// Stable id of the ICS (in `run.json`).
    pub id: String,
    /// Human name.
    pub name: String,
}

/// Where the key comes from (never the key itself).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pseudonymisation {
    /// A file holding the key, relative to the ICS file.
    #[serde(default)]
    pub key_file: Option<String>,
}

fn default_output() -> String {
    "out".into()
}

/// A loaded ICS file with its directory.
#[derive(Debug, Clone)]
pub struct Ics {
    pub file: IcsFile,
    pub dir: PathBuf,
}

/// Why an ICS file did not load: every problem found, as located diagnostics. Displays
/// as the human rendering (`file:line:col`, code, source line, hint).
#[derive(Debug, thiserror::Error)]
#[error("{rendered}")]
pub struct IcsError {
    /// Sorted, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    rendered: String,
}

impl IcsError {
    fn new(name: String, diagnostics: Diagnostics) -> Self {
        let diagnostics = diagnostics.into_sorted();
        let summary = Summary { files: vec![name] };
        let rendered = render_human(&diagnostics, &summary);
        let rendered = rendered.trim_end().to_string();
        IcsError {
            diagnostics,
            rendered,
        }
    }
}

/// An ICS file read and checked.
#[derive(Debug)]
pub struct Checked {
    /// The file as shown to the user.
    pub name: String,
    /// Every problem found (errors and warnings).
    pub diagnostics: Diagnostics,
    /// The file when it passed the schema (it may still have semantic errors).
    pub parsed: Option<Ics>,
}

impl Checked {
    /// The file, when it has no errors.
    pub fn ok(&self) -> Option<&Ics> {
        self.parsed
            .as_ref()
            .filter(|_| !self.diagnostics.has_errors())
    }
}

/// The ICS file kind: `ONB0901`–`ONB0904` for schema problems.
pub const KIND: DocumentKind = DocumentKind {
    what: "the ICS file",
    unknown_key: "ONB0901",
    wrong_type: "ONB0902",
    missing_key: "ONB0903",
    invalid_value: "ONB0904",
    version: None,
};

fn schema_check() -> &'static SchemaCheck {
    static C: OnceLock<SchemaCheck> = OnceLock::new();
    C.get_or_init(|| SchemaCheck::new(KIND, json_schema()))
}

/// The JSON Schema of ICS files, generated from [`IcsFile`].
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<IcsFile>();
    let mut v = serde_json::to_value(schema).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "$id".into(),
            serde_json::Value::String(
                "https://onboard-ics.github.io/schemas/ics.schema.json".into(),
            ),
        );
    }
    v
}

/// The schema as pretty JSON text, as committed in `schemas/ics.schema.json`.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// Whether a parsed YAML value looks like an ICS file: a mapping with a top-level `ics:`
/// key and either `providers:` or none of the manifest keys (`manifest_version:`,
/// `provider:`), so a misspelt `providers:` is still reported as an ICS-file problem.
pub fn looks_like_ics(value: &serde_json::Value) -> bool {
    value.get("ics").is_some()
        && (value.get("providers").is_some()
            || (value.get("manifest_version").is_none() && value.get("provider").is_none()))
}

/// Whether the YAML file at `path` is an ICS file by its content (unreadable or
/// malformed files are not: they are reported as manifests).
pub fn is_ics_file(path: &Path) -> bool {
    let Ok(file) = crate::manifest::read_text(path, &display_path(path)) else {
        return false;
    };
    crate::manifest::source::parse(&file).is_ok_and(|doc| looks_like_ics(&doc.value))
}

/// Read and check the ICS file at `path`: YAML, schema, then semantic checks.
pub fn read(path: &Path) -> Checked {
    let name = display_path(path);
    let mut diagnostics = Diagnostics::default();
    let ics = match crate::manifest::read_text(path, &name) {
        Ok(file) => match crate::manifest::source::parse(&file) {
            Ok(doc) => check_document(path, &doc, &mut diagnostics),
            Err(ds) => {
                ds.into_iter().for_each(|d| diagnostics.push(d));
                None
            }
        },
        Err(d) => {
            diagnostics.push(d);
            None
        }
    };
    Checked {
        name,
        diagnostics,
        parsed: ics,
    }
}

/// Check a parsed ICS document; the file when it deserialises.
pub fn check_document(path: &Path, doc: &Document, diags: &mut Diagnostics) -> Option<Ics> {
    let before = diags.errors();
    schema_check().check(doc, diags);
    if diags.errors() > before {
        return None;
    }
    let file: IcsFile = match serde_json::from_value(doc.value.clone()) {
        Ok(f) => f,
        Err(e) => {
            // The schema is generated from the same types; this is a backstop.
            diags.push(
                Diagnostic::new(
                    KIND.invalid_value,
                    format!("the ICS file does not read: {e}"),
                )
                .at(crate::diagnostics::Span::file_start(doc.file.clone())),
            );
            return None;
        }
    };
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let ics = Ics { file, dir };
    for f in check::check(&ics) {
        diags.push(doc.locate(f));
    }
    Some(ics)
}

impl Ics {
    /// Read and check an ICS file. Every problem comes back at once in the error;
    /// warnings of a file that loads are logged.
    pub fn load(path: &Path) -> Result<Ics, IcsError> {
        let checked = read(path);
        match checked.ok().cloned() {
            Some(ics) => {
                for d in checked.diagnostics.iter() {
                    tracing::warn!(
                        "{}:{}:{}: [{}] {}",
                        d.file_name(),
                        d.line(),
                        d.column(),
                        d.code,
                        d.message
                    );
                }
                Ok(ics)
            }
            None => Err(IcsError::new(checked.name, checked.diagnostics)),
        }
    }

    /// The `linkage:` settings, its files (`postcode_lsoa11`, `nicknames`) resolved
    /// against the ICS file's directory.
    pub fn linkage_settings(&self) -> LinkageSettings {
        let mut linkage = self.file.linkage.clone();
        let resolve = |p: &Option<String>| {
            p.as_deref()
                .map(|p| self.resolve(p).to_string_lossy().to_string())
        };
        linkage.postcode_lsoa11 = resolve(&linkage.postcode_lsoa11);
        linkage.nicknames = resolve(&linkage.nicknames);
        linkage
    }

    /// A path of the file resolved against the file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}
