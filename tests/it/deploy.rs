//! `onboard render` and `onboard explain --dialect spark`: two example ICS files give
//! two different, valid bundles (golden snapshots of the rendered files), renders are
//! byte-for-byte repeatable, and bad `deploy:` input fails with an error naming the
//! setting. (tests/spark/check_spark_sql.py runs the rendered Spark SQL on pyspark.)

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{code, onboard, root, stdout};

fn render(ics: &str, target: &str, out: &Path) -> std::process::Output {
    onboard(&[
        "render",
        "--ics",
        ics,
        "--target",
        target,
        "--out",
        &out.to_string_lossy(),
    ])
}

/// Every file of a rendered directory (relative path → text).
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

/// Manifest hashes change whenever a provider template does; the bundles' shape is what
/// the snapshots pin.
fn mask_hashes(s: &str) -> String {
    regex::Regex::new("[0-9a-f]{64}")
        .unwrap()
        .replace_all(s, "<manifest-hash>")
        .into_owned()
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name.to_string(), mask_hashes(text)));
}

fn rendered(ics: &str, target: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let o = render(ics, target, &out);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    files(&out)
}

#[test]
fn two_example_ics_render_two_different_valid_databricks_bundles() {
    let north = rendered("examples/northshire/ics.yaml", "databricks");
    let south = rendered("examples/southvale/ics.yaml", "databricks");
    assert_ne!(north["databricks.yml"], south["databricks.yml"]);
    // One SQL file and one stage file per source, one task per source.
    for bundle in [&north, &south] {
        let sql = bundle.keys().filter(|k| k.starts_with("sql/")).count();
        let stages = bundle.keys().filter(|k| k.starts_with("stages/")).count();
        let yml = &bundle["databricks.yml"];
        assert_eq!(sql, stages);
        assert_eq!(yml.matches("spark_python_task:").count(), sql);
        assert_eq!(yml.matches("depends_on:").count(), sql - 1, "a chain");
        assert!(bundle.contains_key("python/onboard_udfs.py"));
        // The structural check (also run by render itself).
        let doc = onboard::manifest::source::parse_plain("databricks.yml", yml).unwrap();
        assert_eq!(
            onboard::deploy::check::databricks_yml(&doc),
            Vec::<String>::new()
        );
        // Secrets are scope references only.
        assert!(yml.contains("{{secrets/"), "{yml}");
    }
    assert!(north["databricks.yml"].contains("0 30 2 * * ?"));
    assert!(south["databricks.yml"].contains("0 0 6 ? * MON,TUE,WED,THU,FRI"));
    assert_eq!(south.keys().filter(|k| k.starts_with("sql/")).count(), 9);
    snapshot(
        "deploy__northshire_databricks_yml",
        &north["databricks.yml"],
    );
    snapshot("deploy__southvale_databricks_yml", &south["databricks.yml"]);
    snapshot(
        "deploy__northshire_sql_emis_patients",
        &north["sql/ingest_emis_f81001__patients.sql"],
    );
    snapshot(
        "deploy__southvale_stage_emis_patients",
        &south["stages/ingest_emis_f81002__patients.json"],
    );
    let listing = |b: &BTreeMap<String, String>| b.keys().cloned().collect::<Vec<_>>().join("\n");
    snapshot("deploy__northshire_files", &listing(&north));
    snapshot("deploy__southvale_files", &listing(&south));
}

#[test]
fn kubernetes_and_ballista_bundles() {
    let north = rendered("examples/northshire/ics.yaml", "kubernetes");
    let south = rendered("examples/southvale/ics.yaml", "kubernetes");
    let (n, s) = (&north["cronjobs.yaml"], &south["cronjobs.yaml"]);
    assert_ne!(n, s);
    assert_eq!(
        n.matches("kind: CronJob").count(),
        2,
        "one CronJob per stage: run, link"
    );
    assert!(s.contains("\"0 6 * * 1-5\"") && s.contains("secretKeyRef"));
    snapshot("deploy__northshire_cronjobs_yaml", n);
    snapshot("deploy__southvale_cronjobs_yaml", s);
    let b = rendered("examples/northshire/ics.yaml", "ballista");
    assert!(b["cluster.yaml"].contains("replicas: 4"));
    assert!(
        b["submit-job.yaml"].contains("ballista://onboard-northshire-ballista-scheduler:50050")
    );
    snapshot(
        "deploy__northshire_ballista_cluster_yaml",
        &b["cluster.yaml"],
    );
    snapshot(
        "deploy__northshire_ballista_submit_yaml",
        &b["submit-job.yaml"],
    );
    // Southvale does not enable Ballista.
    let dir = tempfile::tempdir().unwrap();
    let o = render(
        "examples/southvale/ics.yaml",
        "ballista",
        &dir.path().join("b"),
    );
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("target `ballista` is not enabled in deploy.targets"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn rendering_is_repeatable_and_replaces_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    assert_eq!(
        code(&render("examples/northshire/ics.yaml", "databricks", &out)),
        0
    );
    let first = files(&out);
    std::fs::write(out.join("stale.txt"), "left over").unwrap();
    assert_eq!(
        code(&render("examples/northshire/ics.yaml", "databricks", &out)),
        0
    );
    assert_eq!(
        files(&out),
        first,
        "same inputs, same bytes; stale files gone"
    );
}

/// A copy of the fixture ICS with its `deploy:` section edited.
fn bad_ics(dir: &Path, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(root().join("tests/fixtures/ics/ics.yaml")).unwrap();
    assert!(text.contains(from), "fixture lacks {from}");
    let providers = root().join("tests/fixtures/ics/providers");
    let text = text.replace(from, to).replace(
        "providers: [providers]",
        &format!("providers: [\"{}\"]", providers.display()),
    );
    let p = dir.join("ics.yaml");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn bad_deploy_input_is_refused_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "file:///data/fixture/landing",
            "ftp://files.example/landing",
            &["deploy.storage.landing", "`ftp://` is not supported"][..],
        ),
        (
            "databricks: { scope: fixture, key: pseudonymisation-key }",
            "databricks: \"s3cr3t-value-0123456789abcdef0123456789\"",
            &[
                "deploy.secrets.pseudonymisation_key.databricks",
                "must be an object, found a string",
            ][..],
        ),
        (
            "cron: \"15 1 * * *\"",
            "cron: \"every day at 1am\"",
            &["deploy.schedule.cron", "is not a cron expression"][..],
        ),
        (
            "cron: \"15 1 * * *\"",
            "cron: \"15 25 * * *\"",
            &["deploy.schedule.cron", "15 25 * * *"][..],
        ),
        (
            "targets: [databricks, ballista, kubernetes]",
            "targets: [databricks, snowflake]",
            &["`snowflake` is not an allowed value for `deploy.targets[1]`"][..],
        ),
    ];
    for (from, to, wants) in cases {
        let ics = bad_ics(dir.path(), from, to);
        let o = render(&ics, "databricks", &dir.path().join("out"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{to}: {err}");
        for w in wants {
            assert!(err.contains(w), "{to}: expected `{w}` in {err}");
        }
        assert!(
            !err.contains("s3cr3t"),
            "a secret value is never echoed: {err}"
        );
        assert!(!dir.path().join("out").exists(), "nothing written on error");
    }
    // An unknown target on the command line.
    let o = render(
        "tests/fixtures/ics/ics.yaml",
        "snowflake",
        &dir.path().join("out"),
    );
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid value 'snowflake' for '--target"),
        "{err}"
    );
    assert!(err.contains("databricks, ballista, kubernetes"), "{err}");
}

#[test]
fn explain_prints_spark_sql() {
    let o = onboard(&[
        "explain",
        "providers/emis-f81001.yaml",
        "--source",
        "patients",
        "--as-of",
        "2026-10-31",
        "--dialect",
        "spark",
    ]);
    assert_eq!(code(&o), 0);
    let s = stdout(&o);
    assert!(s.contains("-- Spark SQL"), "{s}");
    assert!(s.contains("FROM `src__emis-f81001__patients`"), "{s}");
    assert!(
        s.contains("onboard_nhs_number_valid(CAST(`mapped`.`nhs_number` AS STRING))"),
        "{s}"
    );
    assert!(
        s.contains("nullif(regexp_replace("),
        "digits_only maps to a Spark built-in: {s}"
    );
    assert!(s.contains("CAST('2026-10-31' AS DATE)"), "{s}");
    assert!(
        !s.contains("\"NHSNumber\""),
        "no DataFusion quoting left: {s}"
    );
}
