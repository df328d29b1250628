//! Name rules: which functions and table names the guard refuses, and how a table name as
//! written resolves to a [`TableRef`] under the policy.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};
use sqlparser::keywords::ALL_KEYWORDS;

use super::{GuardPolicy, RejectReason, Rejection};
use crate::model::{DatasetScope, SqlDialect, TableRef};

/// Functions refused anywhere in a statement (compared with the last part of the name, ASCII
/// case-insensitively). They read files, list directories, or query other systems, so they
/// would reach data outside the warehouse's tables and the caller's datasets. The list spans
/// engines (DuckDB, PostgreSQL, ClickHouse, SQL Server, BigQuery) on purpose: generated SQL
/// does not always respect the dialect, and refusing costs nothing.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    // File readers and scanners.
    "read_csv",
    "read_csv_auto",
    "read_parquet",
    "read_json",
    "read_json_auto",
    "read_json_objects",
    "read_ndjson",
    "read_ndjson_auto",
    "read_text",
    "read_blob",
    "read_avro",
    "read_xlsx",
    "parquet_scan",
    "parquet_metadata",
    "parquet_schema",
    "csv_scan",
    "json_scan",
    "iceberg_scan",
    "delta_scan",
    "glob",
    "load_file",
    "file",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    // Other systems: remote databases, object stores, URLs.
    "external_query",
    "external_object_transform",
    "dblink",
    "dblink_exec",
    "sqlite_scan",
    "sqlite_attach",
    "postgres_scan",
    "postgres_attach",
    "postgres_query",
    "postgres_execute",
    "mysql_scan",
    "mysql_query",
    "http_get",
    "http_post",
    "url",
    "s3",
    "gcs",
    "hdfs",
    "remote",
    "remote_secure",
    "openrowset",
    "opendatasource",
    "openquery",
    // Run SQL given as a string, which the guard cannot see.
    "query",
    "query_table",
];

/// Name prefixes refused like [`FORBIDDEN_FUNCTIONS`]: DuckDB keeps adding `read_*` readers.
const FORBIDDEN_FUNCTION_PREFIXES: &[&str] = &["read_"];

/// Qualifiers of BigQuery function families that call remote models or read Cloud Storage
/// objects (`ML.GENERATE_TEXT`, `AI.GENERATE`, `OBJ.GET_ACCESS_URL`): they cost money and
/// reach outside the datasets.
const FORBIDDEN_FUNCTION_NAMESPACES: &[&str] = &["ml", "ai", "obj"];

/// Schemas (or name parts) that expose metadata about the whole warehouse rather than the
/// caller's data.
const SYSTEM_SCHEMAS: &[&str] = &[
    "information_schema",
    "pg_catalog",
    "sys",
    "mysql",
    "performance_schema",
];

/// BigQuery's legacy per-dataset metadata tables.
const SYSTEM_TABLES: &[&str] = &["__tables__", "__tables_summary__"];

/// Endings that make a name a file rather than a table.
const FILE_EXTENSIONS: &[&str] = &[
    ".csv", ".tsv", ".parquet", ".json", ".jsonl", ".ndjson", ".txt", ".avro", ".orc", ".arrow",
    ".xlsx", ".gz", ".zst",
];

/// Whether a function name is one of the refused file readers or external reachers.
pub(super) fn is_forbidden_function(name: &ObjectName) -> bool {
    let Some(last) = name.0.last() else {
        return false;
    };
    let last = part_text(last).to_ascii_lowercase();
    if FORBIDDEN_FUNCTIONS.contains(&last.as_str())
        || FORBIDDEN_FUNCTION_PREFIXES
            .iter()
            .any(|prefix| last.starts_with(prefix))
    {
        return true;
    }
    name.0.len() > 1
        && name.0.first().is_some_and(|first| {
            FORBIDDEN_FUNCTION_NAMESPACES
                .iter()
                .any(|ns| part_text(first).eq_ignore_ascii_case(ns))
        })
}

/// Refuses a call to a forbidden function, wherever it appears.
pub(super) fn check_function(name: &ObjectName) -> Result<(), Rejection> {
    if is_forbidden_function(name) {
        return Err(Rejection::new(
            RejectReason::ForbiddenFunction,
            format!(
                "function `{name}` reads files or reaches other systems and is not allowed: \
                 query tables of the allowed datasets instead"
            ),
        ));
    }
    Ok(())
}

/// A table name resolved against the policy.
pub(super) struct ResolvedTable {
    /// The reference, project folded away when it is the home project.
    pub table: TableRef,
    /// The name was a bare `table`: the caller should qualify it with `table.dataset`.
    pub unqualified: bool,
}

/// Resolves a table name as written (`table`, `dataset.table`, `project.dataset.table`, or a
/// BigQuery backquoted path) and checks it against every name rule and the allowed datasets.
pub(super) fn resolve(name: &ObjectName, policy: &GuardPolicy) -> Result<ResolvedTable, Rejection> {
    let mut parts: Vec<&str> = Vec::with_capacity(3);
    for part in &name.0 {
        let ObjectNamePart::Identifier(ident) = part else {
            return Err(forbidden_table(format!(
                "table name `{name}` is computed by a function: write the table's name"
            )));
        };
        if ident.quote_style == Some('\'') {
            return Err(file_path(name));
        }
        // BigQuery reads a backquoted `project.dataset.table` as a path. Other engines
        // (DataFusion) read it as one name containing dots, so only BigQuery splits.
        if policy.dialect == SqlDialect::BigQuery {
            parts.extend(ident.value.split('.'));
        } else {
            parts.push(&ident.value);
        }
    }

    // The name's own shape first: a file path or a system view is refused as such, whether
    // or not it is qualified.
    let shown = name.to_string();
    check_parts(parts.iter().copied(), &shown)?;

    let (project, dataset, table) = match parts.as_slice() {
        [table] => {
            let Some(dataset) = policy.default_dataset.as_deref() else {
                return Err(Rejection::new(
                    RejectReason::UnqualifiedTable,
                    format!(
                        "table `{name}` has no dataset: qualify it as dataset.table or pass \
                         dataset_id"
                    ),
                ));
            };
            (None, dataset, *table)
        }
        [dataset, table] => (None, *dataset, *table),
        [project, dataset, table] => (Some(*project), *dataset, *table),
        _ => {
            return Err(forbidden_table(format!(
                "table name `{name}` has {} parts: write table, dataset.table or \
                 project.dataset.table",
                parts.len()
            )));
        }
    };
    let table = TableRef {
        project: project.map(str::to_owned),
        dataset: dataset.to_owned(),
        table: table.to_owned(),
    };
    Ok(ResolvedTable {
        table: check_scope(table, policy, &shown)?,
        unqualified: parts.len() == 1,
    })
}

/// Checks an already resolved reference (from the warehouse's dry run): name rules, project
/// folding and the allowed datasets. Returns the reference with the home project folded.
pub(super) fn check_resolved(
    table: &TableRef,
    policy: &GuardPolicy,
) -> Result<TableRef, Rejection> {
    let shown = table.to_string();
    let parts = [
        table.project.as_deref(),
        Some(&table.dataset),
        Some(&table.table),
    ];
    check_parts(parts.into_iter().flatten(), &shown)?;
    check_scope(table.clone(), policy, &shown)
}

/// The rules on the parts of a name, whatever its length: no empty part, no file path or URL,
/// no system schema or metadata table.
fn check_parts<'a>(
    parts: impl Iterator<Item = &'a str> + Clone,
    shown: &str,
) -> Result<(), Rejection> {
    if parts.clone().any(str::is_empty) {
        return Err(forbidden_table(format!(
            "table name `{shown}` has an empty part"
        )));
    }
    if looks_like_file(parts.clone()) {
        return Err(file_path(shown));
    }
    if let Some(system) = parts.clone().find(|p| is_system_part(p)) {
        return Err(forbidden_table(format!(
            "`{shown}` is warehouse metadata ({system}), not a table of your datasets: \
             system and metadata views are not allowed"
        )));
    }
    if parts
        .last()
        .is_some_and(|last| SYSTEM_TABLES.iter().any(|t| last.eq_ignore_ascii_case(t)))
    {
        return Err(forbidden_table(format!(
            "`{shown}` is a dataset metadata table and is not allowed"
        )));
    }
    Ok(())
}

/// Folds the home project away and checks the dataset against the caller's scope.
fn check_scope(
    mut table: TableRef,
    policy: &GuardPolicy,
    shown: &str,
) -> Result<TableRef, Rejection> {
    if let (Some(project), Some(home)) = (&table.project, &policy.home_project)
        && project.eq_ignore_ascii_case(home)
    {
        table.project = None;
    }
    if !policy
        .allowed
        .allows(table.project.as_deref(), &table.dataset)
    {
        let place = match &table.project {
            Some(project) => format!("dataset `{}` of project `{project}`", table.dataset),
            None => format!("dataset `{}`", table.dataset),
        };
        return Err(Rejection::new(
            RejectReason::DatasetNotAllowed,
            format!(
                "table `{shown}` is in {place}, which is not allowed ({})",
                describe_scope(&policy.allowed)
            ),
        ));
    }
    Ok(table)
}

/// The identifier to put before an unqualified table name: the default dataset, quoted like
/// the table name when it was quoted, and quoted anyway when it would not survive unquoted
/// (a keyword, odd characters, or — for DataFusion, which lowercases bare names — capitals).
pub(super) fn dataset_qualifier(dataset: &str, table: &Ident, dialect: SqlDialect) -> Ident {
    if let Some(quote) = table.quote_style {
        return Ident::with_quote(quote, dataset);
    }
    let plain = dataset
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && dataset.chars().all(|c| match dialect {
            SqlDialect::BigQuery => c.is_ascii_alphanumeric() || c == '_',
            SqlDialect::DataFusion => c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        })
        && ALL_KEYWORDS
            .binary_search(&dataset.to_ascii_uppercase().as_str())
            .is_err();
    if plain {
        Ident::new(dataset)
    } else {
        let quote = match dialect {
            SqlDialect::BigQuery => '`',
            SqlDialect::DataFusion => '"',
        };
        Ident::with_quote(quote, dataset)
    }
}

fn part_text(part: &ObjectNamePart) -> &str {
    match part {
        ObjectNamePart::Identifier(ident) => &ident.value,
        ObjectNamePart::Function(func) => &func.name.value,
    }
}

fn looks_like_file<'a>(mut parts: impl Iterator<Item = &'a str> + Clone) -> bool {
    if parts
        .clone()
        .any(|p| p.contains('/') || p.contains('\\') || p.contains("://"))
    {
        return true;
    }
    // The ending is checked on the whole dotted name, so `data.csv` written bare (two parts)
    // is caught as well as a quoted `"data.csv"`.
    let Some(last) = parts.by_ref().last() else {
        return false;
    };
    let last = last.to_ascii_lowercase();
    FILE_EXTENSIONS
        .iter()
        .any(|ext| last.ends_with(ext) || last.eq_ignore_ascii_case(&ext[1..]))
}

fn is_system_part(part: &str) -> bool {
    SYSTEM_SCHEMAS.iter().any(|s| part.eq_ignore_ascii_case(s))
        || part
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("region-"))
}

fn describe_scope(scope: &DatasetScope) -> String {
    match scope {
        DatasetScope::All => "allowed: the datasets of the home project".to_owned(),
        DatasetScope::Only(set) if set.is_empty() => "no dataset is allowed".to_owned(),
        DatasetScope::Only(set) => {
            let list: Vec<&str> = set.iter().map(String::as_str).collect();
            format!("allowed: {}", list.join(", "))
        }
    }
}

fn forbidden_table(message: String) -> Rejection {
    Rejection::new(RejectReason::ForbiddenTable, message)
}

fn file_path(shown: impl std::fmt::Display) -> Rejection {
    forbidden_table(format!(
        "`{shown}` is a file path or URL, not a table: only tables of the allowed datasets can \
         be read"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(parts: &[&str]) -> ObjectName {
        ObjectName::from(parts.iter().map(|p| Ident::new(*p)).collect::<Vec<_>>())
    }

    #[test]
    fn forbidden_functions_match_the_last_part_case_insensitively() {
        assert!(is_forbidden_function(&name(&["READ_CSV"])));
        assert!(is_forbidden_function(&name(&["main", "read_parquet"])));
        assert!(is_forbidden_function(&name(&["read_anything_new"])));
        assert!(is_forbidden_function(&name(&["ML", "GENERATE_TEXT"])));
        assert!(is_forbidden_function(&name(&["SAFE", "EXTERNAL_QUERY"])));
        assert!(!is_forbidden_function(&name(&["count"])));
        assert!(!is_forbidden_function(&name(&["ml"])));
        assert!(!is_forbidden_function(&name(&["spread_ratio"])));
    }

    #[test]
    fn file_like_names() {
        assert!(looks_like_file(["data", "csv"].into_iter()));
        assert!(looks_like_file(["/etc/passwd"].into_iter()));
        assert!(looks_like_file(["s3://bucket/x"].into_iter()));
        assert!(looks_like_file(["shop", "Export.PARQUET"].into_iter()));
        assert!(!looks_like_file(["shop", "orders"].into_iter()));
        assert!(!looks_like_file(["shop", "csv_imports"].into_iter()));
    }

    #[test]
    fn system_parts() {
        assert!(is_system_part("Information_Schema"));
        assert!(is_system_part("region-us"));
        assert!(is_system_part("REGION-europe-west1"));
        assert!(!is_system_part("regional_sales"));
        assert!(!is_system_part("shop"));
    }

    #[test]
    fn qualifier_quotes_only_when_needed() {
        let bare = Ident::new("orders");
        let q = |d, dialect| dataset_qualifier(d, &bare, dialect).to_string();
        assert_eq!(q("shop", SqlDialect::DataFusion), "shop");
        assert_eq!(q("Shop", SqlDialect::DataFusion), "\"Shop\"");
        assert_eq!(q("Shop", SqlDialect::BigQuery), "Shop");
        assert_eq!(q("select", SqlDialect::BigQuery), "`select`");
        assert_eq!(q("my-data", SqlDialect::DataFusion), "\"my-data\"");
        let quoted = Ident::with_quote('`', "orders");
        assert_eq!(
            dataset_qualifier("shop", &quoted, SqlDialect::BigQuery).to_string(),
            "`shop`"
        );
    }
}
