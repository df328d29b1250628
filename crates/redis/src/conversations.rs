//! [`RedisConversationStore`]: the `ConversationStore` port on Redis, so a conversation started
//! on one bqai replica can be continued on any other.
//!
//! Layout, with `<ns>` the configured namespace and `<id>` the conversation id:
//! - `<ns>bqai:v1:conv:{<id>}`: a hash with `principal` and `dataset` (each absent when
//!   `None`), `created_at` and `updated_at` (RFC 3339, UTC, full precision);
//! - `<ns>bqai:v1:conv:{<id>}:turns`: a list of the turns, oldest first, each a JSON document
//!   (serde_json's encoding of [`Turn`]).
//!
//! The `{<id>}` hash tag keeps both keys in one slot. Both carry the conversation's time to
//! live, restarted by every write (creation, appended turn) and left alone by reads. Every
//! operation is one Lua script, so each is atomic and one round trip: concurrent appends from
//! several replicas never lose a turn, and a read never sees a half-applied append.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::conversation::{Conversation, Turn};
use bqai_core::ports::ConversationStore;
use bqai_core::{Error, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_redis::redis::Script;

use crate::client::{RedisClient, ttl_millis};
use crate::options::RedisOptions;

static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/conversation_create.lua")));
static APPEND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/conversation_append.lua")));
static GET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/conversation_get.lua")));
static DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/conversation_delete.lua")));

const PRINCIPAL: &str = "principal";
const DATASET: &str = "dataset";
const CREATED_AT: &str = "created_at";
const UPDATED_AT: &str = "updated_at";

/// The most turns an append keeps, whatever the caller asks: far beyond any real conversation,
/// and small enough to reach Lua as an exact integer.
const MAX_KEPT_TURNS: usize = 1_000_000_000;

/// A conversation as the get and append scripts return it: the hash's `HGETALL` (field,
/// value, field, value, …) and the encoded turns, oldest first.
type Stored = (Vec<String>, Vec<String>);

/// The `ConversationStore` port on Redis.
///
/// Same semantics as `bqai_memory::MemoryConversationStore`: a conversation lives `ttl` after
/// its last change (creation or appended turn; reads do not extend it); an append sets the
/// dataset only when the conversation has none, keeps at most `max(1, max_turns)` turns
/// (dropping the oldest) and moves `updated_at` to now. Unlike the in-process store there is no
/// cap on the number of conversations: Redis' own memory policy is the bound.
///
/// A stored turn this version cannot read (written by a newer bqai, damaged) is skipped with a
/// warning rather than failing the whole conversation.
pub struct RedisConversationStore {
    client: RedisClient,
    ttl: Duration,
}

impl std::fmt::Debug for RedisConversationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConversationStore")
            .field("client", &self.client)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl RedisConversationStore {
    /// A store on its own connection pool keeping each conversation `ttl` after its last
    /// change; [`Error::InvalidRequest`] for a malformed URL. Does not connect.
    pub fn new(options: RedisOptions, ttl: Duration) -> Result<Self> {
        Ok(Self::from_client(RedisClient::new(options)?, ttl))
    }

    /// A store sharing `client`'s pool and circuit breaker.
    pub fn from_client(client: RedisClient, ttl: Duration) -> Self {
        Self { client, ttl }
    }

    /// The client underneath.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// The conversation's hash and turns list.
    fn keys(&self, id: &str) -> (String, String) {
        let hash = format!("{}bqai:v1:conv:{{{id}}}", self.client.namespace());
        let turns = format!("{hash}:turns");
        (hash, turns)
    }
}

#[async_trait]
impl ConversationStore for RedisConversationStore {
    async fn create_conversation(&self, conversation: &Conversation) -> Result<()> {
        let mut fields: Vec<(&str, String)> = vec![
            (CREATED_AT, timestamp(conversation.created_at)),
            (UPDATED_AT, timestamp(conversation.updated_at)),
        ];
        if let Some(principal) = &conversation.principal {
            fields.push((PRINCIPAL, principal.clone()));
        }
        if let Some(dataset) = &conversation.dataset {
            fields.push((DATASET, dataset.clone()));
        }
        let turns = conversation
            .turns
            .iter()
            .map(encode_turn)
            .collect::<Result<Vec<_>>>()?;

        let (hash, list) = self.keys(&conversation.id);
        let mut invocation = CREATE.prepare_invoke();
        invocation
            .key(hash)
            .key(list)
            .arg(ttl_millis(self.ttl))
            .arg(fields.len() * 2);
        for (field, value) in fields {
            invocation.arg(field).arg(value);
        }
        for turn in turns {
            invocation.arg(turn);
        }
        let created: i64 = self
            .client
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "conversation {} exists",
                conversation.id
            )))
        }
    }

    async fn get_conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let (hash, list) = self.keys(id);
        let mut invocation = GET.prepare_invoke();
        invocation.key(hash).key(list);
        let stored: Option<Stored> = self
            .client
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        stored.map(|s| decode(id, s)).transpose()
    }

    async fn append_turn(
        &self,
        id: &str,
        turn: &Turn,
        dataset: Option<&str>,
        max_turns: usize,
    ) -> Result<Option<Conversation>> {
        let (hash, list) = self.keys(id);
        let mut invocation = APPEND.prepare_invoke();
        invocation
            .key(hash)
            .key(list)
            .arg(ttl_millis(self.ttl))
            .arg(encode_turn(turn)?)
            .arg(timestamp(Utc::now()))
            .arg(max_turns.clamp(1, MAX_KEPT_TURNS));
        if let Some(dataset) = dataset {
            invocation.arg(dataset);
        }
        let stored: Option<Stored> = self
            .client
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        stored.map(|s| decode(id, s)).transpose()
    }

    async fn delete_conversation(&self, id: &str) -> Result<bool> {
        let (hash, list) = self.keys(id);
        let mut invocation = DELETE.prepare_invoke();
        invocation.key(hash).key(list);
        let existed: i64 = self
            .client
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(existed == 1)
    }
}

/// RFC 3339 in UTC with as many fractional digits as needed: lossless.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn encode_turn(turn: &Turn) -> Result<String> {
    serde_json::to_string(turn).map_err(|e| Error::internal("encoding a conversation turn", e))
}

/// The conversation `id` from what a script returned.
fn decode(id: &str, (fields, turns): Stored) -> Result<Conversation> {
    let mut principal = None;
    let mut dataset = None;
    let mut created_at = None;
    let mut updated_at = None;
    let mut fields = fields.into_iter();
    while let (Some(field), Some(value)) = (fields.next(), fields.next()) {
        match field.as_str() {
            PRINCIPAL => principal = Some(value),
            DATASET => dataset = Some(value),
            CREATED_AT => created_at = Some(parse_timestamp(id, CREATED_AT, &value)?),
            UPDATED_AT => updated_at = Some(parse_timestamp(id, UPDATED_AT, &value)?),
            // A field added by a newer version: nothing this one needs.
            _ => {}
        }
    }
    let created_at = created_at.ok_or_else(|| {
        Error::internal_msg(format!("stored conversation {id} has no {CREATED_AT}"))
    })?;
    let turns = turns
        .iter()
        .enumerate()
        .filter_map(|(index, json)| {
            serde_json::from_str::<Turn>(json)
                .inspect_err(|e| {
                    tracing::warn!(
                        conversation = id,
                        index,
                        error = %e,
                        "unreadable conversation turn in Redis; skipped"
                    );
                })
                .ok()
        })
        .collect();
    Ok(Conversation {
        id: id.to_owned(),
        principal,
        dataset,
        created_at,
        updated_at: updated_at.unwrap_or(created_at),
        turns,
    })
}

fn parse_timestamp(id: &str, field: &str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| {
            Error::internal(
                format!("stored conversation {id} has an unreadable {field}"),
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(fields: &[(&str, &str)], turns: Vec<String>) -> Stored {
        (
            fields
                .iter()
                .flat_map(|(f, v)| [(*f).to_owned(), (*v).to_owned()])
                .collect(),
            turns,
        )
    }

    #[test]
    fn timestamps_round_trip_exactly() {
        let now = Utc::now();
        let text = timestamp(now);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_timestamp("c", CREATED_AT, &text).unwrap(), now);
    }

    #[test]
    fn absent_fields_are_none_and_unknown_fields_are_ignored() {
        let at = "2025-01-02T03:04:05.678Z";
        let c = decode(
            "c1",
            stored(
                &[(CREATED_AT, at), (UPDATED_AT, at), ("from_the_future", "x")],
                Vec::new(),
            ),
        )
        .unwrap();
        assert_eq!(c.id, "c1");
        assert_eq!(c.principal, None);
        assert_eq!(c.dataset, None);
        assert_eq!(c.created_at.timestamp_millis(), 1_735_787_045_678);
        assert!(c.turns.is_empty());
    }

    #[test]
    fn unreadable_turns_are_skipped() {
        let at = "2025-01-02T03:04:05Z";
        let turn = bqai_testkit::conversation::turn(1);
        let turns = vec![
            "{\"not\": \"a turn\"}".to_owned(),
            encode_turn(&turn).unwrap(),
            "garbage".to_owned(),
        ];
        let c = decode(
            "c1",
            stored(
                &[(CREATED_AT, at), (PRINCIPAL, "p"), (DATASET, "shop")],
                turns,
            ),
        )
        .unwrap();
        assert_eq!(c.turns, vec![turn]);
        assert_eq!(c.principal.as_deref(), Some("p"));
        assert_eq!(c.dataset.as_deref(), Some("shop"));
        assert_eq!(
            c.updated_at, c.created_at,
            "a missing updated_at is created_at"
        );
    }

    #[test]
    fn a_damaged_hash_is_an_internal_error() {
        let e = decode("c1", stored(&[(PRINCIPAL, "p")], Vec::new())).unwrap_err();
        assert!(matches!(e, Error::Internal { .. }), "{e:?}");
        let e = decode("c1", stored(&[(CREATED_AT, "yesterday")], Vec::new())).unwrap_err();
        assert!(matches!(e, Error::Internal { .. }), "{e:?}");
    }
}
