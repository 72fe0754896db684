//! The spine: every canonical table of a run keyed by the linked person, and `person`
//! built by survivorship per attribute (source rank, most frequent, most recent, first
//! non-null). Identifiers stay in the identity zone: `person` holds the year and month
//! of birth and the postcode district only.

use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::config::{Rule, Survivorship};

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// ORDER BY of a survivorship rule over candidate values `v` of one person (columns
/// `registered`, `provider_id`, `n` (how often `v` occurs), `latest`).
fn order(rule: &Rule) -> String {
    match rule {
        Rule::SourceRank { providers } => {
            format!("registered DESC, {}, provider_id, v", rank(providers))
        }
        Rule::MostFrequent => "n DESC, v".into(),
        Rule::MostRecent => "latest DESC NULLS LAST, registered DESC, provider_id, v".into(),
        Rule::FirstNonNull => "provider_id, v".into(),
    }
}

fn rank(providers: &[String]) -> String {
    if providers.is_empty() {
        return "0".into();
    }
    let whens: Vec<String> = providers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("WHEN {} THEN {i}", sql_text(p)))
        .collect();
    format!(
        "CASE provider_id {} ELSE {} END",
        whens.join(" "),
        providers.len()
    )
}

/// ORDER BY that puts a person's surviving (current) registration first.
fn registration_order(rule: &Rule) -> String {
    let recent = "registration_end IS NULL DESC, registration_start DESC NULLS LAST, registration_end DESC NULLS LAST, practice_ods";
    match rule {
        Rule::SourceRank { providers } => {
            format!(
                "{}, {recent}",
                rank(providers).replace("provider_id", "provider")
            )
        }
        _ => recent.into(),
    }
}

/// Build the spine from a published run and its link map, under `OUT/linkage/spine/`:
/// every silver table with `person_key` replaced by the linked person's key (and
/// `registration` with the surviving current registration flagged), and a `person`
/// table by survivorship as the settings declare. Only the year and month of birth
/// leave the identity zone. Written into a temporary directory, then renamed.
pub async fn build_spine(
    out: &Path,
    link_map: &Path,
    ctx: &SessionContext,
    s: &Survivorship,
) -> Result<Vec<(String, usize)>, String> {
    let err = |e: datafusion::error::DataFusionError| e.to_string();
    ctx.register_parquet(
        "link_map",
        link_map.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(err)?;
    let part = || {
        ParquetReadOptions::default().table_partition_cols(vec![
            ("provider".into(), DataType::Utf8),
            ("source".into(), DataType::Utf8),
        ])
    };
    let tmp = out
        .join("linkage")
        .join(format!(".spine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let mut written = Vec::new();
    let mut has_registration = false;
    let mut entities: Vec<std::path::PathBuf> = std::fs::read_dir(out.join("silver"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entities.sort();
    for (i, dir) in entities.iter().enumerate() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let t = format!("silver_{i}");
        ctx.register_parquet(&t, dir.to_string_lossy().as_ref(), part())
            .await
            .map_err(err)?;
        let rekeyed = format!(
            "SELECT s.* EXCLUDE (person_key, source), coalesce(m.person_key, s.person_key) AS person_key \
             FROM {t} s LEFT JOIN link_map m ON m.candidate_key = s.person_key"
        );
        let sql = if name == "registration" {
            has_registration = true;
            // The current registration of each person (survivorship).
            format!(
                "SELECT r.* EXCLUDE (provider, rn), r.rn = 1 AS current FROM (SELECT x.*, row_number() OVER \
                 (PARTITION BY x.person_key ORDER BY {}) AS rn FROM ({rekeyed}) x) r",
                registration_order(&s.registration)
            )
        } else {
            format!("SELECT * EXCLUDE (provider) FROM ({rekeyed})")
        };
        let df = ctx.sql(&sql).await.map_err(err)?;
        let n = write_table(df, &tmp.join(&name)).await?;
        written.push((name, n));
    }
    ctx.register_parquet(
        "ident",
        out.join("identity")
            .join(crate::canonical::IDENTITY_ENTITY)
            .to_string_lossy()
            .as_ref(),
        part(),
    )
    .await
    .map_err(err)?;
    // Latest registration start of each candidate key: the date `most_recent` uses.
    let latest = if has_registration {
        ctx.register_parquet(
            "silver_registration",
            out.join("silver")
                .join("registration")
                .to_string_lossy()
                .as_ref(),
            part(),
        )
        .await
        .map_err(err)?;
        "(SELECT person_key AS ck, max(registration_start) AS latest FROM silver_registration GROUP BY person_key)"
    } else {
        "(SELECT CAST(NULL AS VARCHAR) AS ck, CAST(NULL AS DATE) AS latest)"
    };
    let pick = |col: &str, rule: &Rule, filter: &str| -> String {
        format!(
            "{col} AS (SELECT pk, v, provider_id, row_number() OVER (PARTITION BY pk ORDER BY {}) AS rn FROM \
             (SELECT pk, v, provider_id, registered, latest, count(*) OVER (PARTITION BY pk, v) AS n FROM \
             (SELECT pk, {col} AS v, provider_id, registered, latest FROM i) WHERE v IS NOT NULL {filter}) g)",
            order(rule)
        )
    };
    let sql = format!(
        "WITH i AS ( \
           SELECT coalesce(m.person_key, x.person_key) AS pk, x.ethnic_category, x.sex, x.date_of_birth, x.postcode, \
                  x.source_row IS NOT NULL AS registered, x.provider_id, l.latest \
           FROM ident x LEFT JOIN link_map m ON m.candidate_key = x.person_key \
           LEFT JOIN {latest} l ON l.ck = x.person_key WHERE x.person_key IS NOT NULL), \
         {}, {}, {}, {} \
         SELECT p.pk AS person_key, CAST(date_trunc('month', d.v) AS DATE) AS birth_year_month, s.v AS sex, \
                e.v AS ethnic_category, e.provider_id AS ethnic_source_provider, \
                postcode_district(pc.v) AS postcode_district \
         FROM (SELECT DISTINCT pk FROM i) p \
         LEFT JOIN ethnic_category e ON e.pk = p.pk AND e.rn = 1 \
         LEFT JOIN sex s ON s.pk = p.pk AND s.rn = 1 \
         LEFT JOIN date_of_birth d ON d.pk = p.pk AND d.rn = 1 \
         LEFT JOIN postcode pc ON pc.pk = p.pk AND pc.rn = 1",
        pick(
            "ethnic_category",
            &s.ethnic_category,
            "AND v NOT IN ('Z', '99')"
        ),
        pick("sex", &s.sex, "AND v <> '0'"),
        pick("date_of_birth", &s.date_of_birth, ""),
        pick("postcode", &s.postcode, ""),
    );
    let person = ctx.sql(&sql).await.map_err(err)?;
    let n = write_table(person, &tmp.join("person")).await?;
    written.push(("person".into(), n));
    let spine = out.join("linkage").join("spine");
    let old = out
        .join("linkage")
        .join(format!(".spine-old-{}", std::process::id()));
    if spine.exists() {
        std::fs::rename(&spine, &old).map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, &spine).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(written)
}

/// Write a DataFrame as Parquet files into `dir`; returns the rows written.
async fn write_table(df: datafusion::dataframe::DataFrame, dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let res = df
        .write_parquet(
            &dir.to_string_lossy(),
            datafusion::dataframe::DataFrameWriteOptions::new(),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(count_of(&res))
}

fn count_of(batches: &[datafusion::arrow::array::RecordBatch]) -> usize {
    batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>()
        })
        .map(|a| a.iter().flatten().sum::<u64>() as usize)
        .sum()
}
