//! Semantic checks of an ICS file: what its types cannot say (provider paths exist,
//! dates and sizes parse, the sections' own rules). Each check returns [`Finding`]s
//! located by JSON pointers; [`super::check_document`] turns them into diagnostics at
//! their `file:line:col`.
//!
//! A section adds its checks with one line in [`check`]: its own `check()` returning
//! findings with pointers relative to the section, prefixed here with the section's key
//! ([`Finding::under`]).

use std::path::Path;

use crate::diagnostics::{Finding, did_you_mean};

use super::Ics;

/// Every semantic problem of a loaded ICS file.
#[allow(clippy::useless_conversion)] // `Finding::from` also accepts a section's plain strings
pub fn check(ics: &Ics) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(providers(ics));
    out.extend(reference_date(ics.file.reference_date.as_deref()));
    out.extend(memory_limit(&ics.file.engine.memory_limit));
    // `Finding::from` also takes a plain message (ONB0909 at the section).
    let linkage = ics.file.linkage.check().into_iter();
    out.extend(linkage.map(|f| Finding::from(f).under("/linkage")));
    out.extend(risk(ics));
    out.extend(population(ics));
    let bands: Vec<String> = ics.file.risk.bands.iter().map(|b| b.name.clone()).collect();
    let ops = ics.file.operations.check(&bands).into_iter();
    out.extend(ops.map(|f| f.under("/operations")));
    if let Some(d) = &ics.file.deploy {
        out.extend(d.check().into_iter().map(|p| {
            let message = format!("{}: {}", p.setting, p.message);
            Finding::at_setting("ONB0909", &p.setting, message)
        }));
    }
    if let Some(s) = &ics.file.serve {
        out.extend(s.check().into_iter().map(|f| f.under("/serve")));
    }
    out
}

/// The `risk:` section: as-of dates and bands that fit together (ONB0920), features
/// over known code lists (ONB0921).
fn risk(ics: &Ics) -> Vec<Finding> {
    let s = &ics.file.risk;
    let Some(reference) = ics
        .file
        .reference_date
        .as_deref()
        .and_then(crate::risk::config::parse_date)
    else {
        return Vec::new();
    };
    let mut out: Vec<Finding> = s
        .check(reference)
        .into_iter()
        .map(|e| Finding::at_setting("ONB0920", &format!("risk.{}", e.setting), e.message))
        .collect();
    let lists = s.codelists.as_ref().map(|c| ics.dir.join(c));
    let specs = s.feature_specs(&ics.dir);
    let codelists = crate::risk::codelists::Codelists::load(lists.as_deref());
    match (specs, codelists) {
        (Ok(specs), Ok(codelists)) => {
            for e in crate::risk::features::check(&specs, &codelists) {
                let at = feature_pointer(s, &e);
                out.push(Finding::new("ONB0921", at, e.to_string()).or_at("/risk"));
            }
        }
        (Err(e), _) => out.push(Finding::at_setting(
            "ONB0921",
            &format!("risk.{}", e.setting),
            e.message,
        )),
        (_, Err(e)) => {
            out.push(Finding::new("ONB0921", "/risk/codelists", e.to_string()).or_at("/risk"))
        }
    }
    out
}

/// The `population:` section (ONB0940–ONB0947): segment rules over known features,
/// known measures and breakdowns, a complete tariff, a readable ACSC list.
fn population(ics: &Ics) -> Vec<Finding> {
    let Some(settings) = &ics.file.population else {
        return Vec::new();
    };
    let r = &ics.file.risk;
    let lists = r.codelists.as_ref().map(|c| ics.dir.join(c));
    let (Ok(specs), Ok(codelists)) = (
        r.feature_specs(&ics.dir),
        crate::risk::codelists::Codelists::load(lists.as_deref()),
    ) else {
        return Vec::new();
    };
    crate::population::check::check(settings, &ics.dir, r, &specs, &codelists)
        .iter()
        .map(|e| e.finding())
        .collect()
}

/// Where a feature problem is: the feature's entry when the list is inline.
fn feature_pointer(
    s: &crate::risk::config::RiskSettings,
    e: &crate::risk::features::FeatureError,
) -> String {
    use crate::risk::features::FeatureError as E;
    let name = match e {
        E::UnknownCodelist { feature, .. } | E::Invalid { feature, .. } => feature.as_str(),
        E::Duplicate(n) | E::BadName(n) => n.as_str(),
        E::Codelist(_) => "",
    };
    match &s.features {
        Some(list) => match list.iter().position(|f| f.name == name) {
            Some(i) => format!("/risk/features/{i}"),
            None => "/risk/features".into(),
        },
        None => "/risk/features_file".into(),
    }
}

/// Each entry of `providers:` exists; a directory holds at least one manifest.
fn providers(ics: &Ics) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, entry) in ics.file.providers.iter().enumerate() {
        let at = format!("/providers/{i}");
        let path = ics.resolve(entry);
        if path.is_dir() {
            if !holds_manifest(&path) {
                out.push(
                    Finding::new(
                        "ONB0906",
                        at,
                        format!("provider directory `{entry}` holds no manifests"),
                    )
                    .label("no *.yaml files")
                    .help("add provider manifests to it, or remove the entry"),
                );
            }
        } else if !path.is_file() {
            out.push(
                Finding::new(
                    "ONB0905",
                    at,
                    format!(
                        "provider path `{entry}` does not exist ({})",
                        crate::diagnostics::display_path(&crate::manifest::lexically_normal(&path))
                    ),
                )
                .label("not found")
                .help(missing_path_help(&path)),
            );
        }
    }
    out
}

/// Did-you-mean among the entries of the nearest existing parent directory.
fn missing_path_help(path: &Path) -> String {
    let relative = "paths in `providers:` are relative to the ICS file".to_string();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return relative;
    };
    let names: Vec<String> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    did_you_mean(&name.to_string_lossy(), names.iter().map(String::as_str)).unwrap_or(relative)
}

fn holds_manifest(dir: &Path) -> bool {
    crate::manifest::collect_files(&[dir.to_path_buf()]).is_ok_and(|f| !f.is_empty())
}

fn reference_date(date: Option<&str>) -> Option<Finding> {
    let d = date?;
    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
        .is_err()
        .then(|| {
            Finding::new(
                "ONB0907",
                "/reference_date",
                format!("reference_date `{d}` is not a date YYYY-MM-DD"),
            )
            .label("not YYYY-MM-DD")
            .help("e.g. `reference_date: 2026-10-31`")
        })
}

fn memory_limit(limit: &str) -> Option<Finding> {
    super::parse_bytes(limit).is_none().then(|| {
        Finding::new(
            "ONB0908",
            "/engine/memory_limit",
            format!("engine.memory_limit `{limit}` is not a size such as 2GiB"),
        )
        .label("not a size")
        .help("sizes are a number with an optional unit: B, KB, KiB, MB, MiB, GB, GiB")
    })
}
