//! `POST /api/v1/ws-ticket`: a short-lived ticket for a WebSocket upgrade, which browsers
//! cannot authenticate with headers. The ticket stands for the caller (its key's current
//! grants are re-checked when it is used) and is accepted only as `?ticket=` on an upgrade.

use actix_web::{HttpResponse, post, web};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TicketDto {
    /// `null` when authentication is off (connect without one).
    ticket: Option<String>,
    expires_in_secs: u64,
}

/// Issues a ticket for the caller.
#[utoipa::path(operation_id = "issue_ws_ticket", tag = "websocket", responses((status = 200, description = "A single-use ticket for one WebSocket upgrade", body = TicketDto)))]
#[post("/ws-ticket")]
pub async fn issue(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let dto = match &state.auth {
        None => TicketDto {
            ticket: None,
            expires_in_secs: 0,
        },
        Some(auth) => {
            let (ticket, ttl) = auth.issue_ticket(caller.principal())?;
            TicketDto {
                ticket: Some(ticket),
                expires_in_secs: ttl.as_secs(),
            }
        }
    };
    Ok(HttpResponse::Ok().json(dto))
}
