//! [`OidcVerifier`]: the [`TokenVerifier`] of one OIDC issuer.
//!
//! The order of the checks, and why:
//!
//! 1. **Size** (16 KiB at most) before any parsing, so a huge header costs nothing.
//! 2. **The header, read by hand** (not trusted, only classified): `alg: none` and algorithms
//!    outside the configured list (HMAC above all: the classic RS256→HS256 confusion, where
//!    the public key is used as an HMAC secret) are refused with a precise message; a `crit`
//!    header is refused (bqai understands no extension); a `kid` is required.
//! 3. **The key** named by `kid` from the issuer's key set ([`crate::jwks`]), which must fit
//!    the token's `alg`: same family, the JWK's own `alg` if it names one, the right curve.
//! 4. **jsonwebtoken's `decode`** with exactly that one algorithm: signature, then `exp`
//!    (required), `nbf`, `iss`, `aud` (required, must contain the audience), with the
//!    configured leeway.
//! 5. **The claims** become the principal ([`crate::claims`]).
//!
//! Every refusal is `Unauthenticated` with a message that says what is wrong and never
//! echoes the token; only a key set that cannot be fetched is `Unavailable`.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bqai_core::auth::TokenVerifier;
use bqai_core::model::Principal;
use bqai_core::{Error, Result};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::claims::ClaimRules;
use crate::config::OidcConfig;
use crate::jwks::KeyCache;

/// The largest token looked at (bytes). Real ID/access tokens are a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The longest `kid` accepted.
const MAX_KID_CHARS: usize = 256;

/// Verifies the bearer tokens (JWTs) of one OIDC issuer against its published keys.
///
/// Cheap to share (`Arc<OidcVerifier>` as `Arc<dyn TokenVerifier>`); all requests share one
/// key cache. Construction does no IO: the keys are fetched on the first token.
pub struct OidcVerifier {
    issuer: String,
    algorithms: Vec<Algorithm>,
    validation: Validation,
    keys: KeyCache,
    rules: ClaimRules,
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.issuer)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// A verifier for `config` ([`OidcConfig::validate`] first: an invalid setting is an
    /// [`Error::InvalidRequest`] naming it). No network access.
    pub fn new(config: OidcConfig) -> Result<Self> {
        config.validate()?;
        let algorithms = config.algorithms()?;
        let mut validation = Validation::new(algorithms[0]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = config.leeway_secs;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        Ok(Self {
            issuer: config.issuer.clone(),
            keys: KeyCache::new(&config)?,
            rules: ClaimRules::new(&config),
            algorithms,
            validation,
        })
    }

    /// The header fields that decide which key and algorithm to use.
    fn classify(&self, token: &str) -> Result<(Algorithm, String)> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unauthenticated("malformed token: expected a signed JWT"));
        };
        let header: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| unauthenticated("malformed token header"))?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            _ => return Err(unauthenticated("token header has no algorithm (alg)")),
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(unauthenticated(
                "unsigned tokens (alg none) are not accepted",
            ));
        }
        let Ok(alg) = Algorithm::from_str(alg) else {
            return Err(unauthenticated("unsupported token algorithm"));
        };
        if !self.algorithms.contains(&alg) {
            return Err(unauthenticated(&format!(
                "token algorithm {alg:?} is not accepted"
            )));
        }
        if header.contains_key("crit") {
            return Err(unauthenticated(
                "token has critical header parameters (crit) bqai does not support",
            ));
        }
        let kid = match header.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() && kid.chars().count() <= MAX_KID_CHARS => {
                kid.clone()
            }
            Some(_) => return Err(unauthenticated("token key id (kid) is malformed")),
            None => return Err(unauthenticated("token has no key id (kid)")),
        };
        Ok((alg, kid))
    }
}

#[async_trait]
impl TokenVerifier for OidcVerifier {
    async fn verify(&self, token: &str) -> Result<Principal> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated(&format!(
                "token too large (more than {MAX_TOKEN_BYTES} bytes)"
            )));
        }
        let (alg, kid) = self.classify(token)?;
        let key = self.keys.key(&kid).await?;
        if !key.fits(alg) {
            return Err(unauthenticated(
                "token algorithm does not match its signing key",
            ));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| jwt_error(e.into_kind()))?;
        self.rules.principal(&data.claims)
    }
}

/// A safe, precise message for each of jsonwebtoken's refusals.
fn jwt_error(kind: ErrorKind) -> Error {
    let msg = match kind {
        ErrorKind::InvalidSignature => "invalid token signature".to_string(),
        ErrorKind::ExpiredSignature => "token expired".to_string(),
        ErrorKind::ImmatureSignature => "token not yet valid (nbf)".to_string(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
        ErrorKind::InvalidAudience => "wrong audience".to_string(),
        // Only the names we asked for ("exp", "iss", "aud", "sub") come back here; a claim
        // of the wrong type (`"exp": "tomorrow"`) counts as missing.
        ErrorKind::MissingRequiredClaim(claim) => format!("token has no valid `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim `{claim}` is malformed"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "token algorithm does not match its signing key".to_string()
        }
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => {
            tracing::warn!(error = ?kind, "an OIDC signing key could not be used");
            "the token's signing key is unusable".to_string()
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token".to_string(),
        _ => "invalid token".to_string(),
    };
    Error::Unauthenticated(msg)
}

fn unauthenticated(msg: &str) -> Error {
    Error::Unauthenticated(msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> OidcVerifier {
        OidcVerifier::new(OidcConfig::new("https://idp.example.com", "bqai")).unwrap()
    }

    fn header(json: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(json))
    }

    fn message(r: Result<(Algorithm, String)>) -> String {
        match r {
            Err(Error::Unauthenticated(m)) => m,
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    #[test]
    fn the_header_is_classified_before_any_key_is_fetched() {
        let v = verifier();
        assert_eq!(
            v.classify(&header(r#"{"alg":"RS256","kid":"k1"}"#))
                .unwrap(),
            (Algorithm::RS256, "k1".to_string())
        );
        let m = message(v.classify(&header(r#"{"alg":"none","kid":"k1"}"#)));
        assert!(m.contains("alg none"), "{m}");
        let m = message(v.classify(&header(r#"{"alg":"HS256","kid":"k1"}"#)));
        assert_eq!(m, "token algorithm HS256 is not accepted");
        let m = message(v.classify(&header(r#"{"alg":"PS256","kid":"k1"}"#)));
        assert_eq!(m, "token algorithm PS256 is not accepted");
        let m = message(v.classify(&header(r#"{"alg":"XYZ9","kid":"k1"}"#)));
        assert_eq!(m, "unsupported token algorithm");
        let m = message(v.classify(&header(r#"{"alg":"RS256"}"#)));
        assert!(m.contains("no key id"), "{m}");
        let m = message(v.classify(&header(r#"{"alg":"RS256","kid":5}"#)));
        assert!(m.contains("malformed"), "{m}");
        let m = message(v.classify(&header(r#"{"alg":"RS256","kid":"k","crit":["b64"]}"#)));
        assert!(m.contains("crit"), "{m}");
        let m = message(v.classify("a.b"));
        assert!(m.contains("malformed token"), "{m}");
        let m = message(v.classify("a.b.c.d.e"));
        assert!(m.contains("malformed token"), "{m}");
        let m = message(v.classify("!!!.e30.c2ln"));
        assert!(m.contains("malformed token header"), "{m}");
    }

    #[test]
    fn debug_shows_no_keys() {
        let s = format!("{:?}", verifier());
        assert!(s.contains("https://idp.example.com"), "{s}");
    }
}
