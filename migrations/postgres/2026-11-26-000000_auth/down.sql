DROP TABLE key_usage;
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE api_keys;
