//! (feature `distributed`) The fixture ICS on standalone Ballista gives the same output
//! rows, sorted, as on the embedded engine: silver, identity and quarantine, every
//! column except the run id (which hashes the inputs, engine aside, and so is equal too,
//! but the comparison does not need it).

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::util::root;

/// Every row of every Parquet file under `dir`, as text, grouped by table directory.
async fn table_rows(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let pattern = format!("{}/**/*.parquet", dir.display());
    for f in glob::glob(&pattern).unwrap().flatten() {
        let rel = f
            .parent()
            .unwrap()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ctx = SessionContext::new();
        let batches = ctx
            .read_parquet(f.to_string_lossy().as_ref(), ParquetReadOptions::default())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        for b in batches {
            for row in 0..b.num_rows() {
                let cells: Vec<String> = (0..b.num_columns())
                    .filter(|i| b.schema().field(*i).name() != "run_id")
                    .map(|i| {
                        let a = b.column(i);
                        if a.is_null(row) {
                            "∅".into()
                        } else {
                            array_value_to_string(a, row).unwrap()
                        }
                    })
                    .collect();
                out.entry(rel.clone()).or_default().push(cells.join("|"));
            }
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

async fn run(engine: onboard::deploy::EngineChoice, out: &Path) -> onboard::run::Published {
    let opts = onboard::run::RunOptions {
        ics: root().join("tests/fixtures/ics/ics.yaml"),
        out: Some(out.to_path_buf()),
        demo_key: true,
        engine,
        ..Default::default()
    };
    onboard::run::run(&opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_ics_same_rows_embedded_and_on_standalone_ballista() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = run(Default::default(), &dir.path().join("embedded")).await;
    let ballista = run(
        onboard::deploy::EngineChoice::BallistaStandalone,
        &dir.path().join("ballista"),
    )
    .await;
    assert_eq!(
        embedded.record.totals.rows_read,
        ballista.record.totals.rows_read
    );
    assert!(
        embedded.record.totals.rows_quarantined > 0,
        "the fixture has faults"
    );
    let a = table_rows(&embedded.run_dir).await;
    let b = table_rows(&ballista.run_dir).await;
    assert!(
        a.keys().any(|k| k.starts_with("silver")) && a.keys().any(|k| k.starts_with("quarantine"))
    );
    assert!(
        !ballista.run_dir.join("bronze").exists(),
        "staged raw extracts are not published"
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (table, rows) in &a {
        assert_eq!(rows, &b[table], "{table} differs between the engines");
    }
    for (x, y) in embedded.record.sources.iter().zip(&ballista.record.sources) {
        assert_eq!(
            (
                x.rows_read,
                x.rows_accepted,
                x.rows_quarantined,
                &x.rule_hits
            ),
            (
                y.rows_read,
                y.rows_accepted,
                y.rows_quarantined,
                &y.rule_hits
            ),
            "{}/{}",
            x.provider,
            x.source
        );
    }
}
