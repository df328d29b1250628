-- Export jobs (the SQL ExportJobStore): the PostgreSQL twin of
-- migrations/sqlite/2026-12-08-000000_export_jobs, same columns, types and indexes. Ids are
-- in the "C" collation (bytewise, as in SQLite); timestamps are TIMESTAMP holding UTC.
CREATE TABLE export_jobs (
    -- UUIDv7.
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    -- The submitter's principal id; NULL when authentication is off.
    owner TEXT COLLATE "C",
    -- The identity the job runs as (serde's form of bqai_core::model::Principal).
    principal TEXT NOT NULL,
    format TEXT NOT NULL,
    file_name TEXT NOT NULL,
    -- What to run (serde's form of bqai_core::export::ExportSpec).
    spec TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
    rows_written BIGINT NOT NULL DEFAULT 0,
    bytes_written BIGINT NOT NULL DEFAULT 0,
    total_rows BIGINT,
    error_code TEXT,
    error_message TEXT,
    query_id TEXT,
    -- Where the file is (a path or an object URL).
    location TEXT,
    -- The worker holding a running job.
    worker TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    heartbeat_at TIMESTAMP,
    finished_at TIMESTAMP,
    expires_at TIMESTAMP
);

-- Claiming walks the waiting jobs oldest first; expiry walks the finished ones by deadline.
CREATE INDEX export_jobs_status_created ON export_jobs (status, created_at);
-- An owner's listing (newest first) and the per-key limits.
CREATE INDEX export_jobs_owner_created ON export_jobs (owner, created_at);
-- Replicas claim with FOR UPDATE SKIP LOCKED, so a job runs on exactly one of them.
