//! The signed allowlist makrcave hands its bridges for the time it is unreachable
//! (bridge-contract.md, "GET /api/v1/kiosk/allowlist"): verified with the makerspace's Ed25519
//! key, checked against the list we already have, kept on disk, and asked about cards.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use ring::signature::{UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The list as the server sends it and as we store it: the signed bytes and their signature,
/// so a stored list is verified again on start like a fresh one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAllowlist {
    pub payload: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Allowlist {
    pub version: u32,
    pub makerspace_id: String,
    #[serde(default)]
    pub kiosk_id: Option<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Base64 of the 32-byte HMAC key the entries' card hashes are made with.
    pub card_key: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// Lowercase hex HMAC-SHA256(card_key, normalized uid).
    pub card: String,
    #[serde(default)]
    pub member_id: Option<String>,
    pub equipment_ids: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    #[error("the allowlist key is not base64 of 32 bytes")]
    BadPublicKey,
    #[error("payload or signature is not valid base64")]
    BadEncoding,
    #[error("the signature does not match the makerspace's key")]
    BadSignature,
    #[error("the payload is not an allowlist: {0}")]
    BadPayload(String),
    #[error("the list is for makerspace {0}, not ours")]
    OtherMakerspace(String),
    #[error("the list was issued at {issued}, before the one we have ({stored})")]
    Older { issued: DateTime<Utc>, stored: DateTime<Utc> },
}

/// A makerspace's allowlist key, from its base64 form.
#[derive(Debug, Clone)]
pub struct AllowlistKey(Vec<u8>);

impl AllowlistKey {
    pub fn parse(base64_key: &str) -> Result<AllowlistKey, AllowlistError> {
        let bytes = STANDARD.decode(base64_key.trim()).map_err(|_| AllowlistError::BadPublicKey)?;
        if bytes.len() != 32 {
            return Err(AllowlistError::BadPublicKey);
        }
        Ok(AllowlistKey(bytes))
    }
}

/// Verifies a signed list: signature, makerspace, and not older than `stored_issued_at`.
pub fn verify(
    signed: &SignedAllowlist,
    key: &AllowlistKey,
    makerspace_id: &str,
    stored_issued_at: Option<DateTime<Utc>>,
) -> Result<Allowlist, AllowlistError> {
    let payload = STANDARD.decode(&signed.payload).map_err(|_| AllowlistError::BadEncoding)?;
    let signature = STANDARD.decode(&signed.signature).map_err(|_| AllowlistError::BadEncoding)?;
    UnparsedPublicKey::new(&ED25519, &key.0).verify(&payload, &signature).map_err(|_| AllowlistError::BadSignature)?;
    let list: Allowlist =
        serde_json::from_slice(&payload).map_err(|err| AllowlistError::BadPayload(err.to_string()))?;
    if list.makerspace_id != makerspace_id {
        return Err(AllowlistError::OtherMakerspace(list.makerspace_id));
    }
    if let Some(stored) = stored_issued_at {
        if list.issued_at < stored {
            return Err(AllowlistError::Older { issued: list.issued_at, stored });
        }
    }
    Ok(list)
}

/// The contract's normalized uid: separators removed, ASCII uppercase, 4-64 alphanumerics.
pub fn normalize_uid(uid: &str) -> Option<String> {
    let normalized: String =
        uid.chars().filter(|c| !matches!(c, ':' | '-' | ' ' | '\t')).map(|c| c.to_ascii_uppercase()).collect();
    let valid = (4..=64).contains(&normalized.len()) && normalized.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then_some(normalized)
}

/// What the allowlist says about a card on our machine; the names are the `offline_tap` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed until this moment (the earlier of the entry's and the list's expiry).
    Allowlisted {
        until: DateTime<Utc>,
    },
    NotAllowlisted,
    AllowlistExpired,
    CardExpired,
}

impl Verdict {
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Allowlisted { .. } => "allowlisted",
            Verdict::NotAllowlisted => "not_allowlisted",
            Verdict::AllowlistExpired => "allowlist_expired",
            Verdict::CardExpired => "card_expired",
        }
    }
}

impl Allowlist {
    pub fn check(&self, card_uid: &str, equipment_id: &str, now: DateTime<Utc>) -> Verdict {
        if now >= self.expires_at {
            return Verdict::AllowlistExpired;
        }
        let (Some(uid), Ok(key)) = (normalize_uid(card_uid), STANDARD.decode(&self.card_key)) else {
            return Verdict::NotAllowlisted;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            return Verdict::NotAllowlisted;
        };
        mac.update(uid.as_bytes());
        let hash = hex(&mac.finalize().into_bytes());
        let mut entries = self
            .entries
            .iter()
            .filter(|e| e.card.eq_ignore_ascii_case(&hash) && e.equipment_ids.iter().any(|id| id == equipment_id));
        // A card may have several entries (say, renewed): the one lasting longest counts.
        let Some(latest) = entries.by_ref().map(|e| e.expires_at).max() else {
            return Verdict::NotAllowlisted;
        };
        if now >= latest {
            return Verdict::CardExpired;
        }
        Verdict::Allowlisted { until: latest.min(self.expires_at) }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last good list, kept in the state folder across restarts.
#[derive(Debug, Clone)]
pub struct AllowlistStore {
    path: PathBuf,
}

impl AllowlistStore {
    pub fn new(dir: &Path) -> AllowlistStore {
        AllowlistStore { path: dir.join("allowlist.json") }
    }

    /// The stored list, verified again (a file changed on disk is no better than a forged one).
    pub fn load(&self, key: &AllowlistKey, makerspace_id: &str) -> Option<(SignedAllowlist, Allowlist)> {
        let bytes = std::fs::read(&self.path).ok()?;
        let signed: SignedAllowlist = serde_json::from_slice(&bytes)
            .map_err(|err| tracing::warn!(error = %err, "stored allowlist is unreadable; ignoring it"))
            .ok()?;
        match verify(&signed, key, makerspace_id, None) {
            Ok(list) => Some((signed, list)),
            Err(err) => {
                tracing::warn!(error = %err, "stored allowlist does not verify; ignoring it");
                None
            }
        }
    }

    pub fn save(&self, signed: &SignedAllowlist) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(signed).map_err(std::io::Error::other)?;
        crate::queue::write_atomically(&self.path, &bytes)
    }
}

/// The verified list the bridge holds and its store: accepts a newer list, refuses the rest.
#[derive(Debug)]
pub struct AllowlistHolder {
    key: AllowlistKey,
    makerspace_id: String,
    store: AllowlistStore,
    current: Option<Allowlist>,
}

impl AllowlistHolder {
    pub fn open(key: AllowlistKey, makerspace_id: &str, store: AllowlistStore) -> AllowlistHolder {
        let current = store.load(&key, makerspace_id).map(|(_, list)| list);
        AllowlistHolder { key, makerspace_id: makerspace_id.to_string(), store, current }
    }

    pub fn current(&self) -> Option<&Allowlist> {
        self.current.as_ref()
    }

    /// Verifies `signed` and, if good and not older, stores it and makes it current.
    pub fn accept(&mut self, signed: &SignedAllowlist) -> Result<(), AllowlistAcceptError> {
        let stored = self.current.as_ref().map(|l| l.issued_at);
        let list = verify(signed, &self.key, &self.makerspace_id, stored)?;
        self.store.save(signed).map_err(AllowlistAcceptError::Store)?;
        tracing::info!(issued_at = %list.issued_at, entries = list.entries.len(), "allowlist updated");
        self.current = Some(list);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AllowlistAcceptError {
    #[error(transparent)]
    Refused(#[from] AllowlistError),
    #[error("cannot store the allowlist: {0}")]
    Store(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_normalize_as_the_contract_says() {
        assert_eq!(normalize_uid("04:a1:b2:c3").as_deref(), Some("04A1B2C3"));
        assert_eq!(normalize_uid("04-a1 b2\tc3").as_deref(), Some("04A1B2C3"));
        assert_eq!(normalize_uid("abc"), None);
        assert_eq!(normalize_uid("04a1b2c3!"), None);
        assert_eq!(normalize_uid(&"a".repeat(65)), None);
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(AllowlistKey::parse(&STANDARD.encode([1u8; 32])).is_ok());
        assert_eq!(AllowlistKey::parse(&STANDARD.encode([1u8; 31])).err(), Some(AllowlistError::BadPublicKey));
        assert_eq!(AllowlistKey::parse("not base64!").err(), Some(AllowlistError::BadPublicKey));
    }
}
