//! The `onboard` command line: argument parsing, dispatch, output and exit codes.
//!
//! Exit codes: 0 success (valid), 1 problems found (invalid manifests), 2 usage or I/O
//! error. Results go to stdout; logs (`RUST_LOG`) go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::diagnostics::{self, Format, Summary};

mod ops;

/// Onboard health and care providers onto an ICS data platform by configuration.
#[derive(Debug, Parser)]
#[command(name = "onboard", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check provider manifests and ICS files and report every problem (a PR check).
    Validate(ValidateArgs),
    /// Print the JSON Schema of provider manifests, or of ICS files (for editors).
    Schema(SchemaArgs),
    /// Show the DataFusion logical plan and the equivalent SQL of a manifest's sources.
    Explain(ExplainArgs),
    /// Run an ICS: ingest every provider's extracts, check quality, write outputs.
    Run(RunArgs),
    /// Generate a synthetic ICS landing zone with ground truth.
    Synth(SynthArgs),
    /// The whole product on synthetic data: synth → validate → run → reports.
    Demo(DemoArgs),
    /// Score the person keys of a published run against a truth file.
    EvaluateLinkage(EvaluateArgs),
    /// Link a published run's person-key candidates into persons (writes linkage/link_map.parquet).
    Link(LinkArgs),
    /// Show, comparison by comparison, how two person-key candidates score as a match.
    ExplainMatch(ExplainMatchArgs),
    /// Risk of emergency admission: features, models, scores and explanations (docs/risk.md).
    Risk(RiskArgs),
    /// Population health: segments, cost of care, inequalities, urgent care (docs/population.md).
    Population(PopulationArgs),
    /// Write the generated reference docs (diagnostic codes, rules, transforms, canonical model).
    Docs(DocsArgs),
    /// Render a deployment bundle for an ICS (Databricks, Ballista or Kubernetes).
    Render(RenderArgs),
    /// Monitor a scored as-of date against the emergency admissions that followed it (docs/operations.md).
    Monitor(ops::MonitorArgs),
    /// The monthly refresh: ingest the next month, relink, score, monitor, retrain, refer.
    Refresh(ops::RefreshArgs),
    /// Write the case referrals of a scored as-of date (JSON and CSV, pseudonymous).
    Referrals(ops::ReferralsArgs),
    /// Re-identify referred persons of a practice scope (needs the key; audited).
    Reidentify(ops::ReidentifyArgs),
    /// Make an existing model version the one that scores.
    Promote(ops::PromoteArgs),
    /// Feature drift (population stability index) between two as-of dates.
    Drift(ops::DriftArgs),
    /// The clinical intelligence dashboard over a run's gold/ outputs (docs/serve.md).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The ICS file with a `serve:` section (users, roles, scopes, sign-in).
    #[arg(long, value_name = "FILE", required_unless_present = "hash_password")]
    pub ics: Option<PathBuf>,
    /// Run directory to serve (default: the ICS file's `output`).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Address to listen on (default: `serve.listen`, else 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Print the argon2 hash of a password read from stdin (for `serve.users[].password_hash`) and exit.
    #[arg(long)]
    pub hash_password: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The ICS deployment file with a `deploy:` section.
    #[arg(long, value_name = "FILE")]
    pub ics: PathBuf,
    /// What to render for.
    #[arg(long, value_enum)]
    pub target: crate::deploy::Target,
    /// Output directory (replaced as a whole).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RiskArgs {
    #[command(subcommand)]
    pub command: RiskCommand,
}

/// Where a risk command works: a linked run and the ICS file with its `risk:` section.
#[derive(Debug, Args, Clone)]
pub struct RiskTarget {
    /// Output directory of a linked run (holds linkage/spine/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// ICS file whose `risk:` section declares features, dates, models and bands
    /// (default: the shipped defaults, reference date from run.json).
    #[arg(long, value_name = "FILE")]
    pub ics: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RiskCommand {
    /// Compute gold/features at the training, validation and score as-of dates (or those given).
    Features {
        #[command(flatten)]
        target: RiskTarget,
        /// As-of date (YYYY-MM-DD); repeatable. Default: every date of `risk.as_of`.
        #[arg(long = "as-of", value_name = "DATE")]
        as_of: Vec<String>,
    },
    /// Print the feature query of an as-of date as SQL and as a DataFusion logical plan.
    Plan {
        #[command(flatten)]
        target: RiskTarget,
        #[arg(long = "as-of", value_name = "DATE")]
        as_of: Option<String>,
    },
    /// Train (or import) the champion, the challenger and a Charlson-only baseline; write model cards.
    Train {
        #[command(flatten)]
        target: RiskTarget,
    },
    /// Score everyone at the score as-of date with exact SHAP explanations.
    Score {
        #[command(flatten)]
        target: RiskTarget,
        /// Model version (default: the champion in models/registry.json).
        #[arg(long, value_name = "VERSION")]
        model: Option<String>,
        #[arg(long = "as-of", value_name = "DATE")]
        as_of: Option<String>,
    },
    /// Print explanation cards: of one person key, or of the highest-ranked persons.
    Explain {
        #[command(flatten)]
        target: RiskTarget,
        /// Person key (default: the `--top` highest-ranked persons).
        person: Option<String>,
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, value_name = "VERSION")]
        model: Option<String>,
        #[arg(long = "as-of", value_name = "DATE")]
        as_of: Option<String>,
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
    /// features → train → score → the explained high-risk list, in one step.
    Run {
        #[command(flatten)]
        target: RiskTarget,
    },
}

#[derive(Debug, Args)]
pub struct PopulationArgs {
    #[command(subcommand)]
    pub command: PopulationCommand,
}

#[derive(Debug, Subcommand)]
pub enum PopulationCommand {
    /// Segments, flags, costs, urgent care, the disclosure-controlled aggregates and the report.
    Run {
        #[command(flatten)]
        target: RiskTarget,
    },
    /// Assign every person to a segment of each segmentation and print the sizes.
    Segments {
        #[command(flatten)]
        target: RiskTarget,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files, ICS files or directories (searched recursively for *.yaml /
    /// *.yml). An ICS file (top-level `ics:` and `providers:`) is checked with the
    /// manifests it names. Default: `providers/`.
    pub paths: Vec<PathBuf>,
    /// An ICS file to check with the manifests it names, whatever its content looks like
    /// (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ics: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Landing-zone directory: check each source's declared columns against the header
    /// of the first extract matching its path.
    #[arg(long, value_name = "DIR", conflicts_with = "sample")]
    pub data: Option<PathBuf>,
    /// One extract file: check it against the source whose path pattern matches its name.
    #[arg(long, value_name = "FILE")]
    pub sample: Option<PathBuf>,
    /// Project root (holds templates/providers/). Default: nearest ancestor with templates/.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The JSON Schema of ICS deployment files (schemas/ics.schema.json) instead of
    /// provider manifests.
    #[arg(long)]
    pub ics: bool,
}

/// `--format` of commands that print a result rather than diagnostics: the values of
/// [`Format`] they can render (`human`, `json`).
fn result_format() -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::ValueEnum;
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["human", "json"])
        .map(|s: String| Format::from_str(&s, false).unwrap_or_default())
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The provider manifest.
    pub manifest: PathBuf,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Reference date baked into date rules (YYYY-MM-DD; default today).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Project root (holds templates/providers/).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// SQL dialect printed: the compiled DataFusion SQL, or Spark SQL unparsed from the plan.
    #[arg(long, value_enum, default_value_t)]
    pub dialect: crate::deploy::SqlDialect,
}

/// Where the pseudonymisation key comes from.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Pseudonymisation key file (else $ONBOARD_PSEUDONYMISATION_KEY).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Use the public demo key when no key is configured. Synthetic data only.
    #[arg(long)]
    pub demo_key: bool,
}

impl KeyArgs {
    fn load(&self) -> anyhow::Result<crate::pseudonymise::Key> {
        crate::pseudonymise::Key::load(self.key_file.as_deref(), self.demo_key)
            .map_err(|e| anyhow::anyhow!(e))
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The ICS deployment file (e.g. examples/northshire/ics.yaml).
    #[arg(long, value_name = "FILE")]
    pub ics: PathBuf,
    /// Landing zone (overrides the ICS file).
    #[arg(long, value_name = "DIR")]
    pub landing: Option<PathBuf>,
    /// Output directory (overrides the ICS file).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Reference date for date rules (YYYY-MM-DD; default from the ICS file, else today).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Format of the diagnostics printed when the manifests have errors (the run
    /// summary is text).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Engine: `embedded` (default), or `ballista://host:port` (a build with the
    /// `distributed` feature).
    #[arg(long, value_name = "URL", default_value = "embedded")]
    pub engine: String,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of people.
    #[arg(long, default_value_t = 20_000)]
    pub patients: usize,
    /// Random seed (the same seed gives the same files).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (landing/, truth/, reference/).
    #[arg(long)]
    pub out: PathBuf,
    /// As-of date: extracts end here; outcomes are the 90 days after (YYYY-MM-DD).
    #[arg(long, default_value = "2026-10-31")]
    pub as_of: String,
    /// Years of history before the as-of date in the extracts.
    #[arg(long, default_value_t = 3)]
    pub history_years: u32,
    /// Truth as-of dates: the as-of date and every N-th month-end back 24 months.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub truth_every_months: u32,
    /// Also write the next N monthly deliveries of the same people (deliveries/<date>/).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub months: u32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Number of synthetic people.
    #[arg(long, default_value_t = 20_000)]
    pub patients: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also write the next N monthly deliveries (for `onboard refresh`, docs/operations.md).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub months: u32,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Output directory of a run (holds silver/ and identity/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// CSV with provider_id, source, source_record_id, true_person_id.
    #[arg(long, value_name = "FILE")]
    pub truth: PathBuf,
    /// Output format.
    #[arg(long, default_value = "human", value_parser = result_format())]
    pub format: Format,
    /// A link map from `onboard link` (candidate key → person key) to score instead of
    /// the raw candidate keys.
    #[arg(long, value_name = "FILE")]
    pub link_map: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainMatchArgs {
    /// Output directory of a published run.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The two candidate person keys.
    #[arg(num_args = 2, value_names = ["KEY_A", "KEY_B"])]
    pub keys: Vec<String>,
    /// ICS file whose `linkage:` section the link used (default: the default settings).
    #[arg(long, value_name = "FILE")]
    pub ics: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Output format.
    #[arg(long, default_value = "human", value_parser = result_format())]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// Output directory of a published run.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// ICS file whose `linkage:` section declares blocking, comparisons, training,
    /// thresholds and survivorship, and whose engine limits bound the spine (default:
    /// the defaults in docs/linkage.md).
    #[arg(long, value_name = "FILE")]
    pub ics: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, Args)]
pub struct DocsArgs {
    /// Directory to write into.
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
    /// Do not write; exit 1 if the files on disk differ from what would be written.
    #[arg(long)]
    pub check: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run a parsed command; returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate(a) => validate(a),
        Command::Schema(a) => {
            emit(&if a.ics {
                crate::ics::json_schema_text()
            } else {
                crate::manifest::model::json_schema_text()
            })?;
            Ok(0)
        }
        Command::Docs(a) => docs(a),
        Command::Explain(a) => explain(a),
        Command::Run(a) => run_ics(a),
        Command::Synth(a) => synth(a),
        Command::Demo(a) => demo(a),
        Command::EvaluateLinkage(a) => evaluate_linkage(a),
        Command::Link(a) => link(a),
        Command::ExplainMatch(a) => explain_match(a),
        Command::Risk(a) => risk(a),
        Command::Serve(a) => serve(a),
        Command::Population(a) => population(a),
        Command::Monitor(a) => ops::monitor(a),
        Command::Refresh(a) => ops::refresh(a),
        Command::Referrals(a) => ops::referrals(a),
        Command::Reidentify(a) => ops::reidentify(a),
        Command::Promote(a) => ops::promote(a),
        Command::Drift(a) => ops::drift(a),
        Command::Render(a) => {
            let r = crate::deploy::render::render(&a.ics, a.target, &a.out)?;
            emit(&format!(
                "rendered {} files for {} into {}\n",
                r.files.len(),
                a.target.name(),
                r.out.display()
            ))?;
            Ok(0)
        }
    }
}

fn explain_match(a: ExplainMatchArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let e = rt
        .block_on(crate::link::explain_match(
            &a.out,
            &a.key.load()?,
            &crate::link::stage::settings(load_ics(a.ics.as_deref())?.as_ref()).1,
            &a.keys[0],
            &a.keys[1],
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    if a.format == Format::Json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&e)?))?;
        return Ok(0);
    }
    let mut s = format!("match weight of {} and {}\n\n", e.key_a, e.key_b);
    let mut running = 0.0;
    for c in &e.contributions {
        running += c.weight;
        s.push_str(&format!(
            "{:<14} {:<26} m={:<10} u={:<10} {:>+7.2}  (running {:>+7.2})\n",
            c.comparison,
            c.level,
            probability_text(c.m),
            probability_text(c.u),
            c.weight,
            running
        ));
    }
    s.push_str(&format!(
        "\ntotal {:+.2} (match probability {:.4}) against threshold {:.2}: {}\n",
        e.total,
        e.match_probability,
        e.threshold,
        if e.linked { "linked" } else { "not linked" }
    ));
    emit(&s)?;
    Ok(0)
}

/// A probability for people: four decimals, or scientific notation when small.
fn probability_text(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
    }
}

fn link(a: LinkArgs) -> anyhow::Result<u8> {
    let key = a.key.load()?;
    let rt = runtime()?;
    emit(&link_run(
        &a.out,
        &key,
        load_ics(a.ics.as_deref())?.as_ref(),
        &rt,
    )?)?;
    Ok(0)
}

/// Link a published run and build its spine; returns what to print.
fn link_run(
    out: &std::path::Path,
    key: &crate::pseudonymise::Key,
    ics: Option<&crate::ics::Ics>,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<String> {
    let linked = rt.block_on(crate::link::stage::link_run(out, key, ics))?;
    Ok(linked_text(&linked))
}

/// The ICS file named by `--ics`, loaded (every problem at once in the error).
fn load_ics(path: Option<&std::path::Path>) -> anyhow::Result<Option<crate::ics::Ics>> {
    Ok(path.map(crate::ics::Ics::load).transpose()?)
}

fn linked_text(l: &crate::link::stage::LinkedRun) -> String {
    let summary = &l.summary;
    let spine_text: Vec<String> = l.spine.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!(
        "{} identity rows, {} candidate keys → {} persons ({} same-record links, {} candidate pairs scored, {} probabilistic links, \
         {} NHS-number conflicts and {} chaining merges refused) in {:.1} s (spine {:.1} s)\n\
         ethnicity recorded for registered persons: {:.1}% on the GP record, {:.1}% after linkage ({} persons)\nlink map: {}\nspine ({}): {}\n",
        summary.identity_rows,
        summary.candidate_keys,
        summary.persons,
        summary.same_record_links,
        summary.candidate_pairs_scored,
        summary.probabilistic_links,
        summary.nhs_conflicts_refused,
        summary.chaining_refused,
        l.link_secs,
        l.spine_secs,
        summary.ethnicity_recorded_before * 100.0,
        summary.ethnicity_recorded_after * 100.0,
        summary.registered_persons,
        l.link_map().display(),
        l.spine_dir().display(),
        spine_text.join(", ")
    )
}

fn evaluate_linkage(a: EvaluateArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let s = rt
        .block_on(crate::evaluate::score(
            &a.out,
            &a.truth,
            a.link_map.as_deref(),
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    if a.format == Format::Json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
    } else {
        emit(&format!(
            "records {} ({} with a person key), true persons {}, predicted clusters {}\n\
             pairwise: precision {:.4}, recall {:.4}, F1 {:.4} ({} true pairs, {} predicted, {} correct)\n\
             clusters: {:.2}% of persons exact, {} persons split, {} clusters merging persons\n",
            s.records,
            s.records_with_key,
            s.true_persons,
            s.predicted_clusters,
            s.precision,
            s.recall,
            s.f1,
            s.true_pairs,
            s.predicted_pairs,
            s.true_positive_pairs,
            s.exact_persons * 100.0,
            s.split_persons,
            s.merged_clusters
        ))?;
    }
    Ok(0)
}

fn synth_options(
    patients: usize,
    seed: u64,
    out: PathBuf,
    as_of: &str,
) -> anyhow::Result<crate::synth::SynthOptions> {
    let as_of = chrono::NaiveDate::parse_from_str(as_of, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--as-of {as_of}: not YYYY-MM-DD"))?;
    Ok(crate::synth::SynthOptions {
        patients,
        seed,
        out,
        as_of,
        ..Default::default()
    })
}

fn synth(a: SynthArgs) -> anyhow::Result<u8> {
    let opts = crate::synth::SynthOptions {
        history_years: a.history_years,
        truth_every_months: a.truth_every_months,
        months: a.months,
        ..synth_options(a.patients, a.seed, a.out.clone(), &a.as_of)?
    };
    let t = std::time::Instant::now();
    let s = crate::synth::generate(&opts).map_err(|e| anyhow::anyhow!(e))?;
    emit(&format!(
        "synthetic ICS: {} people, {} records in {:.1} s\nlanding zone: {}\nground truth: {}\n",
        s.people,
        s.records,
        t.elapsed().as_secs_f64(),
        a.out.join("landing").display(),
        a.out.join("truth").display()
    ))?;
    for d in &s.deliveries {
        emit(&format!(
            "delivery {}: {}\n",
            d.extract_date,
            d.landing.display()
        ))?;
    }
    Ok(0)
}

fn demo(a: DemoArgs) -> anyhow::Result<u8> {
    use crate::demo::Ended;
    let opts = crate::demo::DemoOptions {
        out: a.out.clone(),
        patients: a.patients,
        seed: a.seed,
        months: a.months,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let rt = runtime()?;
    let ended = crate::demo::run(&opts, &rt, &mut |step| demo_step(&step))?;
    match ended {
        Ended::Invalid(diags, files) => {
            emit(&diagnostics::render_human(&diags, &files))?;
            Ok(1)
        }
        Ended::RunFailed(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
        Ended::Done {
            status,
            ics,
            deliveries,
        } => {
            if !deliveries.is_empty() {
                emit(&format!(
                    "\nmonthly deliveries: {}\nnext, once a month: onboard refresh --ics {} --demo-key (docs/operations.md)\n",
                    deliveries.join(", "),
                    ics.display()
                ))?;
            }
            let out = ics.parent().unwrap_or(std::path::Path::new("."));
            emit(&format!("ground truth: {}\n", out.join("truth").display()))?;
            Ok(u8::from(status != crate::run::RunStatus::Succeeded))
        }
    }
}

/// One step of the demo: its line on stderr, its result on stdout.
fn demo_step(step: &crate::demo::Step<'_>) -> anyhow::Result<()> {
    use crate::demo::Step;
    match step {
        Step::Synth(s, secs) => eprintln!(
            "1. synth     {} people, {} records from 10 source systems ({secs:.1} s)",
            s.people, s.records
        ),
        Step::Validated(o, secs) => eprintln!(
            "2. validate  {} manifests: {} errors, {} warnings ({secs:.1} s)",
            o.files.len(),
            o.diagnostics.errors(),
            o.diagnostics.warnings()
        ),
        Step::Ran(p, secs) => {
            eprint!(
                "3. run       {} sources, {} rows read ({secs:.1} s)\n\n",
                p.record.sources.len(),
                p.record.totals.rows_read
            );
            emit(&run_summary(p))?;
        }
        Step::Linked(l, score, secs) => {
            eprint!(
                "\n4. link      against the synthetic truth: precision {:.4}, recall {:.4}, F1 {:.4} ({secs:.1} s)\n",
                score.precision, score.recall, score.f1
            );
            emit(&linked_text(l))?;
            emit(&format!(
                "linkage report: {}\n",
                l.dir.join("report.html").display()
            ))?;
        }
        Step::Risk(text, secs) => {
            eprint!("\n5. risk      features, models, scores and explanations ({secs:.1} s)\n");
            emit(text)?;
        }
        Step::Population(p, secs) => {
            eprint!("\n6. population segments, costs, inequalities, urgent care ({secs:.1} s)\n");
            emit(&crate::population::report::text(p))?;
        }
    }
    Ok(())
}

fn serve(a: ServeArgs) -> anyhow::Result<u8> {
    if a.hash_password {
        let mut password = String::new();
        std::io::stdin().read_line(&mut password)?;
        let password = password.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!password.is_empty(), "no password on stdin");
        emit(&format!(
            "{}\n",
            crate::serve::auth::hash_password(password)?
        ))?;
        return Ok(0);
    }
    let path = a
        .ics
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--ics is required"))?;
    let ics = crate::ics::Ics::load(path).map_err(|e| anyhow::anyhow!(e))?;
    runtime()?.block_on(crate::serve::serve(
        &ics,
        a.out.as_deref(),
        a.listen.as_deref(),
    ))?;
    Ok(0)
}

fn population(a: PopulationArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let (PopulationCommand::Run { target } | PopulationCommand::Segments { target }) = &a.command;
    let ics = load_ics(target.ics.as_deref())?;
    let stage = crate::population::Stage::load(&target.out, ics.as_ref())?;
    match a.command {
        PopulationCommand::Run { .. } => {
            let s = rt.block_on(crate::population::run(&stage))?;
            emit(&crate::population::report::text(&s))?;
        }
        PopulationCommand::Segments { .. } => {
            emit(&rt.block_on(crate::population::segment_sizes(&stage))?)?;
        }
    }
    Ok(0)
}

fn risk_stage(t: &RiskTarget) -> anyhow::Result<crate::risk::Stage> {
    let ics = load_ics(t.ics.as_deref())?;
    Ok(crate::risk::Stage::load(&t.out, ics.as_ref())?)
}

fn as_of_arg(s: &Option<String>) -> anyhow::Result<Option<chrono::NaiveDate>> {
    s.as_deref()
        .map(|d| {
            crate::risk::parse_date(d)
                .ok_or_else(|| anyhow::anyhow!("--as-of `{d}` is not a date (YYYY-MM-DD)"))
        })
        .transpose()
}

fn risk(a: RiskArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    match a.command {
        RiskCommand::Features { target, as_of } => {
            let stage = risk_stage(&target)?;
            let dates = if as_of.is_empty() {
                stage.all_as_of()
            } else {
                as_of
                    .iter()
                    .map(|d| as_of_arg(&Some(d.clone())).map(|d| d.unwrap_or(stage.as_of.score)))
                    .collect::<anyhow::Result<_>>()?
            };
            let written = rt.block_on(crate::risk::write_features(&stage, &dates))?;
            emit(&crate::risk::report::features_text(&written))?;
        }
        RiskCommand::Plan { target, as_of } => {
            let stage = risk_stage(&target)?;
            let d = as_of_arg(&as_of)?.unwrap_or(stage.as_of.score);
            emit(&rt.block_on(crate::risk::plan(&stage, d))?)?;
        }
        RiskCommand::Train { target } => {
            let stage = risk_stage(&target)?;
            let t = rt.block_on(crate::risk::train::train(&stage))?;
            emit(&crate::risk::report::trained_text(&stage, &t))?;
        }
        RiskCommand::Score {
            target,
            model,
            as_of,
        } => {
            let stage = risk_stage(&target)?;
            let s = rt.block_on(crate::risk::score::score(
                &stage,
                model.as_deref(),
                as_of_arg(&as_of)?,
            ))?;
            emit(&crate::risk::report::pyramid(&s))?;
        }
        RiskCommand::Explain {
            target,
            person,
            top,
            model,
            as_of,
            format,
        } => {
            let stage = risk_stage(&target)?;
            let version = match model {
                Some(m) => m,
                None => crate::risk::train::read_artefact(&stage.out, None)?.version,
            };
            let d = as_of_arg(&as_of)?.unwrap_or(stage.as_of.score);
            let cards = rt.block_on(crate::risk::report::cards(
                &stage,
                &version,
                d,
                person.as_deref(),
                top,
            ))?;
            match format {
                TextOrJson::Json => emit(&(serde_json::to_string_pretty(&cards)? + "\n"))?,
                TextOrJson::Text => emit(
                    &cards
                        .iter()
                        .map(crate::risk::report::card_text)
                        .collect::<String>(),
                )?,
            }
        }
        RiskCommand::Run { target } => {
            let stage = risk_stage(&target)?;
            emit(&rt.block_on(crate::risk::report::run_all(&stage))?)?;
        }
    }
    Ok(0)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn explain(a: ExplainArgs) -> anyhow::Result<u8> {
    let opts = crate::validate::Options {
        root: a.root,
        ..Default::default()
    };
    let outcome = crate::validate::validate_paths(std::slice::from_ref(&a.manifest), &opts)?;
    if outcome.diagnostics.has_errors() {
        let summary = Summary {
            files: outcome.files,
        };
        emit(&diagnostics::render_human(
            &outcome.diagnostics.into_sorted(),
            &summary,
        ))?;
        return Ok(1);
    }
    let Some(m) = outcome.manifests.first() else {
        return Ok(1);
    };
    let as_of = a.as_of.clone().unwrap_or_else(|| {
        chrono::Utc::now()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string()
    });
    let planned = runtime()?.block_on(crate::compile::explain(m, a.source.as_deref(), &as_of))?;
    let Some(planned) = planned else {
        anyhow::bail!(
            "no source `{}` in {}",
            a.source.unwrap_or_default(),
            a.manifest.display()
        );
    };
    let mut out = String::new();
    for (c, plan) in &planned {
        let (label, sql) = match a.dialect {
            crate::deploy::SqlDialect::Datafusion => ("SQL", c.sql.clone()),
            crate::deploy::SqlDialect::Spark => {
                ("Spark SQL", crate::deploy::spark::plan_to_spark_sql(plan)?)
            }
        };
        out.push_str(&format!(
            "== {}/{} → {} ==\n\n-- logical plan\n{}\n\n-- {label}\n{sql};\n\n",
            c.provider,
            c.source,
            c.entity,
            plan.display_indent(),
        ));
    }
    emit(&out)?;
    Ok(0)
}

fn run_ics(a: RunArgs) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    let engine = crate::deploy::EngineChoice::parse(&a.engine)?;
    let landing = a
        .landing
        .map(|p| crate::deploy::storage::local_dir("--landing", &p))
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let out = a
        .out
        .map(|p| crate::deploy::storage::local_dir("--out", &p))
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let opts = crate::run::RunOptions {
        ics: a.ics,
        landing,
        out,
        engine,
        demo_key: a.key.demo_key,
        key_file: a.key.key_file,
        reference_date: a.as_of,
        progress: std::io::stderr().is_terminal(),
    };
    let rt = runtime()?;
    match rt.block_on(crate::run::run(&opts)) {
        Ok(p) => {
            emit(&run_summary(&p))?;
            Ok(if p.record.status == crate::run::RunStatus::Succeeded {
                0
            } else {
                1
            })
        }
        Err(crate::run::RunError::Invalid(diags, files)) => {
            emit(&diagnostics::render(a.format, &diags, &files))?;
            eprintln!("error: the manifests have errors; nothing was run");
            Ok(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

fn run_summary(p: &crate::run::Published) -> String {
    let r = &p.record;
    let mut s = format!(
        "run {} ({}; reference date {}){}\n\n{:<28} {:<18} {:>10} {:>10} {:>11}  status\n",
        r.run_id,
        r.status,
        r.reference_date,
        if r.demo_key {
            "; DEMO KEY: synthetic data only"
        } else {
            ""
        },
        "provider",
        "source",
        "read",
        "accepted",
        "quarantined"
    );
    for x in &r.sources {
        s.push_str(&format!(
            "{:<28} {:<18} {:>10} {:>10} {:>11}  {}{}{}\n",
            x.provider,
            x.source,
            x.rows_read,
            x.rows_accepted,
            x.rows_quarantined,
            x.status,
            x.failure
                .as_ref()
                .map(|f| format!(": {f}"))
                .unwrap_or_default(),
            x.delivery.summary()
        ));
    }
    s.push_str(&format!(
        "\n{} rows read, {} accepted, {} quarantined\noutputs: {}\nrun record: {}\nDQ report: {}\n",
        r.totals.rows_read,
        r.totals.rows_accepted,
        r.totals.rows_quarantined,
        p.out.display(),
        p.out.join("run.json").display(),
        p.out.join("reports").join("dq_report.html").display()
    ));
    s
}

fn validate(a: ValidateArgs) -> anyhow::Result<u8> {
    let paths = if a.paths.is_empty() && a.ics.is_empty() {
        vec![PathBuf::from("providers")]
    } else {
        a.paths
    };
    let opts = crate::validate::Options {
        root: a.root,
        data: a.data,
        sample: a.sample,
        ics: a.ics,
    };
    if let Some(d) = &opts.data
        && !d.is_dir()
    {
        anyhow::bail!("--data {}: not a directory", d.display());
    }
    if let Some(s) = &opts.sample
        && !s.is_file()
    {
        anyhow::bail!("--sample {}: not a file", s.display());
    }
    let outcome = crate::validate::validate_paths(&paths, &opts)?;
    let errors = outcome.diagnostics.errors();
    let warnings = outcome.diagnostics.warnings();
    let summary = Summary {
        files: outcome.files,
    };
    let sorted = outcome.diagnostics.into_sorted();
    emit(&diagnostics::render(a.format, &sorted, &summary))?;
    Ok(if errors > 0 || (a.deny_warnings && warnings > 0) {
        1
    } else {
        0
    })
}

fn docs(a: DocsArgs) -> anyhow::Result<u8> {
    if a.check {
        let stale = crate::reference::stale(&a.out);
        if !stale.is_empty() {
            let names: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "generated docs are out of date (run `onboard docs`): {}",
                names.join(", ")
            );
            return Ok(1);
        }
        return Ok(0);
    }
    crate::reference::write(&a.out)?;
    Ok(0)
}

/// Write to stdout; a closed pipe (e.g. `| head`) is not an error.
fn emit(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
