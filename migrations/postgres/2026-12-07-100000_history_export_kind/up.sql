-- Kind 'export': a query whose whole result left as a file (POST /api/v1/exports).
-- The PostgreSQL twin of migrations/sqlite/2026-12-07-100000_history_export_kind.
ALTER TABLE query_history DROP CONSTRAINT query_history_kind_check;
ALTER TABLE query_history
    ADD CONSTRAINT query_history_kind_check CHECK (kind IN ('sql', 'ask', 'system', 'export'));
