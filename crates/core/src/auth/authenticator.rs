//! The authentication use case: a presented credential becomes a [`Principal`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::keys::{self, GeneratedKey, KeyHasher, KeyRecord, KeyStatus, NewKey};
use super::ticket;
use crate::error::{Error, Result};
use crate::model::Principal;
use crate::ports::{KeyStore, NonceStore};

/// Verifies bearer tokens of a third-party issuer (OIDC JWTs).
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The principal a valid token stands for; `Unauthenticated` for any invalid token,
    /// `Unavailable` when the issuer's keys cannot be fetched.
    async fn verify(&self, token: &str) -> Result<Principal>;
}

/// What a caller presented.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `X-API-Key`, or a `Bearer` value shaped like an API key.
    ApiKey(&'a str),
    /// Any other `Bearer` value (a JWT, when tokens are configured).
    Bearer(&'a str),
    /// A WebSocket ticket from `?ticket=`.
    Ticket(&'a str),
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::ApiKey(_) => "ApiKey([redacted])",
            Credential::Bearer(_) => "Bearer([redacted])",
            Credential::Ticket(_) => "Ticket([redacted])",
        })
    }
}

impl<'a> Credential<'a> {
    /// Classifies an `Authorization: Bearer` value.
    pub fn bearer(value: &'a str) -> Self {
        if value.starts_with(keys::KEY_PREFIX) {
            Credential::ApiKey(value)
        } else {
            Credential::Bearer(value)
        }
    }

    /// The key id a credential names, if it is shaped like an API key (for the audit record
    /// of a failed authentication; never the secret).
    pub fn key_id(&self) -> Option<&'a str> {
        match self {
            Credential::ApiKey(k) => keys::parse(k).map(|p| p.id),
            _ => None,
        }
    }
}

/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Turns credentials into principals; creates keys and tickets.
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<dyn KeyStore>,
    hasher: KeyHasher,
    tokens: Option<Arc<dyn TokenVerifier>>,
    ticket_ttl: Duration,
    nonces: Option<Arc<dyn NonceStore>>,
}

impl Authenticator {
    /// API keys from `keys`, hashed with `hasher`; tickets live 60 s.
    pub fn new(keys: Arc<dyn KeyStore>, hasher: KeyHasher) -> Self {
        Self {
            keys,
            hasher,
            tokens: None,
            ticket_ttl: Duration::from_secs(60),
            nonces: None,
        }
    }

    /// Also accepts bearer tokens `verifier` vouches for.
    #[must_use]
    pub fn with_tokens(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.tokens = Some(verifier);
        self
    }

    /// Tickets live `ttl`.
    #[must_use]
    pub fn with_ticket_ttl(mut self, ttl: Duration) -> Self {
        self.ticket_ttl = ttl;
        self
    }

    /// Makes tickets single-use: each ticket's nonce is claimed in `nonces` when it is used.
    #[must_use]
    pub fn with_single_use_tickets(mut self, nonces: Arc<dyn NonceStore>) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// Whether bearer tokens are accepted.
    pub fn accepts_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// The principal behind `credential`.
    pub async fn authenticate(&self, credential: Credential<'_>) -> Result<Principal> {
        match credential {
            Credential::ApiKey(key) => self.authenticate_key(key).await,
            Credential::Bearer(token) => match &self.tokens {
                Some(v) => v.verify(token).await,
                None => Err(Error::Unauthenticated(
                    "malformed API key: expected bqai_<id>_<secret>".into(),
                )),
            },
            Credential::Ticket(t) => self.authenticate_ticket(t).await,
        }
    }

    async fn authenticate_key(&self, key: &str) -> Result<Principal> {
        let parsed = keys::parse(key).ok_or_else(|| {
            Error::Unauthenticated("malformed API key: expected bqai_<id>_<secret>".into())
        })?;
        let record = self.keys.get_key(parsed.id).await?;
        let stored = record.as_ref().map(|r| r.secret_hash.as_str());
        // Same message for an unknown id and a wrong secret: nothing to learn from it.
        if !self.hasher.verify(parsed.id, parsed.secret, stored) {
            return Err(Error::Unauthenticated("unknown API key".into()));
        }
        let Some(record) = record else {
            return Err(Error::Unauthenticated("unknown API key".into()));
        };
        let now = Utc::now();
        self.check_active(&record, now)?;
        if record.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
            // Bookkeeping: a failure must not fail the request.
            if let Err(e) = self.keys.touch_key(&record.id, now).await {
                tracing::warn!(key_id = %record.id, error = %e, "could not record key use");
            }
        }
        Ok(record.principal())
    }

    fn check_active(&self, record: &KeyRecord, now: DateTime<Utc>) -> Result<()> {
        match record.status(now) {
            KeyStatus::Active => Ok(()),
            KeyStatus::Revoked => Err(Error::Unauthenticated("API key revoked".into())),
            KeyStatus::Expired => Err(Error::Unauthenticated("API key expired".into())),
        }
    }

    async fn authenticate_ticket(&self, t: &str) -> Result<Principal> {
        let now = Utc::now();
        let verified = ticket::verify_full(&self.hasher, t, now)?;
        // Claimed only once the MAC and expiry are checked: forged tickets fill nothing.
        if let Some(nonces) = &self.nonces {
            let ttl = (verified.expires_at - now + chrono::Duration::seconds(1))
                .to_std()
                .unwrap_or(Duration::from_secs(1));
            if !nonces.claim(&verified.nonce, ttl).await? {
                return Err(Error::Unauthenticated(
                    "this WebSocket ticket was already used: ask for a new one".into(),
                ));
            }
        }
        // A key's tickets die with the key; its current grants apply, not the ticket's.
        self.refresh(&verified.principal).await
    }

    /// `principal` as its credentials stand now: an API key's principal is read again from
    /// the key store (a revoked or expired key is `Unauthenticated`; changed grants, role or
    /// limits apply), other principals are returned as they are. Long-lived connections call
    /// this before each action, so revoking a key ends them too.
    pub async fn refresh(&self, principal: &Principal) -> Result<Principal> {
        let Some(id) = principal.id.as_deref().filter(|id| keys::is_key_id(id)) else {
            return Ok(principal.clone());
        };
        let record = self
            .keys
            .get_key(id)
            .await?
            .ok_or_else(|| Error::Unauthenticated("unknown API key".into()))?;
        self.check_active(&record, Utc::now())?;
        Ok(record.principal())
    }

    /// A ticket for `principal` and how long it is valid.
    pub fn issue_ticket(&self, principal: &Principal) -> Result<(String, Duration)> {
        let expires = Utc::now()
            + chrono::Duration::from_std(self.ticket_ttl).unwrap_or(chrono::Duration::seconds(60));
        Ok((
            ticket::issue(&self.hasher, principal, expires)?,
            self.ticket_ttl,
        ))
    }

    /// Creates a key; returns its record and the whole key, which is never available again.
    pub async fn create_key(&self, new: NewKey) -> Result<(KeyRecord, String)> {
        let now = Utc::now();
        new.validate(now)?;
        let generated = GeneratedKey::generate()?;
        let record = KeyRecord::new(new, &generated, &self.hasher, now);
        self.keys.insert_key(&record).await?;
        Ok((record, generated.token))
    }

    /// The key store (for the admin API).
    pub fn keys(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }
}
