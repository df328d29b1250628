ALTER TABLE query_history DROP COLUMN question_cache_hit;
ALTER TABLE query_history DROP COLUMN llm_cost_usd;
ALTER TABLE query_history DROP COLUMN llm_output_tokens;
ALTER TABLE query_history DROP COLUMN llm_input_tokens;
ALTER TABLE query_history DROP COLUMN llm_latency_ms;
ALTER TABLE query_history DROP COLUMN llm_model;
ALTER TABLE query_history DROP COLUMN generator;
ALTER TABLE query_history DROP COLUMN ask_attempts;
