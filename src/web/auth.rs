//! Bearer JWT authentication: who the caller is, as a [`Principal`].
//!
//! Tokens are HS256 with the configured secret. Roles come from `roles` (or Keycloak's
//! `realm_access.roles`); makerspace scope from `makerspaces` / `makerspace_id`.

use std::collections::BTreeSet;
use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};
use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::domain::access::{Principal, Role};
use crate::web::error::ApiError;
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
    pub sub: String,
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
        Principal { user_id: self.sub, roles, makerspaces }
    }
}

/// Signing and verification keys.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn hs256(secret: &Secret) -> JwtKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_S;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
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

    /// Verifies a token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::InvalidSignature => "the token's signature is not valid",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                _ => "the token is malformed",
            };
            ApiError::Unauthorized(reason.into())
        })?;
        if data.claims.sub.is_empty() {
            return Err(ApiError::Unauthorized("the token has no subject".into()));
        }
        Ok(data.claims.into_principal())
    }
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
pub fn authenticate(req: &HttpRequest, allow_query: bool) -> Result<Principal, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or(ApiError::Internal)?;
    let token = bearer_token(req, allow_query)
        .ok_or_else(|| ApiError::Unauthorized("authentication required: send Authorization: Bearer <token>".into()))?;
    state.auth.verify(&token)
}

/// The authenticated caller of a handler.
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req, false).map(Caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_carry_scope() {
        let keys = JwtKeys::hs256(&Secret::new("0123456789abcdef0123"));
        let token = keys.mint("alice", &[Role::MakerspaceAdmin], &["space-a".into()], chrono::Duration::hours(1));
        let p = keys.verify(&token).expect("valid token");
        assert_eq!(p.user_id, "alice");
        assert!(p.has(Role::MakerspaceAdmin));
        assert!(p.makerspaces.contains("space-a"));
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let keys = JwtKeys::hs256(&Secret::new("0123456789abcdef0123"));
        let other = JwtKeys::hs256(&Secret::new("another-secret-entirely"));
        let expired = keys.mint("bob", &[Role::Member], &[], chrono::Duration::hours(-2));
        assert!(matches!(keys.verify(&expired), Err(ApiError::Unauthorized(m)) if m.contains("expired")));
        let foreign = other.mint("bob", &[Role::Member], &[], chrono::Duration::hours(1));
        assert!(matches!(keys.verify(&foreign), Err(ApiError::Unauthorized(m)) if m.contains("signature")));
        assert!(keys.verify("not.a.token").is_err());
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
