DROP TABLE key_usage;
DROP TABLE audit_log;
DROP TABLE api_keys;
