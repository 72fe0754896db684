//! Scoring linkage against labelled data.
//!
//! The prediction is the `person_key` of every record a run published (silver tables,
//! and identity rows of identity sources); the truth is a CSV of
//! `provider_id, source, source_record_id, true_person_id`. Records in the truth that
//! the run did not publish (quarantined) or that have no key count as singletons, so
//! recall is over every labelled record. Measures:
//!
//! * pairwise precision, recall and F1 over record pairs (from the contingency table
//!   of predicted × true clusters: no pair enumeration, so it scales to millions);
//! * cluster measures: true persons whose records form exactly one predicted cluster
//!   (and nothing else), true persons split over several clusters, predicted clusters
//!   that merge several true persons.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use serde::Serialize;

/// Linkage quality against truth.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkageScore {
    pub records: i64,
    pub records_with_key: i64,
    pub true_persons: i64,
    pub predicted_clusters: i64,
    pub true_pairs: i64,
    pub predicted_pairs: i64,
    pub true_positive_pairs: i64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Share of true persons recovered exactly (one cluster, nothing else in it).
    pub exact_persons: f64,
    /// True persons whose records are in more than one cluster.
    pub split_persons: i64,
    /// Predicted clusters holding records of more than one true person.
    pub merged_clusters: i64,
}

async fn scalar(ctx: &SessionContext, sql: &str) -> Result<i64, String> {
    let b = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let v = b.first().filter(|b| b.num_rows() > 0).and_then(|b| {
        b.column(0)
            .as_primitive_opt::<Int64Type>()
            .map(|a| if a.is_null(0) { 0 } else { a.value(0) })
    });
    Ok(v.unwrap_or(0))
}

/// Score the published outputs under `out` against `truth`.
pub async fn score(
    out: &Path,
    truth: &Path,
    link_map: Option<&Path>,
) -> Result<LinkageScore, String> {
    let ctx = crate::engine::planning_context();
    register_truth(&ctx, truth).await?;
    let keys = register_predictions(&ctx, out).await?;
    let pred = match link_map {
        // Linked: candidate keys mapped to persons.
        Some(m) => {
            ctx.register_parquet(
                "link_map",
                m.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
            format!(
                "SELECT k.provider_id, k.source_id, k.source_record_id, coalesce(m.person_key, k.person_key) AS person_key \
                 FROM ({keys}) AS k LEFT JOIN link_map m ON m.candidate_key = k.person_key"
            )
        }
        None => keys,
    };
    ctx.sql(&format!("CREATE VIEW pred AS {pred}"))
        .await
        .map_err(|e| e.to_string())?;
    ctx.sql(
        "CREATE VIEW j AS SELECT t.true_person_id AS truth, \
         coalesce(p.person_key, concat('single:', t.provider_id, ':', t.source, ':', t.source_record_id)) AS pred, \
         p.person_key IS NOT NULL AS keyed \
         FROM truth t LEFT JOIN pred p ON p.provider_id = t.provider_id AND p.source_id = t.source AND p.source_record_id = t.source_record_id",
    )
    .await
    .map_err(|e| e.to_string())?;
    measures(&ctx).await
}

/// The truth file (`provider_id, source, source_record_id, true_person_id`) as `truth`.
async fn register_truth(ctx: &SessionContext, truth: &Path) -> Result<(), String> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(
        [
            "provider_id",
            "source",
            "source_record_id",
            "true_person_id",
        ]
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect::<Vec<_>>(),
    );
    ctx.register_csv(
        "truth",
        truth.to_string_lossy().as_ref(),
        CsvReadOptions::new().schema(&schema).has_header(true),
    )
    .await
    .map_err(|e| format!("{}: {e}", truth.display()))
}

/// Every silver entity table, plus the identity rows of identity sources, registered;
/// the query of their keyed records (`provider_id, source_id, source_record_id,
/// person_key`).
async fn register_predictions(ctx: &SessionContext, out: &Path) -> Result<String, String> {
    use datafusion::arrow::datatypes::DataType;
    let silver = out.join("silver");
    // A run of identity sources only has no silver tables.
    let mut dirs: Vec<_> = match std::fs::read_dir(&silver) {
        Ok(d) => d
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(format!("{}: {e}", silver.display())),
    };
    dirs.sort();
    let identity = out.join("identity").join(crate::canonical::IDENTITY_ENTITY);
    if identity.is_dir() {
        dirs.push(identity);
    }
    let mut parts = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let name = format!("pred_{i}");
        let opts = ParquetReadOptions::default().table_partition_cols(vec![
            ("provider".into(), DataType::Utf8),
            ("source".into(), DataType::Utf8),
        ]);
        ctx.register_parquet(&name, d.to_string_lossy().as_ref(), opts)
            .await
            .map_err(|e| e.to_string())?;
        // Identity rows without a record (distinct tuples of event sources) are not records.
        let filter = if d.ends_with(crate::canonical::IDENTITY_ENTITY) {
            " WHERE source_row IS NOT NULL"
        } else {
            ""
        };
        parts.push(format!("SELECT provider_id, source_id, CAST(source_record_id AS VARCHAR) AS source_record_id, person_key FROM {name}{filter}"));
    }
    if parts.is_empty() {
        return Err(format!("no published tables under {}", out.display()));
    }
    Ok(format!(
        "SELECT * FROM ({}) AS keyed",
        parts.join(" UNION ALL ")
    ))
}

/// Pairwise and cluster measures over the view `j` (truth, pred, keyed).
async fn measures(ctx: &SessionContext) -> Result<LinkageScore, String> {
    let pairs = |group: &str| {
        format!(
            "SELECT CAST(coalesce(sum(n * (n - 1) / 2), 0) AS BIGINT) FROM (SELECT count(*) AS n FROM j GROUP BY {group})"
        )
    };
    let records = scalar(ctx, "SELECT count(*) FROM j").await?;
    let records_with_key = scalar(ctx, "SELECT count(*) FROM j WHERE keyed").await?;
    let true_persons = scalar(ctx, "SELECT count(DISTINCT truth) FROM j").await?;
    let predicted_clusters = scalar(ctx, "SELECT count(DISTINCT pred) FROM j").await?;
    let true_pairs = scalar(ctx, &pairs("truth")).await?;
    let predicted_pairs = scalar(ctx, &pairs("pred")).await?;
    let tp = scalar(ctx, &pairs("pred, truth")).await?;
    let split_persons = scalar(
        &ctx,
        "SELECT count(*) FROM (SELECT truth FROM j GROUP BY truth HAVING count(DISTINCT pred) > 1)",
    )
    .await?;
    let merged_clusters = scalar(
        &ctx,
        "SELECT count(*) FROM (SELECT pred FROM j GROUP BY pred HAVING count(DISTINCT truth) > 1)",
    )
    .await?;
    let exact = scalar(
        &ctx,
        "SELECT count(*) FROM (SELECT truth, min(pred) AS pred FROM j GROUP BY truth HAVING count(DISTINCT pred) = 1) t \
         WHERE t.pred IN (SELECT pred FROM j GROUP BY pred HAVING count(DISTINCT truth) = 1)",
    )
    .await?;
    let precision = if predicted_pairs == 0 {
        1.0
    } else {
        tp as f64 / predicted_pairs as f64
    };
    let recall = if true_pairs == 0 {
        1.0
    } else {
        tp as f64 / true_pairs as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Ok(LinkageScore {
        records,
        records_with_key,
        true_persons,
        predicted_clusters,
        true_pairs,
        predicted_pairs,
        true_positive_pairs: tp,
        precision,
        recall,
        f1,
        exact_persons: if true_persons == 0 {
            0.0
        } else {
            exact as f64 / true_persons as f64
        },
        split_persons,
        merged_clusters,
    })
}
