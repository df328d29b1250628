-- Retention: the PostgreSQL twin of migrations/sqlite/2026-12-06-000000_retention. The audit
-- log stays append-only except for the purge of events older than auth.audit_retention_days,
-- which inserts its cutoff into audit_purge_permit inside its own transaction, deletes a batch
-- of older events and deletes the permit before committing: other transactions never see an
-- uncommitted permit (MVCC), so for them the trigger refuses UPDATE, DELETE and TRUNCATE as
-- before.
CREATE TABLE audit_purge_permit (
    cutoff TIMESTAMP PRIMARY KEY NOT NULL
);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Nested: OLD is only defined for row-level DELETE (TRUNCATE is a statement trigger).
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM audit_purge_permit p WHERE OLD.at < p.cutoff) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
