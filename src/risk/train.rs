//! `onboard risk train`: fit (or import) the champion, the challenger and a
//! Charlson-only baseline on the training as-of dates, validate them at the later as-of
//! date, and write each as a versioned artefact with its model card under
//! `models/<version>/`; `models/registry.json` lists every version and names the champion.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::ModelSpec;
use super::dataset::{self, Dataset};
use super::evaluation::{self, Evaluation};
use super::features::FeatureColumn;
use super::model::{self, GbmParams, LogisticModel, LogisticParams, Matrix, Model, TreeEnsemble};
use super::{RiskError, Stage};

/// A model version on disk (`models/<version>/model.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artefact {
    pub version: String,
    pub role: Role,
    pub kind: String,
    pub spec: ModelSpec,
    /// The model's inputs, in order, with their labels.
    pub features: Vec<FeatureColumn>,
    /// Declared model inputs left out because they were constant in the training data.
    pub dropped_constant: Vec<String>,
    pub training: Window,
    pub validation: Validation,
    /// SHA-256 of the feature files the model was trained and validated on.
    pub data_fingerprint: String,
    pub codelist_versions: BTreeMap<String, String>,
    pub horizon_days: u32,
    pub model: Model,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Champion,
    Challenger,
    Baseline,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "super::config::ymd_list")]
    pub as_of: Vec<NaiveDate>,
    pub persons: usize,
    pub events: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    #[serde(with = "super::config::ymd")]
    pub as_of: NaiveDate,
    pub evaluation: Evaluation,
}

/// `models/registry.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    pub champion: Option<String>,
    pub versions: Vec<RegistryEntry>,
    /// Every change of the version that scores (`onboard refresh`, `onboard promote`),
    /// oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<Promotion>,
}

/// One promotion: `version` became the champion (replacing `previous`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Promotion {
    pub version: String,
    pub previous: Option<String>,
    /// The data date (extract date) it was promoted at.
    pub as_of: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistryEntry {
    pub version: String,
    pub role: Role,
    pub kind: String,
    #[serde(with = "super::config::ymd")]
    pub validation_as_of: NaiveDate,
    pub auroc: f64,
    pub recall_at_5: f64,
}

pub fn models_dir(out: &Path) -> PathBuf {
    out.join("models")
}

pub fn read_registry(out: &Path) -> Result<Registry, RiskError> {
    let p = models_dir(out).join("registry.json");
    if !p.exists() {
        return Ok(Registry::default());
    }
    let t = std::fs::read_to_string(&p).map_err(|e| RiskError::file(&p, e))?;
    serde_json::from_str(&t).map_err(|e| RiskError::file(&p, e))
}

/// Load a model version, or the champion.
pub fn read_artefact(out: &Path, version: Option<&str>) -> Result<Artefact, RiskError> {
    let reg = read_registry(out)?;
    let v = match version {
        Some(v) => v.to_string(),
        None => reg.champion.clone().ok_or_else(|| {
            RiskError::Data(format!(
                "{} has no champion model: run `onboard risk train` first",
                models_dir(out).display()
            ))
        })?,
    };
    let p = models_dir(out).join(&v).join("model.json");
    if !p.exists() {
        let known: Vec<&str> = reg.versions.iter().map(|e| e.version.as_str()).collect();
        return Err(RiskError::Data(format!(
            "model version `{v}` does not exist (versions: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let t = std::fs::read_to_string(&p).map_err(|e| RiskError::file(&p, e))?;
    serde_json::from_str(&t).map_err(|e| RiskError::file(&p, e))
}

/// What training produced.
#[derive(Debug, Clone, Serialize)]
pub struct Trained {
    pub artefacts: Vec<(Role, String, Evaluation)>,
    pub champion: String,
}

/// The feature columns of the stage (from the compiled query of the score date).
pub fn columns(stage: &Stage) -> Result<Vec<FeatureColumn>, RiskError> {
    let inputs = super::features::Inputs {
        settings: &stage.settings,
        codelists: &stage.codelists,
        data_end: stage.reference,
    };
    Ok(super::features::compile(&stage.specs, &inputs, stage.as_of.score)?.columns)
}

/// Load one as-of date's dataset with `inputs` as the model's columns.
pub async fn load_dataset(
    stage: &Stage,
    as_of: NaiveDate,
    inputs: &[String],
    need: dataset::Need,
) -> Result<Dataset, RiskError> {
    let ctx = crate::engine::planning_context();
    let dir = super::features_dir(&stage.out, as_of);
    dataset::load(&ctx, &dir, as_of, &columns(stage)?, inputs, need).await
}

/// What every model of one training run shares.
struct Fitting<'a> {
    stage: &'a Stage,
    columns: Vec<FeatureColumn>,
    dropped: Vec<String>,
    fingerprint: String,
    train_x: Matrix,
    train_y: Vec<bool>,
    valid: Dataset,
    valid_y: Vec<bool>,
}

/// Train and validate the declared models; write artefacts, cards and the registry.
pub async fn train(stage: &Stage) -> Result<Trained, RiskError> {
    let f = prepare(stage).await?;
    let mut plan = vec![(Role::Champion, stage.settings.model.clone())];
    if let Some(c) = &stage.settings.challenger {
        plan.push((Role::Challenger, c.clone()));
    }
    let mut made = Vec::new();
    for (role, spec) in plan {
        let m = fit(stage, &spec, &f.train_x, &f.train_y)?;
        made.push(f.finish(role, spec, m)?);
    }
    if f.columns
        .iter()
        .any(|c| c.name == "charlson" && c.model_input)
    {
        let x = select(&f.train_x, &[column_index(&f.train_x, "charlson")?]);
        let spec = ModelSpec::Logistic { c: 1.0 };
        let m = fit(stage, &spec, &x, &f.train_y)?;
        made.push(f.finish(Role::Baseline, spec, m)?);
    }
    let champion = made[0].version.clone();
    update_registry(stage, &made, &champion)?;
    Ok(Trained {
        artefacts: made
            .into_iter()
            .map(|a| (a.role, a.version, a.validation.evaluation))
            .collect(),
        champion,
    })
}

async fn prepare(stage: &Stage) -> Result<Fitting<'_>, RiskError> {
    let columns = columns(stage)?;
    let declared: Vec<String> = columns
        .iter()
        .filter(|c| c.model_input)
        .map(|c| c.name.clone())
        .collect();
    let (x, train_y) = training_rows(stage, &declared).await?;
    let keep = non_constant(&x);
    let inputs: Vec<String> = keep.iter().map(|j| declared[*j].clone()).collect();
    let dropped = declared
        .iter()
        .filter(|d| !inputs.contains(d))
        .cloned()
        .collect();
    let valid = load_dataset(stage, stage.as_of.validate, &inputs, dataset::Need::Fitting).await?;
    let valid_y = valid.y.clone().ok_or_else(|| {
        RiskError::Data(format!(
            "validation as-of {}: its {}-day outcome window is not yet in the data",
            stage.as_of.validate, stage.settings.horizon_days
        ))
    })?;
    Ok(Fitting {
        stage,
        columns,
        dropped,
        fingerprint: fingerprint(stage)?,
        train_x: select(&x, &keep),
        train_y,
        valid,
        valid_y,
    })
}

impl Fitting<'_> {
    /// Validate a fitted model and write it with its card.
    fn finish(&self, role: Role, spec: ModelSpec, m: Model) -> Result<Artefact, RiskError> {
        let x = reorder(&self.valid, m.feature_names())?;
        let p: Vec<f64> = (0..x.rows).map(|i| m.probability(x.row(i))).collect();
        let evaluation = evaluation::evaluate(&p, &self.valid_y, &breakdowns(&self.valid));
        let features = m
            .feature_names()
            .iter()
            .filter_map(|n| self.columns.iter().find(|c| &c.name == n).cloned())
            .collect();
        let stage = self.stage;
        let events = self.train_y.iter().filter(|v| **v).count();
        let mut a = Artefact {
            version: String::new(),
            role,
            kind: spec.kind_name().into(),
            spec,
            features,
            dropped_constant: self.dropped.clone(),
            training: Window {
                as_of: stage.as_of.train.clone(),
                persons: self.train_y.len(),
                events,
            },
            validation: Validation {
                as_of: stage.as_of.validate,
                evaluation,
            },
            data_fingerprint: self.fingerprint.clone(),
            codelist_versions: stage.codelists.versions(),
            horizon_days: stage.settings.horizon_days,
            model: m,
        };
        a.version = version_of(&a);
        write_artefact(stage, &a)?;
        Ok(a)
    }
}

/// Breakdowns for subgroup performance: IMD quintile, ethnic group, sex, age band.
pub fn breakdowns(d: &Dataset) -> Vec<(&'static str, Vec<String>)> {
    let num = |n: &str| {
        d.numeric_column(n)
            .unwrap_or_else(|| vec![f64::NAN; d.len()])
    };
    let txt = |n: &str| -> Vec<String> {
        (0..d.len())
            .map(|i| d.text_of(n, i).unwrap_or_else(|| "unknown".into()))
            .collect()
    };
    let sex = num("sex_female")
        .iter()
        .map(|v| match *v {
            v if v == 1.0 => "female".to_string(),
            v if v == 0.0 => "male".to_string(),
            _ => "unknown".to_string(),
        })
        .collect();
    vec![
        (
            "imd_quintile",
            num("imd_decile")
                .iter()
                .map(|v| evaluation::imd_quintile(*v))
                .collect(),
        ),
        ("ethnic_group", txt("ethnic_group")),
        ("sex", sex),
        (
            "age_band",
            num("age")
                .iter()
                .map(|v| evaluation::age_band(*v))
                .collect(),
        ),
    ]
}

fn fit(stage: &Stage, spec: &ModelSpec, x: &Matrix, y: &[bool]) -> Result<Model, RiskError> {
    let read = |p: &str| {
        let path = stage.dir.join(p);
        std::fs::read_to_string(&path).map_err(|e| RiskError::file(&path, e))
    };
    let m = match spec {
        ModelSpec::Logistic { c } => Model::Logistic(LogisticModel::fit(
            x,
            y,
            &LogisticParams {
                c: *c,
                max_iter: 100,
                tol: 1e-10,
            },
        )?),
        ModelSpec::Gbm {
            trees,
            max_depth,
            learning_rate,
        } => Model::Trees(TreeEnsemble::fit(
            x,
            y,
            &GbmParams {
                trees: *trees,
                max_depth: *max_depth,
                learning_rate: *learning_rate,
                min_child_weight: 1.0,
                lambda: 1.0,
                subsample: 1.0,
                seed: 42,
            },
        )?),
        ModelSpec::Xgboost { path } => Model::Trees(
            TreeEnsemble::from_xgboost_json(&read(path)?)
                .map_err(|e| RiskError::file(&stage.dir.join(path), e))?,
        ),
        ModelSpec::LinearJson { path } => Model::Logistic(
            model::linear_from_json(&read(path)?)
                .map_err(|e| RiskError::file(&stage.dir.join(path), e))?,
        ),
    };
    m.check_features(&x.names)?;
    Ok(m)
}

/// Every training as-of date's rows, stacked.
async fn training_rows(stage: &Stage, inputs: &[String]) -> Result<(Matrix, Vec<bool>), RiskError> {
    let mut x = Matrix {
        names: inputs.to_vec(),
        rows: 0,
        data: Vec::new(),
    };
    let mut y = Vec::new();
    for d in &stage.as_of.train {
        let ds = load_dataset(stage, *d, inputs, dataset::Need::Fitting).await?;
        let labels = ds.y.ok_or_else(|| {
            RiskError::Data(format!(
                "training as-of {d}: its {}-day outcome window is not in the data",
                stage.settings.horizon_days
            ))
        })?;
        x.rows += ds.x.rows;
        x.data.extend_from_slice(&ds.x.data);
        y.extend(labels);
    }
    if !y.iter().any(|v| *v) {
        return Err(RiskError::Data(format!(
            "no emergency admission in the outcome windows of the training as-of dates {:?}: nothing to learn from",
            stage.as_of.train
        )));
    }
    Ok((x, y))
}

/// Columns whose values are not all equal (NaN counts as one value).
fn non_constant(x: &Matrix) -> Vec<usize> {
    (0..x.cols())
        .filter(|j| {
            let first = x.data.get(*j).copied().unwrap_or(f64::NAN);
            (0..x.rows).any(|i| {
                let v = x.data[i * x.cols() + j];
                !(v == first || (v.is_nan() && first.is_nan()))
            })
        })
        .collect()
}

fn select(x: &Matrix, cols: &[usize]) -> Matrix {
    let c = x.cols();
    let mut data = Vec::with_capacity(x.rows * cols.len());
    for i in 0..x.rows {
        data.extend(cols.iter().map(|j| x.data[i * c + j]));
    }
    Matrix {
        names: cols.iter().map(|j| x.names[*j].clone()).collect(),
        rows: x.rows,
        data,
    }
}

fn column_index(x: &Matrix, name: &str) -> Result<usize, RiskError> {
    x.names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| RiskError::Data(format!("feature `{name}` is constant or missing")))
}

/// The dataset's columns in the order a model wants them.
pub fn reorder(d: &Dataset, names: &[String]) -> Result<Matrix, RiskError> {
    let idx: Vec<usize> = names
        .iter()
        .map(|n| column_index(&d.x, n))
        .collect::<Result<_, _>>()?;
    Ok(select(&d.x, &idx))
}

fn fingerprint(stage: &Stage) -> Result<String, RiskError> {
    let mut h = Sha256::new();
    let mut dates = stage.as_of.train.clone();
    dates.push(stage.as_of.validate);
    for d in dates {
        let p = super::features_dir(&stage.out, d).join("part-0.parquet");
        let bytes = std::fs::read(&p).map_err(|e| RiskError::file(&p, e))?;
        h.update(&bytes);
    }
    Ok(hex::encode(h.finalize()))
}

/// `<kind>-<validation as-of>-<8 hex of the artefact>`: the same inputs give the same version.
fn version_of(a: &Artefact) -> String {
    let body = serde_json::to_vec(&(&a.model, &a.training, &a.data_fingerprint, &a.spec))
        .unwrap_or_default();
    let h = hex::encode(Sha256::digest(&body));
    format!(
        "{}-{}-{}",
        a.kind,
        a.validation.as_of.format("%Y%m%d"),
        &h[..8]
    )
}

fn write_artefact(stage: &Stage, a: &Artefact) -> Result<(), RiskError> {
    let dir = models_dir(&stage.out).join(&a.version);
    std::fs::create_dir_all(&dir).map_err(|e| RiskError::file(&dir, e))?;
    let json = serde_json::to_string_pretty(a).map_err(|e| RiskError::Data(e.to_string()))?;
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        crate::store::write_atomic(&p, text.as_bytes()).map_err(|e| RiskError::file(&p, e))
    };
    w("model.json", &json)?;
    w("card.md", &super::card::markdown(a))?;
    w("card.html", &super::card::html(a))?;
    Ok(())
}

fn update_registry(stage: &Stage, made: &[Artefact], champion: &str) -> Result<(), RiskError> {
    let mut reg = read_registry(&stage.out)?;
    for a in made {
        let at5 = a
            .validation
            .evaluation
            .at_k
            .iter()
            .find(|k| k.k_percent == 5.0)
            .map(|k| k.recall)
            .unwrap_or(0.0);
        reg.versions.retain(|e| e.version != a.version);
        reg.versions.push(RegistryEntry {
            version: a.version.clone(),
            role: a.role,
            kind: a.kind.clone(),
            validation_as_of: a.validation.as_of,
            auroc: a.validation.evaluation.auroc,
            recall_at_5: at5,
        });
    }
    reg.champion = Some(champion.to_string());
    let p = models_dir(&stage.out).join("registry.json");
    let json = serde_json::to_string_pretty(&reg).map_err(|e| RiskError::Data(e.to_string()))?;
    crate::store::write_atomic(&p, json.as_bytes()).map_err(|e| RiskError::file(&p, e))
}
