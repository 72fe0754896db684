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
    /// The disclosure policy of commissioners' counts (`population.disclosure`).
    pub policy: crate::disclosure::DisclosurePolicy,
    /// The segmentation the `segment` breakdown uses (the population stage's first).
    pub segmentation: Option<String>,
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
        let (persons, segmentation) = read_persons(out, as_of, &model_version, &key).await?;
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
            policy: ics
                .file
                .population
                .as_ref()
                .map(|p| p.disclosure)
                .unwrap_or_default(),
            segmentation,
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
) -> Result<(Vec<Person>, Option<String>), ServeError> {
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
    let (seg_col, seg_join, segmentation) = match segments(&ctx, out, as_of).await? {
        Some(col) => (
            format!("CAST(g.\"{col}\" AS VARCHAR) AS segment"),
            "LEFT JOIN segments g ON s.person_key = g.person_key",
            Some(col.trim_start_matches("segment_").to_string()),
        ),
        None => ("CAST(NULL AS VARCHAR) AS segment".to_string(), "", None),
    };
    let sql = format!(
        "SELECT CAST(s.person_key AS VARCHAR) AS person_key, CAST(s.probability AS DOUBLE) AS probability, \
         CAST(s.rank AS BIGINT) AS rank, CAST(s.percentile AS BIGINT) AS percentile, \
         CAST(s.decile AS BIGINT) AS decile, CAST(s.band AS VARCHAR) AS band, \
         CAST(s.practice AS VARCHAR) AS practice, CAST(s.pcn AS VARCHAR) AS pcn, {}, {}, {}, {}, {}, {seg_col} \
         FROM scores s LEFT JOIN features f ON s.person_key = f.person_key {seg_join}",
        feature_col(&names, "lsoa", "VARCHAR"),
        feature_col(&names, "imd_decile", "DOUBLE"),
        feature_col(&names, "ethnic_group", "VARCHAR"),
        feature_col(&names, "age", "DOUBLE"),
        feature_col(&names, "sex_female", "DOUBLE"),
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut persons = Vec::new();
    for b in &batches {
        persons_of(b, key, &mut persons);
    }
    persons.sort_by_key(|p| p.rank);
    Ok((persons, segmentation))
}

/// The population stage's persons table at `as_of` (`gold/population/persons/`),
/// registered as `segments` when it exists: the name of its first `segment_<name>` column.
async fn segments(
    ctx: &SessionContext,
    out: &Path,
    as_of: NaiveDate,
) -> Result<Option<String>, ServeError> {
    let dir = population_dir(out, "persons", as_of);
    if !dir.is_dir() {
        return Ok(None);
    }
    register(ctx, "segments", &dir).await?;
    let schema = ctx.table("segments").await?.schema().clone();
    Ok(schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .find(|n| n.starts_with("segment_")))
}

/// A table of the population stage (`gold/population/<table>/as_of=<d>/`).
pub fn population_dir(out: &Path, table: &str, as_of: NaiveDate) -> PathBuf {
    out.join("gold")
        .join("population")
        .join(table)
        .join(format!("as_of={}", as_of.format("%Y-%m-%d")))
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
    /// The referral status of a person: their entry in the model-operations stage's
    /// `gold/referrals/as_of=<d>/model=<v>/referrals.json` for the served date and model,
    /// when the run has one (`referral_id`, `priority`, `team`, `band`, `explanation`, …;
    /// the person key and the factors, shown on the card already, are left out).
    pub async fn referral(
        &self,
        person_key: &str,
    ) -> Result<Option<serde_json::Value>, ServeError> {
        let path =
            crate::risk::score::output_dir(&self.out, "referrals", self.as_of, &self.model_version)
                .join("referrals.json");
        let Some(doc) = read_json(&path)? else {
            return Ok(None);
        };
        let team = doc.get("team").cloned();
        let found = doc
            .get("referrals")
            .and_then(|r| r.as_array())
            .and_then(|r| {
                r.iter()
                    .find(|x| x.get("person_key").and_then(|k| k.as_str()) == Some(person_key))
            });
        Ok(found.map(|r| {
            let mut m = r.as_object().cloned().unwrap_or_default();
            m.remove("person_key");
            m.remove("factors");
            if let (false, Some(t)) = (m.contains_key("team"), team) {
                m.insert("team".into(), t);
            }
            m.insert("status".into(), serde_json::json!("referred"));
            serde_json::Value::Object(m)
        }))
    }

    /// The population stage's published aggregates at the score date
    /// (`gold/population/aggregates/as_of=<d>/`: every count already through disclosure
    /// control, so the same rows serve every role), filtered by measure and breakdown.
    /// Never its row-level tables.
    pub async fn population_rows(
        &self,
        measure: Option<&str>,
        breakdown: Option<&str>,
    ) -> Result<Option<PopulationRows>, ServeError> {
        let dir = population_dir(&self.out, "aggregates", self.as_of);
        if !dir.is_dir() {
            return Ok(None);
        }
        let ctx = crate::engine::planning_context();
        register(&ctx, "aggregates", &dir).await?;
        let distinct = |c: &str| {
            format!("SELECT DISTINCT CAST(\"{c}\" AS VARCHAR) AS v FROM aggregates ORDER BY v")
        };
        let measures: Vec<String> = texts(&ctx.sql(&distinct("measure")).await?.collect().await?);
        let breakdowns: Vec<String> =
            texts(&ctx.sql(&distinct("breakdown")).await?.collect().await?);
        let pick = |want: Option<&str>, all: &[String], default: &str| {
            want.filter(|w| all.iter().any(|a| a == w))
                .map(str::to_string)
                .or_else(|| all.iter().find(|a| *a == default).cloned())
                .or_else(|| all.first().cloned())
        };
        let measure = pick(measure, &measures, "persons");
        let breakdown = pick(breakdown, &breakdowns, "imd_quintile");
        let lit = |v: &Option<String>| v.clone().unwrap_or_default().replace('\'', "''");
        let sql = format!(
            "SELECT CAST(\"group\" AS VARCHAR) AS \"group\", CAST(category AS VARCHAR) AS category, \
             CAST(statistic AS VARCHAR) AS statistic, CAST(unit AS VARCHAR) AS unit, value, lower_95, upper_95, \
             CAST(status AS VARCHAR) AS status FROM aggregates \
             WHERE CAST(measure AS VARCHAR) = '{}' AND CAST(breakdown AS VARCHAR) = '{}' \
             ORDER BY \"group\", category, statistic",
            lit(&measure),
            lit(&breakdown)
        );
        let rows = rows_json(&ctx.sql(&sql).await?.collect().await?);
        Ok(Some(PopulationRows {
            measures,
            breakdowns,
            measure,
            breakdown,
            rows,
        }))
    }
}

/// One measure by one breakdown of the population stage's aggregates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PopulationRows {
    pub measures: Vec<String>,
    pub breakdowns: Vec<String>,
    pub measure: Option<String>,
    pub breakdown: Option<String>,
    /// `group`, `category`, `statistic`, `unit`, `value`, `lower_95`, `upper_95`, `status`.
    pub rows: Vec<serde_json::Value>,
}

fn texts(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| strs(b, "v"))
        .flatten()
        .collect()
}
