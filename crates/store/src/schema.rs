//! The database schema, shared by every backend: only column types diesel maps the same way on
//! SQLite and PostgreSQL (Text, BigInt, Bool, Timestamp). Must match `diesel print-schema`
//! run against the migrations.

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
    }
}
