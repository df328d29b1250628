//! Warm `claude` processes for [`crate::ClaudeCli`] (`llm.warm_processes`,
//! `llm.warm_max_turns`).
//!
//! Most of a cold CLI call is the CLI starting (Node.js loading the CLI, reading its config),
//! and the first turn of a process still runs much of the CLI's code for the first time. A
//! warm process has done both: it runs in stream-json mode ([`crate::session`]) with the
//! system prompt and output cap of an earlier call and waits on its stdin. A call whose
//! system prompt and cap match takes it (one generation per checkout), writes its user
//! message and reads the answer; the process then clears its conversation and goes back to
//! the pool for the next call with that prompt.
//!
//! **Nothing carries over.** A stream-json process keeps its conversation: without a clear,
//! the next request would carry the earlier question and answer — another caller's question in
//! this caller's context, and a longer, costlier request each turn. So after every answer the
//! process is sent the CLI's `/clear`, and the next call first checks the clear's result line
//! and refuses the process unless the clear happened.
//!
//! **Recycled.** A process serves at most `warm_max_turns` questions, then is killed and a
//! fresh one started; after an error, a timeout or a cancelled call it is killed like a cold
//! one (and no replacement is started, so a CLI that cannot work is not started again and
//! again). A process started for a call that carried a trace context is not kept either: it
//! would report later calls under that trace.
//!
//! **Bounded and checked.** At most `capacity` processes wait (oldest evicted first, so a
//! change of prompt prefix replaces them), each at most [`MAX_IDLE`]; one that exited or aged
//! out is killed and skipped when a call looks for one. Every process leads its own process
//! group, killed when it is dropped: evicted, expired, or with the pool when the adapter goes
//! (shutdown). Were bqai killed outright, its end of the stdin pipe closes, and the CLI exits
//! at end of input.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::claude_cli::{ProcessGroup, SystemPrompt};
use crate::session::Session;

/// Longest a warm process waits for a call before it is killed (its credentials or the
/// configuration it read may have changed since).
const MAX_IDLE: Duration = Duration::from_secs(300);

/// What a process was started with that a call must match: the system prompt and the
/// output-token cap (both fixed at spawn). A hash, so the pool holds no prompt text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WarmKey(u64, u64);

impl WarmKey {
    pub(crate) fn new(system: &str, max_tokens: u32) -> Self {
        use std::hash::Hasher;
        // Two SipHash values salted apart: 128 bits, so two prompts never share a key in
        // practice, without a hashing crate.
        let hash = |salt: u64| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write_u64(salt);
            h.write_u32(max_tokens);
            h.write(system.as_bytes());
            h.finish()
        };
        Self(hash(0x9e37_79b9_7f4a_7c15), hash(0xc2b2_ae3d_27d4_eb4f))
    }
}

/// A spawned CLI waiting for its next message, with what must live as long as it does.
pub(crate) struct Warm {
    pub(crate) key: WarmKey,
    pub(crate) session: Session,
    /// Kills the process group when dropped.
    pub(crate) group: ProcessGroup,
    /// The system prompt, kept while the process may read it (its file, when too long for
    /// an argument, is removed on drop).
    pub(crate) _system: SystemPrompt,
    /// Started with a call's trace context: never kept for another call.
    pub(crate) traced: bool,
    pub(crate) idle_since: Instant,
}

impl Warm {
    fn usable(&mut self) -> bool {
        self.idle_since.elapsed() < MAX_IDLE && self.session.alive()
    }
}

/// The idle warm processes; see the module docs.
pub(crate) struct WarmPool {
    capacity: usize,
    idle: Mutex<Vec<Warm>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool")
            .field("capacity", &self.capacity)
            .field("idle", &self.idle())
            .finish()
    }
}

impl WarmPool {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            idle: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// How many processes may wait.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        // Only pushes and removals happen under the lock: a poisoned list is still whole.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A live process started for `key`, if one waits; dead and aged ones are dropped (killed)
    /// on the way.
    pub(crate) fn take(&self, key: WarmKey) -> Option<Warm> {
        let mut idle = self.lock();
        idle.retain_mut(Warm::usable);
        let found = idle
            .iter()
            .position(|w| w.key == key)
            .map(|at| idle.remove(at));
        drop(idle);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `warm` for a later call, evicting the oldest when full.
    pub(crate) fn put(&self, warm: Warm) {
        if self.capacity == 0 {
            return;
        }
        let mut idle = self.lock();
        while idle.len() >= self.capacity {
            idle.remove(0);
        }
        idle.push(warm);
    }

    /// Processes waiting now.
    pub(crate) fn idle(&self) -> usize {
        self.lock().len()
    }

    /// Calls that found a warm process, and calls that did not (since start).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_prompt_and_by_cap() {
        let a = WarmKey::new("You write SQL.", 300);
        assert_eq!(a, WarmKey::new("You write SQL.", 300));
        assert_ne!(a, WarmKey::new("You write SQL!", 300));
        assert_ne!(a, WarmKey::new("You write SQL.", 301));
    }
}
