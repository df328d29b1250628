//! Backend-neutral parts of the conversation store: [`SqlConversationStore`] (the
//! [`ConversationStore`] port, handed out by [`Store::conversations`]), the row types, the
//! conversion to and from [`Conversation`], and the rules every backend applies.
//!
//! Tables `conversations` (one row per conversation, with its `expires_at`) and
//! `conversation_turns` (one row per kept turn: `seq` 1, 2, … and the [`Turn`] as JSON).
//!
//! Semantics, as in the in-process store:
//!
//! - Every write (create, append) sets `expires_at` to now plus the TTL; reads leave it alone.
//!   A row whose `expires_at` has passed is absent for every operation: `get` and `append`
//!   answer `None`, `delete` answers `false`, and `create` may reuse its id (the old row and its
//!   turns are deleted first).
//! - An append is one transaction: the conversation is locked (`SELECT … FOR UPDATE` on
//!   PostgreSQL, `BEGIN IMMEDIATE` on SQLite), the turn inserted with the next `seq`, the
//!   oldest turns beyond `max(1, max_turns)` deleted, the dataset set if it had none, and the
//!   deadline moved on. Concurrent appends to one conversation queue up; none is lost.
//! - A get is one statement (the conversation joined with its turns), so it sees one state.
//! - Expired rows do not pile up: each create first purges up to [`PURGE_ON_CREATE`] expired
//!   conversations (with their turns) in its transaction, and
//!   [`Store::purge_expired_conversations`] purges all of them, for a periodic job.
//!
//! Times are the writer's clock, stored as UTC microseconds (see [`crate::convert`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::conversation::{Conversation, Turn};
use bqai_core::ports::ConversationStore;
use bqai_core::{Error, Result};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;

use crate::convert::to_sql_time;
use crate::schema::{conversation_turns, conversations};
use crate::{Backend, Store};

/// At most this many expired conversations are purged by each create (bounding its cost).
pub(crate) const PURGE_ON_CREATE: i64 = 100;

/// Expired conversations deleted per statement by [`Store::purge_expired_conversations`].
pub(crate) const PURGE_BATCH: i64 = 1000;

/// The longest TTL honoured (about 100 years); longer ones are cut to it, keeping every
/// deadline far inside both databases' timestamp range.
const MAX_TTL: Duration = Duration::from_secs(100 * 366 * 24 * 60 * 60);

/// One `conversations` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = conversations)]
pub(crate) struct ConversationRow {
    pub id: String,
    pub principal: Option<String>,
    pub dataset: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// One `conversation_turns` row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = conversation_turns)]
pub(crate) struct TurnRow {
    pub conversation_id: String,
    pub seq: i64,
    pub turn: String,
}

/// What a create writes: the conversation (deadline set) and any turns it already has.
#[derive(Debug, Clone)]
pub(crate) struct NewConversation {
    pub row: ConversationRow,
    pub turns: Vec<TurnRow>,
    /// The writer's now: rows expiring at or before it are purged or replaced.
    pub now: NaiveDateTime,
}

impl NewConversation {
    pub(crate) fn new(c: &Conversation, now: DateTime<Utc>, ttl: Duration) -> Result<Self> {
        let turns = c
            .turns
            .iter()
            .zip(1_i64..)
            .map(|(t, seq)| {
                Ok(TurnRow {
                    conversation_id: c.id.clone(),
                    seq,
                    turn: turn_to_sql(t)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            row: ConversationRow {
                id: c.id.clone(),
                principal: c.principal.clone(),
                dataset: c.dataset.clone(),
                created_at: to_sql_time(c.created_at),
                updated_at: to_sql_time(c.updated_at),
                expires_at: deadline(now, ttl),
            },
            turns,
            now: to_sql_time(now),
        })
    }
}

/// Everything an append writes, prepared before its transaction.
#[derive(Debug, Clone)]
pub(crate) struct Append {
    pub id: String,
    /// The new turn as JSON.
    pub turn: String,
    pub dataset: Option<String>,
    /// How many turns to keep (at least 1).
    pub keep: usize,
    /// The writer's now: the new `updated_at`, and the conversation must expire after it.
    pub now: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl Append {
    pub(crate) fn new(
        id: &str,
        turn: &Turn,
        dataset: Option<&str>,
        max_turns: usize,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Self> {
        Ok(Self {
            id: id.to_owned(),
            turn: turn_to_sql(turn)?,
            dataset: dataset.map(str::to_owned),
            keep: max_turns.max(1),
            now: to_sql_time(now),
            expires_at: deadline(now, ttl),
        })
    }

    /// Applies the append to what the transaction read (the conversation and its turns as
    /// `(seq, json)`, oldest first): pushes the turn, drops the oldest beyond `keep`, sets the
    /// dataset if missing and moves the times on. Returns the new turn's row and the highest
    /// `seq` to delete, if any.
    pub(crate) fn apply(
        &self,
        row: &mut ConversationRow,
        turns: &mut Vec<(i64, String)>,
    ) -> (TurnRow, Option<i64>) {
        let seq = turns.last().map_or(1, |(s, _)| s.saturating_add(1));
        turns.push((seq, self.turn.clone()));
        let excess = turns.len().saturating_sub(self.keep);
        let drop_through = excess.checked_sub(1).map(|last| turns[last].0);
        turns.drain(..excess);
        if row.dataset.is_none() {
            row.dataset.clone_from(&self.dataset);
        }
        row.updated_at = self.now;
        row.expires_at = self.expires_at;
        let new = TurnRow {
            conversation_id: self.id.clone(),
            seq,
            turn: self.turn.clone(),
        };
        (new, drop_through)
    }
}

/// A conversation as read: its row and its turns' JSON, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub row: ConversationRow,
    pub turns: Vec<String>,
}

/// The live conversation `$id` joined with its turns in order, boxed for `$backend` — the
/// one read both backends run (a macro, as `list_query` is, since the boxed query's type
/// names the backend).
macro_rules! load_query {
    ($backend:ty, $id:expr, $now:expr) => {{
        use crate::schema::{conversation_turns, conversations};
        let id: String = $id;
        let now: chrono::NaiveDateTime = $now;
        conversations::table
            .left_join(conversation_turns::table)
            .filter(conversations::id.eq(id))
            .filter(conversations::expires_at.gt(now))
            .order(conversation_turns::seq.nullable().asc())
            .select((
                crate::conversations::ConversationRow::as_select(),
                conversation_turns::turn.nullable(),
            ))
            .into_boxed::<$backend>()
    }};
}
pub(crate) use load_query;

impl Loaded {
    /// Groups the rows of the conversation-left-join-turns query (ordered by `seq`).
    pub(crate) fn from_joined(rows: Vec<(ConversationRow, Option<String>)>) -> Option<Self> {
        let mut rows = rows.into_iter();
        let (row, first) = rows.next()?;
        let turns = first
            .into_iter()
            .chain(rows.filter_map(|(_, t)| t))
            .collect();
        Some(Self { row, turns })
    }

    pub(crate) fn into_conversation(self) -> Result<Conversation> {
        let id = self.row.id;
        let turns = self
            .turns
            .iter()
            .map(|t| {
                serde_json::from_str(t).map_err(|e| {
                    Error::internal(
                        format!("a stored turn of conversation {id} is malformed"),
                        e,
                    )
                })
            })
            .collect::<Result<_>>()?;
        Ok(Conversation {
            id,
            principal: self.row.principal,
            dataset: self.row.dataset,
            created_at: self.row.created_at.and_utc(),
            updated_at: self.row.updated_at.and_utc(),
            turns,
        })
    }
}

fn turn_to_sql(turn: &Turn) -> Result<String> {
    serde_json::to_string(turn).map_err(|e| Error::internal("encoding a turn as JSON", e))
}

/// `now + ttl` as stored (the TTL capped at [`MAX_TTL`]).
fn deadline(now: DateTime<Utc>, ttl: Duration) -> NaiveDateTime {
    let ttl = TimeDelta::from_std(ttl.min(MAX_TTL)).unwrap_or(TimeDelta::MAX);
    to_sql_time(
        now.checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// Conversations in the store's database, each living `ttl` after its last write: the
/// durable (and, on PostgreSQL, shared between replicas) [`ConversationStore`]. Cheap to
/// clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct SqlConversationStore {
    store: Store,
    ttl: Duration,
}

impl SqlConversationStore {
    /// Conversations in `store` (migrated), each kept `ttl` after its last write.
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// The time to live of a conversation after its last write.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Deletes every expired conversation and its turns; returns how many conversations went.
    /// Same as [`Store::purge_expired_conversations`].
    pub async fn purge_expired(&self) -> Result<u64> {
        self.store.purge_expired_conversations().await
    }
}

impl Store {
    /// The store as the core's conversation port: conversations kept `ttl` after their last
    /// write (creation or appended turn). Needs the migrations.
    pub fn conversations(&self, ttl: Duration) -> Arc<dyn ConversationStore> {
        Arc::new(SqlConversationStore::new(self.clone(), ttl))
    }

    /// Deletes every conversation expired by now, with its turns, in batches of 1000 (each its
    /// own transaction under the query timeout); returns how many
    /// conversations went. Creates purge a bounded number on their own; call this from a
    /// periodic job to keep an idle database small.
    pub async fn purge_expired_conversations(&self) -> Result<u64> {
        let now = to_sql_time(Utc::now());
        let mut total = 0_u64;
        loop {
            let purged = match self.backend.as_ref() {
                Backend::Sqlite(s) => s.purge_conversations(now, PURGE_BATCH).await?,
                Backend::Postgres(s) => s.purge_conversations(now, PURGE_BATCH).await?,
            };
            total = total.saturating_add(purged);
            if purged < PURGE_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }
}

#[async_trait]
impl ConversationStore for SqlConversationStore {
    async fn create_conversation(&self, conversation: &Conversation) -> Result<()> {
        let new = NewConversation::new(conversation, Utc::now(), self.ttl)?;
        match self.store.backend.as_ref() {
            Backend::Sqlite(s) => s.create_conversation(new).await,
            Backend::Postgres(s) => s.create_conversation(new).await,
        }
    }

    async fn get_conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let now = to_sql_time(Utc::now());
        let loaded = match self.store.backend.as_ref() {
            Backend::Sqlite(s) => s.get_conversation(id, now).await?,
            Backend::Postgres(s) => s.get_conversation(id, now).await?,
        };
        loaded.map(Loaded::into_conversation).transpose()
    }

    async fn append_turn(
        &self,
        id: &str,
        turn: &Turn,
        dataset: Option<&str>,
        max_turns: usize,
    ) -> Result<Option<Conversation>> {
        let append = Append::new(id, turn, dataset, max_turns, Utc::now(), self.ttl)?;
        let loaded = match self.store.backend.as_ref() {
            Backend::Sqlite(s) => s.append_turn(append).await?,
            Backend::Postgres(s) => s.append_turn(append).await?,
        };
        loaded.map(Loaded::into_conversation).transpose()
    }

    async fn delete_conversation(&self, id: &str) -> Result<bool> {
        let now = to_sql_time(Utc::now());
        match self.store.backend.as_ref() {
            Backend::Sqlite(s) => s.delete_conversation(id, now).await,
            Backend::Postgres(s) => s.delete_conversation(id, now).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ConversationRow {
        let t = to_sql_time(Utc::now());
        ConversationRow {
            id: "c".into(),
            principal: None,
            dataset: None,
            created_at: t,
            updated_at: t,
            expires_at: t,
        }
    }

    fn append(max_turns: usize, dataset: Option<&str>) -> Append {
        let turn = bqai_core::conversation::Turn {
            request_id: "r".into(),
            question: "q".into(),
            sql: None,
            explanation: String::new(),
            result: None,
            entities: Default::default(),
            generator_state: None,
            at: Utc::now(),
        };
        Append::new(
            "c",
            &turn,
            dataset,
            max_turns,
            Utc::now(),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn an_append_keeps_the_newest_turns() {
        let mut turns: Vec<(i64, String)> = (4..=6).map(|s| (s, format!("t{s}"))).collect();
        let (new, drop_through) = append(2, None).apply(&mut row(), &mut turns);
        assert_eq!(new.seq, 7);
        assert_eq!(drop_through, Some(5));
        assert_eq!(turns.iter().map(|t| t.0).collect::<Vec<_>>(), [6, 7]);

        let mut empty = Vec::new();
        let (new, drop_through) = append(0, None).apply(&mut row(), &mut empty);
        assert_eq!((new.seq, drop_through), (1, None), "max_turns 0 keeps one");
        assert_eq!(empty.len(), 1);
    }

    #[test]
    fn an_append_sets_a_missing_dataset_only() {
        let mut r = row();
        append(5, Some("shop")).apply(&mut r, &mut Vec::new());
        assert_eq!(r.dataset.as_deref(), Some("shop"));
        append(5, Some("other")).apply(&mut r, &mut Vec::new());
        assert_eq!(r.dataset.as_deref(), Some("shop"));
    }

    #[test]
    fn huge_ttls_are_capped() {
        let now = Utc::now();
        let far = deadline(now, Duration::MAX);
        assert_eq!(far, deadline(now, MAX_TTL));
        assert!(far.and_utc() > now);
    }

    #[test]
    fn joined_rows_group_into_one_conversation() {
        assert!(Loaded::from_joined(Vec::new()).is_none());
        let bare = Loaded::from_joined(vec![(row(), None)]).unwrap();
        assert!(bare.turns.is_empty());
        let two = Loaded::from_joined(vec![(row(), Some("a".into())), (row(), Some("b".into()))])
            .unwrap();
        assert_eq!(two.turns, ["a", "b"]);
    }
}
