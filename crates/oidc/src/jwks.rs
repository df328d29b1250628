//! The issuer's signing keys: fetched (after discovery, when no `jwks_url` is configured),
//! cached, and refreshed under a policy that protects both bqai and the issuer.
//!
//! # Refresh policy
//!
//! - **Lazily, on demand.** Nothing is fetched at construction; the first token fetches.
//! - **Cached for `jwks_cache_ttl_secs`.** A token whose `kid` is in a fresh key set costs no
//!   request. After the TTL the next token refetches, so keys the issuer withdrew stop being
//!   accepted.
//! - **An unknown `kid` refetches** — that is how a rotated-in key is picked up before the
//!   TTL — **but at most once per `jwks_refresh_min_interval_secs`**: a flood of tokens with
//!   made-up key ids costs the issuer one request per interval, never one per token. Within
//!   the interval an unknown `kid` is refused at once ("unknown signing key").
//! - **Failures back off.** After a failed fetch, no fetch of any kind is made for the same
//!   interval; requests meanwhile get the last failure at once (or the previous keys, see
//!   below) instead of queueing behind timeouts and hammering an issuer that is down.
//!
//! So the issuer sees at most about one fetch per interval for unknown key ids, one per TTL
//! for the routine refresh, and none while backing off.
//! - **Coalesced.** One fetch runs at a time (a `tokio` mutex). A request that waited while
//!   another request fetched takes that fetch's outcome rather than starting its own, so a
//!   hundred requests arriving with a new key id cause one fetch.
//! - **Degrade, don't fail, on a failed refresh.** When a refresh after the TTL fails, the
//!   previous keys stay in use (and the failure is logged) until a later refresh succeeds;
//!   when there are no keys at all, the request fails with `Unavailable` (503), never with
//!   `Unauthenticated`: the caller's token may be perfectly good.
//! - **Cancellation-safe.** The outcome of a fetch is recorded only when it completes; a
//!   request dropped mid-fetch (a client hanging up) leaves the state as it was, and the next
//!   waiter fetches.
//!
//! # What is kept from a key set
//!
//! Only public signature keys: RSA, EC (P-256, P-384) and OKP (Ed25519) keys with a `kid`,
//! whose `use` (if any) is `sig` and whose `alg` (if any) is a signature algorithm.
//! Symmetric (`oct`) keys are dropped, so an HMAC key published by mistake can never verify
//! anything. A key that does not parse is skipped (and logged), not fatal for the set; a set
//! with no usable key counts as a failed fetch. Bodies are capped at 1 MiB.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bqai_core::{Error, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use reqwest::Url;
use serde::Deserialize;

use crate::config::{OidcConfig, is_secure};

/// How `Unavailable` names the issuer to clients.
pub(crate) const IDENTITY_PROVIDER: &str = "the identity provider";

/// The largest discovery document or key set read.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One public signing key of the issuer.
#[derive(Debug)]
pub(crate) struct SigningKey {
    pub(crate) decoding: DecodingKey,
    /// The JWK's own `alg`, when it names one: the only algorithm it may verify.
    pub(crate) alg: Option<Algorithm>,
    /// The EC or OKP curve.
    pub(crate) curve: Option<EllipticCurve>,
}

impl SigningKey {
    /// Whether this key may verify a signature made with `alg`: same family, the key's own
    /// `alg` if it names one, and the curve the algorithm is defined on.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        if self.decoding.family() != alg.family() {
            return false;
        }
        if self.alg.is_some_and(|own| own != alg) {
            return false;
        }
        match alg {
            Algorithm::ES256 => self.curve == Some(EllipticCurve::P256),
            Algorithm::ES384 => self.curve == Some(EllipticCurve::P384),
            Algorithm::EdDSA => self.curve == Some(EllipticCurve::Ed25519),
            _ => true,
        }
    }

    /// The key a JWK describes, if it is a public signature key this crate can use.
    fn from_jwk(jwk: &Jwk) -> std::result::Result<Self, String> {
        if let Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)) = &jwk.common.public_key_use
        {
            return Err("not a signature key (use)".into());
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => Some(signature_alg(a).ok_or("not a signature algorithm (alg)")?),
        };
        let curve = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => None,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 | EllipticCurve::P384 => Some(p.curve.clone()),
                _ => return Err("unsupported EC curve".into()),
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => Some(p.curve.clone()),
                _ => return Err("unsupported OKP curve".into()),
            },
            AlgorithmParameters::OctetKey(_) => {
                return Err("symmetric keys are never used".into());
            }
            _ => return Err("unsupported key type".into()),
        };
        let decoding = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        if decoding.family() == AlgorithmFamily::Hmac {
            return Err("symmetric keys are never used".into());
        }
        let key = SigningKey {
            decoding,
            alg,
            curve,
        };
        if let Some(a) = alg
            && !key.fits(a)
        {
            return Err(format!("its alg {a:?} does not match its key type"));
        }
        Ok(key)
    }
}

fn signature_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The keys of one successful fetch.
struct KeySet {
    keys: HashMap<String, Arc<SigningKey>>,
    fetched_at: Instant,
}

/// Bookkeeping of the fetches; only touched under the fetch mutex.
#[derive(Default)]
struct FetchState {
    /// When the last fetch triggered by an unknown `kid` finished.
    last_kid_refetch: Option<Instant>,
    /// When the last failed fetch finished.
    last_failure: Option<Instant>,
    /// Why the last fetch failed (for logs and `Unavailable`'s cause).
    last_error: Option<String>,
    /// The `jwks_uri` discovery found, kept until a fetch from it fails.
    discovered: Option<Url>,
}

/// The issuer's keys, fetched and cached under the policy in the module docs.
pub(crate) struct KeyCache {
    http: reqwest::Client,
    issuer: String,
    discovery_url: String,
    jwks_url: Option<Url>,
    ttl: Duration,
    min_interval: Duration,
    current: RwLock<Option<Arc<KeySet>>>,
    fetch: tokio::sync::Mutex<FetchState>,
    /// Completed fetches (successful or not): a request that waited for the mutex and finds
    /// this changed takes that fetch's outcome instead of fetching again.
    completed: AtomicU64,
}

enum Need {
    /// No key set yet (cold start, or every fetch failed).
    Keys,
    /// The key set is older than the TTL.
    Refresh,
    /// The key set is fresh but lacks the `kid`.
    UnknownKid,
}

impl KeyCache {
    pub(crate) fn new(config: &OidcConfig) -> Result<Self> {
        let jwks_url = match &config.jwks_url {
            Some(u) => Some(Url::parse(u).map_err(|e| {
                Error::InvalidRequest(format!("auth.oidc: jwks_url {u:?} is not a URL: {e}"))
            })?),
            None => None,
        };
        let timeout = config.http_timeout();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("bqai-oidc/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 3 {
                    attempt.error("too many redirects")
                } else if !is_secure(attempt.url()) {
                    attempt.error("redirect to a URL that is neither https nor loopback")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| Error::internal("building the OIDC HTTP client", e))?;
        Ok(Self {
            http,
            issuer: config.issuer.clone(),
            discovery_url: config.discovery_url(),
            jwks_url,
            ttl: Duration::from_secs(config.jwks_cache_ttl_secs),
            min_interval: Duration::from_secs(config.jwks_refresh_min_interval_secs),
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            completed: AtomicU64::new(0),
        })
    }

    /// The key named `kid`: `Unauthenticated("unknown signing key")` when the issuer does
    /// not publish it, `Unavailable` when its keys cannot be had at all.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<SigningKey>> {
        let seen = self.completed.load(Ordering::Acquire);
        let need = match self.snapshot() {
            None => Need::Keys,
            Some(set) if set.fetched_at.elapsed() >= self.ttl => Need::Refresh,
            Some(set) => match set.keys.get(kid) {
                Some(key) => return Ok(key.clone()),
                None => Need::UnknownKid,
            },
        };
        let mut state = self.fetch.lock().await;
        let fetched_meanwhile = self.completed.load(Ordering::Acquire) != seen;
        let recent = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < self.min_interval);
        let backing_off = recent(state.last_failure)
            || (matches!(need, Need::UnknownKid) && recent(state.last_kid_refetch));
        if !fetched_meanwhile && !backing_off {
            let why = match need {
                Need::Keys => "no keys yet",
                Need::Refresh => "keys older than the cache TTL",
                Need::UnknownKid => "unknown key id",
            };
            self.refresh(&mut state, why).await;
            if matches!(need, Need::UnknownKid) {
                state.last_kid_refetch = Some(Instant::now());
            }
        }
        self.lookup(kid, &state)
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn lookup(&self, kid: &str, state: &FetchState) -> Result<Arc<SigningKey>> {
        match self.snapshot() {
            Some(set) => set
                .keys
                .get(kid)
                .cloned()
                .ok_or_else(|| match &state.last_error {
                    // The issuer could not be asked whether it has rotated to this key: the
                    // caller should retry, not throw away a token that may be good.
                    Some(e) => Error::unavailable(IDENTITY_PROVIDER, e.clone()),
                    None => Error::Unauthenticated("unknown signing key".into()),
                }),
            None => Err(Error::unavailable(
                IDENTITY_PROVIDER,
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the signing keys have not been fetched".into()),
            )),
        }
    }

    /// One fetch; its outcome is recorded when (and only if) it completes.
    async fn refresh(&self, state: &mut FetchState, why: &str) {
        let outcome = self.fetch_key_set(state).await;
        match outcome {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, reason = why, keys = set.keys.len(), "fetched the OIDC signing keys");
                let set = Arc::new(set);
                match self.current.write() {
                    Ok(mut guard) => *guard = Some(set),
                    Err(poisoned) => *poisoned.into_inner() = Some(set),
                }
                state.last_error = None;
            }
            Err(e) => {
                let stale = self.snapshot().is_some();
                tracing::warn!(issuer = %self.issuer, reason = why, error = %e, keeping_previous_keys = stale, "could not fetch the OIDC signing keys");
                state.last_error = Some(e);
                state.last_failure = Some(Instant::now());
            }
        }
        self.completed.fetch_add(1, Ordering::AcqRel);
    }

    async fn fetch_key_set(&self, state: &mut FetchState) -> std::result::Result<KeySet, String> {
        let url = match (&self.jwks_url, &state.discovered) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => {
                let url = self.discover().await?;
                state.discovered = Some(url.clone());
                url
            }
        };
        let result = self.fetch_jwks(&url).await;
        if result.is_err() && self.jwks_url.is_none() {
            // The issuer may have moved its keys: discover again next time.
            state.discovered = None;
        }
        result
    }

    async fn discover(&self) -> std::result::Result<Url, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: Option<String>,
            jwks_uri: Option<String>,
        }
        let body = self.get(&self.discovery_url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("{}: not a discovery document: {e}", self.discovery_url))?;
        // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be ours exactly.
        if doc.issuer.as_deref() != Some(self.issuer.as_str()) {
            return Err(format!(
                "{}: the discovery document names issuer {:?}, expected {:?}",
                self.discovery_url, doc.issuer, self.issuer
            ));
        }
        let raw = doc.jwks_uri.ok_or_else(|| {
            format!(
                "{}: the discovery document has no jwks_uri",
                self.discovery_url
            )
        })?;
        let url = Url::parse(&raw)
            .map_err(|e| format!("{}: jwks_uri {raw:?} is not a URL: {e}", self.discovery_url))?;
        if !is_secure(&url) {
            return Err(format!(
                "{}: jwks_uri {raw:?} is neither https nor loopback",
                self.discovery_url
            ));
        }
        Ok(url)
    }

    async fn fetch_jwks(&self, url: &Url) -> std::result::Result<KeySet, String> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let body = self.get(url.as_str()).await?;
        let raw: RawSet =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: not a JWK set: {e}"))?;
        let mut keys = HashMap::new();
        for value in raw.keys {
            let jwk: Jwk = match serde_json::from_value(value) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(%url, error = %e, "skipping a JWK that does not parse");
                    continue;
                }
            };
            let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else {
                tracing::debug!(%url, "skipping a JWK without kid");
                continue;
            };
            match SigningKey::from_jwk(&jwk) {
                Ok(key) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(e) => tracing::debug!(%url, %kid, reason = %e, "skipping a JWK"),
            }
        }
        if keys.is_empty() {
            return Err(format!("{url}: the key set holds no usable signing key"));
        }
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }

    /// GET `url` → body (2xx only, at most [`MAX_BODY_BYTES`]).
    async fn get(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(format!("{url}: body larger than {MAX_BODY_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(format!("{url}: body larger than {MAX_BODY_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn symmetric_and_encryption_keys_are_dropped() {
        let oct = jwk(serde_json::json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}));
        assert!(SigningKey::from_jwk(&oct).is_err());
        let enc = jwk(
            serde_json::json!({"kty": "EC", "kid": "e", "use": "enc", "crv": "P-256", "x": X, "y": Y}),
        );
        assert!(SigningKey::from_jwk(&enc).is_err());
        let rsa_oaep = jwk(
            serde_json::json!({"kty": "EC", "kid": "e", "alg": "RSA-OAEP", "crv": "P-256", "x": X, "y": Y}),
        );
        assert!(SigningKey::from_jwk(&rsa_oaep).is_err());
    }

    #[test]
    fn a_key_fits_only_its_family_alg_and_curve() {
        let ec = SigningKey::from_jwk(&jwk(
            serde_json::json!({"kty": "EC", "kid": "e", "use": "sig", "crv": "P-256", "x": X, "y": Y}),
        ))
        .unwrap();
        assert!(ec.fits(Algorithm::ES256));
        assert!(!ec.fits(Algorithm::ES384));
        assert!(!ec.fits(Algorithm::RS256));
        assert!(!ec.fits(Algorithm::HS256));

        let rsa = SigningKey::from_jwk(&jwk(
            serde_json::json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": "AQAB", "e": "AQAB"}),
        ))
        .unwrap();
        assert!(rsa.fits(Algorithm::RS256));
        assert!(!rsa.fits(Algorithm::PS256), "the key's own alg binds it");
        assert!(!rsa.fits(Algorithm::ES256));
        assert!(!rsa.fits(Algorithm::HS256));

        let mismatched = jwk(
            serde_json::json!({"kty": "EC", "kid": "m", "alg": "RS256", "crv": "P-256", "x": X, "y": Y}),
        );
        assert!(SigningKey::from_jwk(&mismatched).is_err());
    }
}
