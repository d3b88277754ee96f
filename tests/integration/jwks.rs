//! Tokens from a third-party issuer (PyJWT) verified against a JWKS served locally.
