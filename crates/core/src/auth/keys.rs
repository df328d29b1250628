//! API keys: their format, generation, hashing and the stored record.
//!
//! A key reads `bqai_<id>_<secret>`: `id` is 12 lowercase letters and digits, public, the
//! lookup key in the store and the principal id in history and audit; `secret` is 40
//! characters of base62 (≈238 bits from the OS random source), shown once at creation and
//! never stored. The store keeps `HMAC-SHA-256(pepper, id ":" secret)` in hex.
//!
//! Why HMAC and not argon2: the secret is a long random string, not a password a person
//! chose, so there is no dictionary to slow down; a slow hash would only add its cost to every
//! request. The pepper (a server-side secret, never in the database) means a stolen database
//! alone cannot even check a guess. Binding the id into the MAC stops a row's hash from being
//! copied onto another key. Comparison is constant-time ([`constant_time_eq`]), and an unknown
//! id is compared against a dummy hash so that it costs the same as a wrong secret.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::model::{DatasetScope, Principal, Role};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "bqai_";
/// Length of the public id.
pub const ID_LEN: usize = 12;
/// Length of the secret.
pub const SECRET_LEN: usize = 40;
/// Shortest accepted pepper, in bytes.
pub const MIN_PEPPER_LEN: usize = 16;

const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The two halves of a presented key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The public id.
    pub id: &'a str,
    /// The secret.
    pub secret: &'a str,
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Splits `bqai_<id>_<secret>`; `None` if the text does not have that shape.
pub fn parse(token: &str) -> Option<ParsedKey<'_>> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b));
    let secret_ok =
        secret.len() == SECRET_LEN && secret.bytes().all(|b| SECRET_ALPHABET.contains(&b));
    (id_ok && secret_ok).then_some(ParsedKey { id, secret })
}

/// Whether `id` has the shape of a key id (for validating path parameters).
pub fn is_key_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b))
}

/// A freshly generated key. `token` is what the caller must keep; it is never stored.
pub struct GeneratedKey {
    /// The public id.
    pub id: String,
    /// The whole key, `bqai_<id>_<secret>`.
    pub token: String,
    secret_start: usize,
}

impl GeneratedKey {
    /// Generates a key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let id = random_string(ID_ALPHABET, ID_LEN)?;
        let secret = random_string(SECRET_ALPHABET, SECRET_LEN)?;
        let token = format!("{KEY_PREFIX}{id}_{secret}");
        Ok(Self {
            secret_start: KEY_PREFIX.len() + ID_LEN + 1,
            id,
            token,
        })
    }

    /// The secret half.
    pub fn secret(&self) -> &str {
        &self.token[self.secret_start..]
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Unbiased random characters from `alphabet` (rejection sampling over random bytes).
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> Result<String> {
    let n = alphabet.len();
    let cutoff = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)
            .map_err(|e| Error::internal_msg(format!("no randomness from the OS: {e}")))?;
        for &b in &buf {
            if (b as usize) < cutoff && out.len() < len {
                out.push(alphabet[b as usize % n] as char);
            }
        }
    }
    Ok(out)
}

/// Random bytes from the OS (tickets' nonces, generated peppers).
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| Error::internal_msg(format!("no randomness from the OS: {e}")))?;
    Ok(buf)
}

/// Hashes and verifies key secrets with the server's pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: Vec<u8>,
    dummy: Vec<u8>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher { pepper: [redacted] }")
    }
}

impl KeyHasher {
    /// A hasher with `pepper` (at least [`MIN_PEPPER_LEN`] bytes).
    pub fn new(pepper: &[u8]) -> Result<Self> {
        if pepper.len() < MIN_PEPPER_LEN {
            return Err(Error::InvalidRequest(format!(
                "the auth pepper must be at least {MIN_PEPPER_LEN} bytes"
            )));
        }
        let mut hasher = Self {
            pepper: pepper.to_vec(),
            dummy: Vec::new(),
        };
        hasher.dummy = hasher.mac(&["\u{0}unknown-key", ""]);
        Ok(hasher)
    }

    fn mac(&self, parts: &[&str]) -> Vec<u8> {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pepper)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(b":");
            }
            mac.update(p.as_bytes());
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// The stored form of a key's secret (hex).
    pub fn hash(&self, id: &str, secret: &str) -> String {
        hex::encode(self.mac(&[id, secret]))
    }

    /// Whether `secret` belongs to the key `id` whose stored hash is `stored`. With `None`
    /// (no such key) the secret is still hashed and compared, against a dummy, so an unknown
    /// id costs what a wrong secret costs.
    pub fn verify(&self, id: &str, secret: &str, stored: Option<&str>) -> bool {
        let computed = self.mac(&[id, secret]);
        match stored.and_then(|s| hex::decode(s).ok()) {
            Some(expected) => constant_time_eq(&computed, &expected),
            None => {
                let _ = constant_time_eq(&computed, &self.dummy);
                false
            }
        }
    }

    /// A MAC over arbitrary bytes with a purpose label (WebSocket tickets).
    pub(crate) fn sign(&self, purpose: &str, payload: &str) -> Vec<u8> {
        self.mac(&[purpose, payload])
    }
}

#[cfg(test)]
thread_local! {
    pub(crate) static CT_COMPARISONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Compares two byte strings in time that depends only on their lengths (through `subtle`),
/// never on where they first differ. Every secret comparison in bqai goes through here.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    #[cfg(test)]
    CT_COMPARISONS.with(|c| c.set(c.get() + 1));
    a.ct_eq(b).into()
}

/// A stored API key (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id.
    pub id: String,
    /// Human name ("reporting job").
    pub name: String,
    /// Who the key belongs to (a person or team), free text.
    pub owner: Option<String>,
    /// Role.
    pub role: Role,
    /// Datasets the key may read.
    pub datasets: DatasetScope,
    /// Requests per minute; `None` uses the server default.
    pub rate_limit_per_minute: Option<u32>,
    /// Bytes billed per UTC day; `None` means no quota.
    pub daily_byte_quota: Option<u64>,
    /// When the key stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key never works again.
    pub revoked_at: Option<DateTime<Utc>>,
    /// `HMAC-SHA-256(pepper, id ":" secret)`, hex.
    pub secret_hash: String,
}

impl KeyRecord {
    /// Builds the record of a new key from its request, hashing the secret.
    pub fn new(new: NewKey, key: &GeneratedKey, hasher: &KeyHasher, now: DateTime<Utc>) -> Self {
        Self {
            id: key.id.clone(),
            name: new.name,
            owner: new.owner,
            role: new.role,
            datasets: new.datasets,
            rate_limit_per_minute: new.rate_limit_per_minute,
            daily_byte_quota: new.daily_byte_quota,
            expires_at: new.expires_at,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            secret_hash: hasher.hash(&key.id, key.secret()),
        }
    }

    /// Whether the key is revoked or expired at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// The principal this key authenticates as.
    pub fn principal(&self) -> Principal {
        Principal {
            id: Some(self.id.clone()),
            role: self.role,
            datasets: self.datasets.clone(),
            rate_limit_per_minute: self.rate_limit_per_minute,
            daily_byte_quota: self.daily_byte_quota,
        }
    }

    /// Applies a change.
    pub fn apply(&mut self, update: &KeyUpdate) {
        if let Some(v) = &update.name {
            self.name.clone_from(v);
        }
        if let Some(v) = &update.owner {
            self.owner.clone_from(v);
        }
        if let Some(v) = update.role {
            self.role = v;
        }
        if let Some(v) = &update.datasets {
            self.datasets = v.clone();
        }
        if let Some(v) = update.rate_limit_per_minute {
            self.rate_limit_per_minute = v;
        }
        if let Some(v) = update.daily_byte_quota {
            self.daily_byte_quota = v;
        }
        if let Some(v) = update.expires_at {
            self.expires_at = v;
        }
    }
}

/// Whether a key works.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Past `expires_at`.
    Expired,
    /// Revoked.
    Revoked,
}

/// What a new key should be.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: Option<String>,
    /// Role.
    pub role: Role,
    /// Datasets.
    pub datasets: DatasetScope,
    /// Requests per minute.
    pub rate_limit_per_minute: Option<u32>,
    /// Bytes per UTC day.
    pub daily_byte_quota: Option<u64>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewKey {
    /// Checks the fields a caller chose.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<()> {
        validate_name(&self.name)?;
        if let Some(o) = &self.owner {
            validate_owner(o)?;
        }
        if self.rate_limit_per_minute == Some(0) {
            return Err(Error::InvalidRequest(
                "`rate_limit_per_minute` must be at least 1 (omit it for the default)".into(),
            ));
        }
        if self.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::InvalidRequest(
                "`expires_at` must be in the future".into(),
            ));
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(
            "`name` must be 1 to 100 characters without control characters".into(),
        ));
    }
    Ok(())
}

fn validate_owner(owner: &str) -> Result<()> {
    if owner.chars().count() > 200 || owner.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(
            "`owner` must be at most 200 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// A change to a key; `None` leaves a field as it is, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyUpdate {
    /// New name.
    pub name: Option<String>,
    /// New owner.
    pub owner: Option<Option<String>>,
    /// New role.
    pub role: Option<Role>,
    /// New datasets.
    pub datasets: Option<DatasetScope>,
    /// New rate limit.
    pub rate_limit_per_minute: Option<Option<u32>>,
    /// New quota.
    pub daily_byte_quota: Option<Option<u64>>,
    /// New expiry.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

impl KeyUpdate {
    /// Checks the fields a caller chose.
    pub fn validate(&self) -> Result<()> {
        if let Some(n) = &self.name {
            validate_name(n)?;
        }
        if let Some(Some(o)) = &self.owner {
            validate_owner(o)?;
        }
        if self.rate_limit_per_minute == Some(Some(0)) {
            return Err(Error::InvalidRequest(
                "`rate_limit_per_minute` must be at least 1 (null for the default)".into(),
            ));
        }
        Ok(())
    }

    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &KeyUpdate::default()
    }
}

/// Which keys to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Include revoked keys.
    pub include_revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> KeyHasher {
        KeyHasher::new(b"0123456789abcdef-pepper").unwrap()
    }

    #[test]
    fn generated_keys_parse_back() {
        let k = GeneratedKey::generate().unwrap();
        let p = parse(&k.token).unwrap();
        assert_eq!(p.id, k.id);
        assert_eq!(p.secret, k.secret());
        assert_eq!(k.token.len(), KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
        let other = GeneratedKey::generate().unwrap();
        assert_ne!(k.token, other.token);
        assert!(!format!("{k:?}").contains(k.secret()));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let k = GeneratedKey::generate().unwrap();
        for bad in [
            "",
            "bqai_",
            "bqai__",
            &k.token[1..],
            &k.token[..k.token.len() - 1],
            &format!("{}x", k.token),
            &k.token.replace("bqai_", "BQAI_"),
            &format!("bqai_{}_{}", k.id.to_uppercase(), k.secret()),
            &format!("bqai_{}_{}!", k.id, &k.secret()[1..]),
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_verify_only_the_right_secret_and_id() {
        let h = hasher();
        let k = GeneratedKey::generate().unwrap();
        let stored = h.hash(&k.id, k.secret());
        assert!(!stored.contains(k.secret()));
        assert!(h.verify(&k.id, k.secret(), Some(&stored)));
        let other = GeneratedKey::generate().unwrap();
        assert!(!h.verify(&k.id, other.secret(), Some(&stored)));
        assert!(!h.verify(&other.id, k.secret(), Some(&stored)));
        let other_pepper = KeyHasher::new(b"another pepper of 16+ bytes").unwrap();
        assert!(!other_pepper.verify(&k.id, k.secret(), Some(&stored)));
        assert!(!h.verify(&k.id, k.secret(), None));
        assert!(!h.verify(&k.id, k.secret(), Some("not hex")));
        assert!(KeyHasher::new(b"short").is_err());
        assert!(!format!("{h:?}").contains("pepper-"));
    }

    /// The comparison of a presented secret always goes through the constant-time function,
    /// once, whether the key exists, the secret is right or wrong, or the stored hash is
    /// unusable.
    #[test]
    fn every_verification_takes_the_constant_time_path_once() {
        let h = hasher();
        let k = GeneratedKey::generate().unwrap();
        let stored = h.hash(&k.id, k.secret());
        let wrong = GeneratedKey::generate().unwrap();
        let cases: [(&str, Option<&str>, bool); 4] = [
            (k.secret(), Some(&stored), true),
            (wrong.secret(), Some(&stored), false),
            (k.secret(), None, false),
            (k.secret(), Some("zz"), false),
        ];
        for (secret, stored, expected) in cases {
            let before = CT_COMPARISONS.with(std::cell::Cell::get);
            assert_eq!(h.verify(&k.id, secret, stored), expected);
            let after = CT_COMPARISONS.with(std::cell::Cell::get);
            assert_eq!(after - before, 1, "stored={stored:?}");
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn status_follows_revocation_and_expiry() {
        let h = hasher();
        let k = GeneratedKey::generate().unwrap();
        let now = Utc::now();
        let mut r = KeyRecord::new(
            NewKey {
                name: "n".into(),
                owner: None,
                role: Role::Analyst,
                datasets: DatasetScope::from_list(["shop"]),
                rate_limit_per_minute: None,
                daily_byte_quota: None,
                expires_at: Some(now + chrono::Duration::hours(1)),
            },
            &k,
            &h,
            now,
        );
        assert_eq!(r.status(now), KeyStatus::Active);
        assert_eq!(
            r.status(now + chrono::Duration::hours(2)),
            KeyStatus::Expired
        );
        r.revoked_at = Some(now);
        assert_eq!(r.status(now), KeyStatus::Revoked);
        assert_eq!(r.principal().id.as_deref(), Some(k.id.as_str()));
    }
}
