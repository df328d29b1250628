-- History analytics (issue 14): what groups entries, computed once when an entry is recorded.
-- sql_shape: fingerprint of the submitted SQL with literals replaced (bqai_core::analytics);
-- question_shape: fingerprint of the normalised question (asks); tables_read: JSON array of
-- the tables the query read; rerun_of: the entry a rerun ran again.
ALTER TABLE query_history ADD COLUMN sql_shape TEXT;
ALTER TABLE query_history ADD COLUMN question_shape TEXT;
ALTER TABLE query_history ADD COLUMN tables_read TEXT;
ALTER TABLE query_history ADD COLUMN rerun_of TEXT;
