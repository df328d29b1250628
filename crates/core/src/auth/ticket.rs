//! Short-lived WebSocket tickets.
//!
//! Browsers cannot set headers on a WebSocket upgrade, so an authenticated client first asks
//! `POST /api/v1/ws-ticket` and passes the answer as `?ticket=` on the upgrade. A ticket is
//! `wst_<payload>.<mac>`: the payload (base64url JSON) holds the principal and an expiry; the
//! MAC is HMAC-SHA-256 under the server's pepper with a purpose label of its own, so any
//! replica sharing the pepper accepts it and nothing else can forge one. Tickets of API-key
//! principals are re-checked against the key store when used, so revoking a key also kills
//! its tickets. Each ticket carries a random nonce; the [`crate::auth::Authenticator`]
//! claims it in a [`crate::ports::NonceStore`] on use, so a ticket opens one connection only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keys::{KeyHasher, constant_time_eq, random_bytes};
use crate::error::{Error, Result};
use crate::model::Principal;

/// Every ticket starts with this.
pub const TICKET_PREFIX: &str = "wst_";
const PURPOSE: &str = "bqai-ws-ticket-v1";

#[derive(Serialize, Deserialize)]
struct Payload {
    p: Principal,
    exp: i64,
    n: String,
}

/// Issues a ticket for `principal` valid until `expires_at`.
pub fn issue(
    hasher: &KeyHasher,
    principal: &Principal,
    expires_at: DateTime<Utc>,
) -> Result<String> {
    let payload = Payload {
        p: principal.clone(),
        exp: expires_at.timestamp(),
        n: hex::encode(random_bytes::<12>()?),
    };
    let json =
        serde_json::to_string(&payload).map_err(|e| Error::internal("encoding a ticket", e))?;
    let body = URL_SAFE_NO_PAD.encode(json);
    let mac = URL_SAFE_NO_PAD.encode(hasher.sign(PURPOSE, &body));
    Ok(format!("{TICKET_PREFIX}{body}.{mac}"))
}

/// What a genuine, unexpired ticket says.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Who it was issued to.
    pub principal: Principal,
    /// Its one-time nonce.
    pub nonce: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// The principal of a ticket, if it is genuine and not expired at `now`.
pub fn verify(hasher: &KeyHasher, ticket: &str, now: DateTime<Utc>) -> Result<Principal> {
    verify_full(hasher, ticket, now).map(|v| v.principal)
}

/// Like [`verify`], with the ticket's nonce and expiry.
pub fn verify_full(hasher: &KeyHasher, ticket: &str, now: DateTime<Utc>) -> Result<Verified> {
    let bad = || Error::Unauthenticated("invalid or expired WebSocket ticket".into());
    let rest = ticket.strip_prefix(TICKET_PREFIX).ok_or_else(bad)?;
    if rest.len() > 8192 {
        return Err(bad());
    }
    let (body, mac) = rest.split_once('.').ok_or_else(bad)?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| bad())?;
    if !constant_time_eq(&hasher.sign(PURPOSE, body), &mac) {
        return Err(bad());
    }
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
    let payload: Payload = serde_json::from_slice(&json).map_err(|_| bad())?;
    if payload.exp <= now.timestamp() {
        return Err(bad());
    }
    Ok(Verified {
        principal: payload.p,
        nonce: payload.n,
        expires_at: DateTime::from_timestamp(payload.exp, 0).ok_or_else(bad)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DatasetScope, Role};

    fn principal() -> Principal {
        Principal {
            id: Some("abcdefghij12".into()),
            role: Role::Viewer,
            datasets: DatasetScope::from_list(["shop"]),
            rate_limit_per_minute: Some(7),
            daily_byte_quota: None,
        }
    }

    #[test]
    fn a_ticket_verifies_until_it_expires() {
        let h = KeyHasher::new(b"a pepper of sixteen bytes").unwrap();
        let now = Utc::now();
        let t = issue(&h, &principal(), now + chrono::Duration::seconds(30)).unwrap();
        assert_eq!(verify(&h, &t, now).unwrap(), principal());
        assert!(matches!(
            verify(&h, &t, now + chrono::Duration::seconds(31)),
            Err(Error::Unauthenticated(_))
        ));
        let other = KeyHasher::new(b"another pepper, 16+ bytes").unwrap();
        assert!(verify(&other, &t, now).is_err());
    }

    #[test]
    fn a_changed_ticket_is_refused() {
        let h = KeyHasher::new(b"a pepper of sixteen bytes").unwrap();
        let now = Utc::now();
        let t = issue(&h, &principal(), now + chrono::Duration::seconds(30)).unwrap();
        let (body, mac) = t.split_once('.').unwrap();
        // Promote ourselves to admin, keep the MAC.
        let json = URL_SAFE_NO_PAD
            .decode(&body[TICKET_PREFIX.len()..])
            .unwrap();
        let forged = String::from_utf8(json).unwrap().replace("viewer", "admin");
        let forged = format!("{TICKET_PREFIX}{}.{mac}", URL_SAFE_NO_PAD.encode(forged));
        assert!(verify(&h, &forged, now).is_err());
        for bad in [
            "",
            "wst_",
            "wst_.",
            "wst_abc.def",
            &t[..t.len() - 2],
            "bqai_x",
        ] {
            assert!(verify(&h, bad, now).is_err(), "{bad}");
        }
    }
}
