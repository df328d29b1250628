DELETE FROM query_history WHERE kind = 'export';
ALTER TABLE query_history DROP CONSTRAINT query_history_kind_check;
ALTER TABLE query_history
    ADD CONSTRAINT query_history_kind_check CHECK (kind IN ('sql', 'ask', 'system'));
