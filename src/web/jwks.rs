//! Verifies RS256/ES256 tokens against a JWKS (Keycloak realm certificates).
