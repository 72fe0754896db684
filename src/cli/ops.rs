//! The model-operations commands (`onboard monitor`, `refresh`, `referrals`,
//! `reidentify`, `promote`, `drift`; docs/operations.md): arguments and dispatch to
//! [`crate::ops`].

use std::path::PathBuf;

use clap::Args;

use super::{KeyArgs, TextOrJson, emit, link_run, load_ics, runtime};
use crate::ops;

fn date_arg(flag: &str, s: &str) -> anyhow::Result<chrono::NaiveDate> {
    crate::risk::parse_date(s)
        .ok_or_else(|| anyhow::anyhow!("{flag} `{s}` is not a date (YYYY-MM-DD)"))
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Output directory of a refreshed run (holds gold/risk_scores and run.json).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// ICS file (its `risk:` and `operations:` sections; default: the defaults).
    #[arg(long, value_name = "FILE")]
    pub ics: Option<PathBuf>,
    /// The scored as-of date to monitor (YYYY-MM-DD).
    #[arg(long = "as-of", value_name = "DATE")]
    pub as_of: String,
    /// Model version whose scores to monitor (default: the one that scored the date).
    #[arg(long, value_name = "VERSION")]
    pub model: Option<String>,
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

pub fn monitor(a: MonitorArgs) -> anyhow::Result<u8> {
    let ics = load_ics(a.ics.as_deref())?;
    let as_of = date_arg("--as-of", &a.as_of)?;
    let rt = runtime()?;
    let r = rt.block_on(ops::monitor::monitor(
        &a.out,
        ics.as_ref(),
        as_of,
        a.model.as_deref(),
    ))?;
    match a.format {
        TextOrJson::Json => emit(&(serde_json::to_string_pretty(&r)? + "\n"))?,
        TextOrJson::Text => emit(&format!(
            "{}monitor: {}\n",
            ops::monitor::text(&r),
            ops::monitor::monitor_dir(&a.out, as_of)
                .join("monitor.html")
                .display()
        ))?,
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// The ICS deployment file (its `operations:` section says where deliveries land).
    #[arg(long, value_name = "FILE")]
    pub ics: PathBuf,
    /// Output directory (overrides the ICS file): the run refreshed month by month.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The month to refresh (its extract date, YYYY-MM-DD; default: the month after the
    /// data's end). Refreshing the last month again reruns it.
    #[arg(long, value_name = "DATE")]
    pub month: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn refresh(a: RefreshArgs) -> anyhow::Result<u8> {
    let ics = crate::ics::Ics::load(&a.ics).map_err(|e| anyhow::anyhow!(e))?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| ics.resolve(&ics.file.output));
    let month = a
        .month
        .as_deref()
        .map(|m| date_arg("--month", m))
        .transpose()?;
    let planned = ops::refresh::plan(&out, &ics, month)?;
    let key = a.key.load()?;
    let rt = runtime()?;
    let run = crate::run::RunOptions {
        ics: a.ics.clone(),
        landing: Some(planned.landing.clone()),
        out: Some(out.clone()),
        demo_key: a.key.demo_key,
        key_file: a.key.key_file.clone(),
        reference_date: Some(ops::ymd(planned.extract_date)),
        ..Default::default()
    };
    let published = rt
        .block_on(crate::run::run(&run))
        .map_err(|e| anyhow::anyhow!("refresh {}: ingest: {e}", planned.extract_date))?;
    let linked = link_run(&out, &key, Some(&ics), &rt)?;
    let ingested = ops::refresh::Ingested {
        run_id: published.record.run_id.clone(),
        run_status: published.record.status.to_string(),
    };
    let r = rt.block_on(ops::refresh::after_link(&out, &ics, &planned, &ingested))?;
    emit(&format!(
        "{}{}record: {}\n",
        linked,
        ops::refresh::text(&r),
        ops::refresh::history_path(&out).display()
    ))?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ReferralsArgs {
    /// Output directory of a scored run.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// ICS file (its `operations.referral` threshold and `risk.bands`).
    #[arg(long, value_name = "FILE")]
    pub ics: Option<PathBuf>,
    #[arg(long = "as-of", value_name = "DATE")]
    pub as_of: String,
    #[arg(long, value_name = "VERSION")]
    pub model: Option<String>,
}

pub fn referrals(a: ReferralsArgs) -> anyhow::Result<u8> {
    let ics = load_ics(a.ics.as_deref())?;
    let as_of = date_arg("--as-of", &a.as_of)?;
    let version = ops::scoring_version(&a.out, as_of, a.model.as_deref())?;
    let (settings, bands) = match &ics {
        Some(i) => (
            i.file.operations.referral.clone(),
            i.file.risk.bands.iter().map(|b| b.name.clone()).collect(),
        ),
        None => (
            Default::default(),
            crate::risk::config::RiskSettings::default()
                .bands
                .iter()
                .map(|b| b.name.clone())
                .collect::<Vec<_>>(),
        ),
    };
    let f = ops::referrals::write(&a.out, as_of, &version, &settings, &bands)?;
    emit(&format!(
        "{} of {} persons referred at {} (model {})\nreferrals: {}\n",
        f.referred,
        f.persons_scored,
        f.as_of_date,
        f.model_version,
        ops::referrals::referrals_dir(&a.out, as_of, &version).display()
    ))?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ReidentifyArgs {
    /// Output directory of a scored run with referrals.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long = "as-of", value_name = "DATE")]
    pub as_of: String,
    /// Practice (ODS code) whose referrals you work; repeatable. Required.
    #[arg(long = "practice", value_name = "ODS")]
    pub practices: Vec<String>,
    /// Person key of a referred person; repeatable (default: every referral in scope).
    #[arg(long = "person", value_name = "KEY")]
    pub persons: Vec<String>,
    /// Who asks (recorded in the audit log).
    #[arg(long, default_value = "")]
    pub user: String,
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "")]
    pub purpose: String,
    #[arg(long, value_name = "VERSION")]
    pub model: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

pub fn reidentify(a: ReidentifyArgs) -> anyhow::Result<u8> {
    let req = ops::reidentify::Request {
        out: a.out.clone(),
        as_of: date_arg("--as-of", &a.as_of)?,
        model: a.model.clone(),
        practices: a.practices.clone(),
        persons: a.persons.clone(),
        user: a.user.clone(),
        purpose: a.purpose.clone(),
    };
    let key = crate::pseudonymise::Key::load(a.key.key_file.as_deref(), a.key.demo_key);
    let found = ops::reidentify::reidentify(&req, key)?;
    match a.format {
        TextOrJson::Json => emit(&(serde_json::to_string_pretty(&found)? + "\n"))?,
        TextOrJson::Text => {
            let mut s =
                String::from("person_key,referral_id,practice,nhs_number,given_name,family_name\n");
            for f in &found {
                let o = |x: &Option<String>| x.clone().unwrap_or_default();
                s.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    f.person_key,
                    f.referral_id,
                    o(&f.practice),
                    o(&f.nhs_number),
                    o(&f.given_name),
                    o(&f.family_name)
                ));
            }
            emit(&s)?;
        }
    }
    eprintln!(
        "{} persons re-identified; recorded in {}",
        found.len(),
        ops::reidentify::audit_path(&a.out).display()
    );
    Ok(0)
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The model version to score with from now on.
    #[arg(value_name = "VERSION")]
    pub model_version: String,
    /// Why (recorded in models/registry.json).
    #[arg(long, default_value = "promoted by hand")]
    pub reason: String,
}

pub fn promote(a: PromoteArgs) -> anyhow::Result<u8> {
    let prev = ops::refresh::promote(&a.out, &a.model_version, &a.reason)?;
    emit(&format!(
        "champion: {} (was {})\n",
        a.model_version,
        prev.unwrap_or_else(|| "none".into())
    ))?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, value_name = "FILE")]
    pub ics: Option<PathBuf>,
    /// The earlier as-of date (the bins come from its distribution).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// The later as-of date.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

pub fn drift(a: DriftArgs) -> anyhow::Result<u8> {
    let ics = load_ics(a.ics.as_deref())?;
    let s = ics.map(|i| i.file.operations.drift).unwrap_or_default();
    let r = ops::drift::between(
        &a.out,
        date_arg("--from", &a.from)?,
        date_arg("--to", &a.to)?,
        &s,
    )?;
    match a.format {
        TextOrJson::Json => emit(&(serde_json::to_string_pretty(&r)? + "\n"))?,
        TextOrJson::Text => {
            let mut t = format!(
                "feature drift {} → {} (PSI; warn {}, alert {})\n",
                r.from_as_of, r.to_as_of, r.warn, r.alert
            );
            for f in &r.features {
                t.push_str(&format!(
                    "  {:<32} {:>8.4}  {}\n",
                    f.feature, f.psi, f.status
                ));
            }
            emit(&t)?;
        }
    }
    Ok(if r.flagged.is_empty() { 0 } else { 1 })
}
