//! [`MemoryConversationStore`]: the `ConversationStore` port on a bounded moka cache, the
//! single-node default. Each conversation lives `ttl` after its last change (creation or
//! appended turn; reads do not extend it); beyond `max_conversations` the least recently used
//! are dropped. Appends are atomic per conversation (moka's `and_compute_with`), so
//! concurrent turns are never lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::conversation::{Conversation, Turn};
use bqai_core::error::Error;
use bqai_core::ports::ConversationStore;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};

/// Every write starts a fresh `ttl`; reads leave the deadline alone.
struct IdleAfterWrite(Duration);

impl Expiry<String, Arc<Conversation>> for IdleAfterWrite {
    fn expire_after_create(
        &self,
        _: &String,
        _: &Arc<Conversation>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.0)
    }

    fn expire_after_update(
        &self,
        _: &String,
        _: &Arc<Conversation>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.0)
    }
}

/// In-process conversations with a TTL.
pub struct MemoryConversationStore {
    inner: moka::future::Cache<String, Arc<Conversation>>,
}

impl MemoryConversationStore {
    /// A store keeping at most `max_conversations`, each for `ttl` after its last change.
    pub fn new(ttl: Duration, max_conversations: u64) -> Self {
        Self {
            inner: moka::future::Cache::builder()
                .max_capacity(max_conversations)
                .expire_after(IdleAfterWrite(ttl))
                .build(),
        }
    }
}

#[async_trait]
impl ConversationStore for MemoryConversationStore {
    async fn create_conversation(&self, conversation: &Conversation) -> Result<()> {
        let fresh = Arc::new(conversation.clone());
        let result = self
            .inner
            .entry_by_ref(conversation.id.as_str())
            .and_compute_with(|current| {
                std::future::ready(match current {
                    Some(_) => Op::Nop,
                    None => Op::Put(fresh),
                })
            })
            .await;
        match result {
            CompResult::Inserted(_) => Ok(()),
            _ => Err(Error::Conflict(format!(
                "conversation {} exists",
                conversation.id
            ))),
        }
    }

    async fn get_conversation(&self, id: &str) -> Result<Option<Conversation>> {
        Ok(self.inner.get(id).await.map(|c| c.as_ref().clone()))
    }

    async fn append_turn(
        &self,
        id: &str,
        turn: &Turn,
        dataset: Option<&str>,
        max_turns: usize,
    ) -> Result<Option<Conversation>> {
        let result = self
            .inner
            .entry_by_ref(id)
            .and_compute_with(|current| {
                std::future::ready(match current {
                    None => Op::Nop,
                    Some(entry) => {
                        let mut c = entry.into_value().as_ref().clone();
                        apply_turn(&mut c, turn, dataset, max_turns);
                        Op::Put(Arc::new(c))
                    }
                })
            })
            .await;
        Ok(match result {
            CompResult::ReplacedWith(e) | CompResult::Inserted(e) => {
                Some(e.into_value().as_ref().clone())
            }
            _ => None,
        })
    }

    async fn delete_conversation(&self, id: &str) -> Result<bool> {
        Ok(self.inner.remove(id).await.is_some())
    }
}

/// Adds `turn` to `c` the way every store does: dataset set when missing, oldest turns
/// dropped beyond `max_turns`, `updated_at` moved on.
fn apply_turn(c: &mut Conversation, turn: &Turn, dataset: Option<&str>, max_turns: usize) {
    if c.dataset.is_none() {
        c.dataset = dataset.map(str::to_owned);
    }
    c.turns.push(turn.clone());
    let excess = c.turns.len().saturating_sub(max_turns.max(1));
    c.turns.drain(..excess);
    c.updated_at = chrono::Utc::now();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conversation_contract() {
        let store = Arc::new(MemoryConversationStore::new(Duration::from_secs(1), 1000));
        bqai_testkit::conversation::conversation_contract(store, Duration::from_secs(1)).await;
    }
}
