//! Verifies RS256/ES256 tokens against a JWKS (Keycloak realm certificates).
//!
//! The key set is fetched from the identity provider's JWKS URL on first need and cached by
//! `kid`. A token naming a `kid` we do not know triggers a re-fetch (the provider rotated its
//! keys), but re-fetches are rate-limited: a flood of tokens with made-up `kid`s must not turn
//! us into a tool for hammering the identity provider. The first successful load is not a
//! re-fetch, so a key added right after start is still picked up once.
//!
//! Only keys we can use are kept: RSA keys for RS256 and EC P-256 keys for ES256, meant for
//! signatures. Keycloak also publishes an RSA-OAEP encryption key; it is skipped.

use crate::logging::escaped;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::config::Settings;

/// Shortest time between two re-fetches of the key set.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// A key set is a few kilobytes; anything much larger is not one.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// A slow identity provider holds up every request with a new `kid`: give up in time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the keys are and what tokens verified with them must say.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    pub url: String,
    /// Required `iss` of JWKS-verified tokens, when set.
    pub issuer: Option<String>,
    /// Required `aud` of JWKS-verified tokens (a string, or one entry of a list), when set.
    pub audience: Option<String>,
    /// Shortest time between two re-fetches caused by unknown `kid`s (or after a failure).
    pub min_refetch_interval: Duration,
}

impl JwksConfig {
    /// A configuration with the default re-fetch interval and no issuer or audience check.
    pub fn new(url: impl Into<String>) -> JwksConfig {
        JwksConfig { url: url.into(), issuer: None, audience: None, min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL }
    }

    /// The JWKS part of the settings; `None` when no JWKS URL is configured.
    pub fn from_settings(settings: &Settings) -> Option<JwksConfig> {
        let Some(url) = &settings.jwks_url else {
            if settings.jwt_issuer.is_some() || settings.jwt_audience.is_some() {
                // HS256 tokens are our own and carry neither claim: the checks only apply to
                // tokens from the identity provider.
                tracing::warn!("the JWT issuer and audience settings have no effect without a JWKS URL");
            }
            return None;
        };
        Some(JwksConfig {
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ..JwksConfig::new(url.clone())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot build the HTTP client for the key server: {0}")]
    Client(#[source] reqwest::Error),
    #[error("the key server is unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the key server answered HTTP {0}")]
    Status(u16),
    #[error("the key server's answer is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the key server's answer is not a JSON Web Key Set: {0}")]
    NotAKeySet(#[source] serde_json::Error),
    #[error("the last fetch of the key set failed {0:?} ago; not asking again yet")]
    RecentlyFailed(Duration),
    #[error("no key {0:?} in the key set")]
    UnknownKey(String),
}

impl JwksError {
    /// Whether the key server, rather than the token, is at fault.
    pub fn is_key_server_fault(&self) -> bool {
        !matches!(self, JwksError::UnknownKey(_))
    }
}

/// A verification key and the one algorithm it may be used with.
pub struct JwksKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// What the fetch gate remembers between fetches.
#[derive(Default)]
struct FetchState {
    /// Whether a key set was ever loaded: the first load is not rate-limited.
    loaded: bool,
    /// The last fetch that counts against the interval: every re-fetch and every failure.
    last_limited: Option<Instant>,
    last_failed: bool,
}

/// The cached key set of one JWKS URL.
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    min_refetch_interval: Duration,
    /// Read on every request; written only after a fetch.
    keys: RwLock<HashMap<String, Arc<JwksKey>>>,
    /// Held across a fetch, so requests with the same new `kid` wait for one fetch rather
    /// than each starting their own.
    fetch: tokio::sync::Mutex<FetchState>,
}

impl Jwks {
    pub fn new(config: &JwksConfig) -> Result<Jwks, JwksError> {
        // reqwest is built with rustls and no crypto provider of its own: it takes the process
        // default, and ring is the one compiled in. Installing fails harmlessly when a
        // provider is already installed (the binary installs it at start).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(JwksError::Client)?;
        Ok(Jwks {
            url: config.url.clone(),
            client,
            min_refetch_interval: config.min_refetch_interval,
            keys: RwLock::new(HashMap::new()),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    /// The key named `kid`: from the cache, or from a (rate-limited) fetch of the key set.
    pub async fn key(&self, kid: &str) -> Result<Arc<JwksKey>, JwksError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut state = self.fetch.lock().await;
        // Another request may have fetched the key set while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if let Some(at) = state.last_limited.filter(|at| at.elapsed() < self.min_refetch_interval) {
            return Err(if state.last_failed {
                JwksError::RecentlyFailed(at.elapsed())
            } else {
                JwksError::UnknownKey(kid.to_string())
            });
        }
        let is_refetch = state.loaded;
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
                // Replace, not merge: a key the provider dropped must stop verifying.
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
                state.loaded = true;
                state.last_failed = false;
                if is_refetch {
                    state.last_limited = Some(Instant::now());
                }
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %escaped(&e), "cannot fetch the JWKS");
                state.last_failed = true;
                state.last_limited = Some(Instant::now());
                return Err(e);
            }
        }
        self.cached(kid).ok_or_else(|| JwksError::UnknownKey(kid.to_string()))
    }

    fn cached(&self, kid: &str) -> Option<Arc<JwksKey>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).get(kid).cloned()
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<JwksKey>>, JwksError> {
        let mut response = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(JwksError::Unreachable)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(JwksError::Unreachable)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_key_set(&body)
    }
}

/// The usable keys of a JWKS document, by `kid`.
pub fn parse_key_set(body: &[u8]) -> Result<HashMap<String, Arc<JwksKey>>, JwksError> {
    // Keys are parsed one by one, so one key of a kind we do not know does not cost us the
    // others.
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).map_err(JwksError::NotAKeySet)?;
    let mut keys = HashMap::new();
    for value in raw.keys {
        match serde_json::from_value::<Jwk>(value) {
            Ok(jwk) => {
                if let Some((kid, key)) = usable_key(&jwk) {
                    keys.insert(kid, Arc::new(key));
                } else {
                    tracing::debug!(kid = ?jwk.common.key_id, "skipping a JWK we cannot verify RS256/ES256 with");
                }
            }
            Err(e) => tracing::debug!(error = %escaped(&e), "skipping a JWK we cannot read"),
        }
    }
    Ok(keys)
}

/// The `kid` and verification key of a JWK, if it is a signature key for RS256 or ES256.
fn usable_key(jwk: &Jwk) -> Option<(String, JwksKey)> {
    let kid = jwk.common.key_id.clone()?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    if jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    // A key that names its algorithm may only be used with that one: this keeps a token from
    // choosing how its key is interpreted.
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, JwksKey { algorithm, key }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signature_keys_for_rs256_and_es256_are_kept() {
        let set = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"something": "else entirely"}
        ]});
        let keys = parse_key_set(set.to_string().as_bytes()).expect("a key set");
        let mut kids: Vec<_> = keys.iter().map(|(kid, k)| (kid.as_str(), k.algorithm)).collect();
        kids.sort_by_key(|(kid, _)| *kid);
        assert_eq!(kids, vec![("ec", Algorithm::ES256), ("rsa", Algorithm::RS256)]);
    }

    #[test]
    fn a_document_without_keys_is_not_a_key_set() {
        assert!(matches!(parse_key_set(b"<html>login</html>"), Err(JwksError::NotAKeySet(_))));
        assert!(matches!(parse_key_set(br#"{"issuer": "x"}"#), Err(JwksError::NotAKeySet(_))));
        assert!(parse_key_set(br#"{"keys": []}"#).expect("an empty set").is_empty());
    }
}
