//! RFID/NFC card UIDs: normalized, then stored only as a keyed hash.
//!
//! Readers print the same UID in different ways (`04:A2:1B:...`, `04a21b...`, with spaces),
//! so UIDs are normalized first. The hash is an HMAC with a server key: a leaked table of
//! hashes cannot be matched against UIDs without the key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest and longest UID we accept (4-byte and 10-byte UIDs are common; some readers
/// prefix a type or print decimal).
const MIN_UID_LEN: usize = 4;
const MAX_UID_LEN: usize = 64;

/// Uppercases a UID and drops the separators readers put in (`:`, `-`, spaces).
pub fn normalize_uid(raw: &str) -> Result<String, String> {
    let uid: String =
        raw.chars().filter(|c| !matches!(c, ':' | '-' | ' ' | '\t')).collect::<String>().to_ascii_uppercase();
    if uid.len() < MIN_UID_LEN || uid.len() > MAX_UID_LEN {
        return Err(format!("a card UID has {MIN_UID_LEN} to {MAX_UID_LEN} letters or digits"));
    }
    if !uid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("a card UID has only letters and digits (and separators ':' '-')".into());
    }
    Ok(uid)
}

/// The stored form of a normalized UID: hex HMAC-SHA256 under `key`.
pub fn hash_uid(key: &[u8], normalized_uid: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(normalized_uid.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The last characters of a UID, shown so that people can tell their cards apart.
pub fn uid_hint(normalized_uid: &str) -> String {
    let tail: String = normalized_uid.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_same_card_written_differently_is_one_card() {
        let a = normalize_uid("04:a2:1b:c3").expect("valid");
        let b = normalize_uid("04A21BC3").expect("valid");
        let c = normalize_uid(" 04-A2-1B-C3 ").expect("valid");
        assert_eq!((a.as_str(), b.as_str()), ("04A21BC3", "04A21BC3"));
        assert_eq!(a, c);
        assert_eq!(hash_uid(b"k", &a), hash_uid(b"k", &b));
        assert_ne!(hash_uid(b"k", &a), hash_uid(b"other key", &a));
        assert_eq!(uid_hint(&a), "…1BC3");
    }

    #[test]
    fn bad_uids() {
        assert!(normalize_uid("12").is_err());
        assert!(normalize_uid("04A2;DROP").is_err());
        assert!(normalize_uid(&"A".repeat(65)).is_err());
    }

    proptest! {
        #[test]
        fn hashes_never_contain_the_uid(uid in "[0-9A-F]{8,20}") {
            let h = hash_uid(b"secret", &uid);
            prop_assert_eq!(h.len(), 64);
            prop_assert!(!h.to_ascii_uppercase().contains(&uid));
        }
    }
}
