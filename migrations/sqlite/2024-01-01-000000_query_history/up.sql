-- Query history: one row per query the service handled, whatever its outcome.
-- Column types are the ones diesel maps to BigInt, Text, Bool and Timestamp on both SQLite and
-- PostgreSQL, so one schema.rs serves both backends.
CREATE TABLE query_history (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sql', 'ask')),
    question TEXT,
    sql_submitted TEXT NOT NULL,
    sql_executed TEXT,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'rejected')),
    error_code TEXT,
    error_message TEXT,
    principal TEXT,
    dataset TEXT,
    dry_run BOOLEAN NOT NULL,
    bytes_processed BIGINT NOT NULL,
    bytes_billed BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    row_count BIGINT NOT NULL,
    cache_hit BOOLEAN NOT NULL,
    -- UTC, microsecond precision; SQLite stores diesel's canonical text form ("%F %T%.f"),
    -- which sorts chronologically as plain text.
    created_at TIMESTAMP NOT NULL
);

-- Listing is newest first with (created_at, id) as the keyset; filters narrow by one column.
CREATE INDEX query_history_created_at_id ON query_history (created_at DESC, id DESC);
CREATE INDEX query_history_status_created_at ON query_history (status, created_at DESC, id DESC);
CREATE INDEX query_history_kind_created_at ON query_history (kind, created_at DESC, id DESC);
CREATE INDEX query_history_principal_created_at ON query_history (principal, created_at DESC, id DESC);
