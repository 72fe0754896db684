//! The spine: every canonical table of a run keyed by the linked person, and `person`
//! built by survivorship per attribute (source rank, most frequent, most recent, first
//! non-null). Identifiers stay in the identity zone: `person` holds the year and month
//! of birth and the postcode district only.

use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use std::collections::HashMap;

use datafusion::arrow::array::Array;

use super::config::{Rule, Survivorship};
use super::records::{NONE, Records, key_bits, key_text};

/// `linked_person(candidate_key) -> text`: the person key of a candidate key through
/// the link map held in memory (a sorted vector, 32 bytes an entry), so re-keying a
/// table streams instead of building a hash join over millions of keys. Keys not in
/// the map are returned unchanged. Reads string views as Parquet gives them (no copy),
/// and a run of rows with one key (a person's events are written together) is looked
/// up once.
fn linked_person(map: std::sync::Arc<Vec<(u128, u128)>>) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{Array, StringBuilder};
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    let index = KeyIndex::new(&map);
    create_udf(
        "linked_person",
        vec![DataType::Utf8View],
        DataType::Utf8,
        Volatility::Immutable,
        std::sync::Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let a = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8View)?;
            let a = a.as_string_view_opt().ok_or_else(|| {
                datafusion::error::DataFusionError::Execution("linked_person: not text".into())
            })?;
            let mut b = StringBuilder::with_capacity(a.len(), a.len() * 32);
            let (mut last_in, mut last_out) = (None::<&str>, String::new());
            for i in 0..a.len() {
                if a.is_null(i) {
                    b.append_null();
                    continue;
                }
                let v = a.value(i);
                if last_in != Some(v) {
                    last_out.clear();
                    match key_bits(v).and_then(|k| index.find(&map, k)) {
                        Some(p) => last_out.push_str(&key_text(p)),
                        None => last_out.push_str(v),
                    }
                    last_in = Some(v);
                }
                b.append_value(&last_out);
            }
            Ok(ColumnarValue::Array(std::sync::Arc::new(b.finish())))
        }),
    )
}

/// Where each run of the top `KEY_INDEX_BITS` bits of the candidate key starts in the
/// sorted link map: keys are keyed hashes (uniform), so a lookup searches a bucket of a
/// few entries instead of the whole map (about 22 cache misses at 3 million keys).
struct KeyIndex {
    starts: Vec<u32>,
}

/// Bits of a candidate key that choose its bucket (4 MiB of starts).
const KEY_INDEX_BITS: u32 = 20;

impl KeyIndex {
    fn new(map: &[(u128, u128)]) -> KeyIndex {
        let buckets = 1usize << KEY_INDEX_BITS;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0usize;
        for b in 0..buckets {
            while at < map.len() && Self::bucket(map[at].0) < b {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(map.len() as u32);
        KeyIndex { starts }
    }
    fn bucket(k: u128) -> usize {
        (k >> (128 - KEY_INDEX_BITS)) as usize
    }
    /// The person key of candidate key `k` in the sorted `map`.
    fn find(&self, map: &[(u128, u128)], k: u128) -> Option<u128> {
        let b = Self::bucket(k);
        let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        let run = map.get(lo..hi)?;
        run.binary_search_by(|e| e.0.cmp(&k))
            .ok()
            .map(|at| run[at].1)
    }
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
    map: std::sync::Arc<Vec<(u128, u128)>>,
    persons: &Persons,
    addresses: Option<&AddressPeriods>,
    ctx: &SessionContext,
    s: &Survivorship,
) -> Result<Vec<(String, usize)>, String> {
    let err = |e: datafusion::error::DataFusionError| e.to_string();
    ctx.register_udf(linked_person(map));
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
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut written = Vec::new();
    // A run of identity sources only (a master patient index, two registers) has no
    // silver tables: the spine is then `person` (and `address_period`) alone.
    let silver = out.join("silver");
    let mut entities: Vec<std::path::PathBuf> = if silver.is_dir() {
        std::fs::read_dir(&silver)
            .map_err(|e| format!("{}: {e}", silver.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    } else {
        vec![]
    };
    entities.sort();
    for (i, dir) in entities.iter().enumerate() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let t = format!("silver_{i}");
        ctx.register_parquet(&t, dir.to_string_lossy().as_ref(), part())
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let rekeyed = format!(
            "SELECT s.* EXCLUDE (person_key, source), linked_person(s.person_key) AS person_key FROM {t} s"
        );
        let sql = if name == "registration" {
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
    let n = write_persons(persons, &tmp.join("person"))?;
    written.push(("person".into(), n));
    if let Some(a) = addresses {
        let n = write_address_periods(a, &tmp.join("address_period"))?;
        written.push(("address_period".into(), n));
    }
    let spine = out.join("linkage").join("spine");
    let old = out
        .join("linkage")
        .join(format!(".spine-old-{}", std::process::id()));
    if spine.exists() {
        std::fs::rename(&spine, &old).map_err(|e| format!("{}: {e}", spine.display()))?;
    }
    std::fs::rename(&tmp, &spine).map_err(|e| format!("{}: {e}", spine.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(written)
}

/// Rows of one row group of a spine table.
const SPINE_ROW_GROUP_ROWS: usize = 262_144;

/// Write a DataFrame as Parquet files into `dir`; returns the rows written.
async fn write_table(df: datafusion::dataframe::DataFrame, dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // zstd at level 1: most of zstd's size at a fraction of level 3's time (the spine
    // rewrites every silver row); row groups of 256Ki rows, as a writer holds a whole
    // row group encoded in memory before it flushes (the default, 1Mi rows, held a few
    // hundred megabytes over the wide tables).
    let mut opts = datafusion::config::TableParquetOptions::default();
    opts.global.compression = Some("zstd(1)".into());
    opts.global.max_row_group_size = SPINE_ROW_GROUP_ROWS;
    // A person key column holds about a million distinct 32-character keys: its
    // dictionary would fill its page limit and fall back to plain encoding every time.
    opts.column_specific_options.insert(
        "person_key".into(),
        datafusion::config::ParquetColumnOptions {
            dictionary_enabled: Some(false),
            ..Default::default()
        },
    );
    let res = df
        .write_parquet(
            &dir.to_string_lossy(),
            datafusion::dataframe::DataFrameWriteOptions::new(),
            Some(opts),
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

/// The surviving attributes of each person (`spine/person`).
#[derive(Default)]
pub struct Persons {
    pub person_key: Vec<u128>,
    /// yyyymmdd, 0 when unknown (only year and month are written).
    pub dob: Vec<u32>,
    pub sex: Vec<u8>,
    pub ethnic_category: Vec<u8>,
    pub ethnic_source_provider: Vec<Option<String>>,
    pub postcode_district: Vec<Option<String>>,
}

/// Pick the surviving row among `rows` (one person's) for a value (`0` or `NONE`
/// missing) under a rule.
fn pick(
    rows: &[u32],
    value: &dyn Fn(usize) -> u32,
    rule: &Rule,
    r: &Records,
    rank: &[u32],
    latest: &dyn Fn(usize) -> i32,
) -> Option<usize> {
    let present = rows
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| value(i) != 0 && value(i) != NONE);
    let provider = |i: usize| r.providers.text(r.provider[i] as u32);
    // Ties go to the earliest row: rows are in canonical (content) order, value ids
    // (postcodes are interned) are not.
    match rule {
        Rule::MostFrequent => {
            // Ties go to the value of the earliest row in the records' canonical (content)
            // order, not to the value's id, which depends on the order files arrived in.
            let mut count: HashMap<u32, usize> = HashMap::new();
            for i in present.clone() {
                *count.entry(value(i)).or_default() += 1;
            }
            let most = count.values().copied().max()?;
            present.clone().find(|&i| count[&value(i)] == most)
        }
        Rule::SourceRank { .. } => present.min_by(|&a, &b| {
            (
                !r.registered[a],
                rank[r.provider[a] as usize],
                provider(a),
                a,
            )
                .cmp(&(
                    !r.registered[b],
                    rank[r.provider[b] as usize],
                    provider(b),
                    b,
                ))
        }),
        Rule::MostRecent => present.min_by(|&a, &b| {
            (
                std::cmp::Reverse(latest(a)),
                !r.registered[a],
                provider(a),
                a,
            )
                .cmp(&(
                    std::cmp::Reverse(latest(b)),
                    !r.registered[b],
                    provider(b),
                    b,
                ))
        }),
        Rule::FirstNonNull => present.min_by(|&a, &b| (provider(a), a).cmp(&(provider(b), b))),
    }
}

/// Survivorship: for each person (rows grouped by `person_of_row`), the surviving
/// ethnic category, sex, date of birth and postcode district.
pub fn survive(
    r: &Records,
    person_of_row: &[u32],
    person_key: &[u128],
    s: &Survivorship,
    latest: &HashMap<u32, i32>,
    lookup: Option<&HashMap<String, String>>,
) -> (Persons, AddressPeriods) {
    let rank_of = |rule: &Rule| -> Vec<u32> {
        let list: &[String] = match rule {
            Rule::SourceRank { providers } => providers,
            _ => &[],
        };
        (0..r.providers.len() as u32)
            .map(|p| {
                list.iter()
                    .position(|x| x == r.providers.text(p))
                    .unwrap_or(list.len()) as u32
            })
            .collect()
    };
    let ranks: Vec<Vec<u32>> = [&s.ethnic_category, &s.sex, &s.date_of_birth, &s.postcode]
        .iter()
        .map(|x| rank_of(x))
        .collect();
    let latest_of = |i: usize| latest.get(&r.key[i]).copied().unwrap_or(i32::MIN);
    let mut order: Vec<u32> = (0..r.len() as u32).collect();
    order.sort_unstable_by_key(|&i| (person_of_row[i as usize], i));
    let mut out = Persons::default();
    let mut periods = AddressPeriods::default();
    // LSOA of each postcode id.
    let lsoa: Vec<Option<&str>> = match lookup {
        Some(l) => r
            .postcodes
            .values()
            .map(|p| crate::refdata::lsoa_of(l, p))
            .collect(),
        None => vec![],
    };
    let mut seen = vec![false; person_key.len()];
    for rows in order.chunk_by(|a, b| person_of_row[*a as usize] == person_of_row[*b as usize]) {
        let pid = person_of_row[rows[0] as usize] as usize;
        seen[pid] = true;
        out.person_key.push(person_key[pid]);
        let eth = pick(
            rows,
            &|i| r.ethnicity[i] as u32,
            &s.ethnic_category,
            r,
            &ranks[0],
            &latest_of,
        );
        out.ethnic_category
            .push(eth.map(|i| r.ethnicity[i]).unwrap_or(0));
        out.ethnic_source_provider
            .push(eth.map(|i| r.providers.text(r.provider[i] as u32).to_string()));
        let sex = pick(rows, &|i| r.sex[i] as u32, &s.sex, r, &ranks[1], &latest_of);
        out.sex.push(sex.map(|i| r.sex[i]).unwrap_or(0));
        let dob = pick(
            rows,
            &|i| r.dob[i],
            &s.date_of_birth,
            r,
            &ranks[2],
            &latest_of,
        );
        out.dob.push(dob.map(|i| r.dob[i]).unwrap_or(0));
        // Postcode ids start at 0, which `pick` reads as missing: shift them by one
        // (NONE wraps to 0, missing).
        let pc = pick(
            rows,
            &|i| r.postcode[i].wrapping_add(1),
            &s.postcode,
            r,
            &ranks[3],
            &latest_of,
        );
        out.postcode_district.push(pc.and_then(|i| {
            let d = r.district[r.postcode[i] as usize];
            (d != NONE).then(|| r.areas.text(d).trim().to_string())
        }));
        if lookup.is_some() {
            let lsoa_of = |i: usize| {
                (r.postcode[i] != NONE)
                    .then(|| lsoa[r.postcode[i] as usize])
                    .flatten()
            };
            let mut dated: Vec<(i32, &str, &str)> = rows
                .iter()
                .map(|&i| i as usize)
                .filter(|&i| r.registered[i] && latest_of(i) != i32::MIN)
                .filter_map(|i| {
                    Some((
                        latest_of(i),
                        lsoa_of(i)?,
                        r.providers.text(r.provider[i] as u32),
                    ))
                })
                .collect();
            dated.sort_unstable();
            // One address per registration date; a repeat of the previous LSOA
            // continues its period.
            dated.dedup_by(|b, a| a.0 == b.0 || a.1 == b.1);
            if dated.is_empty() {
                if let Some((i, l)) = pc.and_then(|i| Some((i, lsoa_of(i)?))) {
                    periods.person_key.push(person_key[pid]);
                    periods.lsoa11.push(l.to_string());
                    periods.valid_from.push(None);
                    periods.valid_to.push(None);
                    periods
                        .source
                        .push(r.providers.text(r.provider[i] as u32).to_string());
                    periods.current.push(true);
                }
            }
            for (k, (from, l, src)) in dated.iter().enumerate() {
                periods.person_key.push(person_key[pid]);
                periods.lsoa11.push(l.to_string());
                periods.valid_from.push(Some(*from));
                periods.valid_to.push(dated.get(k + 1).map(|n| n.0));
                periods.source.push(src.to_string());
                periods.current.push(k + 1 == dated.len());
            }
        }
    }
    // Persons with no identity row of their own (implied keys only) still get a row.
    for (pid, k) in person_key.iter().enumerate() {
        if !seen[pid] {
            out.person_key.push(*k);
            out.dob.push(0);
            out.sex.push(0);
            out.ethnic_category.push(0);
            out.ethnic_source_provider.push(None);
            out.postcode_district.push(None);
        }
    }
    (out, periods)
}

/// Write `address_period` as one Parquet file in `dir`; returns the rows written.
fn write_address_periods(p: &AddressPeriods, dir: &Path) -> Result<usize, String> {
    use datafusion::arrow::array::{ArrayRef, BooleanArray, Date32Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_key", DataType::Utf8, false),
        Field::new("lsoa11", DataType::Utf8, false),
        Field::new("valid_from", DataType::Date32, true),
        Field::new("valid_to", DataType::Date32, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("current", DataType::Boolean, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            p.person_key.iter().map(|k| key_text(*k)),
        )),
        Arc::new(StringArray::from_iter_values(p.lsoa11.iter())),
        Arc::new(Date32Array::from(p.valid_from.clone())),
        Arc::new(Date32Array::from(p.valid_to.clone())),
        Arc::new(StringArray::from_iter_values(p.source.iter())),
        Arc::new(BooleanArray::from(p.current.clone())),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols);
    super::write_parquet(&dir.join("part-0.parquet"), schema, std::iter::once(batch))?;
    Ok(p.person_key.len())
}

/// Address periods of each person (`spine/address_period`): the LSOAs of the person's
/// GP-list postcodes ordered by the registration start of their record, consecutive
/// repeats merged, each period ending where the next begins (the last is current). A person without a dated
/// address gets one undated period at the surviving postcode.
#[derive(Default)]
pub struct AddressPeriods {
    pub person_key: Vec<u128>,
    pub lsoa11: Vec<String>,
    pub valid_from: Vec<Option<i32>>,
    pub valid_to: Vec<Option<i32>>,
    pub source: Vec<String>,
    pub current: Vec<bool>,
}

/// Write `person` as one Parquet file in `dir`; returns the rows written.
fn write_persons(p: &Persons, dir: &Path) -> Result<usize, String> {
    use datafusion::arrow::array::{ArrayRef, Date32Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_key", DataType::Utf8, false),
        Field::new("birth_year_month", DataType::Date32, true),
        Field::new("sex", DataType::Utf8, true),
        Field::new("ethnic_category", DataType::Utf8, true),
        Field::new("ethnic_source_provider", DataType::Utf8, true),
        Field::new("postcode_district", DataType::Utf8, true),
    ]));
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("epoch")?;
    let month = |ymd: u32| -> Option<i32> {
        let d = chrono::NaiveDate::from_ymd_opt((ymd / 10_000) as i32, ymd / 100 % 100, 1)?;
        Some((d - epoch).num_days() as i32)
    };
    let code = |c: u8| (c != 0).then(|| (c as char).to_string());
    let n = p.person_key.len();
    let batches = (0..n).step_by(super::BATCH_ROWS).map(|at| {
        let r = at..(at + super::BATCH_ROWS).min(n);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                p.person_key[r.clone()].iter().map(|k| key_text(*k)),
            )),
            Arc::new(Date32Array::from_iter(
                p.dob[r.clone()].iter().map(|d| month(*d)),
            )),
            Arc::new(StringArray::from_iter(
                p.sex[r.clone()].iter().map(|c| code(*c)),
            )),
            Arc::new(StringArray::from_iter(
                p.ethnic_category[r.clone()].iter().map(|c| code(*c)),
            )),
            Arc::new(StringArray::from_iter(
                p.ethnic_source_provider[r.clone()].iter().cloned(),
            )),
            Arc::new(StringArray::from_iter(
                p.postcode_district[r].iter().cloned(),
            )),
        ];
        RecordBatch::try_new(schema.clone(), cols)
    });
    super::write_parquet(&dir.join("part-0.parquet"), schema.clone(), batches)?;
    Ok(n)
}

/// Latest registration start of each candidate key (the date `most_recent` uses).
pub async fn latest_registration(out: &Path, r: &Records) -> Result<HashMap<u32, i32>, String> {
    use futures::StreamExt;
    let dir = out.join("silver").join("registration");
    let mut latest = HashMap::new();
    if !dir.is_dir() {
        return Ok(latest);
    }
    let ctx = crate::engine::planning_context();
    let err = |e: datafusion::error::DataFusionError| e.to_string();
    ctx.register_parquet(
        "reg",
        dir.to_string_lossy().as_ref(),
        ParquetReadOptions::default().table_partition_cols(vec![
            ("provider".into(), DataType::Utf8),
            ("source".into(), DataType::Utf8),
        ]),
    )
    .await
    .map_err(err)?;
    let mut stream = ctx
        .sql("SELECT person_key, max(registration_start) FROM reg WHERE person_key IS NOT NULL GROUP BY person_key")
        .await
        .map_err(err)?
        .execute_stream()
        .await
        .map_err(err)?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(err)?;
        let k = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
            .map_err(|e| e.to_string())?;
        let Some(k) = k.as_string_opt::<i32>() else {
            continue;
        };
        let Some(d) = b
            .column(1)
            .as_primitive_opt::<datafusion::arrow::datatypes::Date32Type>()
        else {
            continue;
        };
        for i in 0..b.num_rows() {
            if d.is_null(i) {
                continue;
            }
            if let Some(id) = key_bits(k.value(i)).and_then(|x| r.key_index.get(&x)) {
                latest.insert(*id, d.value(i));
            }
        }
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket index finds every key of a map (keys spread over the whole range,
    /// several in one bucket, the first and last bucket) and no key that is absent.
    #[test]
    fn key_index_finds_every_key() {
        let mut map: Vec<(u128, u128)> = (0..5000u128)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835), i))
            .collect();
        map.extend([(0, 7), (1, 8), (u128::MAX, 9), (u128::MAX - 1, 10)]);
        map.sort_unstable();
        map.dedup_by_key(|e| e.0);
        let index = KeyIndex::new(&map);
        for &(k, p) in &map {
            assert_eq!(index.find(&map, k), Some(p), "key {k:x}");
        }
        assert_eq!(index.find(&map, 2), None);
        assert_eq!(KeyIndex::new(&[]).find(&[], 5), None);
    }
}
