//! Pseudonymisation: the per-ICS secret key and the keyed `person_key` function.
//!
//! `person_key` candidates are HMAC-SHA-256 under a per-ICS key, never a plain hash:
//! without the key nobody can recompute a key from an NHS number. The key is read from
//! an environment variable or a key file, is never printed (its `Debug` is redacted),
//! and is never written to any output. A public demo key exists for synthetic data only
//! and is refused unless asked for explicitly.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray, StringBuilder};
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
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    bytes: Arc<Vec<u8>>,
    pub demo: bool,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(<redacted>, demo={})", self.demo)
    }
}

impl Key {
    /// The demo key (synthetic data only).
    pub fn demo() -> Key {
        Key {
            bytes: Arc::new(DEMO_KEY.to_vec()),
            demo: true,
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
        Ok(Key {
            bytes: Arc::new(bytes),
            demo: false,
        })
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
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .expect("HMAC takes keys of any length");
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The person key of an identifier string: lowercase hex, 32 characters (128 bits).
    pub fn person_key(&self, identifier: &str) -> String {
        hex::encode(&self.mac(identifier.as_bytes())[..16])
    }
}

/// `person_key(text) -> text`: the keyed pseudonym of an identifier string.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PersonKeyUdf {
    key: Key,
    signature: Signature,
}

impl PersonKeyUdf {
    pub fn new(key: Key) -> Self {
        PersonKeyUdf {
            key,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
    pub fn udf(key: Key) -> ScalarUDF {
        ScalarUDF::from(PersonKeyUdf::new(key))
    }
}

impl ScalarUDFImpl for PersonKeyUdf {
    fn name(&self) -> &str {
        "person_key"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input =
            as_string_array(&arrays[0]).map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let mut b = StringBuilder::with_capacity(input.len(), input.len() * 32);
        for v in input.iter() {
            match v {
                Some(s) => b.append_value(self.key.person_key(s)),
                None => b.append_null(),
            }
        }
        let out: StringArray = b.finish();
        Ok(ColumnarValue::Array(Arc::new(out) as Arc<dyn Array>))
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
        assert!(Key::load(None, false).is_err() || std::env::var(KEY_ENV).is_ok());
    }
}
