//! The identity zone of a published run, loaded for linkage as compact columns: one
//! entry per identity row, with candidate keys as 128-bit integers and names and
//! postcodes interned and standardised once (so comparing two rows is integer work,
//! and 4 million rows fit in a few hundred megabytes).

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type};
use datafusion::prelude::ParquetReadOptions;
use futures::StreamExt;

use super::config::{AttributeType, Field, LinkageSettings};
use crate::pseudonymise::Key;
use crate::udf::text;

/// No value.
pub const NONE: u32 = u32::MAX;

/// Strings stored once, addressed by a dense id: the texts back to back in one buffer,
/// found by a 64-bit hash of the text (the rare text whose hash another text holds
/// already goes to a small overflow map). Two allocations however many values, so a
/// million NHS numbers or local ids cost about 20 bytes each beyond their text, and
/// freeing them leaves no scattered heap behind.
#[derive(Default)]
pub struct Interner {
    /// Hash of a text → the id of the first text with that hash.
    index: HashMap<u64, u32, std::hash::BuildHasherDefault<KeyHasher>>,
    /// Texts whose hash an earlier, different text holds.
    overflow: HashMap<Box<str>, u32>,
    /// Value `i` is `bytes[ends[i - 1]..ends[i]]` (from 0 for the first).
    bytes: String,
    ends: Vec<u32>,
}

/// FNV-1a of a text, finished by a multiply-xorshift (the interner's index hashes it no
/// further).
fn text_hash(s: &str) -> u64 {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let h = (h ^ (h >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 32)
}

impl Interner {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.get(s) {
            return i;
        }
        let i = self.ends.len() as u32;
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len() as u32);
        match self.index.entry(text_hash(s)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.overflow.insert(s.into(), i);
            }
        }
        i
    }
    pub fn get(&self, s: &str) -> Option<u32> {
        let i = *self.index.get(&text_hash(s))?;
        if self.text(i) == s {
            return Some(i);
        }
        self.overflow.get(s).copied()
    }
    pub fn text(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }
    /// Every value, in id order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len() as u32).map(|i| self.text(i))
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A candidate key (32 lowercase hex characters) as an integer.
pub fn key_bits(s: &str) -> Option<u128> {
    (s.len() == 32)
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

/// An integer key back as its 32 hex characters.
pub fn key_text(k: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b: Vec<u8> = (0..32)
        .map(|i| HEX[((k >> (124 - 4 * i)) & 15) as usize])
        .collect();
    String::from_utf8(b).unwrap_or_default()
}

/// Keys are keyed hashes already: their low 64 bits index a map directly.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64 ^ (v >> 64) as u64;
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map keyed by candidate keys.
pub type KeyMap<V> = HashMap<u128, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// Identity rows as columns. Row `i` is described by the i-th entry of each vector.
#[derive(Default)]
pub struct Records {
    /// Candidate keys (the rows' own keys and the local-id keys they imply).
    pub keys: Vec<u128>,
    pub key_index: KeyMap<u32>,
    /// Row → its candidate key.
    pub key: Vec<u32>,
    /// Row → valid NHS number (interned) or NONE.
    pub nhs: Vec<u32>,
    pub nhs_numbers: Interner,
    /// Row → the local-id key a row with both an NHS number and a local id implies.
    pub local_key: Vec<u32>,
    /// Row → standardised given and family name (interned in `names`).
    pub given: Vec<u32>,
    pub family: Vec<u32>,
    pub names: Interner,
    /// Name id → Soundex code id (interned in `soundexes`) or NONE.
    pub name_soundex: Vec<u32>,
    /// Name id → the nickname groups it belongs to (a formal name and its short
    /// forms share a group; `SAM` is in SAMUEL's and SAMANTHA's).
    pub name_groups: Vec<Box<[u32]>>,
    /// Standardised name → nickname groups (from the nickname table).
    pub nicknames: HashMap<String, Vec<u32>>,
    /// Name as recorded → standardised name id (standardise each spelling once).
    raw_names: Interner,
    /// Raw name id → standardised name id.
    raw_name_ids: Vec<u32>,
    pub soundexes: Interner,
    /// Row → date of birth as yyyymmdd, 0 when missing.
    pub dob: Vec<u32>,
    /// Row → b'1' (male), b'2' (female), 0 when missing or not known.
    pub sex: Vec<u8>,
    /// Row → postcode (interned in `postcodes`).
    pub postcode: Vec<u32>,
    pub postcodes: Interner,
    /// Postcode id → sector and district ids (interned in `areas`).
    pub sector: Vec<u32>,
    pub district: Vec<u32>,
    pub areas: Interner,
    /// Row → provider (index into `providers`).
    pub provider: Vec<u16>,
    pub providers: Interner,
    /// Row → recorded ethnic category (the code letter A–S), 0 when not recorded.
    pub ethnicity: Vec<u8>,
    /// Row → from a registered list (an identity source).
    pub registered: Vec<bool>,
    /// Rows without any candidate key (not linkable).
    pub keyless_rows: usize,
    /// Row → its source (`provider/source`, interned in `sources`): link-only and
    /// dedupe-only runs compare rows across or within sources.
    pub source: Vec<u32>,
    pub sources: Interner,
    /// Further identity fields the model compares or blocks on (canonical ones beyond
    /// the six above, and declared attributes), one column each.
    pub extras: Vec<Extra>,
}

/// One further identity field as a column: row → value id (NONE when missing). Names
/// are interned in `Records::names` and postcodes in `Records::postcodes` (so Soundex,
/// nicknames, sectors and districts apply); dates are yyyymmdd; free text and
/// identifiers are interned in `dict`.
pub struct Extra {
    pub field: Field,
    pub kind: AttributeType,
    /// The identity-zone column it is read from.
    pub column: String,
    pub values: Vec<u32>,
    pub dict: Interner,
}

/// A column of `Records` that a comparison or blocking rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Nhs,
    Given,
    Family,
    Dob,
    Sex,
    Postcode,
    Extra(usize),
}

/// Free text standardised: upper case, letters and digits, single spaces.
pub fn free_text_standardise(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for w in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(w.chars().flat_map(char::to_uppercase));
    }
    (!out.is_empty()).then_some(out)
}

/// An identifier standardised: letters and digits only, upper case.
pub fn identifier_standardise(s: &str) -> Option<String> {
    let out: String = s
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    (!out.is_empty()).then_some(out)
}

/// A date given as text (`YYYY-MM-DD`, `YYYYMMDD`, …) as yyyymmdd; None unless it is
/// eight digits with a plausible month and day.
pub fn date_standardise(s: &str) -> Option<u32> {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    let v: u32 = (d.len() == 8).then(|| d.parse().ok()).flatten()?;
    let (m, day) = (v / 100 % 100, v % 100);
    ((1..=12).contains(&m) && (1..=31).contains(&day) && v / 10_000 > 0).then_some(v)
}

impl Records {
    /// The column a field is held in (None: not loaded).
    pub fn col_of(&self, f: &Field) -> Option<Col> {
        Some(match f {
            Field::NhsNumber => Col::Nhs,
            Field::GivenName => Col::Given,
            Field::FamilyName => Col::Family,
            Field::DateOfBirth => Col::Dob,
            Field::Sex => Col::Sex,
            Field::Postcode => Col::Postcode,
            f => Col::Extra(self.extras.iter().position(|e| &e.field == f)?),
        })
    }
    /// The type of a column (None: sex).
    pub fn kind_of(&self, c: Col) -> Option<AttributeType> {
        Some(match c {
            Col::Nhs => AttributeType::Identifier,
            Col::Given | Col::Family => AttributeType::Name,
            Col::Dob => AttributeType::Date,
            Col::Sex => return None,
            Col::Postcode => AttributeType::Postcode,
            Col::Extra(e) => self.extras[e].kind,
        })
    }
    /// Row `i`'s value of a column: an interned id, yyyymmdd for dates, the sex code;
    /// NONE when missing.
    pub fn value(&self, c: Col, i: usize) -> u32 {
        match c {
            Col::Nhs => self.nhs[i],
            Col::Given => self.given[i],
            Col::Family => self.family[i],
            Col::Dob => match self.dob[i] {
                0 => NONE,
                d => d,
            },
            Col::Sex => match self.sex[i] {
                0 => NONE,
                x => x as u32,
            },
            Col::Postcode => self.postcode[i],
            Col::Extra(e) => self.extras[e].values[i],
        }
    }
    /// The text of a value of a column (dates as their eight digits).
    pub fn value_text(&self, c: Col, v: u32) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match (c, self.kind_of(c)) {
            (Col::Nhs, _) => Cow::Borrowed(self.nhs_numbers.text(v)),
            (_, Some(AttributeType::Name)) => Cow::Borrowed(self.names.text(v)),
            (_, Some(AttributeType::Postcode)) => Cow::Borrowed(self.postcodes.text(v)),
            (_, Some(AttributeType::Date) | None) => Cow::Owned(v.to_string()),
            (Col::Extra(e), _) => Cow::Borrowed(self.extras[e].dict.text(v)),
            _ => Cow::Owned(v.to_string()),
        }
    }
    /// How many distinct values a column's ids range over (for term frequencies).
    pub fn value_count(&self, c: Col) -> usize {
        match (c, self.kind_of(c)) {
            (Col::Nhs, _) => self.nhs_numbers.len(),
            (_, Some(AttributeType::Name)) => self.names.len(),
            (_, Some(AttributeType::Postcode)) => self.postcodes.len(),
            (Col::Extra(e), Some(AttributeType::FreeText | AttributeType::Identifier)) => {
                self.extras[e].dict.len()
            }
            _ => 0,
        }
    }
    fn extra_value(&mut self, e: usize, raw: Option<&str>) -> u32 {
        let Some(raw) = raw else {
            return NONE;
        };
        match self.extras[e].kind {
            AttributeType::Name => self.name_id(Some(raw)),
            AttributeType::Postcode => self.postcode_id(Some(&raw.to_uppercase())),
            AttributeType::Date => date_standardise(raw).unwrap_or(NONE),
            AttributeType::FreeText => free_text_standardise(raw)
                .map(|t| self.extras[e].dict.id(&t))
                .unwrap_or(NONE),
            AttributeType::Identifier => identifier_standardise(raw)
                .map(|t| self.extras[e].dict.id(&t))
                .unwrap_or(NONE),
        }
    }
    pub fn len(&self) -> usize {
        self.key.len()
    }
    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }
    pub fn key_id(&mut self, k: u128) -> u32 {
        if let Some(i) = self.key_index.get(&k) {
            return *i;
        }
        let i = self.keys.len() as u32;
        self.keys.push(k);
        self.key_index.insert(k, i);
        i
    }
    fn name_id(&mut self, raw: Option<&str>) -> u32 {
        let Some(raw) = raw else {
            return NONE;
        };
        let before = self.raw_names.len();
        let raw_id = self.raw_names.id(raw) as usize;
        if raw_id < before {
            return self.raw_name_ids[raw_id];
        }
        let id = self.standard_name_id(raw);
        self.raw_name_ids.push(id);
        id
    }
    fn standard_name_id(&mut self, raw: &str) -> u32 {
        let Some(s) = text::name_standardise(raw) else {
            return NONE;
        };
        let before = self.names.len();
        let id = self.names.id(&s);
        if self.names.len() > before {
            let sx = text::soundex(&s)
                .map(|x| self.soundexes.id(&x))
                .unwrap_or(NONE);
            self.name_soundex.push(sx);
            let groups = self.nicknames.get(&s).cloned().unwrap_or_default();
            self.name_groups.push(groups.into_boxed_slice());
        }
        id
    }
    fn postcode_id(&mut self, raw: Option<&str>) -> u32 {
        let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return NONE;
        };
        let before = self.postcodes.len();
        let id = self.postcodes.id(s);
        if self.postcodes.len() > before {
            let sec = text::postcode_sector(s)
                .map(|x| self.areas.id(&x))
                .unwrap_or(NONE);
            let dis = text::postcode_district(s)
                .map(|x| self.areas.id(&format!("{x} ")))
                .unwrap_or(NONE);
            self.sector.push(sec);
            self.district.push(dis);
        }
        id
    }
    /// Put the rows in an order that depends only on their content (files are read in
    /// parallel, so arrival order varies): sampling and tie-breaks then give the same
    /// model and links on every run.
    fn canonical_order(&mut self) {
        // FNV-1a over the row's texts: a content hash, the same on every run.
        let fnv = |h: u64, t: &str| -> u64 {
            t.bytes()
                .chain(std::iter::once(0xff))
                .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
        };
        fn text(i: &Interner, id: u32) -> &str {
            if id == NONE { "" } else { i.text(id) }
        }
        let sort_key = |i: usize| {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            h = fnv(h, text(&self.names, self.given[i]));
            h = fnv(h, text(&self.names, self.family[i]));
            h = fnv(h, text(&self.postcodes, self.postcode[i]));
            h = fnv(h, text(&self.providers, self.provider[i] as u32));
            h = fnv(h, text(&self.sources, self.source[i]));
            for k in 0..self.extras.len() {
                let v = self.extras[k].values[i];
                if v != NONE {
                    h = fnv(h, &self.value_text(Col::Extra(k), v));
                }
            }
            let lk = (self.local_key[i] != NONE).then(|| self.keys[self.local_key[i] as usize]);
            (
                self.keys[self.key[i] as usize],
                self.dob[i],
                self.sex[i],
                h,
                lk,
                self.ethnicity[i],
                self.registered[i],
            )
        };
        // By candidate key first (32 bytes a row), then each run of one key by the whole
        // sort key: the same order as sorting by the whole key at once (whose cached
        // keys took about 100 bytes a row, 600 MB at 6 million rows), ties in arrival
        // order either way.
        let mut by_key: Vec<(u128, u32)> = (0..self.len())
            .map(|i| (self.keys[self.key[i] as usize], i as u32))
            .collect();
        by_key.sort_unstable();
        for run in by_key.chunk_by_mut(|a, b| a.0 == b.0) {
            if run.len() > 1 {
                run.sort_by_cached_key(|e| sort_key(e.1 as usize));
            }
        }
        let perm: Vec<u32> = by_key.iter().map(|e| e.1).collect();
        drop(by_key);
        fn apply<T: Copy>(v: &mut Vec<T>, perm: &[u32]) {
            *v = perm.iter().map(|&i| v[i as usize]).collect();
        }
        apply(&mut self.key, &perm);
        apply(&mut self.nhs, &perm);
        apply(&mut self.local_key, &perm);
        apply(&mut self.given, &perm);
        apply(&mut self.family, &perm);
        apply(&mut self.dob, &perm);
        apply(&mut self.sex, &perm);
        apply(&mut self.postcode, &perm);
        apply(&mut self.provider, &perm);
        apply(&mut self.ethnicity, &perm);
        apply(&mut self.registered, &perm);
        apply(&mut self.source, &perm);
        for e in &mut self.extras {
            apply(&mut e.values, &perm);
        }
    }

    /// The rows carrying candidate key `k`, or implying it.
    pub fn rows_of(&self, k: u128) -> Vec<usize> {
        let Some(&id) = self.key_index.get(&k) else {
            return vec![];
        };
        (0..self.len())
            .filter(|&i| self.key[i] == id || self.local_key[i] == id)
            .collect()
    }
}

/// yyyymmdd of a day count since 1970-01-01.
fn ymd(days: i32) -> u32 {
    use chrono::Datelike;
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|e| e.checked_add_signed(chrono::Duration::days(days as i64)))
        .filter(|d| d.year() > 0)
        .map(|d| d.year() as u32 * 10_000 + d.month() * 100 + d.day())
        .unwrap_or(0)
}

/// The nickname table shipped with onboard (`reference/nicknames.csv`).
pub const NICKNAMES: &str = include_str!("../../reference/nicknames.csv");

/// Parse a nickname table (`name,nickname` with a header): standardised name → groups.
pub fn parse_nicknames(text: &str) -> Result<HashMap<String, Vec<u32>>, String> {
    let mut groups: Interner = Interner::default();
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (formal, short) = line
            .split_once(',')
            .ok_or_else(|| format!("nickname table line {}: expected `name,nickname`", n + 1))?;
        let (Some(f), Some(s)) = (
            text::name_standardise(formal.trim()),
            text::name_standardise(short.trim()),
        ) else {
            return Err(format!("nickname table line {}: empty name", n + 1));
        };
        let g = groups.id(&f);
        for name in [f, s] {
            let e = out.entry(name).or_default();
            if !e.contains(&g) {
                e.push(g);
            }
        }
    }
    Ok(out)
}

/// The further fields (beyond the six built in) that the settings compare or block on.
fn needed_extras(s: &LinkageSettings) -> Vec<Field> {
    use super::config::Attribute;
    let builtin = |f: &Field| {
        matches!(
            f,
            Field::NhsNumber
                | Field::GivenName
                | Field::FamilyName
                | Field::DateOfBirth
                | Field::Sex
                | Field::Postcode
        )
    };
    let mut out: Vec<Field> = Vec::new();
    let blocked = s
        .blocking
        .iter()
        .chain(&s.training.em_blocking)
        .flatten()
        .filter_map(|a| match a {
            Attribute::Exact(f) => Some(f.clone()),
            _ => None,
        });
    for f in s.comparisons.iter().map(|c| c.field.clone()).chain(blocked) {
        if !builtin(&f) && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// Read the identity zone of the run under `out`, batch by batch.
pub async fn load(
    out: &Path,
    key: &Key,
    nicknames: HashMap<String, Vec<u32>>,
    settings: &LinkageSettings,
) -> Result<Records, String> {
    let ctx = crate::engine::planning_context();
    // Plain Utf8 columns: the rows are read as text, and views would be copied.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let dir = out.join("identity").join(crate::canonical::IDENTITY_ENTITY);
    if !dir.is_dir() {
        return Err(format!(
            "no identity zone at {}: is {} the output directory of a published `onboard run`?",
            dir.display(),
            out.display()
        ));
    }
    let opts = ParquetReadOptions::default().table_partition_cols(vec![
        ("provider".into(), DataType::Utf8),
        ("source".into(), DataType::Utf8),
    ]);
    let err = |e: datafusion::error::DataFusionError| format!("{}: {e}", dir.display());
    ctx.register_parquet("ident", dir.to_string_lossy().as_ref(), opts)
        .await
        .map_err(err)?;
    let mut r = Records {
        nicknames,
        ..Default::default()
    };
    let schema = ctx.table("ident").await.map_err(err)?.schema().clone();
    let mut extra_sql = String::new();
    for f in needed_extras(settings) {
        let (Some(column), Some(kind)) = (f.column(settings), f.kind(settings)) else {
            return Err(format!(
                "linkage: `{}` is neither a canonical identity field nor declared in linkage.attributes",
                f.name()
            ));
        };
        if schema.field_with_unqualified_name(column).is_err() {
            return Err(format!(
                "linkage: `{}` is compared or blocked on, but the identity zone at {} has no column `{column}` \
                 (run again with this version of onboard)",
                f.name(),
                dir.display()
            ));
        }
        extra_sql += &if f == Field::OtherLocalId {
            ", CASE WHEN other_local_id IS NOT NULL THEN concat(coalesce(other_local_id_issuer, ''), ':', other_local_id) END"
                .to_string()
        } else {
            format!(", \"{column}\"")
        };
        r.extras.push(Extra {
            field: f.clone(),
            kind,
            column: column.to_string(),
            values: Vec::new(),
            dict: Interner::default(),
        });
    }
    let mut stream = ctx
        .sql(&format!(
            "SELECT person_key, nhs_number, given_name, family_name, date_of_birth, sex, postcode, \
             local_patient_id, local_id_issuer, ethnic_category, source_row IS NOT NULL AS registered, provider_id, \
             concat(provider, '/', source){extra_sql} \
             FROM ident"
        ))
        .await
        .map_err(err)?
        .execute_stream()
        .await
        .map_err(err)?;
    let mut local_keys = LocalKeys::default();
    while let Some(b) = stream.next().await {
        add_batch(&mut r, &b.map_err(err)?, key, &mut local_keys)?;
    }
    r.raw_names = Interner::default();
    r.raw_name_ids = Vec::new();
    r.canonical_order();
    Ok(r)
}

/// The candidate keys of the local ids seen so far (a keyed hash each, computed once):
/// `local:<issuer>:<id>` → candidate key id.
#[derive(Default)]
struct LocalKeys {
    texts: Interner,
    key: Vec<u32>,
    buf: String,
}

impl LocalKeys {
    fn key_id(&mut self, r: &mut Records, key: &Key, issuer: &str, id: &str) -> u32 {
        self.buf.clear();
        self.buf.push_str("local:");
        self.buf.push_str(issuer);
        self.buf.push(':');
        self.buf.push_str(id);
        let before = self.texts.len();
        let t = self.texts.id(&self.buf) as usize;
        if t == before {
            let k = key_bits(&key.person_key(&self.buf)).unwrap_or_default();
            self.key.push(r.key_id(k));
        }
        self.key[t]
    }
}

fn add_batch(
    r: &mut Records,
    b: &RecordBatch,
    key: &Key,
    local_keys: &mut LocalKeys,
) -> Result<(), String> {
    use datafusion::arrow::compute::cast;
    // Column 4 (date of birth) is read as a date; every other column as text.
    let text_cols: Vec<Option<datafusion::arrow::array::ArrayRef>> = (0..b.num_columns())
        .map(|i| {
            (i != 4)
                .then(|| cast(b.column(i), &DataType::Utf8).ok())
                .flatten()
        })
        .collect();
    let s = |i: usize, row: usize| -> Option<&str> {
        let a = text_cols[i].as_ref()?.as_string_opt::<i32>()?;
        (!a.is_null(row)).then(|| a.value(row))
    };
    let dob = b.column(4).as_primitive_opt::<Date32Type>();
    for row in 0..b.num_rows() {
        let Some(k) = s(0, row) else {
            r.keyless_rows += 1;
            continue;
        };
        let k = key_bits(k).ok_or_else(|| format!("identity row with a malformed key `{k}`"))?;
        let kid = r.key_id(k);
        r.key.push(kid);
        let nhs = s(1, row).filter(|n| text::nhs_number_valid(n)).map(|n| {
            if n.bytes().all(|b| b.is_ascii_digit()) {
                std::borrow::Cow::Borrowed(n)
            } else {
                std::borrow::Cow::Owned(n.chars().filter(char::is_ascii_digit).collect())
            }
        });
        let local = s(7, row);
        let mut lk = NONE;
        if let (Some(_), Some(l)) = (&nhs, local) {
            lk = local_keys.key_id(r, key, s(8, row).unwrap_or(""), l);
        }
        r.local_key.push(lk);
        r.nhs
            .push(nhs.as_deref().map(|n| r.nhs_numbers.id(n)).unwrap_or(NONE));
        let g = r.name_id(s(2, row));
        r.given.push(g);
        let f = r.name_id(s(3, row));
        r.family.push(f);
        r.dob.push(
            dob.and_then(|d| (!d.is_null(row)).then(|| ymd(d.value(row))))
                .unwrap_or(0),
        );
        r.sex.push(match s(5, row) {
            Some("1") => b'1',
            Some("2") => b'2',
            _ => 0,
        });
        let pc = r.postcode_id(s(6, row));
        r.postcode.push(pc);
        let p = r.providers.id(s(11, row).unwrap_or(""));
        r.provider.push(p as u16);
        r.ethnicity.push(match s(9, row).map(str::as_bytes) {
            Some([c]) if (b'A'..=b'S').contains(c) => *c,
            _ => 0,
        });
        r.registered.push(s(10, row) == Some("true"));
        let src = r.sources.id(s(12, row).unwrap_or(""));
        r.source.push(src);
        for e in 0..r.extras.len() {
            let v = r.extra_value(e, s(13 + e, row));
            r.extras[e].values.push(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nickname_groups() {
        let t = parse_nicknames(NICKNAMES).unwrap();
        let shared = |a: &str, b: &str| t[a].iter().any(|g| t[b].contains(g));
        assert!(shared("ROBERT", "BOB"));
        assert!(shared("SAM", "SAMANTHA") && shared("SAM", "SAMUEL"));
        assert!(
            !shared("SAMANTHA", "SAMUEL"),
            "a short form does not join two names"
        );
        assert!(parse_nicknames("name,nickname\nROBERT\n").is_err());
    }

    /// Ids are dense and in first-seen order, texts come back, and texts whose hashes
    /// collide (forced by a tiny index) still get their own ids.
    #[test]
    fn interner_ids_and_collisions() {
        let mut i = Interner::default();
        let words = ["", "SMITH", "SMYTH", "9434765919", "LS6 2AB", "SMITH "];
        let ids: Vec<u32> = words.iter().map(|w| i.id(w)).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(i.id("SMYTH"), 2, "a known text keeps its id");
        for (w, id) in words.iter().zip(&ids) {
            assert_eq!(i.text(*id), *w);
            assert_eq!(i.get(w), Some(*id));
        }
        assert_eq!(i.get("JONES"), None);
        assert_eq!(i.values().collect::<Vec<_>>(), words);
        // A collision: a second text under a hash another text holds.
        let mut c = Interner::default();
        c.id("A");
        c.index.insert(text_hash("B"), 0);
        assert_eq!(c.id("B"), 1);
        assert_eq!((c.get("A"), c.get("B")), (Some(0), Some(1)));
        assert_eq!(c.text(1), "B");
    }

    #[test]
    fn keys_round_trip() {
        let k = "0123456789abcdef0123456789abcdef";
        assert_eq!(key_text(key_bits(k).unwrap()), k);
        assert!(key_bits("xyz").is_none());
        assert!(key_bits("0123456789abcdef0123456789abcdeg").is_none());
    }
}
