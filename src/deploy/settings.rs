//! The `deploy:` section of an ICS file: which targets are enabled, where the landing
//! zone and outputs live in object storage, where secrets are kept (references only),
//! the schedule, and the sizes of clusters, executors and pods. Every key is documented
//! in `docs/deploy.md`; [`DeploySettings::check`] reports every problem at once, each
//! naming its setting (`deploy.storage.landing`, …).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::schedule;

/// How one ICS is deployed (`onboard render`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploySettings {
    /// Targets this ICS may be rendered for (`databricks`, `ballista`, `kubernetes`).
    pub targets: Vec<Target>,
    /// Object-storage locations of the landing zone and the outputs.
    pub storage: StorageSettings,
    /// Where secrets are kept: references, never values.
    pub secrets: SecretSettings,
    /// When the pipeline runs.
    pub schedule: ScheduleSettings,
    /// Databricks job cluster and workspace (target `databricks`).
    #[serde(default)]
    pub databricks: Option<DatabricksSettings>,
    /// Ballista scheduler and executors (target `ballista`).
    #[serde(default)]
    pub ballista: Option<BallistaSettings>,
    /// Kubernetes namespace, image and pod resources (target `kubernetes`).
    #[serde(default)]
    pub kubernetes: Option<KubernetesSettings>,
}

/// Object-storage URIs (`file://`, `s3://`, `abfss://`, `gs://`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// The landing zone holding the providers' extracts.
    pub landing: String,
    /// Where silver, identity, quarantine and reports are written.
    pub output: String,
}

/// Secret references.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    /// The per-ICS pseudonymisation key, per secret store.
    pub pseudonymisation_key: KeyReferences,
}

/// Where the pseudonymisation key is kept, per target's secret store.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyReferences {
    /// A Databricks secret scope and key (e.g. a Key Vault-backed scope).
    #[serde(default, deserialize_with = "databricks_ref")]
    pub databricks: Option<DatabricksSecretRef>,
    /// A Kubernetes Secret and key in the deployment namespace.
    #[serde(default, deserialize_with = "kubernetes_ref")]
    pub kubernetes: Option<KubernetesSecretRef>,
}

/// A Databricks secret: `{ scope, key }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabricksSecretRef {
    /// The secret scope (e.g. `kv-northshire`).
    pub scope: String,
    /// The secret's key inside the scope.
    pub key: String,
}

/// A Kubernetes Secret: `{ name, key }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSecretRef {
    /// The Secret object's name.
    pub name: String,
    /// The data key inside the Secret.
    pub key: String,
}

/// The run schedule.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Five-field cron (`minute hour day-of-month month day-of-week`), e.g. `30 2 * * *`.
    pub cron: String,
    /// IANA time zone the cron is read in (default `Europe/London`).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Cron of the linkage stage on Kubernetes (default: `cron`, which then links the
    /// previous published run); set it after the run's usual finish.
    #[serde(default)]
    pub link_cron: Option<String>,
}

/// Databricks workspace and job cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabricksSettings {
    /// Workspace URL (`https://adb-….azuredatabricks.net`).
    pub workspace_host: String,
    /// Databricks Runtime version of the job cluster (e.g. `15.4.x-scala2.12`).
    pub spark_version: String,
    /// Worker and driver node type (e.g. `Standard_D4ds_v5`).
    pub node_type_id: String,
    /// Number of workers.
    pub num_workers: u32,
    /// Table format of the outputs: `delta` (default) or `parquet`.
    #[serde(default = "default_table_format")]
    pub table_format: String,
}

/// Ballista scheduler and executors.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BallistaSettings {
    /// Scheduler container image.
    pub scheduler_image: String,
    /// Executor container image (an executor build that registers onboard's functions).
    pub executor_image: String,
    /// Number of executors.
    pub executors: u32,
    /// Concurrent tasks per executor.
    #[serde(default = "default_executor_cores")]
    pub executor_cores: u32,
    /// Memory per executor (Kubernetes quantity, e.g. `8Gi`).
    pub executor_memory: String,
    /// Scheduler gRPC port (default 50050).
    #[serde(default = "default_scheduler_port")]
    pub scheduler_port: u16,
    /// Namespace of the cluster and the submission job (default `onboard`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Image holding the `onboard` binary and the ICS configuration, which submits the run.
    pub client_image: String,
    /// PersistentVolumeClaim bound to the landing bucket (mounted by the client).
    pub landing_claim: String,
    /// PersistentVolumeClaim bound to the output bucket (client and executors share it).
    pub output_claim: String,
}

/// Kubernetes CronJobs running the embedded engine.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// Namespace (default `onboard`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Image holding the `onboard` binary and the ICS configuration repository.
    pub image: String,
    /// PersistentVolumeClaim bound to the landing bucket (e.g. through a CSI driver).
    pub landing_claim: String,
    /// PersistentVolumeClaim bound to the output bucket.
    pub output_claim: String,
    /// Pod resource requests and limits.
    pub resources: PodResources,
}

/// Requests and limits of one pod (Kubernetes quantities).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodResources {
    /// CPU request (e.g. `2`).
    pub cpu_request: String,
    /// CPU limit.
    pub cpu_limit: String,
    /// Memory request (e.g. `4Gi`).
    pub memory_request: String,
    /// Memory limit; the engine's memory pool should stay below it.
    pub memory_limit: String,
}

fn default_timezone() -> String {
    "Europe/London".into()
}
fn default_table_format() -> String {
    "delta".into()
}
fn default_executor_cores() -> u32 {
    4
}
fn default_scheduler_port() -> u16 {
    50050
}
fn default_namespace() -> String {
    "onboard".into()
}

/// A secret given as a plain value is refused before it is parsed any further, with a
/// message naming the setting (and never echoing the value).
fn reference<'de, D, T>(d: D, setting: &str, shape: &str) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("{setting}: {e}"))),
        _ => Err(D::Error::custom(format!(
            "{setting}: a secret is given as a reference {shape}, never as a literal value"
        ))),
    }
}

fn databricks_ref<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DatabricksSecretRef>, D::Error> {
    reference(
        d,
        "deploy.secrets.pseudonymisation_key.databricks",
        "`{ scope: <secret scope>, key: <key> }`",
    )
}

fn kubernetes_ref<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<KubernetesSecretRef>, D::Error> {
    reference(
        d,
        "deploy.secrets.pseudonymisation_key.kubernetes",
        "`{ name: <Secret name>, key: <key> }`",
    )
}

/// One problem in the `deploy:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted setting, e.g. `deploy.storage.landing`.
    pub setting: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// Storage schemes the targets can reach.
pub const SCHEMES: &[&str] = &["file", "s3", "abfss", "gs"];

/// The scheme of a storage URI, or why it is not one we support.
pub fn storage_scheme(uri: &str) -> Result<&str, String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!(
            "`{uri}` is not a URI; use one of {}",
            scheme_list()
        ));
    };
    if !SCHEMES.contains(&scheme) {
        return Err(format!(
            "scheme `{scheme}://` is not supported; use one of {}",
            scheme_list()
        ));
    }
    if rest.is_empty() || (scheme != "file" && rest.starts_with('/')) {
        return Err(format!("`{uri}` names no bucket or container"));
    }
    Ok(scheme)
}

fn scheme_list() -> String {
    SCHEMES
        .iter()
        .map(|s| format!("`{s}://`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DeploySettings {
    /// Every problem at once (empty when the section is usable).
    pub fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |setting: &str, message: String| {
            out.push(Problem {
                setting: setting.into(),
                message,
            })
        };
        if self.targets.is_empty() {
            push("deploy.targets", "no target is enabled".into());
        }
        for (name, uri) in [
            ("landing", &self.storage.landing),
            ("output", &self.storage.output),
        ] {
            if let Err(e) = storage_scheme(uri) {
                push(&format!("deploy.storage.{name}"), e);
            }
        }
        if let Err(e) = schedule::Cron::parse(&self.schedule.cron) {
            push("deploy.schedule.cron", e);
        }
        if let Some(c) = &self.schedule.link_cron
            && let Err(e) = schedule::Cron::parse(c)
        {
            push("deploy.schedule.link_cron", e);
        }
        if self.schedule.timezone.trim().is_empty() {
            push("deploy.schedule.timezone", "is empty".into());
        }
        for t in &self.targets {
            for p in self.check_target(*t) {
                out.push(p);
            }
        }
        out
    }

    /// What a target needs beyond the common keys.
    fn check_target(&self, t: Target) -> Vec<Problem> {
        let p = |setting: &str, message: &str| Problem {
            setting: setting.into(),
            message: message.into(),
        };
        let key = &self.secrets.pseudonymisation_key;
        let mut out = Vec::new();
        match t {
            Target::Databricks => {
                if self.databricks.is_none() {
                    out.push(p(
                        "deploy.databricks",
                        "target `databricks` is enabled but this section is missing",
                    ));
                }
                if key.databricks.is_none() {
                    out.push(p(
                        "deploy.secrets.pseudonymisation_key.databricks",
                        "target `databricks` needs a secret-scope reference `{ scope, key }`",
                    ));
                }
                if let Some(d) = &self.databricks
                    && !matches!(d.table_format.as_str(), "delta" | "parquet")
                {
                    out.push(p(
                        "deploy.databricks.table_format",
                        "must be `delta` or `parquet`",
                    ));
                }
                if let Err(e) = schedule::Cron::parse(&self.schedule.cron).and_then(|c| c.quartz())
                {
                    out.push(p("deploy.schedule.cron", &e));
                }
            }
            Target::Ballista => {
                if self.ballista.is_none() {
                    out.push(p(
                        "deploy.ballista",
                        "target `ballista` is enabled but this section is missing",
                    ));
                }
                if key.kubernetes.is_none() {
                    out.push(p(
                        "deploy.secrets.pseudonymisation_key.kubernetes",
                        "target `ballista` needs a Kubernetes Secret reference `{ name, key }`",
                    ));
                }
            }
            Target::Kubernetes => {
                if self.kubernetes.is_none() {
                    out.push(p(
                        "deploy.kubernetes",
                        "target `kubernetes` is enabled but this section is missing",
                    ));
                }
                if key.kubernetes.is_none() {
                    out.push(p(
                        "deploy.secrets.pseudonymisation_key.kubernetes",
                        "target `kubernetes` needs a Kubernetes Secret reference `{ name, key }`",
                    ));
                }
            }
        }
        out
    }
}

/// A deployment target.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A Databricks Asset Bundle: one job, one Spark SQL task per source.
    Databricks,
    /// A Ballista cluster (scheduler, executors) and the job that submits the run.
    Ballista,
    /// Kubernetes CronJobs running the embedded engine.
    Kubernetes,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Databricks => "databricks",
            Target::Ballista => "ballista",
            Target::Kubernetes => "kubernetes",
        }
    }
}
