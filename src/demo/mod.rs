//! `onboard demo`: the whole pipeline over a synthetic ICS, in order: synth → validate
//! → run → link (scored against the synthetic truth) → risk → population. Each step's
//! typed result goes to the caller as it completes, for the command line to render.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::diagnostics::{Diagnostic, Summary};
use crate::run::{Published, RunError, RunStatus};

/// What to run the demo on.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Output directory (relative to the working directory).
    pub out: PathBuf,
    pub patients: usize,
    pub seed: u64,
    /// Monthly deliveries written after the first load (for `onboard refresh`).
    pub months: u32,
    /// Show progress bars while ingesting.
    pub progress: bool,
}

/// The demo's reference date (and the synthetic data's as-of date).
pub const AS_OF: &str = "2026-10-31";

/// One completed step of the demo.
pub enum Step<'a> {
    Synth(&'a crate::synth::SynthSummary, f64),
    Validated(&'a crate::validate::Outcome, f64),
    Ran(&'a Published, f64),
    Linked(
        &'a crate::link::stage::LinkedRun,
        &'a crate::evaluate::LinkageScore,
        f64,
    ),
    Risk(&'a str, f64),
    Population(&'a crate::population::Summary, f64),
}

/// How the demo ended.
pub enum Ended {
    /// The provider manifests have errors (sorted), nothing was run.
    Invalid(Vec<Diagnostic>, Summary),
    /// The run did not publish.
    RunFailed(RunError),
    /// Every step ran; the run's status, the ICS file written, the monthly deliveries.
    Done {
        status: RunStatus,
        ics: PathBuf,
        deliveries: Vec<String>,
    },
}

/// The onboard repository above the working directory (holds `providers/` and
/// `templates/providers/`).
fn repository() -> anyhow::Result<(PathBuf, PathBuf)> {
    let cwd = std::env::current_dir()?;
    let root = cwd
        .ancestors()
        .find(|d| d.join("providers").is_dir() && d.join("templates/providers").is_dir())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "run the demo from the onboard repository (no providers/ and templates/ found above {})",
                cwd.display()
            )
        })?;
    Ok((cwd, root))
}

/// Run the demo; `step` sees each step's result as it completes.
pub fn run(
    opts: &DemoOptions,
    rt: &tokio::runtime::Runtime,
    step: &mut dyn FnMut(Step<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Ended> {
    let (cwd, root) = repository()?;
    let out = cwd.join(&opts.out);
    std::fs::create_dir_all(&out)?;
    let t = Instant::now();
    let synth = crate::synth::generate(&crate::synth::SynthOptions {
        patients: opts.patients,
        seed: opts.seed,
        out: out.clone(),
        as_of: chrono::NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")?,
        months: opts.months,
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    step(Step::Synth(&synth, t.elapsed().as_secs_f64()))?;

    let t = Instant::now();
    let providers = root.join("providers");
    let outcome =
        crate::validate::validate_paths(std::slice::from_ref(&providers), &Default::default())?;
    step(Step::Validated(&outcome, t.elapsed().as_secs_f64()))?;
    if outcome.diagnostics.has_errors() {
        let files = Summary {
            files: outcome.files,
        };
        return Ok(Ended::Invalid(outcome.diagnostics.into_sorted(), files));
    }

    let ics = write_ics(&out, &providers, opts.patients)?;
    let t = Instant::now();
    let run = crate::run::RunOptions {
        ics: ics.clone(),
        demo_key: true,
        progress: opts.progress,
        ..Default::default()
    };
    let published = match rt.block_on(crate::run::run(&run)) {
        Ok(p) => p,
        Err(e) => return Ok(Ended::RunFailed(e)),
    };
    step(Step::Ran(&published, t.elapsed().as_secs_f64()))?;
    analyse(&out, &ics, rt, step)?;
    Ok(Ended::Done {
        status: published.record.status,
        ics,
        deliveries: synth
            .deliveries
            .iter()
            .map(|d| d.extract_date.clone())
            .collect(),
    })
}

/// Link, score against the truth, risk and population over the published run.
fn analyse(
    out: &Path,
    ics: &Path,
    rt: &tokio::runtime::Runtime,
    step: &mut dyn FnMut(Step<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let loaded = crate::ics::Ics::load(ics)?;
    let key = crate::pseudonymise::Key::demo();
    let linked = rt.block_on(crate::link::stage::link_run(out, &key, Some(&loaded)))?;
    let truth = out.join("truth").join("person_records.csv");
    let score = rt
        .block_on(crate::evaluate::score(
            out,
            &truth,
            Some(&linked.link_map()),
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    step(Step::Linked(&linked, &score, t.elapsed().as_secs_f64()))?;

    let t = Instant::now();
    let stage = crate::risk::Stage::load(out, Some(&loaded))?;
    let risk = rt.block_on(crate::risk::report::run_all(&stage))?;
    step(Step::Risk(&risk, t.elapsed().as_secs_f64()))?;

    let t = Instant::now();
    let stage = crate::population::Stage::load(out, Some(&loaded))?;
    let population = rt.block_on(crate::population::run(&stage))?;
    step(Step::Population(&population, t.elapsed().as_secs_f64()))
}

/// The demo's ICS file, `ics.yaml` in the output directory.
fn write_ics(out: &Path, providers: &Path, patients: usize) -> std::io::Result<PathBuf> {
    let ics = out.join("ics.yaml");
    std::fs::write(
        &ics,
        format!(
            "# Written by `onboard demo`: the example ICS over synthetic data.\nics: {{ id: northshire-demo, name: Northshire ICS (synthetic demo) }}\nproviders: [\"{}\"]\nlanding: landing\noutput: \"{}\"\nreference_date: {AS_OF}\nengine: {{ memory_limit: {} }}\nlinkage: {{ postcode_lsoa11: reference/postcode_lsoa11_SYNTHETIC.csv }}\n",
            providers.display(),
            out.display(),
            memory_limit(patients)
        ),
    )?;
    Ok(ics)
}

/// The demo ICS's engine memory pool. At 1M people the risk features' final
/// aggregates over 27M medication rows need more than 2 GiB (measured: resources
/// exhausted in `FinalHashAggregateStream`), so large demos get 8 GiB.
fn memory_limit(patients: usize) -> &'static str {
    if patients > 200_000 { "8GiB" } else { "2GiB" }
}
