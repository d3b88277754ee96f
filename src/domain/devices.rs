//! Device tokens: what a kiosk (and later a bridge) sends as its Bearer token. A token is a
//! prefix and 32 random bytes in hex, shown once; only its SHA-256 is stored.

use sha2::{Digest, Sha256};

/// Kiosk tokens start with this, so that they are told apart from JWTs at a glance.
pub const KIOSK_TOKEN_PREFIX: &str = "mk_kiosk_";

/// A kiosk token made of `bytes`.
pub fn kiosk_token(bytes: &[u8; 32]) -> String {
    format!("{KIOSK_TOKEN_PREFIX}{}", hex(bytes))
}

/// The stored form of a device token (surrounding whitespace is not part of it).
pub fn hash_device_token(token: &str) -> String {
    hex(&Sha256::digest(token.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_stored_as_its_hash_whatever_the_whitespace() {
        let token = kiosk_token(&[7; 32]);
        assert!(token.starts_with("mk_kiosk_0707"));
        assert_eq!(token.len(), KIOSK_TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_device_token(&token), hash_device_token(&format!(" {token}\n")));
        assert_eq!(hash_device_token(&token).len(), 64);
        assert_ne!(hash_device_token(&token), hash_device_token(&kiosk_token(&[8; 32])));
    }
}
