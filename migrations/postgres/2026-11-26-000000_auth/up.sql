-- Authentication: API keys (hashes only), the append-only audit log, and bytes charged per
-- principal per UTC day (daily byte quotas).
-- The PostgreSQL twin of migrations/sqlite/2026-11-26-000000_auth: same columns, types, checks
-- and indexes, so the one schema.rs serves both backends (tests/schema.rs compares them). Ids
-- are in the "C" collation (bytewise, as in SQLite); timestamps are TIMESTAMP without time
-- zone holding UTC.

-- One row per key ever created; revoked keys stay (revoked_at set) so their id is never reused
-- and the audit log can name them.
CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    owner TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    -- JSON array of dataset names; ["*"] for every dataset. Text, not jsonb: the same column
    -- type as on SQLite, and the store only ever reads it whole.
    datasets TEXT NOT NULL,
    -- NULL: the server's default.
    rate_limit_per_minute BIGINT CHECK (rate_limit_per_minute > 0),
    -- NULL: no quota.
    daily_byte_quota BIGINT CHECK (daily_byte_quota >= 0),
    expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP,
    -- HMAC-SHA-256(pepper, id ":" secret), hex; never the secret.
    secret_hash TEXT NOT NULL
);

-- Listing is newest first with (created_at, id) as the keyset.
CREATE INDEX api_keys_created_at_id ON api_keys (created_at DESC, id DESC);

-- One row per audited request. Append-only: the service never updates or deletes a row, and
-- the triggers below refuse it (TRUNCATE included) to any role that cannot disable triggers.
CREATE TABLE audit_log (
    -- UUIDv7: sorts by time.
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    request_id TEXT,
    principal TEXT COLLATE "C",
    -- No CHECK on the action: new actions come with new features (and SQLite cannot change a
    -- CHECK without rebuilding the table). The outcome set is closed.
    action TEXT NOT NULL,
    route TEXT NOT NULL,
    -- JSON array of the datasets and tables touched.
    targets TEXT NOT NULL,
    sql_fingerprint TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    -- The HTTP status answered.
    status BIGINT NOT NULL,
    error_code TEXT,
    bytes BIGINT NOT NULL CHECK (bytes >= 0),
    client_addr TEXT,
    detail TEXT
);

-- Listing is newest first with (at, id) as the keyset; filters narrow by one column.
CREATE INDEX audit_log_at_id ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_principal_at ON audit_log (principal, at DESC, id DESC);
CREATE INDEX audit_log_action_at ON audit_log (action, at DESC, id DESC);
CREATE INDEX audit_log_outcome_at ON audit_log (outcome, at DESC, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Bytes charged per principal per UTC day. A charge is one upsert (bytes = bytes + charge,
-- saturating at i64::MAX), atomic under concurrent charges.
CREATE TABLE key_usage (
    principal TEXT COLLATE "C" NOT NULL,
    day DATE NOT NULL,
    bytes BIGINT NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (principal, day)
);
