//! bqai-oidc: OAuth2/OIDC bearer tokens for bqai — [`OidcVerifier`], the adapter of the
//! core [`bqai_core::auth::TokenVerifier`] port, configured by [`OidcConfig`]
//! (`[auth.oidc]`).
//!
//! A bearer token is a JWT signed by the issuer. It is accepted when its signature checks
//! out with a key from the issuer's JWKS (the key its `kid` names, of a type that fits its
//! `alg`), its `iss` is the configured issuer exactly, its `aud` contains the configured
//! audience, its `exp` is present and not past, and its `nbf` (if any) has come. The
//! principal is `oidc:<sub>`, with the role and datasets read from configurable claims and
//! the configured rate limit and byte quota.
//!
//! # Why jsonwebtoken
//!
//! [`jsonwebtoken`] is the widely used, maintained JWT crate of the ecosystem, and since v10 can
//! run on RustCrypto (`rust_crypto` feature: `rsa`, `p256`, `p384`, `ed25519-dalek`) — pure
//! Rust, no OpenSSL and no C toolchain, like the rest of bqai's tree. It verifies signatures
//! and the registered claims; it does not fetch keys, so the key set, its cache and its
//! refresh policy are ours (below). We also read the header ourselves before
//! handing the token over, to refuse `alg: none`, HMAC algorithms and unknown `crit`
//! parameters with precise messages, and we pass `decode` exactly one algorithm, checked
//! against the key, so the RS256→HS256 confusion cannot happen even in principle (there is
//! no HMAC key in the cache to confuse with).
//!
//! # Key refresh
//!
//! Keys are fetched lazily (nothing at construction), from `jwks_url` or the `jwks_uri` of
//! `{issuer}/.well-known/openid-configuration`, and cached for `jwks_cache_ttl_secs`. A
//! token naming an unknown `kid` triggers a refetch — how a rotated-in key is picked up —
//! at most once per `jwks_refresh_min_interval_secs`, so a flood of made-up key ids costs the
//! issuer one request per interval; after a failed fetch nothing is fetched for the same
//! interval (the requests meanwhile fail fast instead of queueing behind timeouts). Concurrent
//! refreshes are coalesced: one fetch, and every request that waited for it takes its
//! outcome. When a refresh fails the previous keys stay in use; with no keys at all the
//! answer is `Unavailable`. The `jwks` module documents the details.
//!
//! # Failure modes
//!
//! Any bad token is `Error::Unauthenticated` with a message saying what is wrong ("token
//! expired", "wrong audience", "unknown signing key", …) and never the token itself. An
//! issuer whose keys cannot be fetched (down, timing out, serving garbage) is
//! `Error::Unavailable("the identity provider")`, with the cause for the logs.

mod claims;
mod config;
mod jwks;
mod verifier;

pub use config::{DEFAULT_DATASETS_CLAIM, DEFAULT_ROLE_CLAIM, OidcConfig};
pub use verifier::{MAX_TOKEN_BYTES, OidcVerifier};
