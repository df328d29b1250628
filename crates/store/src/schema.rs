//! The database schema, shared by every backend: only column types diesel maps the same way on
//! SQLite and PostgreSQL (Text, BigInt, Double, Bool, Timestamp, Date). Must match
//! `diesel print-schema` run against the migrations.
//!
//! `tests/schema.rs` enforces that without the diesel CLI: it migrates a fresh SQLite and a
//! fresh PostgreSQL database and compares every table's columns (order, name, type,
//! nullability) and primary key with what this file declares.

diesel::table! {
    query_history (id) {
        id -> Text,
        kind -> Text,
        question -> Nullable<Text>,
        sql_submitted -> Text,
        sql_executed -> Nullable<Text>,
        status -> Text,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        principal -> Nullable<Text>,
        dataset -> Nullable<Text>,
        dry_run -> Bool,
        bytes_processed -> BigInt,
        bytes_billed -> BigInt,
        duration_ms -> BigInt,
        row_count -> BigInt,
        cache_hit -> Bool,
        created_at -> Timestamp,
        ask_attempts -> Nullable<BigInt>,
        generator -> Nullable<Text>,
        llm_model -> Nullable<Text>,
        llm_latency_ms -> Nullable<BigInt>,
        llm_input_tokens -> Nullable<BigInt>,
        llm_output_tokens -> Nullable<BigInt>,
        llm_cost_usd -> Nullable<Double>,
        question_cache_hit -> Nullable<Bool>,
        request_id -> Nullable<Text>,
        ask_follow_up -> Nullable<Bool>,
        sql_shape -> Nullable<Text>,
        question_shape -> Nullable<Text>,
        tables_read -> Nullable<Text>,
        rerun_of -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        owner -> Nullable<Text>,
        role -> Text,
        datasets -> Text,
        rate_limit_per_minute -> Nullable<BigInt>,
        daily_byte_quota -> Nullable<BigInt>,
        expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        secret_hash -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> Timestamp,
        request_id -> Nullable<Text>,
        principal -> Nullable<Text>,
        action -> Text,
        route -> Text,
        targets -> Text,
        sql_fingerprint -> Nullable<Text>,
        outcome -> Text,
        status -> BigInt,
        error_code -> Nullable<Text>,
        bytes -> BigInt,
        client_addr -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

// The audit purge's permit: present only inside the purge's own transaction (see the
// 2026-12-06 retention migration), consulted by the append-only trigger.
diesel::table! {
    audit_purge_permit (cutoff) {
        cutoff -> Timestamp,
    }
}

diesel::table! {
    key_usage (principal, day) {
        principal -> Text,
        day -> Date,
        bytes -> BigInt,
    }
}

diesel::table! {
    conversations (id) {
        id -> Text,
        principal -> Nullable<Text>,
        dataset -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    conversation_turns (conversation_id, seq) {
        conversation_id -> Text,
        seq -> BigInt,
        turn -> Text,
    }
}

diesel::joinable!(conversation_turns -> conversations (conversation_id));
diesel::allow_tables_to_appear_in_same_query!(conversations, conversation_turns);

diesel::table! {
    export_jobs (id) {
        id -> Text,
        owner -> Nullable<Text>,
        principal -> Text,
        format -> Text,
        file_name -> Text,
        spec -> Text,
        status -> Text,
        rows_written -> BigInt,
        bytes_written -> BigInt,
        total_rows -> Nullable<BigInt>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        query_id -> Nullable<Text>,
        location -> Nullable<Text>,
        worker -> Nullable<Text>,
        attempts -> BigInt,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        heartbeat_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
    }
}
