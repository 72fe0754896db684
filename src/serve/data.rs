//! What the app serves, read once at start-up through DataFusion from the run's `gold/`
//! outputs: the champion's scores at the score as-of date joined to the breakdown
//! features of each person (practice, PCN, LSOA, IMD, ethnic group, age, sex) and, when
//! the population stage wrote it, the person's segment; plus the DQ report and the
//! linkage summary. Explanation cards are read per request (`risk::report::cards`).
//!
//! Persons are addressed in URLs by an opaque reference (a keyed hash of the person key
//! under a key drawn at start-up), never by the person key itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::ServeError;

/// One scored person with the fields pages break down by.
#[derive(Debug, Clone)]
pub struct Person {
    pub key: String,
    /// Opaque reference used in URLs.
    pub reference: String,
    pub practice: Option<String>,
    pub pcn: Option<String>,
    pub lsoa: Option<String>,
    pub imd_decile: Option<u8>,
    pub ethnic_group: Option<String>,
    pub age: Option<f64>,
    pub female: Option<bool>,
    pub segment: Option<String>,
    pub probability: f64,
    pub rank: u32,
    pub percentile: u8,
    pub decile: u8,
    pub band: String,
}

impl Person {
    pub fn imd_quintile(&self) -> Option<u8> {
        self.imd_decile.map(|d| d.div_ceil(2))
    }

    /// Five-year age band (`0-4` … `85-89`, `90+`).
    pub fn age_band(&self) -> Option<String> {
        let a = self.age? as u32;
        Some(if a >= 90 {
            "90+".into()
        } else {
            format!("{}-{}", a / 5 * 5, a / 5 * 5 + 4)
        })
    }
}

/// The served run.
pub struct Data {
    pub out: PathBuf,
    pub stage: crate::risk::Stage,
    pub as_of: NaiveDate,
    pub model_version: String,
    /// Band names, highest risk first.
    pub bands: Vec<String>,
    /// Bands whose people count as high risk.
    pub high_risk_bands: Vec<String>,
    /// Everyone scored, by rank.
    pub persons: Vec<Person>,
    by_reference: HashMap<String, usize>,
    /// `reports/dq_report.json`, when the run has one.
    pub dq_report: Option<serde_json::Value>,
    /// `linkage/summary.json`, when the run has one.
    pub linkage: Option<serde_json::Value>,
}

impl Data {
    pub async fn load(out: &Path, ics: &crate::ics::Ics) -> Result<Data, ServeError> {
        let stage = crate::risk::Stage::load(out, Some(ics))?;
        let registry = crate::risk::train::read_registry(out)?;
        let model_version = registry.champion.ok_or_else(|| {
            ServeError::Setup(format!(
                "{} has no champion model: run `onboard risk run --out {}` first",
                out.join("models").display(),
                out.display()
            ))
        })?;
        let as_of = stage.as_of.score;
        let key = hex::decode(super::auth::random_hex(32)?).unwrap_or_default();
        let persons = read_persons(out, as_of, &model_version, &key).await?;
        let by_reference = persons
            .iter()
            .enumerate()
            .map(|(i, p)| (p.reference.clone(), i))
            .collect();
        Ok(Data {
            out: out.to_path_buf(),
            bands: stage
                .settings
                .bands
                .iter()
                .map(|b| b.name.clone())
                .collect(),
            high_risk_bands: stage.settings.high_risk_bands.clone(),
            stage,
            as_of,
            model_version,
            persons,
            by_reference,
            dq_report: read_json(&out.join("reports").join("dq_report.json"))?,
            linkage: read_json(&out.join("linkage").join("summary.json"))?,
        })
    }

    pub fn person(&self, reference: &str) -> Option<&Person> {
        self.by_reference.get(reference).map(|i| &self.persons[*i])
    }

    /// The explanation card of one person (top factors, values, evidence).
    pub async fn card(&self, p: &Person) -> Result<crate::risk::report::Card, ServeError> {
        let cards = crate::risk::report::cards(
            &self.stage,
            &self.model_version,
            self.as_of,
            Some(&p.key),
            1,
        )
        .await?;
        cards
            .into_iter()
            .next()
            .ok_or_else(|| ServeError::Setup("the person has no card".into()))
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>, ServeError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ServeError::file(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ServeError::file(path, e))
}

async fn register(ctx: &SessionContext, name: &str, dir: &Path) -> Result<(), ServeError> {
    if !dir.is_dir() {
        return Err(ServeError::Setup(format!(
            "{} does not exist: run `onboard risk run` on this run first",
            dir.display()
        )));
    }
    ctx.register_parquet(
        name,
        dir.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    Ok(())
}

/// A column of the features table as SQL, or NULL when the features lack it.
fn feature_col(names: &[String], col: &str, ty: &str) -> String {
    if names.iter().any(|n| n == col) {
        format!("CAST(f.\"{col}\" AS {ty}) AS \"{col}\"")
    } else {
        format!("CAST(NULL AS {ty}) AS \"{col}\"")
    }
}

async fn read_persons(
    out: &Path,
    as_of: NaiveDate,
    version: &str,
    key: &[u8],
) -> Result<Vec<Person>, ServeError> {
    let ctx = crate::engine::planning_context();
    let scores = crate::risk::score::output_dir(out, "risk_scores", as_of, version);
    register(&ctx, "scores", &scores).await?;
    register(&ctx, "features", &crate::risk::features_dir(out, as_of)).await?;
    let names: Vec<String> = ctx
        .table("features")
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let segment = segments_dir(out).filter(|d| d.is_dir());
    let (seg_col, seg_join) = match &segment {
        Some(d) => {
            register(&ctx, "segments", d).await?;
            (
                "CAST(g.segment AS VARCHAR) AS segment",
                "LEFT JOIN segments g ON s.person_key = g.person_key",
            )
        }
        None => ("CAST(NULL AS VARCHAR) AS segment", ""),
    };
    let sql = format!(
        "SELECT CAST(s.person_key AS VARCHAR) AS person_key, CAST(s.probability AS DOUBLE) AS probability, \
         CAST(s.rank AS BIGINT) AS rank, CAST(s.percentile AS BIGINT) AS percentile, \
         CAST(s.decile AS BIGINT) AS decile, CAST(s.band AS VARCHAR) AS band, \
         CAST(s.practice AS VARCHAR) AS practice, CAST(s.pcn AS VARCHAR) AS pcn, {}, {}, {}, {}, {}, {seg_col} \
         FROM scores s LEFT JOIN features f ON s.person_key = f.person_key {seg_join} ORDER BY s.rank",
        feature_col(&names, "lsoa", "VARCHAR"),
        feature_col(&names, "imd_decile", "DOUBLE"),
        feature_col(&names, "ethnic_group", "VARCHAR"),
        feature_col(&names, "age", "DOUBLE"),
        feature_col(&names, "sex_female", "DOUBLE"),
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        persons_of(b, key, &mut out);
    }
    Ok(out)
}

/// Where the population stage writes each person's segment, when it does.
fn segments_dir(out: &Path) -> Option<PathBuf> {
    Some(out.join("gold").join("segments"))
}

fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let Some(c) = b.column_by_name(name) else {
        return vec![None; b.num_rows()];
    };
    let c = datafusion::arrow::compute::cast(c, &DataType::Utf8).unwrap_or_else(|_| c.clone());
    let s = c.as_string::<i32>();
    (0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect()
}

fn nums(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let Some(c) = b.column_by_name(name) else {
        return vec![None; b.num_rows()];
    };
    let Ok(c) = datafusion::arrow::compute::cast(c, &DataType::Float64) else {
        return vec![None; b.num_rows()];
    };
    let v = c.as_primitive::<Float64Type>();
    (0..v.len())
        .map(|i| (!v.is_null(i) && !v.value(i).is_nan()).then(|| v.value(i)))
        .collect()
}

/// The URL reference of a person key: 16 bytes of HMAC-SHA-256 under the start-up key.
pub fn reference_of(key: &[u8], person_key: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(person_key.as_bytes());
    hex::encode(&m.finalize().into_bytes()[..16])
}

fn persons_of(b: &RecordBatch, key: &[u8], out: &mut Vec<Person>) {
    let keys = strs(b, "person_key");
    let [practice, pcn, lsoa, ethnic, band, segment] =
        ["practice", "pcn", "lsoa", "ethnic_group", "band", "segment"].map(|c| strs(b, c));
    let [prob, rank, pct, dec, imd, age, female] = [
        "probability",
        "rank",
        "percentile",
        "decile",
        "imd_decile",
        "age",
        "sex_female",
    ]
    .map(|c| nums(b, c));
    for i in 0..b.num_rows() {
        let Some(k) = keys[i].clone() else { continue };
        out.push(Person {
            reference: reference_of(key, &k),
            key: k,
            practice: practice[i].clone(),
            pcn: pcn[i].clone(),
            lsoa: lsoa[i].clone(),
            imd_decile: imd[i].map(|d| d as u8),
            ethnic_group: ethnic[i].clone(),
            age: age[i],
            female: female[i].map(|f| f >= 0.5),
            segment: segment[i].clone(),
            probability: prob[i].unwrap_or(f64::NAN),
            rank: rank[i].unwrap_or(0.0) as u32,
            percentile: pct[i].unwrap_or(0.0) as u8,
            decile: dec[i].unwrap_or(0.0) as u8,
            band: band[i].clone().unwrap_or_default(),
        });
    }
}

/// Rows of record batches as JSON objects (numbers stay numbers, the rest text).
pub fn rows_json(batches: &[RecordBatch]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let cols: Vec<(String, Vec<serde_json::Value>)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), column_json(b, f.name(), f.data_type())))
            .collect();
        for i in 0..b.num_rows() {
            let row: serde_json::Map<String, serde_json::Value> = cols
                .iter()
                .map(|(n, v)| (n.clone(), v[i].clone()))
                .collect();
            out.push(serde_json::Value::Object(row));
        }
    }
    out
}

fn column_json(b: &RecordBatch, name: &str, ty: &DataType) -> Vec<serde_json::Value> {
    if ty.is_integer() {
        let v = nums(b, name);
        return v
            .into_iter()
            .map(|x| x.map(|x| serde_json::json!(x as i64)).unwrap_or_default())
            .collect();
    }
    if ty.is_numeric() {
        let v = nums(b, name);
        return v
            .into_iter()
            .map(|x| x.map(|x| serde_json::json!(x)).unwrap_or_default())
            .collect();
    }
    strs(b, name)
        .into_iter()
        .map(|x| x.map(serde_json::Value::String).unwrap_or_default())
        .collect()
}

impl Data {
    /// The referral status of a person from the model-operations stage's referrals,
    /// when the run has them (the latest record of the person).
    pub async fn referral(
        &self,
        person_key: &str,
    ) -> Result<Option<serde_json::Value>, ServeError> {
        let dir = self.out.join("gold").join("referrals");
        if !dir.is_dir() {
            return Ok(None);
        }
        let ctx = crate::engine::planning_context();
        register(&ctx, "referrals", &dir).await?;
        let key = person_key.replace('\'', "''");
        let batches = ctx
            .sql(&format!(
                "SELECT * FROM referrals WHERE CAST(person_key AS VARCHAR) = '{key}'"
            ))
            .await?
            .collect()
            .await?;
        Ok(rows_json(&batches).pop())
    }

    /// The population stage's aggregate tables (`gold/population/<table>/`), each as
    /// `{name, rows}`; none when the run has none.
    pub async fn population_tables(
        &self,
        _role: super::config::Role,
    ) -> Result<Vec<serde_json::Value>, ServeError> {
        let root = self.out.join("gold").join("population");
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let ctx = crate::engine::planning_context();
            register(&ctx, "t", &root.join(&name)).await?;
            let batches = ctx
                .sql("SELECT * FROM t LIMIT 5000")
                .await?
                .collect()
                .await?;
            out.push(serde_json::json!({"name": name, "rows": rows_json(&batches)}));
        }
        Ok(out)
    }
}
