//! `POST /api/v1/conversations`, `GET` and `DELETE /api/v1/conversations/{id}`: multi-turn
//! conversations (continued with `conversation_id` on `POST /api/v1/ask`). A conversation
//! belongs to the principal that created it; another caller (not an admin) gets 404.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use bqai_core::auth::Action;
use bqai_core::conversation::{Conversation, Turn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, add_dataset_target, note};
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/conversations` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The dataset the conversation is about (else the default, else set by the first ask).
    pub dataset_id: Option<String>,
}

/// A conversation on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationResponse {
    conversation_id: String,
    dataset_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// When it expires unless continued.
    expires_at: Option<DateTime<Utc>>,
    /// Turns, oldest first (omitted on creation).
    #[serde(skip_serializing_if = "Option::is_none")]
    turns: Option<Vec<TurnDto>>,
}

/// A turn on the wire (the generator's private state is not sent).
#[derive(Debug, Serialize, ToSchema)]
struct TurnDto {
    request_id: String,
    question: String,
    sql: Option<String>,
    explanation: String,
    result: Option<bqai_core::conversation::ResultSummary>,
    entities: bqai_core::conversation::Entities,
    at: DateTime<Utc>,
}

impl From<Turn> for TurnDto {
    fn from(t: Turn) -> Self {
        Self {
            request_id: t.request_id,
            question: t.question,
            sql: t.sql,
            explanation: t.explanation,
            result: t.result,
            entities: t.entities,
            at: t.at,
        }
    }
}

fn response(state: &AppState, c: Conversation, with_turns: bool) -> ConversationResponse {
    ConversationResponse {
        expires_at: state.ask.expires_at(&c),
        conversation_id: c.id,
        dataset_id: c.dataset,
        created_at: c.created_at,
        updated_at: c.updated_at,
        turns: with_turns.then(|| c.turns.into_iter().map(TurnDto::from).collect()),
    }
}

/// Starts a conversation.
#[utoipa::path(operation_id = "create_conversation", tag = "conversations", request_body(content = Option<CreateBody>, description = "Optional"), responses((status = 201, description = "The new conversation", body = ConversationResponse), (status = 404, description = "NOT_FOUND: the dataset", body = crate::openapi::ErrorEnvelope), (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope)))]
#[post("/conversations")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::DryRun)?;
    let body = optional_json_body(&req, &body)?;
    let dataset = body.dataset_id.filter(|d| !d.is_empty());
    if let Some(ds) = &dataset {
        note(&req, |n| add_dataset_target(n, ds));
    }
    let c = state
        .ask
        .create_conversation(caller.principal(), dataset.as_deref())
        .await?;
    note(&req, |n| n.detail = Some(format!("conversation {}", c.id)));
    Ok(HttpResponse::Created().json(response(&state, c, false)))
}

/// The body is optional, but a body that is sent is held to the same rules as every JSON
/// body: a JSON content type, valid JSON, no unknown fields. (An `Option<Json<_>>` extractor
/// would turn any such mistake into "no body" and silently ignore it.)
fn optional_json_body(req: &HttpRequest, body: &[u8]) -> Result<CreateBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreateBody::default());
    }
    let json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
        });
    if !json {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// A conversation with its turns.
#[utoipa::path(operation_id = "get_conversation", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), responses((status = 200, description = "The conversation with its turns", body = ConversationResponse), (status = 404, description = "NOT_FOUND (also another caller's)", body = crate::openapi::ErrorEnvelope)))]
#[get("/conversations/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::DryRun)?;
    let id = path.into_inner();
    let c = state.ask.get_conversation(caller.principal(), &id).await?;
    note(&req, |n| n.detail = Some(format!("conversation {id}")));
    Ok(HttpResponse::Ok().json(response(&state, c, true)))
}

/// Deletes a conversation.
#[utoipa::path(operation_id = "delete_conversation", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), responses((status = 204, description = "Deleted"), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope)))]
#[delete("/conversations/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::DryRun)?;
    let id = path.into_inner();
    state
        .ask
        .delete_conversation(caller.principal(), &id)
        .await?;
    note(&req, |n| {
        n.detail = Some(format!("conversation {id} deleted"))
    });
    Ok(HttpResponse::NoContent().finish())
}
