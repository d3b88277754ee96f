//! Secrets inside a machine's connection settings (OctoPrint API keys, Bambu access codes,
//! device passwords): which fields they are, and how they are sealed at rest with the data key.
//!
//! A secret field holds either a clear value (what a client sends, and what a database written
//! before sealing existed still holds) or a sealed one, stored as
//! `{"enc":"v1:<base64 of nonce and ciphertext>"}` in place of the clear string, so that code
//! reading the JSON can tell the two apart. `v1` is XChaCha20-Poly1305 with a random 24-byte
//! nonce per value (random nonces of that size do not repeat in practice, where ChaCha20's 12
//! bytes would need a counter) and the field's name as associated data (a sealed access code
//! cannot be passed off as an API key). An AEAD refuses a wrong key or an altered value outright:
//! opening never yields garbage.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// OctoPrint's API key.
pub const API_KEY: &str = "api_key";
/// A Bambu Lab printer's LAN access code (its MQTT and FTPS password).
pub const ACCESS_CODE: &str = "access_code";
/// A device's password.
pub const PASSWORD: &str = "password";
/// Every field of a connection that holds a secret: sealed at rest, masked in responses. The
/// one list: `Connection` names its secret fields with these constants, and its tests check
/// that no other field carries one of these names.
pub const SECRET_FIELDS: [&str; 3] = [API_KEY, ACCESS_CODE, PASSWORD];

/// What responses show instead of a secret; a client that sends it back keeps the stored one.
pub const MASK: &str = "********";

/// Prefix of the sealed format this code writes.
const V1: &str = "v1:";
const NONCE_LEN: usize = 24;
/// Poly1305's tag, appended to the ciphertext.
const TAG_LEN: usize = 16;
/// Label of the key derivation, so that the data key never equals another use of the secret.
const KEY_LABEL: &[u8] = b"makrcave data key v1";

/// A secret field's value: clear (from a client, or stored before sealing) or sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SecretValue {
    Clear(String),
    Sealed(Sealed),
}

/// The stored form of a sealed secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// `v1:` and the base64 of the nonce followed by the ciphertext and its tag.
    enc: String,
}

impl From<&str> for SecretValue {
    fn from(clear: &str) -> SecretValue {
        SecretValue::Clear(clear.to_string())
    }
}

impl SecretValue {
    pub fn is_clear(&self) -> bool {
        matches!(self, SecretValue::Clear(_))
    }
}

impl std::fmt::Debug for SecretValue {
    // Debug output reaches logs: it never shows a secret, sealed or not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::Clear(_) => f.write_str("Clear(********)"),
            SecretValue::Sealed(_) => f.write_str("Sealed"),
        }
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed")
    }
}

/// Why a sealed secret cannot be opened. Both name the field and never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "connection.{0} cannot be decrypted with this data key: it was sealed with another key \
         (did --data-key, MAKRCAVE_DATA_KEY or DATA_DIR/data-key change?) or the stored value was altered"
    )]
    WrongKey(String),
    #[error("connection.{0} is not a sealed value this makrcave can read: {1}")]
    Malformed(String, &'static str),
}

/// The key that seals secrets at rest, derived from the configured (or generated) data key.
#[derive(Clone)]
pub struct DataKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(********)")
    }
}

impl DataKey {
    /// The 256-bit key for a configured secret of any length: HMAC-SHA256 of a fixed label
    /// under the secret, so that a passphrase or a hex string both give a uniform key.
    pub fn derive(secret: &str) -> DataKey {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(KEY_LABEL);
        let key = mac.finalize().into_bytes();
        DataKey { cipher: XChaCha20Poly1305::new(&key) }
    }

    /// Seals `clear` for the field `field` with a fresh random nonce.
    pub fn seal(&self, field: &str, clear: &str) -> SecretValue {
        self.seal_with_nonce(field, clear, rand::random())
    }

    fn seal_with_nonce(&self, field: &str, clear: &str, nonce: [u8; NONCE_LEN]) -> SecretValue {
        let ciphertext = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: clear.as_bytes(), aad: field.as_bytes() })
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        SecretValue::Sealed(Sealed { enc: format!("{V1}{}", BASE64.encode(bytes)) })
    }

    /// The clear value of the field `field`: a sealed value is opened, a clear one (stored
    /// before sealing) is returned as it is.
    pub fn open(&self, field: &str, value: &SecretValue) -> Result<String, SecretError> {
        let sealed = match value {
            SecretValue::Clear(clear) => return Ok(clear.clone()),
            SecretValue::Sealed(sealed) => sealed,
        };
        let malformed = |why| SecretError::Malformed(field.to_string(), why);
        let encoded = sealed.enc.strip_prefix(V1).ok_or_else(|| malformed("unknown version"))?;
        let bytes = BASE64.decode(encoded).map_err(|_| malformed("not base64"))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce's length");
        let clear = self
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: field.as_bytes() })
            .map_err(|_| SecretError::WrongKey(field.to_string()))?;
        String::from_utf8(clear).map_err(|_| malformed("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only() {
        let key = DataKey::derive("a data key of some length");
        let sealed = key.seal(API_KEY, "ABCDEF0123456789");
        let json = serde_json::to_string(&sealed).expect("serializes");
        assert!(json.starts_with(r#"{"enc":"v1:"#), "{json}");
        assert!(!json.contains("ABCDEF0123456789"));
        assert_eq!(key.open(API_KEY, &sealed), Ok("ABCDEF0123456789".to_string()));

        let other = DataKey::derive("another data key of some length");
        let err = other.open(API_KEY, &sealed).expect_err("a wrong key is refused");
        assert_eq!(err, SecretError::WrongKey(API_KEY.into()));
        assert!(err.to_string().contains("data key"), "{err}");
        // Bound to its field: the same ciphertext does not open as another field.
        assert_eq!(key.open(PASSWORD, &sealed), Err(SecretError::WrongKey(PASSWORD.into())));
    }

    #[test]
    fn each_seal_draws_a_new_nonce() {
        let key = DataKey::derive("a data key of some length");
        assert_ne!(key.seal(API_KEY, "same"), key.seal(API_KEY, "same"));
        let fixed = [7u8; NONCE_LEN];
        assert_eq!(key.seal_with_nonce(API_KEY, "same", fixed), key.seal_with_nonce(API_KEY, "same", fixed));
    }

    #[test]
    fn clear_and_sealed_values_are_told_apart() {
        let clear: SecretValue = serde_json::from_str(r#""legacy""#).expect("a string is clear");
        assert_eq!(clear, SecretValue::Clear("legacy".into()));
        let key = DataKey::derive("k");
        assert_eq!(key.open(API_KEY, &clear), Ok("legacy".into()));
        let sealed: SecretValue = serde_json::from_str(r#"{"enc":"v1:AAAA"}"#).expect("an object is sealed");
        assert!(!sealed.is_clear());
        assert!(serde_json::from_str::<SecretValue>(r#"{"enc":"v1:AAAA","x":1}"#).is_err());
        assert!(!format!("{clear:?}").contains("legacy"));
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let key = DataKey::derive("k");
        let bad = |enc: &str| SecretValue::Sealed(Sealed { enc: enc.into() });
        assert!(matches!(key.open(API_KEY, &bad("v9:AAAA")), Err(SecretError::Malformed(_, "unknown version"))));
        assert!(matches!(key.open(API_KEY, &bad("v1:!!")), Err(SecretError::Malformed(_, "not base64"))));
        assert!(matches!(key.open(API_KEY, &bad("v1:AAAA")), Err(SecretError::Malformed(_, "too short"))));
        let SecretValue::Sealed(Sealed { enc }) = key.seal(API_KEY, "value") else { panic!("sealed") };
        let mut bytes = BASE64.decode(&enc[V1.len()..]).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = bad(&format!("{V1}{}", BASE64.encode(bytes)));
        assert_eq!(key.open(API_KEY, &altered), Err(SecretError::WrongKey(API_KEY.into())));
    }
}
