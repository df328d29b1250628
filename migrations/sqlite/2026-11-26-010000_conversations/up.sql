-- Conversations (the SQL ConversationStore): one row per conversation, one per kept turn.
-- Column types are the ones diesel maps alike on SQLite and PostgreSQL (Text, BigInt,
-- Timestamp); timestamps hold UTC.

-- A conversation lives until expires_at (its last write plus the store's TTL); an expired row
-- reads as absent and is purged later (on create, bounded, or by an explicit purge).
CREATE TABLE conversations (
    -- UUIDv7.
    id TEXT PRIMARY KEY NOT NULL,
    -- The owner's principal id; NULL when authentication is off.
    principal TEXT,
    -- Set by the first turn that names one, then kept.
    dataset TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- Purging walks the expired rows oldest first.
CREATE INDEX conversations_expires_at ON conversations (expires_at);

-- The kept turns, oldest (lowest seq) first. The store deletes a conversation's turns itself
-- in the same transaction as the conversation (the cascade only acts on connections with
-- PRAGMA foreign_keys = ON, which the store's own connections have).
CREATE TABLE conversation_turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- 1, 2, …: the previous highest plus one; the oldest are deleted beyond max_turns.
    seq BIGINT NOT NULL,
    -- The turn as JSON (serde's form of bqai_core::conversation::Turn).
    turn TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
