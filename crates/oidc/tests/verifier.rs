//! `OidcVerifier` against a stand-in issuer on 127.0.0.1, with keys generated at run time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use bqai_core::Error;
use bqai_core::auth::TokenVerifier;
use bqai_core::model::{DatasetScope, Principal, Role};
use bqai_oidc::{MAX_TOKEN_BYTES, OidcConfig, OidcVerifier};
use bqai_testkit::oidc::{AUDIENCE, Issuer, TestKey, b64, claims, now, with};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// Settings for `issuer` with an explicit `jwks_url` (no discovery).
fn config(issuer: &Issuer) -> OidcConfig {
    let mut c = OidcConfig::new(issuer.url(), AUDIENCE);
    c.jwks_url = Some(issuer.jwks_url());
    c
}

fn verifier(config: OidcConfig) -> OidcVerifier {
    OidcVerifier::new(config).expect("valid OIDC settings")
}

/// The `Unauthenticated` message of a refused token, checking it does not echo the token.
async fn refusal(v: &OidcVerifier, token: &str) -> String {
    match v.verify(token).await {
        Err(Error::Unauthenticated(m)) => {
            if token.len() > 8 {
                assert!(!m.contains(token), "the message echoes the token: {m}");
            }
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(
                    !m.contains(part),
                    "the message echoes part of the token: {m}"
                );
            }
            m
        }
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

async fn accepted(v: &OidcVerifier, token: &str) -> Principal {
    match v.verify(token).await {
        Ok(p) => p,
        Err(e) => panic!("expected a principal, got {e:?}"),
    }
}

#[tokio::test]
async fn a_valid_rs256_token_gives_the_principal_of_its_claims() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    let mut c = config(&issuer);
    c.rate_limit_per_minute = Some(120);
    c.daily_byte_quota = Some(10_000_000);
    let v = verifier(c);
    assert_eq!(issuer.jwks_hits(), 0, "construction does no IO");

    let p = accepted(&v, &key.sign(&claims(&issuer.url()))).await;
    assert_eq!(
        p,
        Principal {
            id: Some("oidc:alice".into()),
            role: Role::Analyst,
            datasets: DatasetScope::from_list(["shop"]),
            rate_limit_per_minute: Some(120),
            daily_byte_quota: Some(10_000_000),
        }
    );
    // The key set is cached: a second token costs no request.
    let token = key.sign(&with(
        claims(&issuer.url()),
        json!({"sub": "bob", "bqai_role": "admin"}),
    ));
    let p = accepted(&v, &token).await;
    assert_eq!(p.id.as_deref(), Some("oidc:bob"));
    assert_eq!(p.role, Role::Admin);
    assert_eq!(issuer.jwks_hits(), 1);
}

#[tokio::test]
async fn a_valid_es256_token_gives_the_principal_of_its_claims() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer));
    let token = key.sign(&with(
        claims(&issuer.url()),
        json!({"bqai_role": "viewer", "bqai_datasets": "shop,finance hr", "aud": ["other", AUDIENCE]}),
    ));
    let p = accepted(&v, &token).await;
    assert_eq!(p.id.as_deref(), Some("oidc:alice"));
    assert_eq!(p.role, Role::Viewer);
    assert_eq!(
        p.datasets,
        DatasetScope::from_list(["shop", "finance", "hr"])
    );
    assert_eq!(p.rate_limit_per_minute, None);
    assert_eq!(p.daily_byte_quota, None);
}

#[tokio::test]
async fn role_and_datasets_claims_are_configurable_and_may_be_nested() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let mut c = config(&issuer);
    c.role_claim = "realm_access.bqai.role".into();
    c.datasets_claim = "https://bqai.example/datasets".into();
    let v = verifier(c);
    let token = key.sign(&with(
        claims(&issuer.url()),
        json!({
            "bqai_role": null,
            "realm_access": {"bqai": {"role": "admin"}},
            "https://bqai.example/datasets": ["*"],
        }),
    ));
    let p = accepted(&v, &token).await;
    assert_eq!(p.role, Role::Admin);
    assert_eq!(p.datasets, DatasetScope::All);
}

#[tokio::test]
async fn a_token_of_another_issuer_is_refused() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer));
    for iss in [
        json!("https://evil.example.com"),
        json!(format!("{}/", issuer.url())),
    ] {
        let token = key.sign(&with(claims(&issuer.url()), json!({"iss": iss})));
        assert_eq!(refusal(&v, &token).await, "wrong issuer");
    }
    let token = key.sign(&with(claims(&issuer.url()), json!({"iss": null})));
    assert_eq!(refusal(&v, &token).await, "token has no valid `iss` claim");
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer));
    for aud in [json!("another-api"), json!(["another-api", "x"])] {
        let token = key.sign(&with(claims(&issuer.url()), json!({"aud": aud})));
        assert_eq!(refusal(&v, &token).await, "wrong audience");
    }
    let token = key.sign(&with(claims(&issuer.url()), json!({"aud": null})));
    assert_eq!(refusal(&v, &token).await, "token has no valid `aud` claim");
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_leeway() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer)); // leeway 30 s
    let token = key.sign(&with(claims(&issuer.url()), json!({"exp": now() - 120})));
    assert_eq!(refusal(&v, &token).await, "token expired");
    // Within the leeway: accepted.
    let token = key.sign(&with(claims(&issuer.url()), json!({"exp": now() - 5})));
    accepted(&v, &token).await;
    // No exp at all: refused.
    let token = key.sign(&with(claims(&issuer.url()), json!({"exp": null})));
    assert_eq!(refusal(&v, &token).await, "token has no valid `exp` claim");
    let token = key.sign(&with(claims(&issuer.url()), json!({"exp": "tomorrow"})));
    assert_eq!(refusal(&v, &token).await, "token has no valid `exp` claim");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer));
    let token = key.sign(&with(claims(&issuer.url()), json!({"nbf": now() + 600})));
    assert_eq!(refusal(&v, &token).await, "token not yet valid (nbf)");
    let token = key.sign(&with(claims(&issuer.url()), json!({"nbf": now() + 5})));
    accepted(&v, &token).await;
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_a_rotated_key_works() {
    let old = TestKey::rsa("2024-01");
    let new = TestKey::ec("2024-02");
    let issuer = Issuer::start(&[&old]).await;
    let mut c = config(&issuer);
    c.jwks_refresh_min_interval_secs = 1;
    let v = verifier(c);
    accepted(&v, &old.sign(&claims(&issuer.url()))).await;
    assert_eq!(issuer.jwks_hits(), 1);

    // Signed with a key the issuer does not publish yet: one refetch, then refused.
    let rotated = new.sign(&claims(&issuer.url()));
    assert_eq!(refusal(&v, &rotated).await, "unknown signing key");
    assert_eq!(issuer.jwks_hits(), 2, "one refetch for the unknown kid");

    // The issuer rotates the new key in; once the interval has passed, the next token with
    // that kid refetches and is accepted, and the old key keeps working.
    issuer.add_key(&new);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let p = accepted(&v, &rotated).await;
    assert_eq!(p.id.as_deref(), Some("oidc:alice"));
    assert_eq!(issuer.jwks_hits(), 3);
    accepted(&v, &old.sign(&claims(&issuer.url()))).await;
    accepted(&v, &rotated).await;
    assert_eq!(issuer.jwks_hits(), 3);
}

#[tokio::test]
async fn a_burst_of_unknown_kids_causes_at_most_one_refetch_per_interval() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = Arc::new(verifier(config(&issuer))); // interval 30 s
    accepted(&v, &key.sign(&claims(&issuer.url()))).await;
    assert_eq!(issuer.jwks_hits(), 1);

    let attacker = TestKey::ec("attacker");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let v = Arc::clone(&v);
            let token = attacker.sign_as(
                Algorithm::ES256,
                &format!("bogus-{i}"),
                &claims(&issuer.url()),
            );
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        match task.await.expect("task") {
            Err(Error::Unauthenticated(m)) => assert_eq!(m, "unknown signing key"),
            other => panic!("expected unknown signing key, got {other:?}"),
        }
    }
    assert_eq!(issuer.jwks_hits(), 2, "fifty unknown kids, one refetch");
    // Good tokens are unaffected and cost nothing.
    accepted(&v, &key.sign(&claims(&issuer.url()))).await;
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.set_jwks_delay(Duration::from_millis(300));
    let mut c = config(&issuer);
    // No rate limit: only coalescing can keep this to one fetch.
    c.jwks_refresh_min_interval_secs = 0;
    let v = Arc::new(verifier(c));
    let token = key.sign(&claims(&issuer.url()));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let v = Arc::clone(&v);
            let token = token.clone();
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        let p = task.await.expect("task").expect("a principal");
        assert_eq!(p.role, Role::Analyst);
    }
    assert_eq!(issuer.jwks_hits(), 1, "twenty cold requests, one fetch");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer));
    let payload = b64(claims(&issuer.url()).to_string().as_bytes());
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg, "kid": "rsa-1", "typ": "JWT"})
            .to_string()
            .as_bytes());
        let m = refusal(&v, &format!("{header}.{payload}.")).await;
        assert_eq!(m, "unsigned tokens (alg none) are not accepted", "{alg}");
        let m = refusal(&v, &format!("{header}.{payload}")).await;
        assert!(m.starts_with("malformed token"), "{alg}: {m}");
    }
    assert_eq!(issuer.jwks_hits(), 0, "refused before any key is fetched");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    // Even a symmetric key the issuer published by mistake is never used.
    let pem = key.public_pem.clone().expect("an RSA key has a PEM");
    issuer.add_raw_jwk(json!({"kty": "oct", "kid": "shared", "k": b64(pem.as_bytes())}));
    let v = verifier(config(&issuer));
    let secret = EncodingKey::from_secret(pem.as_bytes());
    for (alg, kid) in [
        (Algorithm::HS256, "rsa-1"),
        (Algorithm::HS384, "rsa-1"),
        (Algorithm::HS256, "shared"),
    ] {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        let token = jsonwebtoken::encode(&header, &claims(&issuer.url()), &secret).expect("sign");
        assert_eq!(
            refusal(&v, &token).await,
            format!("token algorithm {alg:?} is not accepted")
        );
    }
    // And a genuine RS256 token naming the oct key finds no key.
    let token = key.sign_as(Algorithm::RS256, "shared", &claims(&issuer.url()));
    assert_eq!(refusal(&v, &token).await, "unknown signing key");
}

#[tokio::test]
async fn a_token_whose_alg_does_not_fit_its_key_is_refused() {
    let rsa = TestKey::rsa("rsa-1");
    let ec = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&rsa, &ec]).await;
    let mut c = config(&issuer);
    c.algorithms = vec!["RS256".into(), "PS256".into(), "ES256".into()];
    let v = verifier(c);
    // An ES256 signature presented under the RSA key's kid, and the other way round.
    let token = ec.sign_as(Algorithm::ES256, "rsa-1", &claims(&issuer.url()));
    assert_eq!(
        refusal(&v, &token).await,
        "token algorithm does not match its signing key"
    );
    let token = rsa.sign_as(Algorithm::RS256, "ec-1", &claims(&issuer.url()));
    assert_eq!(
        refusal(&v, &token).await,
        "token algorithm does not match its signing key"
    );
    // The RSA JWK says alg RS256: a PS256 signature with the same key is not accepted.
    let token = rsa.sign_as(Algorithm::PS256, "rsa-1", &claims(&issuer.url()));
    assert_eq!(
        refusal(&v, &token).await,
        "token algorithm does not match its signing key"
    );
    // An algorithm the configuration does not list is refused outright.
    let v = verifier(config(&issuer));
    assert_eq!(
        refusal(&v, &token).await,
        "token algorithm PS256 is not accepted"
    );
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let key = TestKey::rsa("rsa-1");
    let ec = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key, &ec]).await;
    let v = verifier(config(&issuer));
    let token = key.sign(&with(claims(&issuer.url()), json!({"bqai_role": "viewer"})));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(with(claims(&issuer.url()), json!({"bqai_role": "admin"}))
        .to_string()
        .as_bytes());
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(refusal(&v, &tampered).await, "invalid token signature");
    // A signature by another key of the same type under a published kid: refused too.
    let impostor = TestKey::ec("ec-1");
    let token = impostor.sign(&claims(&issuer.url()));
    assert_eq!(refusal(&v, &token).await, "invalid token signature");
    accepted(&v, &ec.sign(&claims(&issuer.url()))).await;
    // A token signed by the right key still verifies.
    let good = key.sign(&claims(&issuer.url()));
    assert_eq!(accepted(&v, &good).await.role, Role::Analyst);
}

#[tokio::test]
async fn a_missing_role_claim_is_refused_unless_a_default_role_is_set() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let token = key.sign(&with(
        claims(&issuer.url()),
        json!({"bqai_role": null, "bqai_datasets": null}),
    ));

    let v = verifier(config(&issuer));
    let m = refusal(&v, &token).await;
    assert!(m.contains("no role") && m.contains("bqai_role"), "{m}");

    let mut c = config(&issuer);
    c.default_role = Some(Role::Viewer);
    let v = verifier(c);
    let p = accepted(&v, &token).await;
    assert_eq!(p.role, Role::Viewer);
    assert_eq!(
        p.datasets,
        DatasetScope::Only(Default::default()),
        "no datasets claim, no datasets"
    );

    // A role claim with a value bqai does not know is refused even with a default.
    let token = key.sign(&with(claims(&issuer.url()), json!({"bqai_role": "root"})));
    assert!(refusal(&v, &token).await.contains("unknown role"));
}

#[tokio::test]
async fn keys_are_found_through_discovery() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(OidcConfig::new(issuer.url(), AUDIENCE));
    accepted(&v, &key.sign(&claims(&issuer.url()))).await;
    accepted(&v, &key.sign(&claims(&issuer.url()))).await;
    assert_eq!(issuer.discovery_hits(), 1);
    assert_eq!(issuer.jwks_hits(), 1);
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_not_trusted() {
    let key = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.set_discovery_issuer("https://evil.example.com");
    let v = verifier(OidcConfig::new(issuer.url(), AUDIENCE));
    match v.verify(&key.sign(&claims(&issuer.url()))).await {
        Err(Error::Unavailable { what, source }) => {
            assert_eq!(what, "the identity provider");
            let cause = source.expect("a cause").to_string();
            assert!(cause.contains("names issuer"), "{cause}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(issuer.jwks_hits(), 0);
}

#[tokio::test]
async fn an_issuer_that_is_down_makes_verification_unavailable_until_it_is_back() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.set_down(true);
    let mut c = config(&issuer);
    c.jwks_refresh_min_interval_secs = 2;
    let v = verifier(c);
    let token = key.sign(&claims(&issuer.url()));
    for _ in 0..3 {
        match v.verify(&token).await {
            Err(Error::Unavailable { what, source }) => {
                assert_eq!(what, "the identity provider");
                let cause = source.expect("a cause").to_string();
                assert!(cause.contains("503"), "{cause}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(
        issuer.jwks_hits(),
        1,
        "a failed fetch is not retried within the interval"
    );
    issuer.set_down(false);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    accepted(&v, &token).await;
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable() {
    let key = TestKey::ec("ec-1");
    let dead = bqai_testkit::oidc::dead_url().await;
    let mut c = OidcConfig::new(dead.clone(), AUDIENCE);
    c.jwks_url = Some(format!("{dead}/jwks"));
    c.http_timeout_ms = 2000;
    let v = verifier(c);
    let token = key.sign(&claims(&dead));
    for _ in 0..3 {
        match v.verify(&token).await {
            Err(Error::Unavailable { what, .. }) => assert_eq!(what, "the identity provider"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    // Discovery through an unreachable issuer fails the same way.
    let v = verifier(OidcConfig::new(dead.clone(), AUDIENCE));
    assert!(matches!(
        v.verify(&token).await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn after_the_ttl_keys_are_refetched_and_kept_if_the_refresh_fails() {
    let old = TestKey::ec("ec-old");
    let new = TestKey::ec("ec-new");
    let issuer = Issuer::start(&[&old]).await;
    let mut c = config(&issuer);
    c.jwks_cache_ttl_secs = 1;
    c.jwks_refresh_min_interval_secs = 0;
    let v = verifier(c);
    let old_token = old.sign(&claims(&issuer.url()));
    accepted(&v, &old_token).await;
    assert_eq!(issuer.jwks_hits(), 1);

    // The refresh after the TTL fails: the cached keys stay in use.
    issuer.set_down(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    accepted(&v, &old_token).await;
    assert_eq!(issuer.jwks_hits(), 2, "a refresh was attempted");

    // The issuer is back and has withdrawn the old key: the next refresh drops it.
    issuer.set_down(false);
    issuer.set_keys(&[&new]);
    assert_eq!(refusal(&v, &old_token).await, "unknown signing key");
    accepted(&v, &new.sign(&claims(&issuer.url()))).await;
}

#[tokio::test]
async fn malformed_and_oversized_tokens_are_refused_without_a_fetch() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer));
    let mut big = claims(&issuer.url());
    big["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let m = refusal(&v, &key.sign(&big)).await;
    assert!(m.starts_with("token too large"), "{m}");
    for token in ["", "abc", "a.b", "a.b.c", "bqai.is.great.really.now"] {
        assert!(
            refusal(&v, token).await.starts_with("malformed token"),
            "{token:?}"
        );
    }
    let header = b64(json!({"alg": "ES256"}).to_string().as_bytes());
    assert_eq!(
        refusal(&v, &format!("{header}.e30.c2ln")).await,
        "token has no key id (kid)"
    );
    assert_eq!(issuer.jwks_hits(), 0);
}

#[tokio::test]
async fn a_token_without_a_subject_is_refused() {
    let key = TestKey::ec("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(config(&issuer));
    let token = key.sign(&with(claims(&issuer.url()), json!({"sub": null})));
    assert_eq!(refusal(&v, &token).await, "token has no valid `sub` claim");
}

#[tokio::test]
async fn invalid_settings_are_refused_at_construction() {
    let mut c = OidcConfig::new("https://idp.example.com", AUDIENCE);
    c.algorithms = vec!["HS256".into()];
    match OidcVerifier::new(c) {
        Err(Error::InvalidRequest(m)) => assert!(m.starts_with("auth.oidc: algorithms"), "{m}"),
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    let c = OidcConfig::new("http://idp.example.com", AUDIENCE);
    assert!(matches!(
        OidcVerifier::new(c),
        Err(Error::InvalidRequest(_))
    ));
}
