-- How the SQL of an ask was generated: attempts, generator, model, LLM latency, tokens and
-- cost, and whether the question cache answered. NULL for plain SQL queries (the generator
-- column is set exactly when the entry has ask details).
-- The PostgreSQL twin of migrations/sqlite/2026-11-25-000000_ask_details.
ALTER TABLE query_history ADD COLUMN ask_attempts BIGINT;
ALTER TABLE query_history ADD COLUMN generator TEXT;
ALTER TABLE query_history ADD COLUMN llm_model TEXT;
ALTER TABLE query_history ADD COLUMN llm_latency_ms BIGINT;
ALTER TABLE query_history ADD COLUMN llm_input_tokens BIGINT;
ALTER TABLE query_history ADD COLUMN llm_output_tokens BIGINT;
ALTER TABLE query_history ADD COLUMN llm_cost_usd DOUBLE PRECISION;
ALTER TABLE query_history ADD COLUMN question_cache_hit BOOLEAN;
