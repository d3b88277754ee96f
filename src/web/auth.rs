//! Bearer JWT authentication: who the caller is, as a [`Principal`].
//!
//! Two kinds of tokens are accepted, told apart by the `alg` of their header:
//! - HS256, signed with the configured secret: our own (`makrcave token`, the demo, tests).
//! - RS256 and ES256 from an identity provider (Keycloak), verified against its JWKS
//!   ([`crate::web::jwks`]); only these are checked for the configured `iss` and `aud`, since
//!   our own tokens carry neither.
//!
//! Every other `alg` is refused. Roles come from `roles` (or Keycloak's `realm_access.roles`);
//! makerspace scope from `makerspaces` / `makerspace_id`.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};
use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Secret, Settings};
use crate::domain::access::{Principal, Role};
use crate::web::error::ApiError;
use crate::web::jwks::{Jwks, JwksConfig, JwksError};
use crate::web::AppState;

/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_S: u64 = 30;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RealmAccess {
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    // `sub` and `exp` are required, but by the validation rather than by serde, so that a token
    // without them is refused with the claim's name rather than as "malformed".
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_access: Option<RealmAccess>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub makerspaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub makerspace_id: Option<String>,
}

impl Claims {
    fn into_principal(self) -> Principal {
        let realm_roles = self.realm_access.map(|r| r.roles).unwrap_or_default();
        // Unknown roles (Keycloak adds offline_access, uma_authorization, ...) are ignored.
        let roles: BTreeSet<Role> =
            self.roles.iter().chain(realm_roles.iter()).filter_map(|r| Role::parse(r)).collect();
        let makerspaces = self.makerspaces.into_iter().chain(self.makerspace_id).collect();
        let expires_at = chrono::DateTime::from_timestamp(self.exp, 0);
        Principal { user_id: self.sub, roles, makerspaces, memberships: Default::default(), expires_at }
    }
}

/// Signing and verification keys.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// RS256/ES256 verification, when a JWKS URL is configured.
    jwks: Option<JwksVerifier>,
}

/// The identity provider's keys and the checks on its tokens.
struct JwksVerifier {
    keys: Jwks,
    /// Everything but the algorithm, which comes from the key.
    validation: Validation,
}

impl JwtKeys {
    /// HS256 only.
    pub fn hs256(secret: &Secret) -> JwtKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_S;
        // Only checked when present, as for the identity provider's tokens.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            jwks: None,
        }
    }

    /// HS256, and RS256/ES256 against a JWKS when `jwks` is given.
    pub fn new(secret: &Secret, jwks: Option<JwksConfig>) -> Result<JwtKeys, JwksError> {
        let mut keys = JwtKeys::hs256(secret);
        if let Some(config) = jwks {
            keys.jwks = Some(JwksVerifier { keys: Jwks::new(&config)?, validation: jwks_validation(&config) });
        }
        Ok(keys)
    }

    /// The keys the settings describe.
    pub fn from_settings(settings: &Settings) -> Result<JwtKeys, ConfigError> {
        JwtKeys::new(&settings.jwt_secret()?, JwksConfig::from_settings(settings))
            .map_err(|e| ConfigError::Invalid(format!("cannot set up JWKS verification: {e}")))
    }

    /// Signs a token for `sub` with roles and makerspaces, valid for `ttl`.
    pub fn mint(&self, sub: &str, roles: &[Role], makerspaces: &[String], ttl: chrono::Duration) -> String {
        let now = Utc::now();
        let claims = Claims {
            sub: sub.to_string(),
            exp: (now + ttl).timestamp(),
            iat: Some(now.timestamp()),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            makerspaces: makerspaces.to_vec(),
            ..Default::default()
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims with an in-memory key cannot fail")
    }

    /// Verifies a token and returns its caller. Async because an RS256/ES256 token may name
    /// a key we have yet to fetch.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        // The header is read before the signature is checked, only to choose the key: every
        // field used from it is checked against what that key allows.
        let header = decode_header(token).map_err(|e| {
            ApiError::Unauthorized(
                match e.kind() {
                    // `none` and other names jsonwebtoken does not know end up here.
                    ErrorKind::Json(_) => "the token's header is not valid or names an algorithm that is not accepted",
                    _ => "the token is malformed",
                }
                .into(),
            )
        })?;
        let claims = match header.alg {
            Algorithm::HS256 => decode::<Claims>(token, &self.decoding, &self.validation).map_err(rejection)?.claims,
            Algorithm::RS256 | Algorithm::ES256 => self.verify_with_jwks(token, &header).await?,
            other => {
                return Err(ApiError::Unauthorized(format!(
                    "the token's algorithm {other:?} is not accepted (HS256, RS256 and ES256 are)"
                )))
            }
        };
        if claims.sub.is_empty() {
            return Err(ApiError::Unauthorized("the token has no subject".into()));
        }
        Ok(claims.into_principal())
    }

    async fn verify_with_jwks(&self, token: &str, header: &Header) -> Result<Claims, ApiError> {
        let Some(jwks) = &self.jwks else {
            return Err(ApiError::Unauthorized(format!(
                "the token is signed {:?}, which needs the identity provider's keys, and no JWKS URL is configured",
                header.alg
            )));
        };
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| ApiError::Unauthorized("the token does not name its signing key (kid)".into()))?;
        let key = jwks.keys.key(kid).await.map_err(|e| match e {
            JwksError::UnknownKey(_) => {
                ApiError::Unauthorized("the token's signing key (kid) is not in the identity provider's key set".into())
            }
            // 503, not 401: the token may well be valid. A 401 tells a client to throw its
            // token away and log in again, which cannot help while the identity provider is
            // away; 503 says "try again later", and counts as our failure, not the caller's.
            JwksError::Client(_) | JwksError::Unreachable(_) | JwksError::RecentlyFailed(_) => {
                ApiError::Unavailable("cannot verify the token: the key server is unreachable".into())
            }
            JwksError::Status(_) | JwksError::TooLarge | JwksError::NotAKeySet(_) => {
                ApiError::Unavailable("cannot verify the token: the key server gave no usable key set".into())
            }
        })?;
        // An RSA key verifies RS256 only, an EC key ES256 only: the token does not get to pick.
        if key.algorithm != header.alg {
            return Err(ApiError::Unauthorized("the token's algorithm does not match its signing key".into()));
        }
        let mut validation = jwks.validation.clone();
        validation.algorithms = vec![key.algorithm];
        Ok(decode::<Claims>(token, &key.key, &validation).map_err(rejection)?.claims)
    }
}

/// The checks on tokens from the identity provider.
fn jwks_validation(config: &JwksConfig) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = LEEWAY_S;
    // Only checked when present; a provider that sets `nbf` means it.
    validation.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        // jsonwebtoken only compares `iss` when present; a token without one must not pass.
        required.push("iss");
    }
    match &config.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        // Keycloak puts an `aud` ("account") in its tokens; without a configured audience there
        // is nothing to compare it with, and jsonwebtoken would refuse any `aud` at all.
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// Why a token was refused, as the caller will read it.
fn rejection(e: jsonwebtoken::errors::Error) -> ApiError {
    let reason = match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_string(),
        ErrorKind::InvalidSignature => "the token's signature is not valid".to_string(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".to_string(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted".to_string(),
        ErrorKind::InvalidIssuer => "the token's issuer (iss) is not accepted".to_string(),
        ErrorKind::InvalidAudience => "the token's audience (aud) is not accepted".to_string(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token lacks the required claim {claim}"),
        _ => "the token is malformed".to_string(),
    };
    ApiError::Unauthorized(reason)
}

/// The token of a request: `Authorization: Bearer ...`, or `?token=` where allowed (browsers
/// cannot set headers on a WebSocket).
pub fn bearer_token(req: &HttpRequest, allow_query: bool) -> Option<String> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_string());
    header.or_else(|| {
        allow_query
            .then(|| {
                web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
                    .ok()
                    .and_then(|q| q.get("token").cloned())
            })
            .flatten()
    })
}

/// Authenticates a request.
pub async fn authenticate(req: &HttpRequest, allow_query: bool) -> Result<Principal, ApiError> {
    verify_request(req.app_data::<web::Data<AppState>>().cloned(), bearer_token(req, allow_query)).await
}

/// Verifies the token taken from a request; owns its inputs, so the future does not borrow
/// the request.
async fn verify_request(state: Option<web::Data<AppState>>, token: Option<String>) -> Result<Principal, ApiError> {
    let state = state.ok_or(ApiError::Internal)?;
    let token = token
        .ok_or_else(|| ApiError::Unauthorized("authentication required: send Authorization: Bearer <token>".into()))?;
    let mut principal = state.auth.verify(&token).await?;
    crate::services::access::add_memberships(&state, &mut principal).await?;
    Ok(principal)
}

/// The authenticated caller of a handler.
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req, false);
        Box::pin(async move { verify_request(state, token).await.map(Caller) })
    }
}

/// The kiosk making a request, from its device token.
pub struct Kiosk(pub crate::store::kiosks::KioskRecord);

impl FromRequest for Kiosk {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Kiosk, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req, false);
        Box::pin(async move {
            let state = state.ok_or(ApiError::Internal)?;
            Ok(Kiosk(crate::services::kiosk::authenticate(&state, token.as_deref()).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn minted_tokens_verify_and_carry_scope() {
        let keys = JwtKeys::hs256(&Secret::new("0123456789abcdef0123"));
        let token = keys.mint("alice", &[Role::MakerspaceAdmin], &["space-a".into()], chrono::Duration::hours(1));
        let p = keys.verify(&token).await.expect("valid token");
        assert_eq!(p.user_id, "alice");
        assert!(p.has(Role::MakerspaceAdmin));
        assert!(p.makerspaces.contains("space-a"));
    }

    #[actix_web::test]
    async fn expired_and_foreign_tokens_are_refused() {
        let keys = JwtKeys::hs256(&Secret::new("0123456789abcdef0123"));
        let other = JwtKeys::hs256(&Secret::new("another-secret-entirely"));
        let expired = keys.mint("bob", &[Role::Member], &[], chrono::Duration::hours(-2));
        assert!(matches!(keys.verify(&expired).await, Err(ApiError::Unauthorized(m)) if m.contains("expired")));
        let foreign = other.mint("bob", &[Role::Member], &[], chrono::Duration::hours(1));
        assert!(matches!(keys.verify(&foreign).await, Err(ApiError::Unauthorized(m)) if m.contains("signature")));
        assert!(keys.verify("not.a.token").await.is_err());
    }

    /// Base64url of `{"alg":"RS256","typ":"JWT"}`.
    const RS256_HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";
    /// Base64url of `{"alg":"none","typ":"JWT"}`.
    const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

    /// The token with its header replaced: the refusal must come before the signature (now
    /// wrong) is looked at.
    fn with_header(token: &str, encoded_header: &str) -> String {
        let (_, rest) = token.split_once('.').expect("a JWT has three parts");
        format!("{encoded_header}.{rest}")
    }

    #[actix_web::test]
    async fn other_algorithms_are_refused() {
        let secret = Secret::new("0123456789abcdef0123");
        let keys = JwtKeys::hs256(&secret);
        let token = keys.mint("carol", &[Role::SuperAdmin], &[], chrono::Duration::hours(1));
        let rs256 = with_header(&token, RS256_HEADER);
        assert!(matches!(keys.verify(&rs256).await, Err(ApiError::Unauthorized(m)) if m.contains("no JWKS URL")));
        let none = with_header(&token, NONE_HEADER);
        assert!(matches!(keys.verify(&none).await, Err(ApiError::Unauthorized(m)) if m.contains("algorithm")));
        let claims = Claims { sub: "carol".into(), exp: Utc::now().timestamp() + 3600, ..Default::default() };
        let hs384 =
            encode(&Header::new(Algorithm::HS384), &claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
                .expect("HS384 signing");
        assert!(matches!(keys.verify(&hs384).await, Err(ApiError::Unauthorized(m)) if m.contains("HS384")));
    }

    #[actix_web::test]
    async fn missing_claims_are_named() {
        let secret = Secret::new("0123456789abcdef0123");
        let keys = JwtKeys::hs256(&secret);
        let sign = |claims: serde_json::Value| {
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
                .expect("HS256 signing")
        };
        let no_sub = sign(serde_json::json!({"exp": Utc::now().timestamp() + 3600}));
        assert!(matches!(keys.verify(&no_sub).await, Err(ApiError::Unauthorized(m)) if m.contains("claim sub")));
        let no_exp = sign(serde_json::json!({"sub": "dave"}));
        assert!(matches!(keys.verify(&no_exp).await, Err(ApiError::Unauthorized(m)) if m.contains("claim exp")));
    }

    #[actix_web::test]
    async fn a_token_not_valid_yet_is_refused() {
        let secret = Secret::new("0123456789abcdef0123");
        let keys = JwtKeys::hs256(&secret);
        let sign = |nbf: i64| {
            let claims = serde_json::json!({"sub": "erin", "exp": Utc::now().timestamp() + 7200, "nbf": nbf});
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
                .expect("HS256 signing")
        };
        let later = sign(Utc::now().timestamp() + 3600);
        assert!(matches!(keys.verify(&later).await, Err(ApiError::Unauthorized(m)) if m.contains("not valid yet")));
        assert!(keys.verify(&sign(Utc::now().timestamp() - 60)).await.is_ok());
    }

    #[test]
    fn keycloak_realm_roles_are_read() {
        let claims = Claims {
            sub: "kc-user".into(),
            realm_access: Some(RealmAccess { roles: vec!["offline_access".into(), "makerspace_admin".into()] }),
            makerspace_id: Some("s1".into()),
            ..Default::default()
        };
        let p = claims.into_principal();
        assert_eq!(p.roles.iter().copied().collect::<Vec<_>>(), vec![Role::MakerspaceAdmin]);
        assert!(p.makerspaces.contains("s1"));
    }
}
