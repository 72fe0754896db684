//! Risk scoring: the third kind of plan the manifests of an ICS compile into. It owns
//! `gold/features` (declared features over the spine at an as-of date, with the outcome
//! computed from the ingested spells), `models/<version>/` (trained or imported models
//! with their model cards), `gold/risk_scores` and `gold/explanations` (exact SHAP
//! contributions, top factors with evidence). It reads only `linkage/spine/`.
//!
//! * [`config`]: the `risk:` section of the ICS file.
//! * [`codelists`]: versioned code-list and index files (Charlson, Elixhauser, HFRS, LTCs).
//! * [`spine`]: the spine tables as the feature plans see them.
//! * [`features`]: features → one SQL query → DataFusion plan, per as-of date.
//! * [`dataset`]: `gold/features` → design matrices and labels.
//! * [`model`]: logistic regression, gradient-boosted trees, imported models, SHAP.
//! * [`evaluation`]: AUROC, recall@k, PPV@k, calibration, subgroups.
//! * [`train`], [`score`]: the commands' work; [`card`]: model cards; [`report`]: what
//!   the commands print (risk pyramid, explanation cards).

pub mod config;
pub mod codelists;
pub mod spine;
pub mod features;
pub mod dataset;
pub mod model;
pub mod evaluation;
pub mod train;
pub mod score;
pub mod card;
pub mod report;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use codelists::Codelists;
use config::{FeatureSpec, ResolvedAsOf, RiskSettings};

/// A risk-stage failure, naming the file or setting.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    #[error(transparent)]
    Setting(#[from] config::SettingError),
    #[error(transparent)]
    Feature(#[from] features::FeatureError),
    #[error(transparent)]
    Codelist(#[from] codelists::CodelistError),
    #[error(transparent)]
    Spine(#[from] spine::SpineError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Engine(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl RiskError {
    pub fn file(path: &Path, e: impl std::fmt::Display) -> RiskError {
        RiskError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Everything the risk commands share: the run directory, the settings and where they
/// came from, the resolved as-of dates.
#[derive(Debug, Clone)]
pub struct Stage {
    pub out: PathBuf,
    /// Directory relative paths of the `risk:` section resolve against.
    pub dir: PathBuf,
    pub settings: RiskSettings,
    pub specs: Vec<FeatureSpec>,
    pub codelists: Codelists,
    /// The last date the data cover.
    pub reference: NaiveDate,
    pub as_of: ResolvedAsOf,
    /// The memory pool and parallelism of the feature plans (`engine:` of the ICS file).
    pub engine: crate::ics::EngineSettings,
}

impl Stage {
    /// Settings from the ICS file's `risk:` section (defaults without one); the reference
    /// date from the ICS file, else from the run's `run.json`.
    pub fn load(out: &Path, ics: Option<&crate::ics::Ics>) -> Result<Stage, RiskError> {
        let (settings, dir, ref_text) = match ics {
            Some(i) => (
                i.file.risk.clone(),
                i.dir.clone(),
                i.file.reference_date.clone(),
            ),
            None => (RiskSettings::default(), out.to_path_buf(), None),
        };
        let engine = ics.map(|i| i.file.engine.clone()).unwrap_or_default();
        let reference = match ref_text {
            Some(t) => parse_date(&t).ok_or_else(|| {
                RiskError::Data(format!("reference_date `{t}` is not YYYY-MM-DD"))
            })?,
            None => run_reference_date(out)?,
        };
        if let Some(e) = settings.check(reference).into_iter().next() {
            return Err(e.into());
        }
        let codelists =
            Codelists::load(settings.codelists.as_ref().map(|c| dir.join(c)).as_deref())?;
        let specs = settings.feature_specs(&dir)?;
        if let Some(e) = features::check(&specs, &codelists).into_iter().next() {
            return Err(e.into());
        }
        let as_of = settings.as_of.resolve(reference)?;
        Ok(Stage {
            out: out.to_path_buf(),
            dir,
            settings,
            specs,
            codelists,
            reference,
            as_of,
            engine,
        })
    }

    pub fn gold(&self) -> PathBuf {
        self.out.join("gold")
    }

    /// A session with the spine, IMD and code lists registered, its operators held to
    /// `engine.memory_limit` and spilling under the run directory's `.spill/`.
    pub async fn session(&self) -> Result<SessionContext, RiskError> {
        let spill = self.out.join(".spill");
        let ctx = crate::engine::bounded_context(&self.engine, &spill)
            .map_err(|e| RiskError::file(&spill, e))?;
        spine::register(&ctx, &self.out, &self.codelists).await?;
        Ok(ctx)
    }

    /// Every as-of date the stage uses: training, validation and scoring.
    pub fn all_as_of(&self) -> Vec<NaiveDate> {
        let mut v = self.as_of.train.clone();
        v.push(self.as_of.validate);
        v.push(self.as_of.score);
        v.sort();
        v.dedup();
        v
    }
}

pub use config::parse_date;

fn run_reference_date(out: &Path) -> Result<NaiveDate, RiskError> {
    let path = out.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| RiskError::file(&path, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| RiskError::file(&path, e))?;
    v.get("reference_date")
        .and_then(|d| d.as_str())
        .and_then(parse_date)
        .ok_or_else(|| RiskError::file(&path, "no reference_date"))
}

/// Where the features of one as-of date live.
pub fn features_dir(out: &Path, as_of: NaiveDate) -> PathBuf {
    out.join("gold")
        .join("features")
        .join(format!("as_of={}", as_of.format("%Y-%m-%d")))
}

/// One as-of date's features, written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeaturesWritten {
    #[serde(with = "config::ymd")]
    pub as_of: NaiveDate,
    pub persons: usize,
    pub outcome_known: bool,
    pub with_outcome: usize,
    pub path: PathBuf,
}

/// The compiled query of one as-of date after checking that the data cover it.
pub async fn feature_query(
    stage: &Stage,
    ctx: &SessionContext,
    as_of: NaiveDate,
) -> Result<features::FeatureQuery, RiskError> {
    let span = spine::data_span(ctx).await?;
    let Some((_, last)) = span else {
        return Err(RiskError::Data(format!(
            "{} holds no care events or GP records",
            spine::spine_dir(&stage.out).display()
        )));
    };
    let first = spine::first_event_by_setting(ctx).await?;
    for (feature, setting, months) in features::event_windows(&stage.specs) {
        let start = config::months_before(as_of, months);
        if let Some(f) = first.get(&setting).filter(|f| **f > start) {
            return Err(RiskError::Data(format!(
                "as-of {as_of} has not enough history: feature `{feature}` counts {setting} events back {months} months (to {start}) but the {setting} data begin on {f}; choose a later as-of date (risk.as_of)"
            )));
        }
    }
    if as_of > stage.reference.max(last) {
        return Err(RiskError::Data(format!(
            "as-of {as_of} is after the data end ({})",
            stage.reference.max(last)
        )));
    }
    let inputs = features::Inputs {
        settings: &stage.settings,
        codelists: &stage.codelists,
        data_end: stage.reference,
    };
    Ok(features::compile(&stage.specs, &inputs, as_of)?)
}

/// Compute and write `gold/features/as_of=<date>/` for each date (atomically per date).
pub async fn write_features(
    stage: &Stage,
    dates: &[NaiveDate],
) -> Result<Vec<FeaturesWritten>, RiskError> {
    let mut out = Vec::new();
    for d in dates {
        // A session (and memory pool) per date: what one date's query reserved is never
        // counted against the next.
        let ctx = stage.session().await?;
        let q = feature_query(stage, &ctx, *d).await?;
        let dir = features_dir(&stage.out, *d);
        let stream = ctx.sql(&q.sql).await?.execute_stream().await?;
        let written = dataset::write_stream(&dir, stream).await?;
        let persons = written.rows;
        let with_outcome = written.outcomes;
        out.push(FeaturesWritten {
            as_of: *d,
            persons,
            outcome_known: q.outcome_known,
            with_outcome,
            path: dir,
        });
    }
    let meta = stage.gold().join("features").join("columns.json");
    let cols = features::compile(
        &stage.specs,
        &features::Inputs {
            settings: &stage.settings,
            codelists: &stage.codelists,
            data_end: stage.reference,
        },
        stage.as_of.score,
    )?
    .columns;
    crate::store::write_atomic(
        &meta,
        serde_json::to_string_pretty(&cols)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| RiskError::file(&meta, e))?;
    Ok(out)
}

/// `onboard risk plan`: the SQL of the feature query of an as-of date and its
/// optimised DataFusion logical plan.
pub async fn plan(stage: &Stage, as_of: NaiveDate) -> Result<String, RiskError> {
    let ctx = stage.session().await?;
    let q = feature_query(stage, &ctx, as_of).await?;
    let df = ctx.sql(&q.sql).await?;
    let plan = df.into_optimized_plan()?;
    Ok(format!(
        "-- features at as-of {as_of} ({} columns)\n{}\n\n-- optimised logical plan\n{}\n",
        q.columns.len(),
        q.sql,
        plan.display_indent()
    ))
}
