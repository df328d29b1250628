//! The `bqai` command line, run as a user runs it: the real binary in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Spawning the binary under test is the point of these tests.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Output};

fn bqai(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bqai"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("BQAI__LOG__LEVEL", "warn")
        .output()
        .unwrap()
}

#[test]
fn query_prints_json_and_records_history() {
    let dir = tempfile::tempdir().unwrap();
    let out = bqai(
        dir.path(),
        &[
            "query",
            "--format",
            "json",
            "SELECT segment, COUNT(*) AS n FROM shop.customers GROUP BY segment ORDER BY segment",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let segments: Vec<&str> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["segment"].as_str().unwrap())
        .collect();
    assert_eq!(segments, ["consumer", "enterprise", "small_business"]);
    assert!(
        dir.path().join("bqai-data/bqai.db").exists(),
        "history database created"
    );
}

/// `bqai export` writes the whole result (past the response cap of 10,000 rows), says how it
/// goes on stderr, and records the export; `--history-id` exports a recorded query again.
#[test]
fn export_writes_the_file_with_progress_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = bqai(
        dir.path(),
        &[
            "export",
            "SELECT order_id, status, order_date FROM shop.orders ORDER BY order_id",
            "--format",
            "parquet",
            "-o",
            "orders.parquet",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("exported 100000 rows"), "{stderr}");
    assert!(stderr.contains("rows, "), "progress lines: {stderr}");
    let file = std::fs::read(dir.path().join("orders.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(file),
    )
    .unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 100_000);

    let history = bqai(
        dir.path(),
        &["history", "list", "--format", "json", "--kind", "export"],
    );
    let entries: serde_json::Value = serde_json::from_slice(&history.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&history.stdout)));
    let entry = &entries["data"][0];
    assert_eq!(entry["row_count"], 100_000);
    let id = entry["id"].as_str().unwrap().to_owned();

    let again = bqai(
        dir.path(),
        &[
            "export",
            "--history-id",
            &id,
            "--format",
            "csv",
            "--delimiter",
            ";",
            "-o",
            "again.csv",
            "--max-rows",
            "5",
        ],
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let csv = std::fs::read_to_string(dir.path().join("again.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.starts_with("order_id;status;order_date\r\n"), "{csv}");

    let refused = bqai(
        dir.path(),
        &["export", "DELETE FROM shop.orders", "-o", "x.csv"],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SQL_REJECTED"));
    assert!(!dir.path().join("x.csv").exists());
}

#[test]
fn query_prints_csv_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let csv = bqai(
        dir.path(),
        &["query", "--format", "csv", "SELECT 1 AS a, 'x,y' AS b"],
    );
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "a,b\n1,\"x,y\"\n");

    let table = bqai(dir.path(), &["query", "SELECT 42 AS answer"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("answer") && text.contains("42"), "{text}");
    assert!(text.contains("1 row(s)"), "{text}");
}

#[test]
fn rejected_sql_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = bqai(dir.path(), &["query", "DELETE FROM shop.orders"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SQL_REJECTED"), "{err}");
}

#[test]
fn serve_refuses_a_public_address_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let out = bqai(dir.path(), &["serve", "--host", "0.0.0.0", "--port", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
}

#[test]
fn invalid_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bqai.toml"),
        "[query]\ndefault_max_rows = 0\n",
    )
    .unwrap();
    let out = bqai(dir.path(), &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("query.default_max_rows"), "{err}");
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = bqai(dir.path(), &["--data-dir", "state", "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("state/bqai.db").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("migration(s) applied"));
}

#[test]
fn ask_prints_the_rows_on_stdout_and_the_sql_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = bqai(dir.path(), &["ask", "number of customers by segment"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("SELECT"), "{stderr}");
    assert!(!stdout.contains("SELECT"), "{stdout}");
    assert!(
        stdout.contains("small_business") && stdout.contains("enterprise"),
        "{stdout}"
    );
    assert!(stdout.contains("3 row(s)"), "{stdout}");

    // CSV for scripts: only the rows.
    let csv = bqai(
        dir.path(),
        &["ask", "--format", "csv", "number of customers by segment"],
    );
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "header and three rows only: {text}");
    assert!(lines[0].contains("segment"), "{text}");
    assert!(String::from_utf8_lossy(&csv.stderr).contains("SELECT"));

    // JSON: exactly the body POST /api/v1/ask answers.
    let json = bqai(
        dir.path(),
        &["ask", "--format", "json", "how many orders were cancelled?"],
    );
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["generator"]["kind"], "builtin");
    assert_eq!(doc["result"]["rows"].as_array().unwrap().len(), 1);
    for key in [
        "request_id",
        "question",
        "dataset_id",
        "sql",
        "explanation",
        "attempts",
        "generator",
        "result",
        "catalog",
        "hints",
        "from_cache",
        "usage",
        "conversation_id",
        "suggestions",
    ] {
        assert!(doc.get(key).is_some(), "{key} missing: {doc}");
    }

    let refused = bqai(dir.path(), &["ask", "why did sales drop?"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("CANNOT_ANSWER"), "{stderr}");
}

/// `--data` with one folder: questions go to it without naming it, and a ranking keeps the
/// rows without a value last (DataFusion ranks NULLs first for DESC unless told).
#[test]
fn data_folder_is_the_default_dataset_and_empty_values_rank_last() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    std::fs::write(
        exports.join("companies.csv"),
        "company,amount\nAcme,100\nBolt,\nCrane,250\nDelta,\nEcho,75\nFoxtrot,\n",
    )
    .unwrap();
    let data = exports.display().to_string();
    for question in ["top 3 companies by amount", "bottom 3 companies by amount"] {
        let out = bqai(
            dir.path(),
            &["--data", &data, "ask", "--format", "json", question],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["dataset_id"], "exports", "{doc}");
        assert!(doc["sql"].as_str().unwrap().contains("NULLS LAST"), "{doc}");
        let rows = doc["result"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{doc}");
        for row in rows {
            let values: Vec<&serde_json::Value> = row.as_object().unwrap().values().collect();
            assert!(values.iter().all(|v| !v.is_null()), "{question}: {row}");
        }
    }
}

/// One-shot commands log only warnings unless `-v`, and never colour codes when stderr is
/// not a terminal.
#[test]
fn cli_logs_only_warnings_by_default_and_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bqai"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("BQAI__LOG__LEVEL")
            .output()
            .unwrap()
    };
    let quiet = run(&["query", "SELECT 1 AS a"]);
    assert!(quiet.status.success());
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains("INFO"), "{stderr}");
    let loud = run(&["-v", "query", "SELECT 1 AS a"]);
    let stderr = String::from_utf8_lossy(&loud.stderr);
    assert!(stderr.contains("INFO"), "-v logs info: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes off a terminal: {stderr:?}"
    );
}

/// Operator traps: each says what is wrong in words that lead to the fix.
#[test]
fn startup_mistakes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    // An unknown log level would log nothing at all.
    let out = bqai_env(
        dir.path(),
        &["query", "SELECT 1"],
        &[("BQAI__LOG__LEVEL", "verbose")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("log.level") && stderr.contains("verbose"),
        "{stderr}"
    );

    // A data directory that is a file.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = bqai(
        dir.path(),
        &["--data-dir", file.to_str().unwrap(), "query", "SELECT 1"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a file, not a directory"), "{stderr}");

    // A PostgreSQL database that does not exist: which one, and how to create it.
    let out = bqai_env(
        dir.path(),
        &["migrate"],
        &[(
            "BQAI__STORE__URL",
            "postgres://postgres@127.0.0.1:5432/bqai_no_such_db",
        )],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bqai_no_such_db") && stderr.contains("createdb"),
        "{stderr}"
    );
}

#[test]
fn processes_share_the_redis_cache_and_cache_clear_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let namespace = format!("{}:", bqai_testkit::unique_prefix("cli"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bqai"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("BQAI__LOG__LEVEL", "warn")
            .env("BQAI__CACHE__URL", "redis://127.0.0.1:6379")
            .env("BQAI__CACHE__REDIS_NAMESPACE", &namespace)
            .output()
            .unwrap()
    };
    let sql = "SELECT segment, COUNT(*) AS n FROM shop.customers GROUP BY segment";
    let first = run(&["query", "--format", "json", sql]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(doc["stats"]["cache_hit"], false);
    // A second process answers from what the first one cached.
    let second = run(&["query", "--format", "json", sql]);
    let doc: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(doc["stats"]["cache_hit"], true);

    let cleared = run(&["cache", "clear", "--dataset", "shop"]);
    let out = String::from_utf8_lossy(&cleared.stdout);
    assert!(
        cleared.status.success(),
        "{}",
        String::from_utf8_lossy(&cleared.stderr)
    );
    assert!(
        out.contains("removed") && !out.contains("removed 0 "),
        "{out}"
    );
    let third = run(&["query", "--format", "json", sql]);
    let doc: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(doc["stats"]["cache_hit"], false);

    // Without a shared cache there is nothing to clear from outside the server.
    let local = bqai(dir.path(), &["cache", "clear", "--dataset", "shop"]);
    assert!(!local.status.success());
    assert!(String::from_utf8_lossy(&local.stderr).contains("/api/v1/admin/cache"));
}

#[test]
fn config_check_names_every_bad_key_and_passes_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "colour = \"blue\"\n[server]\nport = \"eighty\"\n[query]\nmax_rows_limt = 5\n\
         [cache]\nmax_bytes = 10\n",
    )
    .unwrap();
    let out = bqai(dir.path(), &["config", "check", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["colour", "server.port", "max_rows_limt"] {
        assert!(err.contains(key), "{key} not named in: {err}");
    }

    // Types right, rules broken: every rule is reported, not only the first.
    std::fs::write(
        dir.path().join("rules.toml"),
        "[query]\ndefault_max_rows = 0\n[cache]\nmax_bytes = 10\n[log]\nformat = \"xml\"\n",
    )
    .unwrap();
    let out = bqai(dir.path(), &["config", "check", "--config", "rules.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["query.default_max_rows", "cache.max_bytes", "log.format"] {
        assert!(err.contains(key), "{key} not named in: {err}");
    }

    // The environment is checked too.
    let out = bqai_env(
        dir.path(),
        &["config", "check"],
        &[("BQAI__SERVER__PORT", "not-a-port")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.port"));

    std::fs::write(
        dir.path().join("good.toml"),
        "[server]\nport = 9000\n[auth]\nmode = \"api_key\"\n",
    )
    .unwrap();
    let out = bqai(dir.path(), &["config", "check", "--config", "good.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok:"));
}

#[test]
fn config_show_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bqai.toml"),
        "[server]\nport = 9001\n[store]\nurl = \"postgres://bqai:hunter2-secret@db:5432/bqai\"\n",
    )
    .unwrap();
    let pepper = "a-pepper-that-must-never-be-printed";
    let out = bqai_env(
        dir.path(),
        &["config", "show"],
        &[
            ("BQAI__AUTH__PEPPER", pepper),
            ("BQAI__LLM__API_KEY", "sk-never-printed"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let shown: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(shown["server"]["port"].as_integer(), Some(9001));
    assert_eq!(shown["warehouse"]["kind"].as_str(), Some("local"));
    assert_eq!(shown["auth"]["pepper"].as_str(), Some("<redacted>"));
    assert_eq!(
        shown["store"]["url"].as_str(),
        Some("postgres://bqai:<redacted>@db:5432/bqai")
    );
    for secret in [pepper, "sk-never-printed", "hunter2-secret"] {
        assert!(!text.contains(secret), "{secret} printed");
    }
}

fn bqai_env(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bqai"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("BQAI__LOG__LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Kills the server when the test ends, whatever happens.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The issue's "tried as a new user would": the first admin key made offline, a server with
/// keys on, an analyst limited to `shop`, and the admin revoking it and reading the audit log.
#[tokio::test(flavor = "multi_thread")]
async fn keys_made_offline_guard_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("salaries.csv"), "name,salary\nada,100\n").unwrap();
    let auth_on = [("BQAI__AUTH__MODE", "api_key")];

    let out = bqai_env(
        dir.path(),
        &["keys", "create", "--name", "first admin", "--role", "admin"],
        &auth_on,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let admin = text
        .split_whitespace()
        .find(|w| w.starts_with("bqai_"))
        .expect("the key is printed")
        .to_string();
    assert!(text.contains("shown this once"), "{text}");
    // The pepper was created privately next to the database.
    let pepper = dir.path().join("bqai-data/auth.pepper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pepper).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_bqai"))
            .args(["--data", &secret.display().to_string()])
            .args(["serve", "--port", &port.to_string()])
            .current_dir(dir.path())
            .env("BQAI__AUTH__MODE", "api_key")
            .env("BQAI__LOG__LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not start");

    // No key: 401.
    let r = client
        .get(format!("{base}/api/v1/datasets"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The admin makes an analyst key limited to shop.
    let r = client
        .post(format!("{base}/api/v1/admin/keys"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "analyst", "role": "analyst", "datasets": ["shop"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let analyst = created["key"].as_str().unwrap().to_string();
    let analyst_id = created["id"].as_str().unwrap().to_string();

    let query = |key: String, sql: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/v1/query");
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&serde_json::json!({ "sql": sql }))
                .send()
                .await
                .unwrap()
        }
    };
    let rows = query(
        analyst.clone(),
        "SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country",
    )
    .await;
    assert_eq!(rows.status(), 200);
    let body: serde_json::Value = rows.json().await.unwrap();
    assert!(body["row_count"].as_u64().unwrap() > 0, "{body}");
    let joined = query(
        analyst.clone(),
        "SELECT c.country, s.salary FROM shop.customers c JOIN secret.salaries s ON true",
    )
    .await;
    assert_eq!(joined.status(), 403);

    // The admin lists and revokes it; the analyst is out.
    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/admin/keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.to_string().contains(&analyst_id));
    let out = bqai_env(dir.path(), &["keys", "revoke", &analyst_id], &auth_on);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Revoked offline (another process, no Redis to announce it): the server refuses the key
    // once its cached record expires, within auth.key_cache_ttl_secs (5 s).
    let revoked_at = std::time::Instant::now();
    loop {
        let after = query(analyst.clone(), "SELECT 1 AS x").await;
        if after.status() == 401 {
            break;
        }
        assert_eq!(after.status(), 200);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(7),
            "the server still accepts a key revoked offline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The audit log shows all of it.
    let audit: serde_json::Value = client
        .get(format!("{base}/api/v1/admin/audit?principal={analyst_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<(u64, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["status"].as_u64().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest first: the refusal, the calls that went through before the revocation reached
    // the server (the polls above), the forbidden join, the first query.
    let (newest, older) = outcomes.split_first().expect("audit events");
    assert_eq!(*newest, (401, "denied"), "{audit}");
    let before_revocation: Vec<_> = older
        .iter()
        .skip_while(|o| **o == (200, "allowed"))
        .collect();
    assert_eq!(
        before_revocation,
        [&(403, "denied"), &(200, "allowed")],
        "{audit}"
    );

    let listed = bqai_env(dir.path(), &["keys", "list", "--all"], &auth_on);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&analyst_id) && listed.contains("revoked"),
        "{listed}"
    );
    assert!(!listed.contains(&admin[18..]), "a secret in the list");
    drop(server);
}

/// The startup hint with keys on is a line that works when pasted into a shell with `$KEY`
/// set (it once quoted the header in single quotes, so the shell sent `$KEY` literally).
#[tokio::test(flavor = "multi_thread")]
async fn the_startup_hint_works_when_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let auth_on = [("BQAI__AUTH__MODE", "api_key")];
    let out = bqai_env(
        dir.path(),
        &["keys", "create", "--name", "me", "--role", "admin"],
        &auth_on,
    );
    assert!(out.status.success());
    let key = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("bqai_"))
        .expect("the key is printed")
        .to_string();

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log = dir.path().join("serve.log");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_bqai"))
            .args(["serve", "--port", &port.to_string()])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("BQAI__AUTH__MODE", "api_key")
            .env("BQAI__LOG__LEVEL", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut hint = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("try: curl")) {
            hint = Some(line.to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let hint = hint.expect("the server logs a hint");
    assert!(
        hint.contains(r#"-H "Authorization: Bearer $KEY""#),
        "{hint}"
    );
    // The first command of the hint, as a user pastes it.
    let pasted = hint
        .split("try: ")
        .nth(1)
        .and_then(|rest| rest.split("  |  ").next())
        .unwrap()
        .trim()
        .to_owned();
    let out = Command::new("bash")
        .args(["-c", &pasted])
        .env("KEY", &key)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"table_id\""), "{pasted} answered {body}");
}

/// `bqai audit purge` and `bqai history purge`: what retention says is old goes, in batches,
/// the purge is audited, and mistakes are refused with a reason.
#[tokio::test(flavor = "multi_thread")]
async fn purges_delete_what_is_past_retention_and_are_audited() {
    use bqai_core::ports::{AuditLog, HistoryStore};
    use bqai_store::{Store, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("bqai-data/bqai.db").display()
    );
    let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let old = now - chrono::TimeDelta::days(100);
    let events: Vec<_> = (0..1500)
        .map(|i| bqai_testkit::auth::audit_event(&format!("old-{i:04}"), old))
        .chain((0..3).map(|i| bqai_testkit::auth::audit_event(&format!("new-{i}"), now)))
        .collect();
    store.append_batch(&events).await.unwrap();
    for i in 0..20 {
        store
            .record(&bqai_testkit::history::minimal(format!("h-old-{i}"), old))
            .await
            .unwrap();
    }
    store
        .record(&bqai_testkit::history::minimal("h-new".into(), now))
        .await
        .unwrap();

    // The default audit retention is 90 days.
    let out = bqai(dir.path(), &["audit", "purge"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("deleted 1500 rows of audit_log recorded before "),
        "{text}"
    );
    let out = bqai(dir.path(), &["history", "purge", "--older-than-days", "30"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("deleted 20 rows of query_history"),
        "{text}"
    );
    assert!(store.get("h-new").await.unwrap().is_some());
    assert!(store.get("h-old-0").await.unwrap().is_none());

    let left = store
        .list_events(
            &Default::default(),
            &bqai_core::model::PageRequest::first(100),
        )
        .await
        .unwrap()
        .items;
    let routes: Vec<_> = left
        .iter()
        .filter(|e| e.principal.as_deref() == Some("system:retention"))
        .map(|e| (e.route.as_str(), e.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(routes.len(), 2, "{left:?}");
    assert!(
        routes.iter().any(|(r, d)| *r == "CLI bqai audit purge"
            && d.starts_with("deleted 1500 rows of audit_log"))
    );
    assert!(routes.iter().any(|(r, d)| *r == "CLI bqai history purge"
        && d.starts_with("deleted 20 rows of query_history")));
    assert_eq!(left.len(), 5, "3 new events and the 2 purges: {left:?}");

    for (args, env, says) in [
        (
            &["audit", "purge", "--older-than-days=-1"][..],
            &[][..],
            "--older-than-days must be a positive number",
        ),
        (
            &["audit", "purge", "--older-than-days", "0"][..],
            &[][..],
            "would keep everything",
        ),
        (
            &["history", "purge"][..],
            &[("BQAI__STORE__HISTORY_RETENTION_DAYS", "0")][..],
            "store.history_retention_days is 0 (keep forever)",
        ),
        (
            &["audit", "purge"][..],
            &[("BQAI__AUTH__AUDIT_RETENTION_DAYS", "-3")][..],
            "auth.audit_retention_days must be 0 (keep forever) or a positive number",
        ),
    ] {
        let out = bqai_env(dir.path(), args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?}");
        assert!(err.contains(says), "{args:?} {env:?}: {err}");
    }
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

#[test]
fn stats_and_history_list_show_and_rerun_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    for sql in [
        "SELECT COUNT(*) AS n FROM shop.orders WHERE order_id > 5",
        "select count(*) as n from shop.orders where order_id > 7",
    ] {
        assert!(bqai(dir.path(), &["query", sql]).status.success());
    }
    assert!(
        !bqai(dir.path(), &["query", "DELETE FROM shop.orders"])
            .status
            .success()
    );

    let stats = json_of(&bqai(dir.path(), &["stats", "--format", "json"]));
    assert_eq!(stats["group_by"], "day");
    assert_eq!(stats["total"]["queries"], 3, "{stats}");
    assert_eq!(stats["total"]["succeeded"], 2);
    assert_eq!(stats["total"]["rejected"], 1);
    assert_eq!(stats["buckets"].as_array().unwrap().len(), 1);

    let csv = bqai(
        dir.path(),
        &[
            "stats", "--by", "status", "--format", "csv", "--since", "1d",
        ],
    );
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8_lossy(&csv.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("status,queries,succeeded,failed,rejected"),
        "{text}"
    );
    assert!(lines[1].starts_with("rejected,1,0,0,1"), "{text}");
    assert!(lines[2].starts_with("succeeded,2,2,0,0"), "{text}");
    assert!(lines[3].starts_with("total,3,2,0,1"), "{text}");
    let table = bqai(dir.path(), &["stats"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("nearest-rank"));
    let bad = bqai(dir.path(), &["stats", "--since", "last week"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));

    let list = json_of(&bqai(dir.path(), &["history", "list", "--format", "json"]));
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{list}");
    assert_eq!(data[0]["status"], "rejected");
    let ok_id = data[1]["id"].as_str().unwrap().to_string();
    let rejected = bqai(dir.path(), &["history", "list", "--status", "rejected"]);
    let text = String::from_utf8_lossy(&rejected.stdout);
    assert!(
        text.contains("DELETE FROM shop.orders") && !text.contains(&ok_id),
        "{text}"
    );

    let shown = bqai(dir.path(), &["history", "show", &ok_id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("id: {ok_id}")), "{text}");
    assert!(
        text.contains("sql: select count(*) as n from shop.orders"),
        "{text}"
    );

    let rerun = json_of(&bqai(
        dir.path(),
        &["history", "rerun", &ok_id, "--format", "json"],
    ));
    assert!(rerun["rows"][0]["n"].as_u64().unwrap() > 0, "{rerun}");
    let new_id = rerun["query_id"].as_str().unwrap();
    let again = json_of(&bqai(
        dir.path(),
        &["history", "show", new_id, "--format", "json"],
    ));
    assert_eq!(again["rerun_of"], ok_id.as_str(), "{again}");
    let missing = bqai(
        dir.path(),
        &["history", "show", "00000000-0000-0000-0000-000000000000"],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

/// An operator whose BigQuery credentials cannot produce a token (here: application default
/// credentials whose token endpoint does not answer) is told so by `/health` and
/// `/health/ready`, not sent to look at the network.
#[tokio::test(flavor = "multi_thread")]
async fn health_says_the_credentials_are_the_trouble() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let adc = dir.path().join("adc.json");
    std::fs::write(
        &adc,
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "bqai-test",
            "client_secret": "not-a-secret",
            "refresh_token": "not-a-token",
            "token_uri": format!("http://127.0.0.1:{}/token", free_port()),
        })
        .to_string(),
    )
    .unwrap();
    let port = free_port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_bqai"))
            .args(["serve", "--port", &port.to_string()])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("BQAI__LOG__LEVEL", "warn")
            .env("BQAI__WAREHOUSE__KIND", "bigquery")
            .env("BQAI__WAREHOUSE__PROJECT", "proj")
            .env(
                "BQAI__WAREHOUSE__ENDPOINT",
                format!("http://127.0.0.1:{}", free_port()),
            )
            .env("BQAI__WAREHOUSE__REQUEST_TIMEOUT_MS", "5000")
            .env("GOOGLE_APPLICATION_CREDENTIALS", &adc)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut live = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/health/live")).send().await {
            live = r.status() == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(live, "the server did not start");

    let health: serde_json::Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let warehouse = &health["components"]["warehouse"];
    assert_eq!(warehouse["status"], "down", "{health}");
    let detail = warehouse["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("no credentials"), "{detail}");
    assert!(!detail.contains("unreachable"), "{detail}");

    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_READY", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no credentials"), "{message}");
    assert!(!message.contains("not-a-secret"), "{message}");
}

/// Secrets never reach the log: a server at `debug` level (every crate's debug lines, JSON
/// format) is used with API keys — valid, wrong and revoked —, an admin creating a key, a
/// WebSocket ticket, a configured pepper and an LLM API key sent on a call, and its whole
/// stderr is searched for each of them.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_log_even_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let pepper = "pepper-5f0d1c6a9b8e4f27a3c1d0e9b7a6f5e4";
    let llm_key = "sk-ant-test-3b2a19c8d7e6f5a4b3c2d1e0";
    let env = [
        ("BQAI__AUTH__MODE", "api_key"),
        ("BQAI__AUTH__PEPPER", pepper),
        ("BQAI__LLM__KIND", "anthropic"),
        ("BQAI__LLM__API_KEY", llm_key),
        ("BQAI__LLM__MAX_RETRIES", "0"),
    ];
    let out = bqai_env(
        dir.path(),
        &[
            "keys", "create", "--name", "admin", "--role", "admin", "--json",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = json_of(&out)["key"].as_str().unwrap().to_owned();

    // An LLM "API" that answers nothing useful: the key is sent to it, and must not be logged.
    let llm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm_url = format!("http://{}", llm.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = llm.accept().await {
            let mut buf = vec![0_u8; 65536];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bqai"));
    cmd.args(["serve", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env("BQAI__LOG__LEVEL", "debug")
        .env("BQAI__LOG__FORMAT", "json")
        .env("BQAI__LLM__BASE_URL", &llm_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(log));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not start");

    // A valid key, and the same key id with a wrong secret.
    let ok = client
        .get(format!("{base}/api/v1/datasets"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let (prefix, secret) = admin.rsplit_once('_').unwrap();
    let wrong_secret = format!("{prefix}_{}", secret.chars().rev().collect::<String>());
    let refused = client
        .get(format!("{base}/api/v1/datasets"))
        .header("x-api-key", &wrong_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // An admin makes a key (shown once, in the response), which is used, revoked, used again.
    let made: serde_json::Value = client
        .post(format!("{base}/api/v1/admin/keys"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "analyst", "role": "analyst"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let analyst = made["key"].as_str().unwrap().to_owned();
    let analyst_id = made["id"].as_str().unwrap().to_owned();
    let query = client
        .post(format!("{base}/api/v1/query"))
        .bearer_auth(&analyst)
        .json(&serde_json::json!({"sql": "SELECT 1 AS one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 200);
    // A WebSocket ticket (a bearer credential of its own).
    let ticket: serde_json::Value = client
        .post(format!("{base}/api/v1/ws-ticket"))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    // An ask: the LLM call carries the configured API key (and fails: a 5xx from the stand-in).
    let ask = client
        .post(format!("{base}/api/v1/ask"))
        .bearer_auth(&analyst)
        .json(&serde_json::json!({"question": "number of customers by segment"}))
        .send()
        .await
        .unwrap();
    assert!(ask.status().is_server_error(), "{}", ask.status());
    let revoked = client
        .delete(format!("{base}/api/v1/admin/keys/{analyst_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let after = client
        .get(format!("{base}/api/v1/datasets"))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    drop(server);

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.lines().count() > 10 && text.contains("\"level\":\"DEBUG\""),
        "a debug log was written: {text}"
    );
    let secret_of = |key: &str| key.rsplit_once('_').unwrap().1.to_owned();
    for (what, secret) in [
        ("the admin key's secret", secret_of(&admin)),
        ("a wrong secret", secret_of(&wrong_secret)),
        ("the analyst key's secret", secret_of(&analyst)),
        ("the WebSocket ticket", ticket.clone()),
        ("the pepper", pepper.to_owned()),
        ("the LLM API key", llm_key.to_owned()),
    ] {
        assert!(!text.contains(&secret), "{what} is in the log");
    }
}

/// Starts `bqai serve` in `dir` with `env` on a free port; the server (killed when dropped)
/// and its base URL, once it answers.
async fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (Server, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bqai"));
    cmd.args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("BQAI__LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/health/live")).await.is_ok() {
            return (server, base);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

/// The issue's "an export job survives a server restart": the server is killed (no graceful
/// stop) while the job runs; the next server on the same store finds its heartbeat stale and
/// runs it again to the end.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_job_survives_its_server_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BQAI__EXPORT__HEARTBEAT_SECS", "0.2"),
        ("BQAI__EXPORT__STALE_AFTER_SECS", "1"),
        ("BQAI__EXPORT__POLL_INTERVAL_MS", "100"),
    ];
    let (mut server, base) = serve(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let accepted: serde_json::Value = client
        .post(format!("{base}/api/v1/exports?mode=job"))
        .json(&serde_json::json!({"sql": "SELECT * FROM shop.orders", "format": "xlsx"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_url = format!("{base}{}", accepted["status_url"].as_str().unwrap());
    let status = |url: String| async move {
        reqwest::get(url)
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let mut seen_running = false;
    for _ in 0..400 {
        if status(status_url.clone()).await["status"] == "running" {
            seen_running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen_running, "the job never ran");
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let part_files = || {
        std::fs::read_dir(dir.path().join("bqai-data/exports"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(
        part_files()
            .iter()
            .all(|f| f.to_string_lossy().ends_with(".part")),
        "only a partial file is left: {:?}",
        part_files()
    );

    let (_server, base) = serve(dir.path(), &env).await;
    let status_url = format!("{base}{}", accepted["status_url"].as_str().unwrap());
    let mut job = serde_json::Value::Null;
    for _ in 0..1200 {
        job = status(status_url.clone()).await;
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "run again after the crash: {job}");
    assert_eq!(job["rows"], 100_000);
    let file = reqwest::get(job["download_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let bytes = file.bytes().await.unwrap();
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    use calamine::Reader as _;
    let sheet = workbook.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(sheet.height(), 100_001, "the header and every row");
}

/// `bqai semantic draft` on a user's CSV folder writes a model that loads, and the server's
/// planner answers with it (its measures become words it understands).
#[test]
fn semantic_draft_writes_a_model_the_planner_answers_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stores");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("regions.csv"),
        "region_id,region_name\n1,North\n2,South\n",
    )
    .unwrap();
    std::fs::write(
        data.join("sales.csv"),
        "sale_id,region_id,channel,amount,sold_on\n1,1,web,10.5,2025-01-02\n\
         2,2,store,12.5,2025-02-03\n3,1,web,4,2025-02-04\n",
    )
    .unwrap();
    let out = bqai(
        dir.path(),
        &[
            "--data",
            "stores",
            "semantic",
            "draft",
            "--dataset",
            "stores",
            "-o",
            "stores.toml",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("drafted stores: 2 tables, 1 join, 1 measure, the values of 1 column"),
        "{stderr}"
    );
    let toml = std::fs::read_to_string(dir.path().join("stores.toml")).unwrap();
    assert!(
        toml.contains("[[measures]]\nname = \"total_amount\""),
        "{toml}"
    );
    assert!(toml.contains("# 2 values: \"store\", \"web\""), "{toml}");

    let asked = bqai_env(
        dir.path(),
        &[
            "--data",
            "stores",
            "ask",
            "--dataset",
            "stores",
            "--format",
            "json",
            "total amount by channel",
        ],
        &[("BQAI__ASK__SEMANTIC_MODELS", "[stores.toml]")],
    );
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    let rows = answer["result"]["rows"].as_array().unwrap();
    let web = rows.iter().find(|r| r["channel"] == "web").unwrap();
    assert_eq!(web["total_amount"], 14.5, "{answer}");
}

/// A graceful stop (SIGTERM) stores what was queued: the history records and the audit events
/// of calls that were answered without waiting for the store.
#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_stop_stores_the_queued_history_and_audit_events() {
    use bqai_core::auth::audit::{AuditAction, AuditFilter};
    use bqai_core::history::HistoryFilter;
    use bqai_core::model::PageRequest;
    use bqai_core::ports::{AuditLog, HistoryStore};
    use bqai_store::{Store, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = serve(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let calls = 60;
    let sent: Vec<_> = (0..calls)
        .map(|i| {
            client
                .post(format!("{base}/api/v1/query"))
                .json(&serde_json::json!({"sql": format!("SELECT {i} AS n")}))
                .send()
        })
        .collect();
    for reply in futures::future::join_all(sent).await {
        assert_eq!(reply.unwrap().status(), 200);
    }
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = server.0.wait();
        drop(server);
        status
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "{status:?}");

    let url = format!(
        "sqlite://{}",
        dir.path().join("bqai-data/bqai.db").display()
    );
    let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
    let history = store
        .list(&HistoryFilter::default(), &PageRequest::first(500))
        .await
        .unwrap()
        .items;
    assert_eq!(history.len(), calls, "every query is in history");
    let events = store
        .list_events(&AuditFilter::default(), &PageRequest::first(500))
        .await
        .unwrap()
        .items;
    let queries = events
        .iter()
        .filter(|e| e.action == AuditAction::Query)
        .count();
    assert_eq!(queries, calls, "every query is in the audit log");
}
