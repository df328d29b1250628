-- Conversations (the SQL ConversationStore): one row per conversation, one per kept turn.
-- The PostgreSQL twin of migrations/sqlite/2026-11-26-010000_conversations: same columns,
-- types and indexes, so the one schema.rs serves both backends (tests/schema.rs compares
-- them). Ids are in the "C" collation (bytewise, as in SQLite); timestamps are TIMESTAMP
-- without time zone holding UTC.

-- A conversation lives until expires_at (its last write plus the store's TTL); an expired row
-- reads as absent and is purged later (on create, bounded, or by an explicit purge).
CREATE TABLE conversations (
    -- UUIDv7.
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    -- The owner's principal id; NULL when authentication is off.
    principal TEXT COLLATE "C",
    -- Set by the first turn that names one, then kept.
    dataset TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- Purging walks the expired rows oldest first.
CREATE INDEX conversations_expires_at ON conversations (expires_at);

-- The kept turns, oldest (lowest seq) first; deleting a conversation deletes its turns.
CREATE TABLE conversation_turns (
    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- 1, 2, …: the previous highest plus one; the oldest are deleted beyond max_turns.
    seq BIGINT NOT NULL,
    -- The turn as JSON (serde's form of bqai_core::conversation::Turn). Text, not jsonb: the
    -- same column type as on SQLite, and the store only ever reads it whole.
    turn TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
