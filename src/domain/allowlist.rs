//! The offline allowlist a bridge keeps: which cards may unlock its machines while makrcave
//! cannot be reached, signed so that a bridge believes only its makerspace.
//!
//! Card UIDs are stored as HMACs under the server's card key, which never leaves the server.
//! A bridge gets a second key instead, the makerspace's *allowlist card key*, and the list
//! names each card by its HMAC under that key: the bridge hashes a tapped UID the same way and
//! looks it up, and a stolen list names no UID. Both that key and the Ed25519 signing key are
//! derived from the card key and the makerspace id, so nothing new is stored and every node
//! of a cluster signs the same way; rotating the card key rotates them (and re-registers every
//! card, as it does today).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The format of the payload; a bridge refuses a version it does not know.
pub const VERSION: u32 = 1;

fn derive(card_key: &[u8], label: &str, makerspace_id: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(card_key).expect("HMAC accepts keys of any length");
    mac.update(label.as_bytes());
    mac.update(b":");
    mac.update(makerspace_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The key bridges of `makerspace_id` hash card UIDs with (HMAC-SHA256).
pub fn allowlist_card_key(card_key: &[u8], makerspace_id: &str) -> [u8; 32] {
    derive(card_key, "makrcave offline allowlist card key v1", makerspace_id)
}

/// A card's name in the allowlist: lowercase hex HMAC-SHA256 of the normalized UID under the
/// allowlist card key (what the bridge computes from a tap).
pub fn offline_card_hash(allowlist_key: &[u8; 32], normalized_uid: &str) -> String {
    super::cards::hash_uid(allowlist_key, normalized_uid)
}

/// The makerspace's signing key pair (Ed25519).
pub fn signing_key(card_key: &[u8], makerspace_id: &str) -> Ed25519KeyPair {
    let seed = derive(card_key, "makrcave offline allowlist signing key v1", makerspace_id);
    Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are an Ed25519 seed")
}

/// The public key bridges are configured with: base64 of its 32 bytes.
pub fn public_key(card_key: &[u8], makerspace_id: &str) -> String {
    BASE64.encode(signing_key(card_key, makerspace_id).public_key().as_ref())
}

/// One card allowed on some machines until a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// [`offline_card_hash`] of the card.
    pub card: String,
    pub member_id: String,
    pub equipment_ids: Vec<String>,
    /// The membership's end, the earliest expiry of the certifications the machines need, or
    /// the list's own expiry, whichever comes first.
    pub expires_at: DateTime<Utc>,
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub version: u32,
    pub makerspace_id: String,
    pub kiosk_id: String,
    pub issued_at: DateTime<Utc>,
    /// Past this the bridge lets no card in offline, whatever its entry says.
    pub expires_at: DateTime<Utc>,
    /// Base64 of the allowlist card key.
    pub card_key: String,
    pub entries: Vec<Entry>,
}

/// The signed list as the bridge receives it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedAllowlist {
    /// Base64 of the payload's JSON bytes (a JSON object: version, makerspace_id, kiosk_id,
    /// issued_at, expires_at, card_key, entries of card, member_id, equipment_ids, expires_at).
    pub payload: String,
    /// Base64 of the Ed25519 signature over exactly those bytes.
    pub signature: String,
}

/// Serializes and signs a payload with the makerspace's key.
pub fn sign(card_key: &[u8], payload: &Payload) -> SignedAllowlist {
    let bytes = serde_json::to_vec(payload).expect("a payload always serializes");
    let signature = signing_key(card_key, &payload.makerspace_id).sign(&bytes);
    SignedAllowlist { payload: BASE64.encode(&bytes), signature: BASE64.encode(signature.as_ref()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ED25519};

    fn payload(space: &str) -> Payload {
        let key = allowlist_card_key(b"server card key", space);
        Payload {
            version: VERSION,
            makerspace_id: space.into(),
            kiosk_id: "k1".into(),
            issued_at: "2026-12-02T10:00:00Z".parse().unwrap(),
            expires_at: "2026-12-03T10:00:00Z".parse().unwrap(),
            card_key: BASE64.encode(key),
            entries: vec![Entry {
                card: offline_card_hash(&key, "04A21B3C"),
                member_id: "m1".into(),
                equipment_ids: vec!["eq-laser-001".into()],
                expires_at: "2026-12-03T10:00:00Z".parse().unwrap(),
            }],
        }
    }

    #[test]
    fn a_bridge_verifies_the_list_with_the_public_key_alone() {
        let signed = sign(b"server card key", &payload("space-a"));
        let public = BASE64.decode(public_key(b"server card key", "space-a")).unwrap();
        let bytes = BASE64.decode(&signed.payload).unwrap();
        let signature = BASE64.decode(&signed.signature).unwrap();
        UnparsedPublicKey::new(&ED25519, &public).verify(&bytes, &signature).expect("valid signature");
        assert_eq!(serde_json::from_slice::<Payload>(&bytes).unwrap(), payload("space-a"));

        let mut tampered = bytes.clone();
        tampered[10] ^= 1;
        assert!(UnparsedPublicKey::new(&ED25519, &public).verify(&tampered, &signature).is_err());
        let other = BASE64.decode(public_key(b"server card key", "space-b")).unwrap();
        assert!(UnparsedPublicKey::new(&ED25519, &other).verify(&bytes, &signature).is_err(), "another space's key");
    }

    #[test]
    fn keys_are_per_makerspace_and_stable() {
        assert_eq!(public_key(b"k", "a"), public_key(b"k", "a"));
        assert_ne!(public_key(b"k", "a"), public_key(b"k", "b"));
        assert_ne!(allowlist_card_key(b"k", "a"), allowlist_card_key(b"k", "b"));
        assert_ne!(allowlist_card_key(b"k", "a"), allowlist_card_key(b"other", "a"));
        // The card's name differs from its stored hash: the list cannot be matched to the table.
        let key = allowlist_card_key(b"k", "a");
        assert_ne!(offline_card_hash(&key, "04A21B3C"), super::super::cards::hash_uid(b"k", "04A21B3C"));
    }
}
