//! The `[auth.oidc]` settings ([`OidcConfig`]) and their checks.
//!
//! Everything has a default except `issuer` and `audience`; [`OidcConfig::validate`] names
//! the setting to fix. Algorithms are plain strings here (not `jsonwebtoken` types) so the
//! binary's configuration does not depend on the JWT library, and so `"none"` or `"HS256"`
//! get a clear refusal instead of a serde "unknown variant" message.

use std::net::IpAddr;
use std::time::Duration;

use bqai_core::Error;
use bqai_core::model::Role;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The claim naming the role, unless configured.
pub const DEFAULT_ROLE_CLAIM: &str = "bqai_role";
/// The claim listing the datasets, unless configured.
pub const DEFAULT_DATASETS_CLAIM: &str = "bqai_datasets";

/// How bearer tokens of one OIDC issuer are checked and turned into principals.
///
/// `#[serde(default)]`: every field may be left out, but [`OidcConfig::validate`] (called by
/// [`crate::OidcVerifier::new`]) refuses an empty `issuer` or `audience`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer, exactly as tokens carry it in `iss` (`https://login.example.com/realms/x`).
    /// Required. Must be `https`, or `http` to a loopback host (development, tests).
    pub issuer: String,
    /// The audience bqai expects: a token's `aud` (a string or an array) must contain it.
    /// Required.
    pub audience: String,
    /// Where the signing keys are. `None`: discovered from
    /// `{issuer}/.well-known/openid-configuration` (its `jwks_uri`). Same scheme rule as
    /// `issuer`.
    pub jwks_url: Option<String>,
    /// The claim holding the role (`admin`, `analyst`, `viewer`). A claim of that exact name
    /// is used first; otherwise a dotted name is a path into nested objects
    /// (`realm_access.role`). The value may be a string, or an array of which the recognised
    /// entries count (the most privileged wins). Default `bqai_role`.
    pub role_claim: String,
    /// The claim listing the datasets the caller may read: an array of strings, or one string
    /// separated by spaces or commas; `*` means all (still inside the service's allow-list).
    /// Missing means none. Same lookup as `role_claim`. Default `bqai_datasets`.
    pub datasets_claim: String,
    /// The role of a token without a role claim. `None` (default): such tokens are refused.
    pub default_role: Option<Role>,
    /// Accepted signature algorithms. Default `["RS256", "ES256"]`; also possible: `RS384`,
    /// `RS512`, `PS256`, `PS384`, `PS512`, `ES384`, `EdDSA`. `none` and the HMAC algorithms
    /// (`HS*`) are refused: bqai shares no secret with the issuer.
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds. Default 30.
    pub leeway_secs: u64,
    /// Rate limit of the key set refetches, in seconds. A token naming an unknown key id
    /// triggers a refetch only when the last such refetch is older than this, so a flood of
    /// made-up key ids costs the issuer one request per interval; after a failed fetch,
    /// nothing is fetched for this long either. Default 30.
    pub jwks_refresh_min_interval_secs: u64,
    /// How long a fetched key set is used before it is fetched again, in seconds. Default
    /// 3600.
    pub jwks_cache_ttl_secs: u64,
    /// Deadline of one request to the issuer (discovery or key set), in milliseconds.
    /// Default 5000.
    pub http_timeout_ms: u64,
    /// Requests per minute of every token principal; `None` uses the server's default.
    pub rate_limit_per_minute: Option<u32>,
    /// Bytes billed per UTC day for every token principal; `None` means no quota.
    pub daily_byte_quota: Option<u64>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: String::new(),
            jwks_url: None,
            role_claim: DEFAULT_ROLE_CLAIM.to_string(),
            datasets_claim: DEFAULT_DATASETS_CLAIM.to_string(),
            default_role: None,
            algorithms: vec!["RS256".to_string(), "ES256".to_string()],
            leeway_secs: 30,
            jwks_refresh_min_interval_secs: 30,
            jwks_cache_ttl_secs: 3600,
            http_timeout_ms: 5000,
            rate_limit_per_minute: None,
            daily_byte_quota: None,
        }
    }
}

/// The most leeway accepted: more would make `exp` meaningless.
const MAX_LEEWAY_SECS: u64 = 600;

impl OidcConfig {
    /// Settings for `issuer` and `audience`, everything else at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            ..Self::default()
        }
    }

    /// Checks the settings; the error is an [`Error::InvalidRequest`] naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        self.algorithms()?;
        if self.issuer.trim().is_empty() {
            return invalid("issuer is required");
        }
        if self.issuer.trim() != self.issuer {
            return invalid("issuer has leading or trailing spaces");
        }
        check_url("issuer", &self.issuer)?;
        if let Some(url) = &self.jwks_url {
            check_url("jwks_url", url)?;
        }
        if self.audience.trim().is_empty() {
            return invalid("audience is required");
        }
        if claim_path_is_blank(&self.role_claim) {
            return invalid("role_claim must name a claim");
        }
        if claim_path_is_blank(&self.datasets_claim) {
            return invalid("datasets_claim must name a claim");
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return invalid(&format!("leeway_secs must be at most {MAX_LEEWAY_SECS}"));
        }
        if self.jwks_cache_ttl_secs == 0 {
            return invalid("jwks_cache_ttl_secs must be greater than 0");
        }
        if self.http_timeout_ms == 0 {
            return invalid("http_timeout_ms must be greater than 0");
        }
        if self.rate_limit_per_minute == Some(0) {
            return invalid(
                "rate_limit_per_minute must be at least 1 (leave it out for the default)",
            );
        }
        Ok(())
    }

    /// The accepted algorithms, parsed; refuses `none`, HMAC and unknown names.
    pub(crate) fn algorithms(&self) -> Result<Vec<Algorithm>, Error> {
        if self.algorithms.is_empty() {
            return invalid("algorithms must list at least one algorithm");
        }
        let mut out = Vec::with_capacity(self.algorithms.len());
        for name in &self.algorithms {
            if name.eq_ignore_ascii_case("none") {
                return invalid("algorithms: `none` (unsigned tokens) is never accepted");
            }
            let alg: Algorithm = match name.parse() {
                Ok(alg) => alg,
                Err(_) => {
                    return invalid(&format!(
                        "algorithms: unknown algorithm {name:?} (expected RS256, RS384, RS512, \
                         PS256, PS384, PS512, ES256, ES384 or EdDSA)"
                    ));
                }
            };
            if alg.family() == AlgorithmFamily::Hmac {
                return invalid(&format!(
                    "algorithms: {name} needs a secret shared with the issuer; only public-key \
                     algorithms are accepted"
                ));
            }
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        Ok(out)
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub(crate) fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }

    pub(crate) fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }
}

fn invalid<T>(msg: &str) -> Result<T, Error> {
    Err(Error::InvalidRequest(format!("auth.oidc: {msg}")))
}

fn claim_path_is_blank(path: &str) -> bool {
    path.trim().is_empty() || path.split('.').all(|part| part.trim().is_empty())
}

fn check_url(setting: &str, url: &str) -> Result<(), Error> {
    match Url::parse(url) {
        Ok(u) if u.host().is_some() && is_secure(&u) => Ok(()),
        Ok(u) if u.host().is_some() && u.scheme() == "http" => invalid(&format!(
            "{setting} {url:?} must use https (plain http is accepted for loopback hosts only): \
             keys fetched over http could be swapped in transit"
        )),
        _ => invalid(&format!("{setting} {url:?} is not an https URL")),
    }
}

/// Whether keys may be fetched from `url`: `https`, or `http` to a loopback host.
pub(crate) fn is_secure(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        OidcConfig::new("https://idp.example.com/realms/bqai", "bqai")
    }

    fn message(c: &OidcConfig) -> String {
        match c.validate() {
            Err(Error::InvalidRequest(m)) => m,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_as_documented() {
        let c = OidcConfig::default();
        assert_eq!(c.role_claim, "bqai_role");
        assert_eq!(c.datasets_claim, "bqai_datasets");
        assert_eq!(c.algorithms, vec!["RS256", "ES256"]);
        assert_eq!(c.leeway_secs, 30);
        assert_eq!(c.jwks_refresh_min_interval_secs, 30);
        assert_eq!(c.jwks_cache_ttl_secs, 3600);
        assert_eq!(c.http_timeout_ms, 5000);
        assert_eq!(c.default_role, None);
        assert!(config().validate().is_ok());
    }

    #[test]
    fn deserializes_with_defaults_and_refuses_unknown_fields() {
        let c: OidcConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "audience": "bqai",
            "default_role": "viewer",
        }))
        .unwrap();
        assert_eq!(c.default_role, Some(Role::Viewer));
        assert_eq!(c.jwks_cache_ttl_secs, 3600);
        let err = serde_json::from_value::<OidcConfig>(serde_json::json!({
            "issuer": "https://idp.example.com",
            "audiance": "bqai",
        }))
        .unwrap_err();
        assert!(err.to_string().contains("audiance"), "{err}");
    }

    #[test]
    fn issuer_and_audience_are_required() {
        assert!(message(&OidcConfig::default()).contains("issuer is required"));
        let mut c = config();
        c.audience = " ".into();
        assert!(message(&c).contains("audience is required"));
    }

    #[test]
    fn refuses_none_hmac_and_unknown_algorithms() {
        for (alg, expect) in [
            ("none", "never accepted"),
            ("HS256", "shared"),
            ("HS512", "shared"),
            ("RS1024", "unknown algorithm"),
        ] {
            let mut c = config();
            c.algorithms = vec!["RS256".into(), alg.into()];
            let m = message(&c);
            assert!(m.contains(expect), "{alg}: {m}");
        }
        let mut c = config();
        c.algorithms.clear();
        assert!(message(&c).contains("at least one"));
        c.algorithms = vec!["PS256".into(), "EdDSA".into(), "ES384".into()];
        assert!(c.validate().is_ok());
    }

    #[test]
    fn urls_must_be_https_unless_loopback() {
        let mut c = config();
        c.issuer = "http://idp.example.com".into();
        assert!(message(&c).contains("must use https"));
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:9000/realms/x",
            "http://[::1]:1",
        ] {
            c.issuer = ok.into();
            assert!(c.validate().is_ok(), "{ok}");
        }
        c.jwks_url = Some("ftp://idp.example.com/keys".into());
        assert!(message(&c).contains("jwks_url"));
        c.jwks_url = Some("not a url".into());
        assert!(message(&c).contains("jwks_url"));
    }

    #[test]
    fn limits_are_checked() {
        let mut c = config();
        c.http_timeout_ms = 0;
        assert!(message(&c).contains("http_timeout_ms"));
        let mut c = config();
        c.jwks_cache_ttl_secs = 0;
        assert!(message(&c).contains("jwks_cache_ttl_secs"));
        let mut c = config();
        c.leeway_secs = 601;
        assert!(message(&c).contains("leeway_secs"));
        let mut c = config();
        c.role_claim = " . ".into();
        assert!(message(&c).contains("role_claim"));
        let mut c = config();
        c.rate_limit_per_minute = Some(0);
        assert!(message(&c).contains("rate_limit_per_minute"));
    }

    #[test]
    fn discovery_url_ignores_a_trailing_slash() {
        let mut c = config();
        c.issuer = "https://idp.example.com/".into();
        assert_eq!(
            c.discovery_url(),
            "https://idp.example.com/.well-known/openid-configuration"
        );
    }
}
