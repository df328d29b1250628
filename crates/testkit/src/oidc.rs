//! A stand-in OIDC issuer for tests: keys generated at run time (nothing committed), a local
//! discovery document and JWKS served over hyper, hit counters, and token minting. Used by
//! bqai-oidc's tests and by the API tests of `[auth] mode = "api_key+oidc"`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use rand_core::OsRng;
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const AUDIENCE: &str = "bqai-api";

/// A private key of the test issuer, with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// The public key as PEM (PKCS#1; RSA keys only): what an attacker has.
    pub public_pem: Option<String>,
}

// RSA key generation takes seconds in a debug build: one key pair, generated once per test
// binary and shared (each `TestKey` wraps it with its own kid). Tests that need a second,
// different key use P-256 keys, which are generated in microseconds.
static RSA: LazyLock<rsa::RsaPrivateKey> = LazyLock::new(new_rsa);

fn new_rsa() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("generate an RSA key")
}

impl TestKey {
    /// The test RSA key pair (RS256), named `kid`.
    pub fn rsa(kid: &str) -> Self {
        let key: &rsa::RsaPrivateKey = &RSA;
        let der = key.to_pkcs1_der().expect("PKCS#1 DER");
        let public = key.to_public_key();
        Self {
            kid: kid.to_string(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
            public_pem: Some(
                public
                    .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                    .expect("public PEM"),
            ),
        }
    }

    /// A fresh P-256 key pair (ES256), named `kid`.
    pub fn ec(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut OsRng);
        let der = secret.to_pkcs8_der().expect("PKCS#8 DER");
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            panic!("an uncompressed point has coordinates");
        };
        Self {
            kid: kid.to_string(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC",
                "use": "sig",
                "crv": "P-256",
                "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }),
            public_pem: None,
        }
    }

    /// The public JWK the issuer publishes.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// `claims` signed with this key, `kid` and `alg` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, &self.kid, claims)
    }

    /// `claims` signed with this key, with another `alg` or `kid` in the header.
    pub fn sign_as(&self, alg: Algorithm, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign a token")
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Claims of a valid token from `issuer`: analyst on `shop`, expiring in five minutes.
pub fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now(),
        "exp": now() + 300,
        "bqai_role": "analyst",
        "bqai_datasets": ["shop"],
    })
}

/// `claims` with `changes` merged in (`null` removes a claim).
pub fn with(mut claims: Value, changes: Value) -> Value {
    if let (Some(c), Value::Object(changes)) = (claims.as_object_mut(), changes) {
        for (k, v) in changes {
            if v.is_null() {
                c.remove(&k);
            } else {
                c.insert(k, v);
            }
        }
    }
    claims
}

/// Base64url (no padding), as in a JWT.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Default)]
struct State {
    keys: Vec<Value>,
    /// Answer 503 to everything.
    down: bool,
    /// Hold each JWKS response this long.
    jwks_delay: Duration,
    /// The `issuer` the discovery document names (default: the server's own URL).
    discovery_issuer: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    base_url: String,
}

/// The stand-in issuer: `GET /.well-known/openid-configuration` and `GET /jwks`.
pub struct Issuer {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Issuer {
    /// Starts on 127.0.0.1 on a free port, publishing `keys`.
    pub async fn start(keys: &[&TestKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the issuer");
        let addr: SocketAddr = listener.local_addr().expect("issuer address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                keys: keys.iter().map(|k| k.jwk()).collect(),
                ..State::default()
            }),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            base_url: format!("http://{addr}"),
        });
        let (shutdown, stop) = watch::channel(false);
        let state = Arc::clone(&shared);
        tokio::spawn(crate::serve::serve(
            listener,
            move |req| handle(Arc::clone(&state), req),
            stop,
        ));
        Self { shared, shutdown }
    }

    /// The issuer URL (`iss`), `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.shared.base_url)
    }

    pub fn jwks_hits(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.shared.discovery_hits.load(Ordering::SeqCst)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("issuer state")
    }

    /// Publishes one more key (a rotation).
    pub fn add_key(&self, key: &TestKey) {
        self.state().keys.push(key.jwk());
    }

    /// Publishes one more raw JWK.
    pub fn add_raw_jwk(&self, jwk: Value) {
        self.state().keys.push(jwk);
    }

    /// Publishes exactly `keys`.
    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.state().keys = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    pub fn set_jwks_delay(&self, delay: Duration) {
        self.state().jwks_delay = delay;
    }

    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.state().discovery_issuer = Some(issuer.to_string());
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A URL on 127.0.0.1 where nothing listens (connection refused).
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{addr}")
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (down, delay, body) = {
        let state = shared.state.lock().expect("issuer state");
        let body = match req.uri().path() {
            "/.well-known/openid-configuration" => {
                shared.discovery_hits.fetch_add(1, Ordering::SeqCst);
                Some(json!({
                    "issuer": state.discovery_issuer.clone().unwrap_or_else(|| shared.base_url.clone()),
                    "jwks_uri": format!("{}/jwks", shared.base_url),
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                }))
            }
            "/jwks" => {
                shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
                Some(json!({ "keys": state.keys }))
            }
            _ => None,
        };
        (state.down, state.jwks_delay, body)
    };
    if req.uri().path() == "/jwks" && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, body) = match body {
        _ if down => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "down"})),
        Some(body) => (StatusCode::OK, body),
        None => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    Ok(response)
}
