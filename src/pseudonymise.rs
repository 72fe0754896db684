//! Pseudonymisation: the per-ICS secret key and the keyed `person_key` function.
//!
//! `person_key` candidates are HMAC-SHA-256 under a per-ICS key, never a plain hash:
//! without the key nobody can recompute a key from an NHS number. The key is read from
//! an environment variable or a key file, is never printed (its `Debug` is redacted),
//! and is never written to any output. A public demo key exists for synthetic data only
//! and is refused unless asked for explicitly.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Environment variable holding the key (at least 32 bytes of text or 64 hex digits).
pub const KEY_ENV: &str = "ONBOARD_PSEUDONYMISATION_KEY";
/// Minimum key length in bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// The public demo key: for synthetic data only.
const DEMO_KEY: &[u8] = b"onboard-demo-key-for-synthetic-data-only-never-for-real-patients";

/// The secret key. Cloning shares it; printing never shows it.
#[derive(Clone)]
pub struct Key {
    bytes: Arc<Vec<u8>>,
    /// HMAC state with the key already absorbed (cloned per message: saves two
    /// SHA-256 blocks per call).
    keyed: Hmac<Sha256>,
    /// SipHash-2-4 keys for record keys, derived from the key (HMAC of a label).
    record: (u64, u64),
    pub demo: bool,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes && self.demo == other.demo
    }
}
impl Eq for Key {}
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(<redacted>, demo={})", self.demo)
    }
}

impl Key {
    /// The demo key (synthetic data only).
    pub fn demo() -> Key {
        Key::new(DEMO_KEY.to_vec(), true)
    }

    fn new(bytes: Vec<u8>, demo: bool) -> Key {
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("HMAC takes keys of any length");
        let mut sub = keyed.clone();
        sub.update(b"onboard record key v1");
        let d: [u8; 32] = sub.finalize().into_bytes().into();
        let k0 = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
        let k1 = u64::from_le_bytes(d[8..16].try_into().unwrap_or_default());
        Key {
            bytes: Arc::new(bytes),
            keyed,
            record: (k0, k1),
            demo,
        }
    }

    fn from_text(text: &str, what: &str) -> Result<Key, String> {
        let t = text.trim();
        let bytes = if t.len() >= 64 && t.len() % 2 == 0 && t.bytes().all(|b| b.is_ascii_hexdigit())
        {
            hex::decode(t).map_err(|_| format!("{what}: not valid hex"))?
        } else {
            t.as_bytes().to_vec()
        };
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{what}: the key is shorter than {MIN_KEY_BYTES} bytes"
            ));
        }
        Ok(Key::new(bytes, false))
    }

    /// Load the key: a key file if given, else the environment variable, else the demo
    /// key when `allow_demo`. Errors never contain key material.
    pub fn load(key_file: Option<&Path>, allow_demo: bool) -> Result<Key, String> {
        if let Some(p) = key_file {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read key file {}: {e}", p.display()))?;
            return Key::from_text(&text, &format!("key file {}", p.display()));
        }
        if let Ok(v) = std::env::var(KEY_ENV)
            && !v.trim().is_empty()
        {
            return Key::from_text(&v, KEY_ENV);
        }
        if allow_demo {
            return Ok(Key::demo());
        }
        Err(format!(
            "no pseudonymisation key: set {KEY_ENV} (at least {MIN_KEY_BYTES} bytes, or 64+ hex digits) or give a key file; for synthetic data only, pass --demo-key"
        ))
    }

    /// Short public fingerprint of the key (HMAC of a fixed label), for run records: it
    /// tells whether two runs used the same key without revealing it.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.mac(b"onboard key fingerprint")[..6])
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The person key of an identifier string: lowercase hex, 32 characters (128 bits).
    pub fn person_key(&self, identifier: &str) -> String {
        let mut buf = [0u8; 32];
        self.person_key_into(identifier, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// A record key: keyed SipHash-2-4 (128-bit) of `scope` and `id`, as 32 hex bytes.
    /// Row ids need a keyed PRF (source ids can be local patient ids) but not the cost
    /// of HMAC-SHA-256 on every row.
    pub fn record_key_into(&self, scope: &[u8], id: &[u8], out: &mut [u8; 32]) {
        use siphasher::sip128::{Hasher128, SipHasher24};
        use std::hash::Hasher;
        let mut h = SipHasher24::new_with_keys(self.record.0, self.record.1);
        h.write(scope);
        h.write(&[0]);
        h.write(id);
        hex_into(&h.finish128().as_bytes(), out);
    }

    /// The person key as 32 lowercase hex bytes, without allocating.
    pub fn person_key_into(&self, identifier: &str, out: &mut [u8; 32]) {
        let mac = self.mac(identifier.as_bytes());
        hex_into(&mac[..16], out);
    }
}

fn hex_into(bytes: &[u8], out: &mut [u8; 32]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().take(16).enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

/// `person_key_of(nhs_number, local_id_issuer, local_patient_id, record) -> text`: the
/// person key candidate of a record: HMAC of `nhs:<number>` when the NHS number is
/// valid, else of `local:<issuer>:<id>` when there is a local id, else of
/// `record:<record>` (a record with neither stands for itself until linkage joins it to
/// a person), else null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PersonKeyOf {
    key: Key,
    signature: Signature,
}

impl PersonKeyOf {
    pub fn udf(key: Key) -> ScalarUDF {
        ScalarUDF::from(PersonKeyOf {
            key,
            signature: Signature::exact(
                vec![
                    DataType::Utf8,
                    DataType::Utf8,
                    DataType::Utf8,
                    DataType::Utf8,
                ],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for PersonKeyOf {
    fn name(&self) -> &str {
        "person_key_of"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let err = |e: DataFusionError| DataFusionError::Execution(e.to_string());
        let nhs = as_string_array(&arrays[0]).map_err(err)?;
        let issuer = as_string_array(&arrays[1]).map_err(err)?;
        let local = as_string_array(&arrays[2]).map_err(err)?;
        let record = as_string_array(&arrays[3]).map_err(err)?;
        let n = nhs.len();
        let mut b = StringBuilder::with_capacity(n, n * 32);
        let mut msg: Vec<u8> = Vec::with_capacity(64);
        let mut h = [0u8; 32];
        for i in 0..n {
            msg.clear();
            if !nhs.is_null(i) && crate::udf::text::nhs_number_valid(nhs.value(i)) {
                msg.extend_from_slice(b"nhs:");
                msg.extend(nhs.value(i).bytes().filter(|c| c.is_ascii_digit()));
            } else if !local.is_null(i) {
                msg.extend_from_slice(b"local:");
                msg.extend_from_slice(if issuer.is_null(i) {
                    b""
                } else {
                    issuer.value(i).as_bytes()
                });
                msg.push(b':');
                msg.extend_from_slice(local.value(i).as_bytes());
            } else if !record.is_null(i) {
                msg.extend_from_slice(b"record:");
                msg.extend_from_slice(record.value(i).as_bytes());
            } else {
                b.append_null();
                continue;
            }
            let mac = self.key.mac(&msg);
            hex_into(&mac[..16], &mut h);
            b.append_value(std::str::from_utf8(&h).unwrap_or_default());
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish()) as Arc<dyn Array>))
    }
}

/// `record_key(scope, id) -> text`: keyed 128-bit SipHash of a record's scope
/// (provider and source) and id.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RecordKey {
    key: Key,
    signature: Signature,
}

impl RecordKey {
    pub fn udf(key: Key) -> ScalarUDF {
        ScalarUDF::from(RecordKey {
            key,
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for RecordKey {
    fn name(&self) -> &str {
        "record_key"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let err = |e: DataFusionError| DataFusionError::Execution(e.to_string());
        let scope = as_string_array(&arrays[0]).map_err(err)?;
        let id = as_string_array(&arrays[1]).map_err(err)?;
        let mut b = StringBuilder::with_capacity(id.len(), id.len() * 32);
        let mut buf = [0u8; 32];
        for i in 0..id.len() {
            if id.is_null(i) || scope.is_null(i) {
                b.append_null();
            } else {
                self.key.record_key_into(
                    scope.value(i).as_bytes(),
                    id.value(i).as_bytes(),
                    &mut buf,
                );
                b.append_value(std::str::from_utf8(&buf).unwrap_or_default());
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish()) as Arc<dyn Array>))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_keyed_and_redacted() {
        let a = Key::from_text(&"a".repeat(40), "t").unwrap();
        let b = Key::from_text(&"b".repeat(40), "t").unwrap();
        assert_ne!(
            a.person_key("nhs:9434765919"),
            b.person_key("nhs:9434765919")
        );
        assert_eq!(a.person_key("x"), a.person_key("x"));
        assert_eq!(a.person_key("x").len(), 32);
        assert!(!format!("{a:?}").contains("aaaa"));
        assert!(Key::from_text("short", "t").is_err());
        let mut r1 = [0u8; 32];
        let mut r2 = [0u8; 32];
        a.record_key_into(b"p:s", b"1", &mut r1);
        b.record_key_into(b"p:s", b"1", &mut r2);
        assert_ne!(r1, r2, "record keys are keyed");
        a.record_key_into(b"p:s", b"2", &mut r2);
        assert_ne!(r1, r2);
        assert!(Key::load(None, false).is_err() || std::env::var(KEY_ENV).is_ok());
    }
}
