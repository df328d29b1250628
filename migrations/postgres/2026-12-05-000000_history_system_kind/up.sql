-- Kind 'system' (queries bqai runs for itself, such as the planner's value sampling) and the
-- request_id of the HTTP request or WebSocket ask a query belongs to, and whether an ask
-- continued a conversation (ask_follow_up).
-- The PostgreSQL twin of migrations/sqlite/2026-12-05-000000_history_system_kind.
ALTER TABLE query_history DROP CONSTRAINT query_history_kind_check;
ALTER TABLE query_history
    ADD CONSTRAINT query_history_kind_check CHECK (kind IN ('sql', 'ask', 'system'));
ALTER TABLE query_history ADD COLUMN request_id TEXT;
ALTER TABLE query_history ADD COLUMN ask_follow_up BOOLEAN;
