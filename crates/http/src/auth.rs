//! Authentication, the caller's principal, and the audit record of every `/api/v1` call.
//!
//! [`middleware`] runs inside CORS and the request id, before rate limiting. With
//! authentication off ([`AppState::auth`] is `None`) every caller is the configured anonymous
//! principal. Otherwise the credential is taken from `X-API-Key`, or `Authorization: Bearer`
//! (an API key, or a JWT when OIDC is configured), or — only on a WebSocket upgrade, because
//! browsers cannot set headers there — a `?ticket=` from `POST /api/v1/ws-ticket`. A missing
//! or malformed credential, or an unknown, revoked or expired one, is 401 `UNAUTHENTICATED`
//! with `WWW-Authenticate: Bearer`; the store being down is 503, never a 401 that would make a
//! client drop a good key.
//!
//! Handlers take a [`Caller`] and check their action with [`Caller::require`] (403
//! `FORBIDDEN`), and describe what they touched with [`note`]. After the response, the
//! middleware appends one [`AuditEvent`] for the call (allowed, denied or failed) to the audit
//! log: who, what route and action, which datasets and tables, the SQL fingerprint, status
//! and error code, bytes, client address. Never a secret, SQL text or a row. Allowed reads
//! (catalog, history, conversation reads) are left out when `audit_reads` is off, the default
//! without authentication.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use bqai_core::auth::Action;
use bqai_core::auth::Credential;
use bqai_core::auth::audit::{AuditAction, AuditEvent, AuditOutcome, sql_fingerprint};
use bqai_core::model::Principal;

use crate::error::ApiError;
use crate::rate_limit::client_ip;
use crate::request_id::RequestId;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.0
    }

    /// 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.0.role.allows(action) {
            Ok(())
        } else {
            Err(bqai_core::Error::Forbidden(format!(
                "the {} role may not {}",
                self.0.role.as_str(),
                describe(action)
            ))
            .into())
        }
    }

    /// Whether the caller may see everyone's records (history of all principals).
    pub fn sees_all(&self) -> bool {
        self.0.role.allows(Action::HistoryReadAll)
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::CatalogRead => "read the catalog",
        Action::DryRun => "plan queries",
        Action::Query => "run queries (dry runs and asks with execute: false are allowed)",
        Action::Export => "export results",
        Action::HistoryRead => "read history",
        Action::HistoryReadAll => "read other principals' history",
        Action::Admin => "administer keys or caches",
        Action::AuditRead => "read the audit log or the key list",
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .map(Caller)
                .ok_or_else(|| {
                    bqai_core::Error::Unauthenticated("no credentials were presented".into()).into()
                }),
        )
    }
}

/// What a handler says it touched, for the audit record.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// Overrides the action the route implies.
    pub action: Option<AuditAction>,
    /// Datasets and tables (`shop`, `shop.orders`).
    pub targets: Vec<String>,
    /// SQL run or refused (only its fingerprint is recorded).
    pub sql: Option<String>,
    /// Bytes billed (or processed).
    pub bytes: u64,
    /// A short secret-free note.
    pub detail: Option<String>,
}

/// Adds to the request's audit note.
pub fn note(req: &HttpRequest, f: impl FnOnce(&mut AuditNote)) {
    let mut ext = req.extensions_mut();
    if ext.get::<AuditNote>().is_none() {
        ext.insert(AuditNote::default());
    }
    if let Some(n) = ext.get_mut::<AuditNote>() {
        f(n);
    }
}

/// Adds a dataset the caller named to the note — only when it is a valid dataset id: the
/// audit log records what was resolved, never arbitrary text a caller sent.
pub fn add_dataset_target(note: &mut AuditNote, dataset: &str) {
    if bqai_core::query::is_valid_dataset_id(dataset) {
        add_target(note, dataset);
    }
}

/// Adds `target` to the note once.
pub fn add_target(note: &mut AuditNote, target: impl Into<String>) {
    let t = target.into();
    if !note.targets.contains(&t) {
        note.targets.push(t);
    }
}

/// The action a route implies when its handler did not say (or never ran).
fn route_action(method: &Method, path: &str) -> AuditAction {
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    if rest.starts_with("/admin/") {
        if method == Method::GET {
            AuditAction::AdminRead
        } else {
            AuditAction::AdminChange
        }
    } else if rest.starts_with("/datasets") {
        AuditAction::CatalogRead
    } else if rest.starts_with("/query-agent")
        || rest.starts_with("/ask")
        || rest.starts_with("/ws/")
    {
        AuditAction::Ask
    } else if rest.starts_with("/query") {
        AuditAction::Query
    } else if rest.starts_with("/history") && method == Method::POST {
        // `POST /history/{id}/rerun` runs a query.
        AuditAction::Query
    } else if rest.starts_with("/history") || rest.starts_with("/analytics") {
        AuditAction::HistoryRead
    } else if rest.starts_with("/ws-ticket") {
        AuditAction::Ticket
    } else if rest.starts_with("/conversations") {
        AuditAction::Conversation
    } else if rest.starts_with("/export") {
        AuditAction::Export
    } else {
        AuditAction::CatalogRead
    }
}

/// The path the router matched: percent-decoded (`/api/v1/as%6b` is `/api/v1/ask`), so
/// route-based decisions (audit action, rate weight, where tickets count) follow the handler
/// that runs rather than the bytes the client chose.
pub(crate) fn routed_path(req: &ServiceRequest) -> &str {
    req.match_info().as_str()
}

/// The MCP transport's route.
const MCP_ROUTE: &str = "/mcp";

/// The one route that takes a `?ticket=`.
const WS_ROUTE: &str = "/api/v1/ws/agent";

fn is_websocket_upgrade(req: &ServiceRequest) -> bool {
    req.method() == Method::GET
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn ticket_param(req: &ServiceRequest) -> Option<String> {
    req.query_string()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "ticket")
        .map(|(_, v)| v.to_string())
}

/// Extracts the credential; `Err` for a header that is present but unusable.
fn credential(req: &ServiceRequest) -> Result<Option<(CredKind, String)>, ApiError> {
    let unauth = |m: &str| -> ApiError { bqai_core::Error::Unauthenticated(m.into()).into() };
    if let Some(v) = req.headers().get("x-api-key") {
        let v = v
            .to_str()
            .map_err(|_| unauth("X-API-Key is not valid text"))?;
        return Ok(Some((CredKind::Key, v.trim().to_string())));
    }
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| unauth("the Authorization header is not valid text"))?;
        let (scheme, value) = v.trim().split_once(' ').unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || value.trim().is_empty() {
            return Err(unauth(
                "use Authorization: Bearer <key or token>, or X-API-Key: <key>",
            ));
        }
        return Ok(Some((CredKind::Bearer, value.trim().to_string())));
    }
    // Only on the WebSocket route: a ticket is not a credential for REST calls, even ones
    // dressed up with `Upgrade: websocket`.
    if is_websocket_upgrade(req)
        && routed_path(req).trim_end_matches('/') == WS_ROUTE
        && let Some(t) = ticket_param(req)
    {
        return Ok(Some((CredKind::Ticket, t)));
    }
    Ok(None)
}

#[derive(Clone, Copy)]
enum CredKind {
    Key,
    Bearer,
    Ticket,
}

/// The middleware (see the module docs).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let client_addr = client_ip(&req, &state.settings.trusted_proxies);
    let client = client_addr.map(|ip| ip.to_string());
    let failures_key = crate::auth_failures::client_key(client_addr);
    let method = req.method().clone();
    let path = routed_path(&req).to_string();
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());

    // A client that keeps failing to authenticate is turned away before any credential of
    // its is looked at (see `auth_failures`).
    let throttled = state
        .auth
        .as_ref()
        .and_then(|_| state.auth_failures.blocked_for(&failures_key));
    // A signed export link is its own credential, checked by its handler: no principal.
    let signed_link = crate::routes::export_jobs::is_signed_download(&method, &path);
    let (principal, presented_id) = match (&state.auth, throttled) {
        _ if signed_link => (Ok(None), None),
        (Some(_), Some(wait)) => (Err(ApiError::rate_limited(wait)), None),
        (None, _) => (Ok(Some(state.anonymous.clone())), None),
        (Some(auth), None) => match credential(&req) {
            Err(e) => (Err(e), None),
            Ok(None) => (
                Err(bqai_core::Error::Unauthenticated(
                    "missing credentials: send Authorization: Bearer <key> or X-API-Key: <key>"
                        .into(),
                )
                .into()),
                None,
            ),
            Ok(Some((kind, value))) => {
                let cred = match kind {
                    CredKind::Key => Credential::ApiKey(&value),
                    CredKind::Bearer => Credential::bearer(&value),
                    CredKind::Ticket => Credential::Ticket(&value),
                };
                let presented = cred.key_id().map(str::to_string);
                (
                    auth.authenticate(cred)
                        .await
                        .map(Some)
                        .map_err(ApiError::from),
                    presented,
                )
            }
        },
    };

    let mut refused_code = None;
    let failed_auth = principal.as_ref().is_err_and(|e| {
        matches!(
            e.status(),
            actix_web::http::StatusCode::UNAUTHORIZED
                | actix_web::http::StatusCode::TOO_MANY_REQUESTS
        )
    });
    if principal
        .as_ref()
        .is_err_and(|e| e.status() == actix_web::http::StatusCode::UNAUTHORIZED)
    {
        state
            .auth_failures
            .charge(
                state.rate_limiter.as_ref(),
                &failures_key,
                state.settings.auth_failures_per_minute,
            )
            .await;
    }
    let (res, principal_id) = match principal {
        Ok(p) => {
            let id = p.as_ref().and_then(|p| p.id.clone());
            if let Some(p) = p {
                req.extensions_mut().insert(p);
            }
            (next.call(req).await?.map_into_left_body(), id)
        }
        Err(err) => {
            refused_code = Some(err.code());
            let mut resp = err.error_response();
            if err.status_code() == actix_web::http::StatusCode::UNAUTHORIZED {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            (req.into_response(resp).map_into_right_body(), presented_id)
        }
    };

    if let Some(log) = &state.audit {
        let mut event = audit_event(&res, &method, &path, request_id, principal_id, client);
        if !state.settings.audit_reads && is_allowed_read(&event, &method) {
            return Ok(res);
        }
        // An MCP request that got through is audited by the MCP server, per tool call with
        // what it touched (`crate::mcp`); refusals here (no or a bad credential) are not.
        if path == MCP_ROUTE && event.outcome == AuditOutcome::Allowed {
            return Ok(res);
        }
        if let Some(code) = refused_code {
            event.error_code = Some(code.to_string());
        }
        // Failed authentications: one event per client and minute, plus a count.
        let events = if failed_auth {
            // Per client and presented key id: a probe of a real key stays visible apart
            // from anonymous noise (the throttle bounds how many ids one client can try).
            let window = format!(
                "{failures_key}|{}",
                event.principal.as_deref().unwrap_or("")
            );
            state.auth_failures.observe(&window, event)
        } else {
            vec![event]
        };
        for event in events {
            append_audit(log.as_ref(), &event, state.settings.audit_wait).await;
        }
    }
    Ok(res)
}

/// Whether the call is answered only once its event is stored even without `auth.audit_wait`:
/// anything refused or failed, and what changes who may do what (admin changes, tickets).
/// Allowed data accesses are answered once their event is queued (`BatchedAuditLog`).
fn must_wait(event: &AuditEvent) -> bool {
    event.outcome != AuditOutcome::Allowed
        || matches!(event.action, AuditAction::AdminChange | AuditAction::Ticket)
}

/// How a call that was not served counts in the audit log: refused (an authentication, a
/// permission, a limit, or the guard said no) or failed.
pub(crate) fn refusal_outcome(status: u16, code: &str) -> AuditOutcome {
    if matches!(status, 401 | 403 | 429) || code == "SQL_REJECTED" {
        AuditOutcome::Denied
    } else {
        AuditOutcome::Failed
    }
}

/// Appends an audit event in the background, for a WebSocket ask (one of many on a
/// connection): the event stream never waits for the log.
pub(crate) fn spawn_audit(state: &AppState, event: AuditEvent) {
    let Some(log) = state.audit.clone() else {
        return;
    };
    let wait_all = state.settings.audit_wait;
    tokio::spawn(async move { append_audit(log.as_ref(), &event, wait_all).await });
}

/// Appends `event` as its call needs: stored before the call is answered when it must wait
/// ([`must_wait`], or every event with `auth.audit_wait`), else queued for the writer. A
/// failure is logged with the event, and the call it records stands.
pub(crate) async fn append_audit(
    log: &dyn bqai_core::ports::AuditLog,
    event: &AuditEvent,
    wait_all: bool,
) {
    let appended = if wait_all || must_wait(event) {
        log.append(event).await
    } else {
        log.append_queued(event).await
    };
    if let Err(e) = appended {
        // The event goes to the server log so it is not lost entirely.
        tracing::error!(error = %e, event = ?event, "failed to append to the audit log");
    }
}

/// An allowed call that only read: a catalog, history or conversation read. Not audited when
/// `audit_reads` is off (what matters stays: denials, failures, queries, asks, exports,
/// admin calls and every change).
pub(crate) fn is_allowed_read(event: &AuditEvent, method: &Method) -> bool {
    event.outcome == AuditOutcome::Allowed
        && match event.action {
            AuditAction::CatalogRead | AuditAction::HistoryRead => true,
            AuditAction::Conversation => method == Method::GET,
            _ => false,
        }
}

fn audit_event<B>(
    res: &ServiceResponse<B>,
    method: &Method,
    path: &str,
    request_id: Option<String>,
    principal: Option<String>,
    client: Option<String>,
) -> AuditEvent {
    let status = res.status();
    // A WebSocket upgrade answers 101: the connection was accepted.
    let accepted =
        status.is_success() || status == actix_web::http::StatusCode::SWITCHING_PROTOCOLS;
    let api_error = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>());
    let error_code = api_error
        .map(|e| e.code().to_string())
        .or_else(|| (!accepted).then(|| status.as_str().to_string()));
    let outcome = if accepted {
        AuditOutcome::Allowed
    } else {
        refusal_outcome(status.as_u16(), api_error.map_or("", ApiError::code))
    };
    let note = res
        .request()
        .extensions()
        .get::<AuditNote>()
        .cloned()
        .unwrap_or_default();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| path.to_string());
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at: chrono::Utc::now(),
        request_id,
        principal,
        action: note.action.unwrap_or_else(|| route_action(method, path)),
        route: format!("{method} {route}"),
        targets: note.targets,
        sql_fingerprint: note.sql.as_deref().map(sql_fingerprint),
        outcome,
        status: status.as_u16(),
        error_code,
        bytes: note.bytes,
        client_addr: client,
        detail: note.detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_data_access_is_answered_before_its_event_is_stored() {
        let event = |action, outcome| {
            let mut e = bqai_testkit::auth::audit_event("e", chrono::Utc::now());
            e.action = action;
            e.outcome = outcome;
            e
        };
        for action in AuditAction::ALL {
            let queued = !matches!(action, AuditAction::AdminChange | AuditAction::Ticket);
            assert_eq!(
                must_wait(&event(action, AuditOutcome::Allowed)),
                !queued,
                "{action:?}"
            );
            for outcome in [AuditOutcome::Denied, AuditOutcome::Failed] {
                assert!(must_wait(&event(action, outcome)), "{action:?} {outcome:?}");
            }
        }
    }

    #[test]
    fn routes_imply_actions() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(
            route_action(&g, "/api/v1/datasets/shop"),
            AuditAction::CatalogRead
        );
        assert_eq!(route_action(&p, "/api/v1/query"), AuditAction::Query);
        assert_eq!(route_action(&p, "/api/v1/query-agent"), AuditAction::Ask);
        assert_eq!(route_action(&p, "/api/v1/ask"), AuditAction::Ask);
        assert_eq!(
            route_action(&g, "/api/v1/admin/keys"),
            AuditAction::AdminRead
        );
        assert_eq!(
            route_action(&Method::DELETE, "/api/v1/admin/keys/x"),
            AuditAction::AdminChange
        );
        assert_eq!(
            route_action(&g, "/api/v1/history"),
            AuditAction::HistoryRead
        );
        assert_eq!(route_action(&p, "/api/v1/ws-ticket"), AuditAction::Ticket);
    }
}
