//! `POST /api/v1/conversations`, `GET` and `DELETE /api/v1/conversations/{id}`: multi-turn
//! conversations (continued with `conversation_id` on `POST /api/v1/ask`). A conversation
//! belongs to the principal that created it; another caller (not an admin) gets 404.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use bqai_core::auth::Action;
use bqai_core::conversation::{Conversation, Turn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, add_dataset_target, note};
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/conversations` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The dataset the conversation is about (else the default, else set by the first ask).
    pub dataset_id: Option<String>,
}

/// A conversation on the wire.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
#[post("/conversations")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Option<web::Json<CreateBody>>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::DryRun)?;
    let body = body.map(web::Json::into_inner).unwrap_or_default();
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

/// A conversation with its turns.
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
