DELETE FROM query_history WHERE kind = 'system';
ALTER TABLE query_history DROP COLUMN ask_follow_up;
ALTER TABLE query_history DROP COLUMN request_id;
ALTER TABLE query_history DROP CONSTRAINT query_history_kind_check;
ALTER TABLE query_history ADD CONSTRAINT query_history_kind_check CHECK (kind IN ('sql', 'ask'));
