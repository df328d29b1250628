-- Retention: the audit log stays append-only, with one exception — the purge of events older
-- than the configured retention (auth.audit_retention_days), done by bqai's scheduled purge or
-- `bqai audit purge`, and itself recorded in the audit log.
--
-- The purge proves itself with a permit: inside its own write transaction it inserts the
-- cutoff into audit_purge_permit, deletes a batch of events older than that cutoff, and
-- deletes the permit before committing. No other connection ever sees the permit (SQLite has
-- one writer at a time and uncommitted rows are private), and the trigger still refuses
-- every UPDATE, and every DELETE of an event at or after a permitted cutoff.
CREATE TABLE audit_purge_permit (
    cutoff TIMESTAMP PRIMARY KEY NOT NULL
);

DROP TRIGGER audit_log_no_delete;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permit WHERE OLD.at < audit_purge_permit.cutoff)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
