//! The command line: `bqai serve`, `bqai query`, `bqai ask`, `bqai migrate`, `bqai cache`,
//! `bqai keys`, `bqai config`. The offline commands (`query`, `ask`) act as the local operator: they read
//! the configuration and store directly and need no key.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bqai_core::ask::{AskAnswer, AskRequest};
use bqai_core::auth::Authenticator;
use bqai_core::auth::keys::{KeyFilter, NewKey};
use bqai_core::model::{PageRequest, QueryOutcome, QueryRequest, Role};
use bqai_store::{Purgeable, Store, StoreOptions};
use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::config::{Settings, WarehouseSettings};
use crate::maintenance::PurgedBy;
use crate::startup::{Application, Services};
use crate::telemetry;

/// bqai — ask a data warehouse questions, safely.
#[derive(Debug, Parser)]
#[command(name = "bqai", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without it, ./bqai.toml is read when present.
    #[arg(long, global = true, env = "BQAI_CONFIG")]
    pub config: Option<PathBuf>,

    /// Directory for local state (the SQLite database).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,

    /// CSV, Parquet or NDJSON files (a file, a directory or a glob) to register as tables of
    /// the embedded warehouse, in a dataset named after their folder. Repeatable.
    #[arg(long = "data", global = true)]
    pub data: Vec<String>,

    /// More log lines on stderr: `-v` for `log.level` (info by default), `-vv` for debug.
    /// Commands other than `serve` log only warnings without it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// File formats of `bqai export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// One JSON array.
    Json,
    /// An Excel workbook.
    Xlsx,
    /// Apache Parquet.
    Parquet,
}

impl From<ExportFormat> for bqai_export::Format {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Csv => Self::Csv,
            ExportFormat::Ndjson => Self::Ndjson,
            ExportFormat::Json => Self::Json,
            ExportFormat::Xlsx => Self::Xlsx,
            ExportFormat::Parquet => Self::Parquet,
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve {
        /// Address to bind.
        #[arg(long)]
        host: Option<String>,
        /// Port to bind.
        #[arg(long)]
        port: Option<u16>,
        /// Allow a non-loopback address although authentication is off.
        #[arg(long = "insecure-no-auth", alias = "insecure")]
        insecure: bool,
    },
    /// Run one SQL query (guarded exactly like the API) and print the result.
    Query {
        /// The SQL.
        sql: String,
        /// Dataset for unqualified table names.
        #[arg(long)]
        dataset: Option<String>,
        /// Output format of the rows on stdout (`json`: the body `POST /api/v1/query`
        /// answers).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Row cap.
        #[arg(long)]
        max_rows: Option<u64>,
        /// Only estimate.
        #[arg(long)]
        dry_run: bool,
        /// Timeout in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// Export a whole result into a file (same checks as `POST /api/v1/exports`: the
    /// guard, the dry run, the byte cap, `export.max_rows`), with a progress bar.
    Export {
        /// The SQL (or `--history-id`).
        #[arg(required_unless_present = "history_id")]
        sql: Option<String>,
        /// Export the SQL of this history entry instead.
        #[arg(long, conflicts_with = "sql")]
        history_id: Option<String>,
        /// File format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// The file to write.
        #[arg(short = 'o', long)]
        output: std::path::PathBuf,
        /// Dataset for unqualified table names.
        #[arg(long)]
        dataset: Option<String>,
        /// Row cap (default and most: export.max_rows).
        #[arg(long)]
        max_rows: Option<u64>,
        /// Timeout in milliseconds (of the query, and of each wait for more rows).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// CSV field delimiter (one ASCII character).
        #[arg(long)]
        delimiter: Option<String>,
    },
    /// Ask a question in plain language: prints the generated SQL, an explanation and the
    /// rows (same pipeline, guard and limits as `POST /api/v1/ask`).
    Ask {
        /// The question.
        question: String,
        /// The dataset it is about.
        #[arg(long)]
        dataset: Option<String>,
        /// Output format of the rows on stdout (`json`: the body `POST /api/v1/ask` answers);
        /// the SQL and the explanation go to stderr.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Row cap.
        #[arg(long)]
        max_rows: Option<u64>,
        /// Generate and check the SQL, but do not run it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Serve MCP (the Model Context Protocol) on stdin/stdout, for AI agents that start a
    /// process (Claude Code, Claude Desktop, IDE assistants): the same tools, checks, store
    /// and configuration as `/mcp` on `bqai serve`.
    Mcp {
        /// The API key the agent acts as (required when authentication is on); the
        /// environment variable keeps it out of process listings.
        #[arg(long, env = "BQAI_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Semantic models (`ask.semantic_models`).
    Semantic {
        /// What to do.
        #[command(subcommand)]
        action: SemanticAction,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage the shared (Redis) cache.
    Cache {
        /// What to do.
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Manage API keys directly in the store (works while no server runs, so the first admin
    /// key can be made before the first start).
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Query history kept in the store.
    History {
        /// What to do.
        #[command(subcommand)]
        action: HistoryAction,
    },
    /// What the history says: queries, outcomes, bytes, cost, durations and LLM use per day,
    /// hour, principal, dataset, kind or status (the numbers of `GET
    /// /api/v1/analytics/summary`, for everyone).
    Stats {
        /// How far back: a span (`7d`, `12h`, `2w`, `30m`), a date or an RFC 3339 time.
        #[arg(long, default_value = "7d")]
        since: String,
        /// How to group.
        #[arg(long, value_enum, default_value_t = StatsBy::Day)]
        by: StatsBy,
        /// Only this principal's entries.
        #[arg(long)]
        principal: Option<String>,
        /// Output format (`json`: the API's summary document).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The audit log kept in the store.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: PurgeAction,
    },
    /// Check or print the configuration (`--config FILE`, else ./bqai.toml, plus `BQAI__…`
    /// environment variables).
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `bqai semantic …`
#[derive(Debug, Subcommand)]
pub enum SemanticAction {
    /// Draft a dataset's semantic model from its schema and sampled values: roles, time
    /// columns, joins from `*_id` names, a measure per numeric column, the values of
    /// categorical columns in comments, descriptions left to fill. TOML on stdout or in
    /// `-o FILE`; edit it, then list it in `ask.semantic_models`.
    Draft {
        /// The dataset.
        #[arg(long)]
        dataset: String,
        /// The file to write (default: stdout).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

/// `bqai config …`
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration: exits 0 when it is valid, else 1 after naming every bad
    /// key (unknown keys, wrong types, broken rules). Connects to nothing.
    Check,
    /// Print the effective configuration as TOML (defaults, file and environment merged),
    /// with secrets redacted.
    Show,
}

/// `bqai keys …`
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// A name for the key ("reporting job").
        #[arg(long)]
        name: String,
        /// `admin`, `analyst` or `viewer`.
        #[arg(long)]
        role: String,
        /// Who it belongs to.
        #[arg(long)]
        owner: Option<String>,
        /// Datasets it may read, comma-separated (`*`: all the service allows).
        #[arg(long, value_delimiter = ',', default_value = "*")]
        datasets: Vec<String>,
        /// Requests per minute (default: the server's).
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Bytes billed per UTC day.
        #[arg(long)]
        daily_bytes: Option<u64>,
        /// Days until it expires.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Print JSON (`{"key": …, "id": …}`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys (not their secrets).
    List {
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a key: it stops working at once.
    Revoke {
        /// The key id (the part after `bqai_`).
        id: String,
    },
}

/// `bqai stats --by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsBy {
    /// UTC day.
    Day,
    /// UTC hour.
    Hour,
    /// Principal.
    Principal,
    /// Default dataset.
    Dataset,
    /// sql, ask or system.
    Kind,
    /// succeeded, failed or rejected.
    Status,
}

impl From<StatsBy> for bqai_core::analytics::GroupBy {
    fn from(by: StatsBy) -> Self {
        use bqai_core::analytics::GroupBy;
        match by {
            StatsBy::Day => GroupBy::Day,
            StatsBy::Hour => GroupBy::Hour,
            StatsBy::Principal => GroupBy::Principal,
            StatsBy::Dataset => GroupBy::Dataset,
            StatsBy::Kind => GroupBy::Kind,
            StatsBy::Status => GroupBy::Status,
        }
    }
}

/// `bqai history …`
#[derive(Debug, Subcommand)]
pub enum HistoryAction {
    /// Entries, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only `succeeded`, `failed` or `rejected`.
        #[arg(long)]
        status: Option<String>,
        /// Only `sql`, `ask`, `system` or `export`.
        #[arg(long)]
        kind: Option<String>,
        /// Only this principal's.
        #[arg(long)]
        principal: Option<String>,
        /// Output format (`json`: `{"data": [entries as the API gives them]}`).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One entry, every field.
    Show {
        /// The entry's id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run an entry's SQL again through the whole pipeline (guard, dry run, caps), recorded
    /// as a new entry that points to it.
    Rerun {
        /// The entry's id.
        id: String,
        /// Only estimate.
        #[arg(long)]
        dry_run: bool,
        /// Row cap.
        #[arg(long)]
        max_rows: Option<u64>,
        /// Output format of the rows.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Delete what is older than the retention now (a running server also does it every
    /// `store.maintenance_interval_secs`), in short batches, and give the space back. The
    /// purge is recorded in the audit log.
    Purge {
        /// Delete what is older than this many days (fractions allowed) instead of the
        /// configured `store.history_retention_days`.
        #[arg(long)]
        older_than_days: Option<f64>,
    },
}

/// `bqai audit …`
#[derive(Debug, Subcommand)]
pub enum PurgeAction {
    /// Delete what is older than the retention now (a running server also does it every
    /// `store.maintenance_interval_secs`), in short batches, and give the space back. The
    /// purge is recorded in the audit log.
    Purge {
        /// Delete what is older than this many days (fractions allowed) instead of the
        /// configured `store.history_retention_days` / `auth.audit_retention_days`.
        #[arg(long)]
        older_than_days: Option<f64>,
    },
}

/// `bqai cache …`
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Drop every cached entry of a dataset (schemas, results, question-cache SQL) from the
    /// shared cache, e.g. after its tables changed.
    Clear {
        /// The dataset.
        #[arg(long)]
        dataset: String,
    },
}

/// Output formats of `bqai query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A text table.
    Table,
    /// One JSON document (as the API answers).
    Json,
    /// CSV with a header.
    Csv,
}

/// Loads and validates settings, applying command-line overrides.
pub fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut s = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        s.data_dir = dir.clone();
    }
    if !cli.data.is_empty() {
        match &mut s.warehouse {
            WarehouseSettings::Local(local) => {
                local.data.extend(cli.data.iter().cloned());
                // `--data ./exports` is what the user wants to ask about: with one dataset
                // from the command line and no `ask.default_dataset`, questions go to it
                // (the demo's `shop` stays there, by name).
                if s.ask.default_dataset.is_none()
                    && let Ok([only]) = bqai_local::datasets_of(&cli.data).as_deref()
                {
                    s.ask.default_dataset = Some(only.clone());
                }
            }
            WarehouseSettings::Bigquery(_) => anyhow::bail!(
                "--data registers files with the embedded warehouse; [warehouse] kind is \
                 \"bigquery\" (load files into BigQuery instead)"
            ),
        }
    }
    if let Command::Serve {
        host,
        port,
        insecure,
    } = &cli.command
    {
        if let Some(h) = host {
            s.server.host = h.clone();
        }
        if let Some(p) = port {
            s.server.port = *p;
        }
        if *insecure {
            s.server.allow_insecure_bind = true;
        }
    }
    s.validate()?;
    Ok(s)
}

/// `bqai config check|show`: before anything else is read, so a broken configuration is
/// reported rather than refused.
fn config_command(cli: &Cli, action: &ConfigAction) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match action {
        ConfigAction::Check => {
            let problems = Settings::check(cli.config.as_deref());
            if problems.is_empty() {
                let s = settings(cli)?;
                writeln!(
                    out,
                    "ok: the configuration is valid (warehouse: {}, auth: {}, store: {})",
                    match s.warehouse {
                        WarehouseSettings::Local(_) => "local",
                        WarehouseSettings::Bigquery(_) => "bigquery",
                    },
                    serde_json::to_value(s.auth.mode)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    s.store_url().split("://").next().unwrap_or_default(),
                )?;
                return Ok(());
            }
            let mut err = std::io::stderr().lock();
            let n = problems.len();
            let plural = if n == 1 { "problem" } else { "problems" };
            writeln!(err, "invalid configuration ({n} {plural}):")?;
            for p in &problems {
                writeln!(err, "  - {p}")?;
            }
            std::process::exit(1);
        }
        ConfigAction::Show => {
            let s = settings(cli)?;
            write!(out, "{}", s.to_redacted_toml()?)?;
            Ok(())
        }
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config { action } = &cli.command {
        return config_command(&cli, action);
    }
    let settings = settings(&cli)?;
    let level = match (&cli.command, cli.verbose) {
        (_, 2..) => Some("debug"),
        (Command::Serve { .. }, _) | (_, 1) => None,
        (_, 0) => Some("warn"),
    };
    let serving = matches!(cli.command, Command::Serve { .. });
    // Held until the command returns: dropping it flushes the spans not yet exported.
    let _telemetry = telemetry::init(&settings.log, &settings.telemetry, level, serving)?;
    match cli.command {
        Command::Serve { .. } => {
            let app = Application::build(&settings).await?;
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Mcp { key } => {
            let services = Services::build(&settings).await?;
            let runtime = crate::startup::Runtime::start(&settings, services)?;
            let state = runtime.state.clone();
            let principal = match (&state.auth, key) {
                (None, _) => state.anonymous.clone(),
                (Some(auth), Some(key)) => auth
                    .authenticate(bqai_core::auth::Credential::ApiKey(key.trim()))
                    .await
                    .map_err(|e| anyhow::anyhow!("the API key was refused: {e} ({})", e.code()))?,
                (Some(_), None) => anyhow::bail!(
                    "authentication is on: pass --key or set BQAI_API_KEY to the key the agent acts as"
                ),
            };
            let caller = bqai_http::mcp::McpCaller {
                principal,
                client: None,
                request_id: None,
                base_url: state.settings.mcp.public_url.clone(),
            };
            let served =
                bqai_http::mcp::serve_stdio(state, caller, crate::startup::shutdown_signal()).await;
            runtime.stop().await;
            served.context("the MCP session failed")?;
            Ok(())
        }
        Command::Migrate => {
            let store = Store::connect(&settings.store_url(), StoreOptions::default()).await?;
            let applied = store.migrate().await?;
            // Said on stdout: one-shot commands log only warnings by default.
            writeln!(
                std::io::stdout().lock(),
                "{applied} migration(s) applied; the store is up to date"
            )?;
            Ok(())
        }
        Command::Query {
            sql,
            dataset,
            format,
            max_rows,
            dry_run,
            timeout_ms,
        } => {
            let services = Services::build(&settings).await?;
            let request = QueryRequest {
                sql,
                default_dataset: dataset,
                dry_run,
                max_rows,
                timeout: timeout_ms.map(Duration::from_millis),
                use_cache: true,
                parameters: bqai_core::model::QueryParameters::None,
            };
            let outcome = services.queries.run(request, &services.anonymous).await;
            // The history record goes out before the process does.
            services.flush_history(Duration::from_secs(5)).await;
            let outcome = outcome.map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
            let mut out = std::io::stdout().lock();
            print_outcome(&mut out, &outcome, format).context("could not write the result")?;
            Ok(())
        }
        Command::Export {
            sql,
            history_id,
            format,
            output,
            dataset,
            max_rows,
            timeout_ms,
            delimiter,
        } => {
            let args = crate::export_cli::ExportArgs {
                sql,
                history_id,
                format: format.into(),
                output,
                dataset,
                max_rows,
                timeout_ms,
                delimiter,
            };
            crate::export_cli::export(&settings, args).await
        }
        Command::Cache {
            action: CacheAction::Clear { dataset },
        } => {
            if !bqai_core::query::is_valid_dataset_id(&dataset) {
                anyhow::bail!("--dataset {dataset:?} is not a valid dataset id");
            }
            if settings.cache.url.is_empty() {
                anyhow::bail!(
                    "the cache is in-process (cache.url is not set): it lives inside the running \
                     server; ask it instead: curl -X DELETE \
                     'http://HOST:PORT/api/v1/admin/cache?dataset_id={dataset}'"
                );
            }
            let redis = crate::startup::redis_client(&settings)?;
            let (cache, _) = crate::startup::build_cache(&settings, redis.as_ref());
            let removed = bqai_core::result_cache::invalidate_dataset(cache.as_ref(), &dataset)
                .await
                .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "removed {removed} cache entries of dataset {dataset}")?;
            Ok(())
        }
        Command::Keys { action } => keys(&settings, action).await,
        Command::History { action } => match action {
            HistoryAction::Purge { older_than_days } => {
                purge(&settings, Purgeable::History, older_than_days).await
            }
            HistoryAction::List {
                limit,
                status,
                kind,
                principal,
                format,
            } => crate::history_cli::list(&settings, limit, status, kind, principal, format).await,
            HistoryAction::Show { id, format } => {
                crate::history_cli::show(&settings, &id, format).await
            }
            HistoryAction::Rerun {
                id,
                dry_run,
                max_rows,
                format,
            } => crate::history_cli::rerun(&settings, &id, dry_run, max_rows, format).await,
        },
        Command::Stats {
            since,
            by,
            principal,
            format,
        } => crate::history_cli::stats(&settings, &since, by.into(), principal, format).await,
        Command::Semantic {
            action: SemanticAction::Draft { dataset, output },
        } => crate::semantic_cli::draft(&settings, &dataset, output.as_deref()).await,
        Command::Audit {
            action: PurgeAction::Purge { older_than_days },
        } => purge(&settings, Purgeable::Audit, older_than_days).await,
        // Answered before the settings were loaded and validated.
        Command::Config { .. } => Ok(()),
        Command::Ask {
            question,
            dataset,
            format,
            max_rows,
            dry_run,
        } => {
            let services = Services::build(&settings).await?;
            let generator = services.ask.generator();
            tracing::info!(generator = %generator.kind, model = ?generator.model, "answering");
            let request = AskRequest {
                dataset_id: dataset,
                execute: !dry_run,
                max_rows,
                ..AskRequest::new(question)
            };
            let answer = services.ask.ask(request, &services.anonymous).await;
            services.flush_history(Duration::from_secs(5)).await;
            let answer = answer.map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            print_answer(&mut out, &mut err, &answer, format)
                .context("could not write the answer")?;
            Ok(())
        }
    }
}

/// `bqai history purge` / `bqai audit purge`: one retention purge against the store, without
/// a server (or beside a running one: the batches take turns with its writes).
async fn purge(
    settings: &Settings,
    what: Purgeable,
    older_than_days: Option<f64>,
) -> anyhow::Result<()> {
    let (key, configured) = match what {
        Purgeable::History => (
            "store.history_retention_days",
            settings.store.history_retention_days,
        ),
        Purgeable::Audit => (
            "auth.audit_retention_days",
            settings.auth.audit_retention_days,
        ),
    };
    let days = older_than_days.unwrap_or(configured);
    let keep = match crate::config::retention(days) {
        Err(_) => anyhow::bail!(
            "--older-than-days must be a positive number of days up to 36500, not {days}"
        ),
        Ok(None) if older_than_days.is_some() => {
            anyhow::bail!("--older-than-days 0 would keep everything: nothing to purge")
        }
        Ok(None) => anyhow::bail!(
            "{key} is 0 (keep forever): nothing to purge; pass --older-than-days DAYS"
        ),
        Ok(Some(keep)) => keep,
    };
    let store = crate::startup::open_store(settings).await?;
    let cutoff = chrono::Utc::now() - keep;
    let deleted = crate::maintenance::purge(&store, what, cutoff, PurgedBy::Cli).await?;
    let reclaimed = if deleted > 0 {
        store.reclaim_space().await?
    } else {
        0
    };
    writeln!(
        std::io::stdout().lock(),
        "deleted {deleted} rows of {} recorded before {}; {reclaimed} bytes given back",
        what.table(),
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    Ok(())
}

/// `bqai keys …` against the store, without a server.
async fn keys(settings: &Settings, action: KeysAction) -> anyhow::Result<()> {
    let store = crate::startup::open_store(settings).await?;
    let auth = Authenticator::new(store.keys(), crate::auth::hasher(settings)?);
    let mut out = std::io::stdout().lock();
    match action {
        KeysAction::Create {
            name,
            role,
            owner,
            datasets,
            rate_limit,
            daily_bytes,
            expires_in_days,
            json,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role must be admin, analyst or viewer"))?;
            let datasets = bqai_http::routes::admin::parse_datasets(&datasets)
                .map_err(|e| anyhow::anyhow!("--datasets: {e}"))?;
            let new = NewKey {
                name,
                owner,
                role,
                datasets,
                rate_limit_per_minute: rate_limit,
                daily_byte_quota: daily_bytes,
                expires_at: expires_in_days
                    .map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d))),
            };
            let (record, key) = auth
                .create_key(new)
                .await
                .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            if json {
                let doc = serde_json::json!({
                    "key": key,
                    "id": record.id,
                    "name": record.name,
                    "role": record.role,
                    "datasets": record.datasets.to_list(),
                    "expires_at": record.expires_at,
                });
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "Created {} key {:?} (id {}, datasets {}).\nThe key is shown this once; \
                     store it now:\n\n{key}\n\nUse it as: Authorization: Bearer {key}",
                    record.role.as_str(),
                    record.name,
                    record.id,
                    record.datasets.to_list().join(","),
                )?;
            }
        }
        KeysAction::List { all } => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(["id", "name", "role", "datasets", "status", "last used"]);
            let now = chrono::Utc::now();
            let mut page = PageRequest {
                page_size: 500,
                page_token: None,
            };
            loop {
                let keys = auth
                    .keys()
                    .list_keys(
                        &KeyFilter {
                            include_revoked: all,
                        },
                        &page,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
                for k in &keys.items {
                    table.add_row([
                        k.id.clone(),
                        k.name.clone(),
                        k.role.as_str().to_string(),
                        k.datasets.to_list().join(","),
                        format!("{:?}", k.status(now)).to_lowercase(),
                        k.last_used_at
                            .map_or_else(|| "never".into(), |t| t.to_rfc3339()),
                    ]);
                }
                match keys.next_page_token {
                    Some(t) => page.page_token = Some(t),
                    None => break,
                }
            }
            writeln!(out, "{table}")?;
        }
        KeysAction::Revoke { id } => {
            let revoked = auth
                .keys()
                .revoke_key(&id, chrono::Utc::now())
                .await
                .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            match revoked {
                Some(k) => {
                    writeln!(out, "revoked key {} ({:?})", k.id, k.name)?;
                    // Running servers cache verified keys: with Redis they hear of it now,
                    // without it within auth.key_cache_ttl_secs.
                    if let Some(client) = crate::startup::redis_client(settings)? {
                        use bqai_core::ports::KeyChangeNotifier;
                        let changes = bqai_redis::RedisKeyChanges::from_client(client);
                        if let Err(e) = changes.key_changed(&k.id).await {
                            eprintln!(
                                "warning: could not tell the running servers through Redis \
                                 ({e}); they refuse the key within auth.key_cache_ttl_secs"
                            );
                        }
                    }
                }
                None => anyhow::bail!("no key with id {id:?}"),
            }
        }
    }
    Ok(())
}

/// Writes an answer for scripts and people: the data on `out` (the rows as a table or CSV,
/// or with `json` exactly the body `POST /api/v1/ask` answers), and everything else (the SQL,
/// the explanation, hints) on `err`, so `bqai ask --format csv > file` holds only the rows.
pub fn print_answer(
    out: &mut impl Write,
    err: &mut impl Write,
    answer: &AskAnswer,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        let doc = bqai_http::routes::ask::AskResponse::from(answer.clone());
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    if let Some(sql) = &answer.sql {
        writeln!(err, "{sql}\n")?;
    }
    writeln!(err, "{}", answer.explanation)?;
    for hint in &answer.hints {
        writeln!(err, "hint: {hint}")?;
    }
    if let Some(outcome) = &answer.result {
        print_outcome(out, outcome, format)?;
    }
    Ok(())
}

/// Writes a query outcome in the chosen format.
pub fn print_outcome(
    out: &mut impl Write,
    outcome: &QueryOutcome,
    format: Format,
) -> anyhow::Result<()> {
    let result = &outcome.result;
    match format {
        Format::Json => {
            let doc = bqai_http::dto::QueryResponse::from(outcome.clone());
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(result.columns.iter().map(|c| c.name.as_str()))?;
            for row in &result.rows {
                w.write_record(row.iter().map(bqai_core::model::Value::to_text))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(result.columns.iter().map(|c| c.name.clone()));
            for row in &result.rows {
                table.add_row(row.iter().map(bqai_core::model::Value::to_text));
            }
            writeln!(out, "{table}")?;
            let stats = &result.stats;
            writeln!(
                out,
                "{} row(s){}; {} bytes processed (~${:.6}); {} ms{}{}",
                result.rows.len(),
                match (result.truncated, result.truncated_at_bytes) {
                    (true, Some(_)) => " (cut at query.max_response_bytes)",
                    (true, None) => " (row cap reached)",
                    (false, _) => "",
                },
                stats.bytes_processed,
                stats.estimated_cost_usd,
                stats.duration_ms,
                if stats.cache_hit { "; from cache" } else { "" },
                if outcome.dry_run {
                    "; dry run, nothing executed"
                } else {
                    ""
                },
            )?;
        }
    }
    Ok(())
}
