//! The ICS deployment file (`examples/<ics>/ics.yaml`): which providers, where the
//! landing zone and outputs are, the reference date, where the pseudonymisation key
//! comes from, and engine limits. Paths are relative to the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// An ICS deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcsFile {
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
    #[serde(default)]
    pub pseudonymisation: Pseudonymisation,
    #[serde(default)]
    pub engine: EngineSettings,
    /// A threshold breach in any source fails the whole run (default: only that source).
    #[serde(default)]
    pub fail_run_on_breach: bool,
    #[serde(default)]
    pub linkage: LinkageSettings,
    /// ICS-wide defaults of the per-source `delivery` settings (docs/manifest-reference.md).
    #[serde(default)]
    pub feeds: FeedDefaults,
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

pub use crate::link::config::LinkageSettings;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcsMeta {
    pub id: String,
    pub name: String,
}

/// Where the key comes from (never the key itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pseudonymisation {
    /// A file holding the key, relative to the ICS file.
    #[serde(default)]
    pub key_file: Option<String>,
}

/// Engine limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Memory pool for DataFusion operators (e.g. `2GiB`, `512MiB`).
    #[serde(default = "default_memory")]
    pub memory_limit: String,
    /// Parallelism (default: the number of CPUs).
    #[serde(default)]
    pub target_partitions: Option<usize>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            memory_limit: default_memory(),
            target_partitions: None,
        }
    }
}

fn default_output() -> String {
    "out".into()
}
fn default_memory() -> String {
    "2GiB".into()
}

/// A loaded ICS file with its directory.
#[derive(Debug, Clone)]
pub struct Ics {
    pub file: IcsFile,
    pub dir: PathBuf,
}

impl Ics {
    pub fn load(path: &Path) -> Result<Ics, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value = crate::manifest::source::parse_plain(&path.display().to_string(), &text)?;
        let file: IcsFile =
            serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))?;
        let problems = file.linkage.check();
        if !problems.is_empty() {
            return Err(format!("{}: {}", path.display(), problems.join("; ")));
        }
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Ics { file, dir })
    }
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// Parse sizes such as `2GiB`, `512MiB`, `1GB`, `1000000`.
pub fn parse_bytes(s: &str) -> Option<usize> {
    let t = s.trim();
    let idx = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as usize)
}
