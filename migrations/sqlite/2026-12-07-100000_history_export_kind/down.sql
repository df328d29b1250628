CREATE TABLE query_history_next (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sql', 'ask', 'system')),
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
    created_at TIMESTAMP NOT NULL,
    ask_attempts BIGINT,
    generator TEXT,
    llm_model TEXT,
    llm_latency_ms BIGINT,
    llm_input_tokens BIGINT,
    llm_output_tokens BIGINT,
    llm_cost_usd DOUBLE PRECISION,
    question_cache_hit BOOLEAN,
    request_id TEXT,
    ask_follow_up BOOLEAN,
    sql_shape TEXT,
    question_shape TEXT,
    tables_read TEXT,
    rerun_of TEXT
);
INSERT INTO query_history_next (
    id, kind, question, sql_submitted, sql_executed, status, error_code, error_message,
    principal, dataset, dry_run, bytes_processed, bytes_billed, duration_ms, row_count,
    cache_hit, created_at, ask_attempts, generator, llm_model, llm_latency_ms,
    llm_input_tokens, llm_output_tokens, llm_cost_usd, question_cache_hit, request_id,
    ask_follow_up, sql_shape, question_shape, tables_read, rerun_of
)
SELECT
    id, kind, question, sql_submitted, sql_executed, status, error_code, error_message,
    principal, dataset, dry_run, bytes_processed, bytes_billed, duration_ms, row_count,
    cache_hit, created_at, ask_attempts, generator, llm_model, llm_latency_ms,
    llm_input_tokens, llm_output_tokens, llm_cost_usd, question_cache_hit, request_id,
    ask_follow_up, sql_shape, question_shape, tables_read, rerun_of
FROM query_history
WHERE kind <> 'export';
DROP TABLE query_history;
ALTER TABLE query_history_next RENAME TO query_history;
CREATE INDEX query_history_status_created_at ON query_history (status, created_at DESC, id DESC);
CREATE INDEX query_history_kind_created_at ON query_history (kind, created_at DESC, id DESC);
CREATE INDEX query_history_principal_created_at ON query_history (principal, created_at DESC, id DESC);
CREATE INDEX query_history_created_at_id ON query_history (created_at DESC, id DESC,
  dry_run, kind, status, principal, dataset, cache_hit, duration_ms, bytes_processed, bytes_billed, generator, ask_attempts, llm_input_tokens, llm_output_tokens, llm_cost_usd, sql_shape, question_shape);
