-- Query history: one row per query the service handled, whatever its outcome.
-- The PostgreSQL twin of migrations/sqlite/2024-01-01-000000_query_history: same columns, types,
-- checks and indexes, so the one schema.rs serves both backends (tests/schema.rs compares them).
CREATE TABLE query_history (
    -- "C" collation: ids sort bytewise, as in SQLite, so keyset pages break ties the same way
    -- on both backends and do not depend on the database's locale.
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
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
    -- UTC by convention, microsecond precision. Without time zone on purpose: diesel maps it to
    -- the same Timestamp/NaiveDateTime as SQLite's column, and the session time zone cannot
    -- shift stored values.
    created_at TIMESTAMP NOT NULL
);

-- Listing is newest first with (created_at, id) as the keyset; filters narrow by one column.
CREATE INDEX query_history_created_at_id ON query_history (created_at DESC, id DESC);
CREATE INDEX query_history_status_created_at ON query_history (status, created_at DESC, id DESC);
CREATE INDEX query_history_kind_created_at ON query_history (kind, created_at DESC, id DESC);
CREATE INDEX query_history_principal_created_at ON query_history (principal, created_at DESC, id DESC);
