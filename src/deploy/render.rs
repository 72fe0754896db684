//! `onboard render --ics <ics.yaml> --target <t> --out DIR`.
//!
//! A bundle is a sorted map of relative path → bytes, built in memory from the ICS
//! file, its validated manifests and the templates under `templates/deploy/<target>/`
//! (embedded at build time, so the binary renders the same anywhere). Templates render
//! with strict undefined variables; every rendered `.yml`/`.yaml`/`.json` file is parsed
//! back (and `databricks.yml` checked for structure) before the directory is replaced
//! atomically. Nothing time- or machine-dependent goes in: the same inputs give the same
//! bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::settings::DeploySettings;
use super::{DeployError, Target, schedule::Cron, spark};
use crate::compile::{self, RunContext};
use crate::ics::Ics;

/// Placeholder run id baked into the Spark SQL; the task replaces it with the job's.
pub const RUN_ID_PLACEHOLDER: &str = "onboard:run_id";
/// Placeholder reference date; the task replaces it with the run's reference date.
pub const REFERENCE_DATE_PLACEHOLDER: &str = "2999-12-31";

/// (target, template name, output path, text). Names ending `.tmpl` are rendered; the
/// rest are copied as they are.
const TEMPLATES: &[(Target, &str, &str, &str)] = &[
    (
        Target::Databricks,
        "databricks.yml.tmpl",
        "databricks.yml",
        include_str!("../../templates/deploy/databricks/databricks.yml.tmpl"),
    ),
    (
        Target::Databricks,
        "python/onboard_task.py",
        "python/onboard_task.py",
        include_str!("../../templates/deploy/databricks/python/onboard_task.py"),
    ),
    (
        Target::Databricks,
        "python/onboard_udfs.py",
        "python/onboard_udfs.py",
        include_str!("../../templates/deploy/databricks/python/onboard_udfs.py"),
    ),
    (
        Target::Ballista,
        "cluster.yaml.tmpl",
        "cluster.yaml",
        include_str!("../../templates/deploy/ballista/cluster.yaml.tmpl"),
    ),
    (
        Target::Ballista,
        "submit-job.yaml.tmpl",
        "submit-job.yaml",
        include_str!("../../templates/deploy/ballista/submit-job.yaml.tmpl"),
    ),
    (
        Target::Kubernetes,
        "cronjobs.yaml.tmpl",
        "cronjobs.yaml",
        include_str!("../../templates/deploy/kubernetes/cronjobs.yaml.tmpl"),
    ),
];

/// What was written.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub out: PathBuf,
    pub files: Vec<String>,
}

/// Render the bundle of `target` for the ICS file and replace `out` with it.
pub fn render(ics_path: &Path, target: Target, out: &Path) -> Result<Rendered, DeployError> {
    let files = bundle(ics_path, target)?;
    write_dir(out, &files)?;
    Ok(Rendered {
        out: out.to_path_buf(),
        files: files.keys().cloned().collect(),
    })
}

/// The files of a bundle (relative path → text), checked, without writing anything.
pub fn bundle(ics_path: &Path, target: Target) -> Result<BTreeMap<String, String>, DeployError> {
    let file = ics_path.display().to_string();
    let ics = Ics::load(ics_path).map_err(|e| DeployError::Ics(e.to_string()))?;
    let deploy = ics
        .file
        .deploy
        .clone()
        .ok_or_else(|| DeployError::NoDeploySection { file: file.clone() })?;
    let problems = deploy.check();
    if !problems.is_empty() {
        return Err(DeployError::Settings {
            file,
            problems: problems.iter().map(ToString::to_string).collect(),
        });
    }
    if !deploy.targets.contains(&target) {
        return Err(DeployError::TargetNotEnabled {
            file,
            target: target.name(),
            enabled: deploy
                .targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let sources = compiled_sources(&ics)?;
    let ctx = context(&ics, ics_path, &deploy, target, &sources)?;
    let mut files = BTreeMap::new();
    for (t, name, path, text) in TEMPLATES {
        if *t != target {
            continue;
        }
        let body = if name.ends_with(".tmpl") {
            render_template(name, text, &ctx)?
        } else {
            text.to_string()
        };
        files.insert(path.to_string(), body);
    }
    if target == Target::Databricks {
        for s in &sources {
            files.insert(
                format!("sql/{}.sql", s.task_key),
                format!("{};\n", s.spark_sql),
            );
            let stage = serde_json::to_string_pretty(&s.stage).map_err(|e| io_err("stage", e))?;
            files.insert(format!("stages/{}.json", s.task_key), stage + "\n");
        }
    }
    for (path, text) in &files {
        parse_back(path, text)?;
    }
    if let Some(yml) = files.get("databricks.yml") {
        let doc = crate::manifest::source::parse_plain("databricks.yml", yml).map_err(|m| {
            DeployError::Unparseable {
                file: "databricks.yml".into(),
                kind: "YAML",
                message: m,
            }
        })?;
        let problems = super::check::databricks_yml(&doc);
        if !problems.is_empty() {
            return Err(DeployError::Structure(problems));
        }
    }
    Ok(files)
}

/// One source, compiled and unparsed to Spark SQL, with what its task needs.
struct StageSource {
    task_key: String,
    provider: String,
    source: String,
    entity: String,
    spark_sql: String,
    stage: Value,
}

/// Every source of the ICS's manifests, compiled and unparsed, in pipeline order.
fn compiled_sources(ics: &Ics) -> Result<Vec<StageSource>, DeployError> {
    let paths: Vec<PathBuf> = ics.file.providers.iter().map(|p| ics.resolve(p)).collect();
    let outcome = crate::validate::validate_paths(&paths, &Default::default())
        .map_err(|e| DeployError::Ics(e.to_string()))?;
    if outcome.diagnostics.has_errors() {
        let summary = crate::diagnostics::Summary {
            files: outcome.files.clone(),
        };
        return Err(DeployError::Invalid(crate::diagnostics::render_human(
            &outcome.diagnostics.into_sorted(),
            &summary,
        )));
    }
    let run_ctx = RunContext {
        run_id: RUN_ID_PLACEHOLDER.into(),
        reference_date: REFERENCE_DATE_PLACEHOLDER.into(),
    };
    let ctx = crate::engine::planning_context();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| io_err("runtime", e))?;
    let mut out = Vec::new();
    for m in &outcome.manifests {
        for s in &m.sources {
            let c = compile::compile_source(m, s, &run_ctx);
            let name = format!("{}/{}", c.provider, c.source);
            let plan_err = |e: datafusion::error::DataFusionError| DeployError::Plan {
                source_name: name.clone(),
                message: e.to_string(),
            };
            compile::register_empty_scan(&ctx, &c, s).map_err(plan_err)?;
            let plan = rt
                .block_on(compile::logical_plan(&ctx, &c))
                .map_err(plan_err)?;
            let spark_sql = spark::plan_to_spark_sql(&plan).map_err(plan_err)?;
            let _ = ctx.deregister_table(c.table.as_str());
            let task_key = format!("ingest_{}__{}", c.provider, c.source).replace('-', "_");
            let stage = stage_json(&c, s, &task_key, ics.file.reference_date.as_deref());
            out.push(StageSource {
                task_key,
                provider: c.provider.clone(),
                source: c.source.clone(),
                entity: c.entity.clone(),
                spark_sql,
                stage,
            });
        }
    }
    Ok(out)
}

/// What the Databricks task needs to read, run and split one source.
fn stage_json(
    c: &compile::CompiledSource,
    s: &crate::validate::ResolvedSource,
    task_key: &str,
    reference_date: Option<&str>,
) -> Value {
    let ch = |b: u8| (b as char).to_string();
    let format = match s.format {
        crate::manifest::model::SourceFormat::Csv => "csv",
        crate::manifest::model::SourceFormat::Ndjson => "ndjson",
        crate::manifest::model::SourceFormat::Parquet => "parquet",
    };
    let on_fail = |o: crate::manifest::model::OnFail| match o {
        crate::manifest::model::OnFail::Quarantine => "quarantine",
        crate::manifest::model::OnFail::Warn => "warn",
        crate::manifest::model::OnFail::Fail => "fail",
    };
    json!({
        "task_key": task_key,
        "provider": c.provider,
        "source": c.source,
        "entity": c.entity,
        "table": c.table,
        "sql_file": format!("sql/{task_key}.sql"),
        "format": format,
        "path": s.path,
        "columns": s.columns,
        "csv": {
            "delimiter": ch(s.csv.delimiter),
            "quote": ch(s.csv.quote),
            "escape": s.csv.escape.map(ch),
            "header": s.csv.header,
            "encoding": if s.csv.encoding == crate::manifest::model::Encoding::Latin1 { "latin-1" } else { "utf-8" },
            "null_values": s.csv.null_values,
        },
        "rules": c.rules.iter().map(|r| json!({
            "column": r.column,
            "id": r.rule.id,
            "code": r.rule.code,
            "on_fail": on_fail(r.rule.on_fail),
        })).collect::<Vec<_>>(),
        "mapped": c.mapped,
        "identity": c.identity,
        "manifest_hash": c.manifest_hash,
        "reference_date": reference_date,
        "placeholders": {
            "run_id": RUN_ID_PLACEHOLDER,
            "reference_date": REFERENCE_DATE_PLACEHOLDER,
        },
    })
}

/// The template context of one target.
fn context(
    ics: &Ics,
    ics_path: &Path,
    d: &DeploySettings,
    target: Target,
    sources: &[StageSource],
) -> Result<Value, DeployError> {
    let cron = Cron::parse(&d.schedule.cron).map_err(|m| settings_err(ics_path, m))?;
    let link_cron = match &d.schedule.link_cron {
        Some(c) => Cron::parse(c).map_err(|m| settings_err(ics_path, m))?,
        None => cron.clone(),
    };
    let quartz = if target == Target::Databricks {
        Some(cron.quartz().map_err(|m| settings_err(ics_path, m))?)
    } else {
        None
    };
    let id = &ics.file.ics.id;
    let mut prev: Option<&str> = None;
    let tasks: Vec<Value> = sources
        .iter()
        .map(|s| {
            let t = json!({
                "task_key": s.task_key,
                "provider": s.provider,
                "source": s.source,
                "entity": s.entity,
                "depends_on": prev,
            });
            prev = Some(&s.task_key);
            t
        })
        .collect();
    Ok(json!({
        "ics": { "id": id, "name": ics.file.ics.name },
        "ics_file": portable_path(ics_path),
        "bundle_name": format!("onboard-{id}"),
        "job_key": format!("onboard_{}", id.replace('-', "_")),
        "name_prefix": format!("onboard-{id}"),
        "storage": d.storage,
        "schedule": {
            "cron": cron.text(),
            "link_cron": link_cron.text(),
            "quartz": quartz,
            "timezone": d.schedule.timezone,
        },
        "secret": match target {
            Target::Databricks => serde_json::to_value(&d.secrets.pseudonymisation_key.databricks),
            _ => serde_json::to_value(&d.secrets.pseudonymisation_key.kubernetes),
        }.map_err(|e| io_err("context", e))?,
        "databricks": d.databricks,
        "ballista": d.ballista,
        "kubernetes": d.kubernetes,
        "memory_limit": ics.file.engine.memory_limit,
        "tasks": tasks,
    }))
}

fn settings_err(ics_path: &Path, m: String) -> DeployError {
    DeployError::Settings {
        file: ics_path.display().to_string(),
        problems: vec![format!("deploy.schedule: {m}")],
    }
}

/// The ICS path as given, with `/` separators; an absolute path inside the working
/// directory becomes relative (bundles must not carry machine paths).
fn portable_path(p: &Path) -> String {
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf());
    rel.to_string_lossy().replace('\\', "/")
}

fn render_template(name: &str, text: &str, ctx: &Value) -> Result<String, DeployError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| DeployError::Template {
            template: name.to_string(),
            message: e.to_string(),
        })?;
    env.set_syntax(syntax);
    env.set_fuel(Some(1_000_000));
    env.set_recursion_limit(64);
    let err = |e: minijinja::Error| DeployError::Template {
        template: name.to_string(),
        message: format!("{e:#}"),
    };
    env.add_template(name, text).map_err(err)?;
    let tmpl = env.get_template(name).map_err(err)?;
    tmpl.render(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(err)
}

/// Every rendered YAML (each document) and JSON file must parse.
fn parse_back(path: &str, text: &str) -> Result<(), DeployError> {
    if path.ends_with(".json") {
        serde_json::from_str::<Value>(text).map_err(|e| DeployError::Unparseable {
            file: path.into(),
            kind: "JSON",
            message: e.to_string(),
        })?;
    } else if path.ends_with(".yml") || path.ends_with(".yaml") {
        for doc in split_documents(text) {
            crate::manifest::source::parse_plain(path, doc).map_err(|m| {
                DeployError::Unparseable {
                    file: path.into(),
                    kind: "YAML",
                    message: m,
                }
            })?;
        }
    }
    Ok(())
}

/// The documents of a multi-document YAML stream (separated by `---` lines).
pub fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&text[start..pos]);
            start = pos + line.len();
        }
        pos += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn io_err(path: &str, e: impl std::fmt::Display) -> DeployError {
    DeployError::Io {
        path: path.into(),
        message: e.to_string(),
    }
}

/// Replace `out` with exactly these files: write a sibling temporary directory, then
/// swap it in (a failed render leaves the previous bundle as it was).
fn write_dir(out: &Path, files: &BTreeMap<String, String>) -> Result<(), DeployError> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "bundle".into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err(&parent.display().to_string(), e))?;
    let tmp = parent.join(format!(".{name}.render-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (rel, text) in files {
        let p = tmp.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| io_err(&d.display().to_string(), e))?;
        }
        std::fs::write(&p, text).map_err(|e| io_err(&p.display().to_string(), e))?;
    }
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old).map_err(|e| io_err(&out.display().to_string(), e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        return Err(io_err(&out.display().to_string(), e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}
