//! PostgreSQL test databases for the store's and the API's tests: each test creates its own (so tests run in parallel and never see
//! each other's migrations) and drops it afterwards, even when the test fails.
//!
//! The server comes from `BQAI_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; that role must be allowed to create
//! databases.
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// The maintenance database URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("BQAI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` naming database `name` instead (any `?query` kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A unique, valid database name: lowercase `[a-z0-9_]`, at most 63 bytes (PostgreSQL's
/// identifier limit), keeping the unique tail of the prefix when it has to cut.
pub fn database_name(what: &str) -> String {
    let unique: String = crate::unique_prefix(what)
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let tail = &unique[unique.len().saturating_sub(57)..];
    format!("bqai_{tail}")
}

/// A freshly created database, dropped (`WITH (FORCE)`, best effort) when this goes away.
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub async fn create(what: &str) -> Self {
        let name = database_name(what);
        let mut admin = AsyncPgConnection::establish(&admin_url())
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", admin_url()));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        Self {
            url: with_database(&admin_url(), &name),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // On a thread of its own with its own runtime: Drop cannot await, and runs during a
        // panic too, maybe inside a runtime that must not be blocked.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url()).await.ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_and_names() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://h?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        let name = database_name("a-rather-long-description-of-the-test");
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        assert_ne!(name, database_name("a-rather-long-description-of-the-test"));
    }
}
