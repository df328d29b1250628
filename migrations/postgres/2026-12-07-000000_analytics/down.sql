DROP INDEX query_history_created_at_id;
CREATE INDEX query_history_created_at_id ON query_history (created_at DESC, id DESC);
ALTER TABLE query_history DROP COLUMN rerun_of;
ALTER TABLE query_history DROP COLUMN tables_read;
ALTER TABLE query_history DROP COLUMN question_shape;
ALTER TABLE query_history DROP COLUMN sql_shape;
