//! Tokens from a third-party issuer (PyJWT) verified against a JWKS served locally.
//!
//! The key server is a few lines of tokio in the test: it answers every request with the
//! current key set and counts the requests, so a test can see when makrcave fetched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use makrcave::web::jwks::{Jwks, JwksConfig, JwksError};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::*;

const ISSUER: &str = "https://sso.example.org/realms/makrcave";
const AUDIENCE: &str = "makrcave";

/// A JWKS endpoint on a free port.
struct KeyServer {
    url: String,
    /// The whole answer body: normally `{"keys": [...]}`.
    body: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl KeyServer {
    async fn start(keys: &[Value]) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the key server");
        let addr = listener.local_addr().expect("key server address");
        let body = Arc::new(Mutex::new(json!({ "keys": keys }).to_string()));
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (body, requests) = (body.clone(), requests.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(answer(stream, body.clone(), requests.clone()));
                }
            }
        });
        KeyServer { url: format!("http://{addr}/realms/makrcave/protocol/openid-connect/certs"), body, requests, task }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Publishes another key, as an identity provider rotating its keys would.
    fn add_key(&self, jwk: Value) {
        let mut body = self.body.lock().expect("key server body");
        let mut set: Value = serde_json::from_str(&body).expect("the key server serves a key set");
        set["keys"].as_array_mut().expect("a keys array").push(jwk);
        *body = set.to_string();
    }

    fn set_body(&self, text: &str) {
        *self.body.lock().expect("key server body") = text.to_string();
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (its head is enough: it is a GET), counts it, answers with the body.
async fn answer(mut stream: TcpStream, body: Arc<Mutex<String>>, requests: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    // Counted before answering, so the count is up to date once the client has its answer.
    requests.fetch_add(1, Ordering::SeqCst);
    let body = body.lock().expect("key server body").clone();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Generates keys and signs tokens with PyJWT. Key names starting with `ec` are P-256 keys,
/// the others 2048-bit RSA keys; `keys` are generated even when no token uses them; each
/// token is `{name, alg, key?, kid?, claims, exp_in?}` (`exp_in`: seconds from now; HS384
/// tokens are signed with the suite's HS256 secret).
const MINT: &str = r#"
import json, sys, time
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

spec = json.loads(sys.argv[1])
keys = {}

def key(name):
    if name not in keys:
        if name.startswith("ec"):
            keys[name] = ec.generate_private_key(ec.SECP256R1())
        else:
            keys[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return keys[name]

for name in spec["keys"]:
    key(name)
tokens = {}
now = int(time.time())
for t in spec["tokens"]:
    claims = dict(t["claims"])
    if "exp_in" in t:
        claims["iat"] = now
        claims["exp"] = now + t["exp_in"]
    headers = {"kid": t["kid"]} if "kid" in t else None
    if t["alg"] in ("RS256", "ES256"):
        signing_key = key(t["key"])
    elif t["alg"] == "none":
        signing_key = None
    else:
        signing_key = spec["secret"]
    tokens[t["name"]] = jwt.encode(claims, signing_key, algorithm=t["alg"], headers=headers)

public = {}
for name, private in keys.items():
    algorithm = ECAlgorithm if name.startswith("ec") else RSAAlgorithm
    public[name] = algorithm.to_jwk(private.public_key(), as_dict=True)
json.dump({"tokens": tokens, "jwks": public}, sys.stdout)
"#;

/// What PyJWT made: tokens by name, public JWKs by key name (without `kid`).
struct Minted {
    tokens: HashMap<String, String>,
    jwks: HashMap<String, Value>,
}

impl Minted {
    fn token(&self, name: &str) -> &str {
        self.tokens.get(name).unwrap_or_else(|| panic!("no token {name} was minted"))
    }

    /// The public JWK of a key, published under `kid`.
    fn jwk(&self, key: &str, kid: &str) -> Value {
        let mut jwk = self.jwks.get(key).unwrap_or_else(|| panic!("no key {key} was generated")).clone();
        jwk["kid"] = json!(kid);
        jwk
    }
}

async fn pyjwt(keys: &[&str], tokens: Vec<Value>) -> Minted {
    let spec = json!({ "secret": SECRET, "keys": keys, "tokens": tokens });
    let output = tokio::process::Command::new(python())
        .arg("-c")
        .arg(MINT)
        .arg(spec.to_string())
        .output()
        .await
        .expect("run the test virtualenv's Python");
    assert!(output.status.success(), "PyJWT failed: {}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).expect("PyJWT's output is JSON");
    let strings = |v: &Value| -> HashMap<String, Value> {
        v.as_object().expect("an object").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    Minted {
        tokens: strings(&out["tokens"])
            .into_iter()
            .map(|(k, v)| (k, v.as_str().expect("a token is a string").to_string()))
            .collect(),
        jwks: strings(&out["jwks"]),
    }
}

/// A token spec: signed `alg` with `key` under `kid`, valid for an hour, from our issuer.
fn signed(name: &str, alg: &str, key: &str, kid: &str, claims: Value) -> Value {
    let mut all = json!({"iss": ISSUER, "aud": AUDIENCE});
    all.as_object_mut().expect("an object").extend(claims.as_object().expect("claims are an object").clone());
    json!({"name": name, "alg": alg, "key": key, "kid": kid, "claims": all, "exp_in": 3600})
}

/// Starts makrcave. The harness builds a reqwest client before makrcave is built, and reqwest
/// (rustls without a provider of its own) panics unless a process-wide crypto provider is
/// installed: install ring first, so these tests do not depend on which test ran before.
async fn spawn(options: TestOptions) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    TestApp::spawn_with(options).await
}

fn options(jwks_url: &str) -> TestOptions {
    TestOptions {
        jwks_url: Some(jwks_url.to_string()),
        jwt_issuer: Some(ISSUER.to_string()),
        jwt_audience: Some(AUDIENCE.to_string()),
        ..Default::default()
    }
}

/// The `detail` of a refusal, checked to be a 401.
async fn refused(t: &TestApp, token: &str) -> String {
    let (status, body) = t.get("/api/v1/makerspaces", Some(token)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_type"], "unauthorized");
    body["detail"].as_str().expect("a detail").to_string()
}

#[actix_web::test]
async fn pyjwt_rs256_and_es256_tokens_are_accepted_next_to_hs256() {
    let minted = pyjwt(
        &[],
        vec![
            signed("rs", "RS256", "rsa", "rsa-1", json!({"sub": "root", "roles": ["super_admin"]})),
            signed("es", "ES256", "ec", "ec-1", json!({"sub": "root", "roles": ["super_admin"]})),
            // As Keycloak issues them: realm roles, a list audience, and claims we do not use.
            signed(
                "keycloak",
                "RS256",
                "rsa",
                "rsa-1",
                json!({
                    "sub": "5f0c1b9e-6f0e-4d8e-a1f4-3c2b7f9d1a20",
                    "aud": ["account", AUDIENCE],
                    "azp": "makrcave-dashboard",
                    "typ": "Bearer",
                    "preferred_username": "kim",
                    "realm_access": {"roles": ["offline_access", "uma_authorization", "makerspace_admin"]},
                    "makerspace_id": "kc-space",
                }),
            ),
        ],
    )
    .await;
    let mut rsa = minted.jwk("rsa", "rsa-1");
    rsa["alg"] = json!("RS256");
    rsa["use"] = json!("sig");
    // Keycloak also publishes an encryption key; it must be skipped, not break the set.
    let mut encryption = minted.jwk("rsa", "rsa-enc");
    encryption["alg"] = json!("RSA-OAEP");
    encryption["use"] = json!("enc");
    // The EC key without `alg` or `use`, as some providers publish them.
    let server = KeyServer::start(&[rsa, encryption, minted.jwk("ec", "ec-1")]).await;
    let t = spawn(options(&server.url)).await;

    for name in ["rs", "es"] {
        let (status, body) = t.get("/api/v1/makerspaces", Some(minted.token(name))).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, body) = t.get("/api/v1/makerspaces", Some(&t.super_admin())).await;
    assert_eq!(status, 200, "HS256: {body}");

    t.makerspace("kc-space").await;
    t.makerspace("other-space").await;
    let (status, body) = t.get("/api/v1/makerspaces/kc-space", Some(minted.token("keycloak"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "kc-space");
    let (status, body) = t.get("/api/v1/makerspaces/other-space", Some(minted.token("keycloak"))).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = t.get("/api/v1/makerspaces", Some(minted.token("keycloak"))).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body.as_array().expect("a list").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, vec!["kc-space"], "{body}");

    // Both kids came with the first fetch; every later token was verified from the cache.
    assert_eq!(server.requests(), 1);
    t.stop().await;
}

#[actix_web::test]
async fn bad_tokens_are_refused_with_the_reason() {
    let ok = json!({"sub": "root", "roles": ["super_admin"]});
    let minted = pyjwt(&[], vec![
        signed("good", "RS256", "rsa", "rsa-1", ok.clone()),
        json!({"name": "expired", "alg": "RS256", "key": "rsa", "kid": "rsa-1",
               "claims": {"sub": "root", "roles": ["super_admin"], "iss": ISSUER, "aud": AUDIENCE}, "exp_in": -3600}),
        signed("wrong-issuer", "RS256", "rsa", "rsa-1", json!({"sub": "root", "iss": "https://evil.example/realms/x"})),
        signed("wrong-audience", "ES256", "ec", "ec-1", json!({"sub": "root", "aud": "someone-else"})),
        signed("wrong-audiences", "RS256", "rsa", "rsa-1", json!({"sub": "root", "aud": ["account", "billing"]})),
        json!({"name": "no-issuer", "alg": "RS256", "key": "rsa", "kid": "rsa-1",
               "claims": {"sub": "root", "aud": AUDIENCE}, "exp_in": 3600}),
        json!({"name": "no-expiry", "alg": "RS256", "key": "rsa", "kid": "rsa-1",
               "claims": {"sub": "root", "iss": ISSUER, "aud": AUDIENCE}}),
        signed("no-subject", "RS256", "rsa", "rsa-1", json!({"roles": ["super_admin"]})),
        // Signed by a key the provider never published, under the kid of one it did.
        signed("forged", "RS256", "rogue", "rsa-1", ok.clone()),
        // Signed by the EC key, but naming the RSA key.
        signed("mismatched", "ES256", "ec", "rsa-1", ok.clone()),
        json!({"name": "no-kid", "alg": "RS256", "key": "rsa", "claims": {"sub": "root", "iss": ISSUER, "aud": AUDIENCE},
               "exp_in": 3600}),
        json!({"name": "none", "alg": "none", "claims": {"sub": "root", "roles": ["super_admin"]}, "exp_in": 3600}),
        json!({"name": "hs384", "alg": "HS384", "claims": {"sub": "root", "roles": ["super_admin"]}, "exp_in": 3600}),
    ])
    .await;
    let server = KeyServer::start(&[minted.jwk("rsa", "rsa-1"), minted.jwk("ec", "ec-1")]).await;
    let t = spawn(options(&server.url)).await;

    let (status, body) = t.get("/api/v1/makerspaces", Some(minted.token("good"))).await;
    assert_eq!(status, 200, "the well-formed token: {body}");
    for (name, reason) in [
        ("expired", "expired"),
        ("wrong-issuer", "issuer"),
        ("wrong-audience", "audience"),
        ("wrong-audiences", "audience"),
        ("no-issuer", "claim iss"),
        ("no-expiry", "claim exp"),
        ("no-subject", "claim sub"),
        ("forged", "signature"),
        ("mismatched", "algorithm does not match"),
        ("no-kid", "kid"),
        ("none", "algorithm"),
        ("hs384", "HS384"),
    ] {
        let detail = refused(&t, minted.token(name)).await;
        assert!(detail.contains(reason), "{name}: {detail:?} should mention {reason:?}");
    }
    // HS256 is still checked against the secret, and a bad one still says why.
    let expired = t.keys.mint("u", &[makrcave::domain::access::Role::Member], &[], chrono::Duration::hours(-3));
    assert!(refused(&t, &expired).await.contains("expired"));
    assert_eq!(server.requests(), 1, "no refusal above is a reason to fetch the keys again");
    t.stop().await;
}

#[actix_web::test]
async fn an_unknown_kid_refetches_the_key_set_at_most_once_per_interval() {
    let root = json!({"sub": "root", "roles": ["super_admin"]});
    let minted = pyjwt(
        &[],
        vec![
            signed("first", "RS256", "rsa", "rsa-1", root.clone()),
            signed("rotated", "RS256", "rsa-new", "rsa-2", root.clone()),
            signed("random-1", "RS256", "rogue", "made-up-1", root.clone()),
            signed("random-2", "ES256", "ec-rogue", "made-up-2", root.clone()),
            signed("random-3", "RS256", "rogue", "made-up-3", root.clone()),
        ],
    )
    .await;
    let server = KeyServer::start(&[minted.jwk("rsa", "rsa-1")]).await;
    // The default interval (a minute): nothing below waits for it.
    let t = spawn(options(&server.url)).await;
    assert_eq!(server.requests(), 0, "keys are fetched when first needed");

    let (status, body) = t.get("/api/v1/makerspaces", Some(minted.token("first"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.requests(), 1);

    // The provider rotates its keys after we loaded them: the new kid is fetched.
    server.add_key(minted.jwk("rsa-new", "rsa-2"));
    let (status, body) = t.get("/api/v1/makerspaces", Some(minted.token("rotated"))).await;
    assert_eq!(status, 200, "a key published after start is picked up: {body}");
    assert_eq!(server.requests(), 2);

    // A burst of made-up kids within the interval: refused, and no more fetches.
    for name in ["random-1", "random-2", "random-3"] {
        let detail = refused(&t, minted.token(name)).await;
        assert!(detail.contains("key set"), "{name}: {detail}");
    }
    assert_eq!(server.requests(), 2, "unknown kids within the interval must not re-fetch");
    // Known keys keep working from the cache meanwhile.
    for name in ["first", "rotated"] {
        let (status, body) = t.get("/api/v1/makerspaces", Some(minted.token(name))).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    assert_eq!(server.requests(), 2);
    t.stop().await;
}

#[actix_web::test]
async fn two_unknown_kids_in_a_row_cause_one_refetch() {
    // The key cache on its own, with the interval as a parameter rather than a minute.
    let keys = pyjwt(&["rsa"], vec![]).await;
    let server = KeyServer::start(&[keys.jwk("rsa", "rsa-1")]).await;
    // Long enough that two calls in a row fall within it even on a loaded machine.
    let interval = Duration::from_secs(1);
    let jwks = Jwks::new(&JwksConfig { min_refetch_interval: interval, ..JwksConfig::new(server.url.clone()) })
        .expect("a JWKS client");

    let key = jwks.key("rsa-1").await.expect("the published key");
    assert_eq!(key.algorithm, jsonwebtoken::Algorithm::RS256);
    assert_eq!(server.requests(), 1);

    // Taken before the re-fetch, so it is no later than the moment the interval starts.
    let refetched_at = Instant::now();
    assert!(matches!(jwks.key("made-up-1").await, Err(JwksError::UnknownKey(_))));
    assert_eq!(server.requests(), 2, "the first unknown kid re-fetches");
    assert!(matches!(jwks.key("made-up-2").await, Err(JwksError::UnknownKey(_))));
    assert!(matches!(jwks.key("rsa-2").await, Err(JwksError::UnknownKey(_))));

    // Once the interval has passed, an unknown kid re-fetches again and finds the new key.
    server.add_key(keys.jwk("rsa", "rsa-2"));
    eventually(Duration::from_secs(10), "the key published later to be fetched", || async {
        jwks.key("rsa-2").await.ok()
    })
    .await;
    assert!(refetched_at.elapsed() >= interval, "re-fetched {:?} after the last one", refetched_at.elapsed());
    assert_eq!(server.requests(), 3, "polling within the interval must not fetch");
}

#[actix_web::test]
async fn a_failing_key_server_is_not_asked_again_within_the_interval() {
    let keys = pyjwt(&["rsa"], vec![]).await;
    let server = KeyServer::start(&[]).await;
    server.set_body("<html>Keycloak is starting</html>");
    let interval = Duration::from_secs(1);
    let jwks = Jwks::new(&JwksConfig { min_refetch_interval: interval, ..JwksConfig::new(server.url.clone()) })
        .expect("a JWKS client");

    let error = jwks.key("rsa-1").await.err().expect("no key set yet");
    assert!(matches!(error, JwksError::NotAKeySet(_)), "{error}");
    assert!(error.is_key_server_fault());
    let error = jwks.key("rsa-1").await.err().expect("still no key set");
    assert!(matches!(error, JwksError::RecentlyFailed(_)), "{error}");
    assert_eq!(server.requests(), 1, "a failed fetch counts against the interval");

    server.set_body(&json!({"keys": [keys.jwk("rsa", "rsa-1")]}).to_string());
    eventually(Duration::from_secs(10), "the key server to be asked again", || async { jwks.key("rsa-1").await.ok() })
        .await;
    assert_eq!(server.requests(), 2);
}

#[actix_web::test]
async fn without_a_jwks_url_rs256_tokens_are_refused() {
    let minted =
        pyjwt(&[], vec![signed("rs", "RS256", "rsa", "rsa-1", json!({"sub": "root", "roles": ["super_admin"]}))]).await;
    let t = spawn(TestOptions::default()).await;
    let detail = refused(&t, minted.token("rs")).await;
    assert!(detail.contains("no JWKS URL is configured"), "{detail}");
    let (status, body) = t.get("/api/v1/makerspaces", Some(&t.super_admin())).await;
    assert_eq!(status, 200, "HS256: {body}");
    t.stop().await;
}

#[actix_web::test]
async fn an_unreachable_key_server_is_503_not_500() {
    let minted =
        pyjwt(&[], vec![signed("rs", "RS256", "rsa", "rsa-1", json!({"sub": "root", "roles": ["super_admin"]}))]).await;
    let url = format!("http://127.0.0.1:{}/realms/makrcave/protocol/openid-connect/certs", free_port());
    let t = spawn(options(&url)).await;
    for attempt in ["fetch fails", "within the interval after a failure"] {
        let (status, body) = t.get("/api/v1/makerspaces", Some(minted.token("rs"))).await;
        assert_eq!(status, 503, "{attempt}: {body}");
        assert_eq!(body["error_type"], "service_unavailable");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("cannot verify the token: the key server is unreachable"), "{attempt}: {detail}");
    }
    let (status, body) = t.get("/api/v1/makerspaces", Some(&t.super_admin())).await;
    assert_eq!(status, 200, "HS256 does not depend on the key server: {body}");
    t.stop().await;
}
