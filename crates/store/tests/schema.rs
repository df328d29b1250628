//! `src/schema.rs` against the databases the migrations build, on both backends: the same
//! tables, and per table the same columns in the same order with the same type, nullability
//! and primary key. Drift in either direction (a migration without a schema change, or a
//! schema change without a migration) fails here, with no diesel CLI needed.
//!
//! What `schema.rs` declares is read from diesel's own table metadata (`Table::all_columns`,
//! `Column::NAME`, each column's `SqlType`), so a column added there is checked without
//! touching this file; a column type this file cannot map fails to compile, and a table
//! added to `schema.rs` but not listed in `declared_tables` fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

// The crate keeps its schema private; compiling the same file here checks the very same
// declarations.
#[allow(dead_code, unused_imports)]
#[path = "../src/schema.rs"]
mod schema;

use bqai_store::{Store, StoreOptions};
use common::TestDb;
use diesel::sql_types::{BigInt, Bool, Date, Double, Nullable, Text, Timestamp};

/// A column type as the migrations spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    BigInt,
    Double,
    Bool,
    Timestamp,
    Date,
}

impl Kind {
    /// `information_schema.columns.data_type` on PostgreSQL.
    fn postgres(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::BigInt => "bigint",
            Kind::Double => "double precision",
            Kind::Bool => "boolean",
            Kind::Timestamp => "timestamp without time zone",
            Kind::Date => "date",
        }
    }

    /// The declared type `PRAGMA table_info` reports on SQLite (which keeps it as written, so
    /// it must be the name diesel's SQLite backend maps to the same SQL type).
    fn sqlite(self) -> &'static str {
        match self {
            Kind::Text => "TEXT",
            Kind::BigInt => "BIGINT",
            Kind::Double => "DOUBLE PRECISION",
            Kind::Bool => "BOOLEAN",
            Kind::Timestamp => "TIMESTAMP",
            Kind::Date => "DATE",
        }
    }
}

/// Maps a diesel SQL type to its [`Kind`]; only the types both backends map alike have one.
trait SqlKind {
    const KIND: Kind;
    const NULLABLE: bool = false;
}

impl SqlKind for Text {
    const KIND: Kind = Kind::Text;
}
impl SqlKind for BigInt {
    const KIND: Kind = Kind::BigInt;
}
impl SqlKind for Double {
    const KIND: Kind = Kind::Double;
}
impl SqlKind for Bool {
    const KIND: Kind = Kind::Bool;
}
impl SqlKind for Timestamp {
    const KIND: Kind = Kind::Timestamp;
}
impl SqlKind for Date {
    const KIND: Kind = Kind::Date;
}
impl<T: SqlKind> SqlKind for Nullable<T> {
    const KIND: Kind = T::KIND;
    const NULLABLE: bool = true;
}

/// One column as `schema.rs` declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    kind: Kind,
    nullable: bool,
}

trait DescribeColumn {
    fn describe() -> Column;
}

impl<C> DescribeColumn for C
where
    C: diesel::Column + diesel::Expression,
    C::SqlType: SqlKind,
{
    fn describe() -> Column {
        Column {
            name: C::NAME.to_owned(),
            kind: <C::SqlType as SqlKind>::KIND,
            nullable: <C::SqlType as SqlKind>::NULLABLE,
        }
    }
}

/// The columns of a table's `all_columns` tuple, in order.
trait DescribeColumns {
    fn describe() -> Vec<Column>;
}

/// Implements [`DescribeColumns`] for every tuple size up to the given list's (diesel's
/// `32-column-tables` limit), peeling one element per step.
macro_rules! describe_tuples {
    () => {};
    ($head:ident $(, $tail:ident)*) => {
        impl<$head: DescribeColumn $(, $tail: DescribeColumn)*> DescribeColumns
            for ($head, $($tail,)*)
        {
            fn describe() -> Vec<Column> {
                vec![$head::describe() $(, $tail::describe())*]
            }
        }
        describe_tuples!($($tail),*);
    };
}

describe_tuples!(
    C00, C01, C02, C03, C04, C05, C06, C07, C08, C09, C10, C11, C12, C13, C14, C15, C16, C17, C18,
    C19, C20, C21, C22, C23, C24, C25, C26, C27, C28, C29, C30, C31
);

/// One table as `schema.rs` declares it.
#[derive(Debug)]
struct Table {
    name: &'static str,
    columns: Vec<Column>,
    primary_key: Vec<String>,
}

fn describe_table<T>(name: &'static str) -> Table
where
    T: diesel::Table,
    T::AllColumns: DescribeColumns,
    T::PrimaryKey: DescribeColumn,
{
    Table {
        name,
        columns: T::AllColumns::describe(),
        primary_key: vec![T::PrimaryKey::describe().name],
    }
}

/// [`describe_table`] for a composite primary key (a tuple of columns), in key order.
fn describe_composite_table<T>(name: &'static str) -> Table
where
    T: diesel::Table,
    T::AllColumns: DescribeColumns,
    T::PrimaryKey: DescribeColumns,
{
    Table {
        name,
        columns: T::AllColumns::describe(),
        primary_key: T::PrimaryKey::describe()
            .into_iter()
            .map(|c| c.name)
            .collect(),
    }
}

/// Names the table type and its name once, so they cannot disagree.
macro_rules! table {
    ($name:ident) => {
        describe_table::<schema::$name::table>(stringify!($name))
    };
    ($name:ident, composite key) => {
        describe_composite_table::<schema::$name::table>(stringify!($name))
    };
}

/// Every table `schema.rs` declares.
fn declared_tables() -> Vec<Table> {
    vec![
        table!(query_history),
        table!(api_keys),
        table!(audit_log),
        table!(audit_purge_permit),
        table!(key_usage, composite key),
        table!(conversations),
        table!(conversation_turns, composite key),
        table!(export_jobs),
    ]
}

/// The table names in `schema.rs`'s source, to catch a `table!` missing from
/// [`declared_tables`].
fn table_names_in_source() -> Vec<String> {
    let source = include_str!("../src/schema.rs");
    let mut names: Vec<String> = source
        .split("table! {")
        .skip(1)
        .filter_map(|block| {
            let name = block.trim_start().split(['(', ' ', '{']).next()?;
            Some(name.trim().to_owned())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_declared_table_is_checked() {
    let mut checked: Vec<String> = declared_tables()
        .iter()
        .map(|t| t.name.to_owned())
        .collect();
    checked.sort();
    assert_eq!(
        checked,
        table_names_in_source(),
        "add the new table to declared_tables()"
    );
}

/// Tables other than diesel's own bookkeeping.
fn user_tables(mut names: Vec<String>) -> Vec<String> {
    names.retain(|n| n != "__diesel_schema_migrations");
    names.sort();
    names
}

fn declared_table_names() -> Vec<String> {
    let mut names: Vec<String> = declared_tables()
        .iter()
        .map(|t| t.name.to_owned())
        .collect();
    names.sort();
    names
}

mod postgres_catalog {
    use diesel::QueryableByName;
    use diesel::sql_types::{BigInt, Text};

    #[derive(Debug, QueryableByName)]
    pub struct ColumnRow {
        #[diesel(sql_type = Text)]
        pub column_name: String,
        #[diesel(sql_type = Text)]
        pub data_type: String,
        #[diesel(sql_type = Text)]
        pub is_nullable: String,
        #[diesel(sql_type = BigInt)]
        pub ordinal_position: i64,
    }

    #[derive(Debug, QueryableByName)]
    pub struct Name {
        #[diesel(sql_type = Text)]
        pub name: String,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_matches_the_postgres_migrations() {
    use diesel::sql_types::Text;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    use postgres_catalog::{ColumnRow, Name};

    let db = TestDb::create("pg-schema").await;
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();

    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        user_tables(tables.into_iter().map(|t| t.name).collect()),
        declared_table_names(),
        "tables in the migrated database vs schema.rs"
    );

    for table in declared_tables() {
        let rows: Vec<ColumnRow> = diesel::sql_query(
            "SELECT column_name::text, data_type::text, is_nullable::text, \
             ordinal_position::bigint FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind::<Text, _>(table.name)
        .load(&mut conn)
        .await
        .unwrap();
        // Dropped columns leave gaps in ordinal_position; the order is what must agree.
        let actual: Vec<(String, String, bool)> = rows
            .iter()
            .map(|r| {
                (
                    r.column_name.clone(),
                    r.data_type.clone(),
                    r.is_nullable == "YES",
                )
            })
            .collect();
        let expected: Vec<(String, String, bool)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.kind.postgres().to_owned(), c.nullable))
            .collect();
        assert_eq!(
            actual, expected,
            "{}: PostgreSQL columns (name, type, nullable) vs schema.rs",
            table.name
        );
        assert!(
            rows.windows(2)
                .all(|w| w[0].ordinal_position < w[1].ordinal_position)
        );

        let key: Vec<Name> = diesel::sql_query(
            "SELECT k.column_name::text AS name \
             FROM information_schema.table_constraints c \
             JOIN information_schema.key_column_usage k \
               ON k.constraint_schema = c.constraint_schema \
              AND k.constraint_name = c.constraint_name \
             WHERE c.table_schema = 'public' AND c.table_name = $1 \
               AND c.constraint_type = 'PRIMARY KEY' \
             ORDER BY k.ordinal_position",
        )
        .bind::<Text, _>(table.name)
        .load(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            key.into_iter().map(|k| k.name).collect::<Vec<_>>(),
            table.primary_key,
            "{}: PostgreSQL primary key vs schema.rs",
            table.name
        );
    }
}

mod sqlite_catalog {
    use diesel::QueryableByName;
    use diesel::sql_types::{Integer, Text};

    #[derive(Debug, QueryableByName)]
    pub struct ColumnRow {
        #[diesel(sql_type = Text)]
        pub name: String,
        #[diesel(sql_type = Text)]
        pub r#type: String,
        #[diesel(sql_type = Integer)]
        pub notnull: i32,
        #[diesel(sql_type = Integer)]
        pub pk: i32,
    }

    #[derive(Debug, QueryableByName)]
    pub struct Name {
        #[diesel(sql_type = Text)]
        pub name: String,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_matches_the_sqlite_migrations() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    use sqlite_catalog::{ColumnRow, Name};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.db");
    let store = Store::connect(path.to_str().unwrap(), StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    drop(store);
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();

    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(
        user_tables(tables.into_iter().map(|t| t.name).collect()),
        declared_table_names(),
        "tables in the migrated database vs schema.rs"
    );

    for table in declared_tables() {
        let rows: Vec<ColumnRow> = diesel::sql_query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<diesel::sql_types::Text, _>(table.name)
        .load(&mut conn)
        .unwrap();
        let actual: Vec<(String, String, bool)> = rows
            .iter()
            .map(|r| (r.name.clone(), r.r#type.to_uppercase(), r.notnull == 0))
            .collect();
        let expected: Vec<(String, String, bool)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.kind.sqlite().to_owned(), c.nullable))
            .collect();
        assert_eq!(
            actual, expected,
            "{}: SQLite columns (name, declared type, nullable) vs schema.rs",
            table.name
        );
        let mut key: Vec<(i32, String)> = rows
            .iter()
            .filter(|r| r.pk > 0)
            .map(|r| (r.pk, r.name.clone()))
            .collect();
        key.sort();
        assert_eq!(
            key.into_iter().map(|(_, n)| n).collect::<Vec<_>>(),
            table.primary_key,
            "{}: SQLite primary key vs schema.rs",
            table.name
        );
    }
}
