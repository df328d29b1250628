//! Layered configuration: built-in defaults → an optional TOML file → `BQAI__SECTION__KEY`
//! environment variables → command-line flags; then [`Settings::validate`] with messages that
//! say which key is wrong and what would be right.
//!
//! figment is used because it merges those layers with typed extraction and error messages
//! that name the offending key and its source. Settings are passed explicitly to whatever
//! needs them; there is no global.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bqai_bigquery::BigQueryConfig;
use bqai_core::ask::AskSettings;
use bqai_core::model::DatasetScope;
use bqai_core::paging::PagingPolicy;
use bqai_core::query::QueryLimits;
use bqai_core::result_cache::CachePolicy;
use bqai_http::HttpSettings;
use bqai_llm::LlmConfig;
use bqai_local::LocalConfig;
use bqai_memory::QueueLimits;
use bqai_oidc::OidcConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The top-level keys of the configuration.
const SECTIONS: [&str; 15] = [
    "data_dir",
    "server",
    "warehouse",
    "query",
    "cache",
    "store",
    "log",
    "llm",
    "ask",
    "auth",
    "ws",
    "conversations",
    "telemetry",
    "export",
    "mcp",
];

/// `scheme://user:password@host/…` → `scheme://user:<redacted>@host/…`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:<redacted>@{host}{path}")
        }
        Some((userinfo, host)) if scheme.starts_with("redis") && !userinfo.is_empty() => {
            format!("{scheme}://<redacted>@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Directory for the SQLite database and other local state.
    pub data_dir: PathBuf,
    /// HTTP server.
    pub server: ServerSettings,
    /// Which warehouse to query. Not part of the serialized defaults: figment merges maps
    /// key by key, so the embedded engine's default keys would otherwise land in a
    /// `kind = "bigquery"` section and be refused as unknown there.
    #[serde(skip_serializing)]
    pub warehouse: WarehouseSettings,
    /// Query limits.
    pub query: QuerySettings,
    /// Cache.
    pub cache: CacheSettings,
    /// History store.
    pub store: StoreSettings,
    /// Logging.
    pub log: LogSettings,
    /// The language model behind the ask pipeline (`kind = "builtin"` needs none).
    pub llm: LlmConfig,
    /// The ask pipeline.
    pub ask: AskConfig,
    /// Authentication and the audit log.
    pub auth: AuthSettings,
    /// The WebSocket API (`/api/v1/ws/agent`).
    pub ws: WsConfig,
    /// Multi-turn conversations.
    pub conversations: ConversationsConfig,
    /// Traces (OpenTelemetry over OTLP).
    pub telemetry: TelemetrySettings,
    /// `[export]`
    pub export: ExportConfig,
    /// `[mcp]`: the MCP server (`/mcp` and `bqai mcp`).
    pub mcp: McpConfig,
}

/// `[mcp]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Serve MCP's streamable HTTP transport at `/mcp` (`bqai mcp` works either way).
    pub enabled: bool,
    /// Sessions on `/mcp` (`Mcp-Session-Id`, event streams). Sessions live in one replica's
    /// memory: behind a load balancer without sticky sessions, set false (every request then
    /// stands alone and is answered with plain JSON).
    pub sessions: bool,
    /// Seconds the `export` tool waits for its job before answering with its status.
    pub export_wait_secs: u64,
    /// The server download links of exports made through `bqai mcp` point at (`bqai serve`
    /// on the same store); default `http://<server.host>:<server.port>`.
    pub public_url: Option<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        let d = bqai_http::mcp::McpSettings::default();
        Self {
            enabled: d.enabled,
            sessions: d.sessions,
            export_wait_secs: d.export_wait.as_secs(),
            public_url: None,
        }
    }
}

/// `[export]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Row cap of an export (in place of `query.max_rows_limit`, which bounds responses).
    pub max_rows: u64,
    /// An export whose LIMIT is at most this many rows is streamed in the response.
    pub inline_max_rows: u64,
    /// An export whose dry run processes at most this many bytes is streamed in the response.
    pub inline_max_bytes: u64,
    /// Export jobs this server runs at once (0: none here; another replica runs them).
    pub workers: usize,
    /// Where job files go: a directory, `gs://BUCKET[/PREFIX]` or `s3://BUCKET[/PREFIX]`.
    /// Unset: `<data_dir>/exports`.
    pub destination: Option<String>,
    /// Settings of a bucket destination, by object_store's config key (`aws_endpoint`,
    /// `aws_region`, `google_service_account`…); credentials best through the standard
    /// environment variables. Values are never printed.
    #[serde(skip_serializing)]
    pub destination_options: std::collections::BTreeMap<String, SecretString>,
    /// Hours a job's file is kept after it succeeded.
    pub file_ttl_hours: f64,
    /// Seconds a signed download link stays valid (never past the file's own deletion).
    pub link_ttl_secs: u64,
    /// The secret download links are signed with (best through `BQAI__EXPORT__LINK_SECRET`).
    /// Unset: `link_secret_file`, else `<data_dir>/export-links.key`, created at random on
    /// first use; replicas must share one.
    #[serde(skip_serializing)]
    pub link_secret: Option<SecretString>,
    /// A file holding the link secret.
    pub link_secret_file: Option<PathBuf>,
    /// The signing key's version, part of every signature: bump it to revoke every link
    /// handed out so far.
    pub link_key_version: u32,
    /// Export jobs one key may have queued or running at once.
    pub max_jobs_per_key: u64,
    /// Bytes one key's export jobs may write per UTC day (0: no limit).
    pub max_bytes_per_day: u64,
    /// Seconds between a running job's heartbeats (progress and proof of life).
    pub heartbeat_secs: f64,
    /// Seconds without a heartbeat after which a running job is taken to be orphaned (its
    /// server died) and runs again.
    pub stale_after_secs: f64,
    /// Milliseconds between an idle worker's looks at the queue (a submission on this server
    /// wakes one at once).
    pub poll_interval_ms: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        let defaults = bqai_http::state::ExportSettings::default();
        let jobs = bqai_export::jobs::JobSettings::default();
        Self {
            max_rows: defaults.max_rows,
            inline_max_rows: defaults.inline_max_rows,
            inline_max_bytes: defaults.inline_max_bytes,
            workers: jobs.workers,
            destination: None,
            destination_options: std::collections::BTreeMap::new(),
            file_ttl_hours: jobs.file_ttl.as_secs_f64() / 3600.0,
            link_ttl_secs: defaults.link_ttl.as_secs(),
            link_secret: None,
            link_secret_file: None,
            link_key_version: 1,
            max_jobs_per_key: defaults.max_jobs_per_key,
            max_bytes_per_day: defaults.max_bytes_per_day.unwrap_or(0),
            heartbeat_secs: jobs.heartbeat_interval.as_secs_f64(),
            stale_after_secs: jobs.stale_after.as_secs_f64(),
            poll_interval_ms: u64::try_from(jobs.poll_interval.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

// SecretString has no PartialEq on purpose; the config loader's tests compare settings:
// everything else through its serialized form, which leaves the secret out.
impl PartialEq for QuerySettings {
    fn eq(&self, other: &Self) -> bool {
        let secret = |q: &Self| {
            q.page_token_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned())
        };
        secret(self) == secret(other)
            && serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

// SecretString has no PartialEq on purpose; the config loader's tests compare settings.
impl PartialEq for ExportConfig {
    fn eq(&self, other: &Self) -> bool {
        let same_secret = match (&self.link_secret, &other.link_secret) {
            (None, None) => true,
            (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        };
        let without_secret = |c: &Self| {
            let Self {
                max_rows,
                inline_max_rows,
                inline_max_bytes,
                workers,
                destination,
                destination_options: _,
                file_ttl_hours,
                link_ttl_secs,
                link_secret: _,
                link_secret_file,
                link_key_version,
                max_jobs_per_key,
                max_bytes_per_day,
                heartbeat_secs,
                stale_after_secs,
                poll_interval_ms,
            } = c.clone();
            (
                (
                    max_rows,
                    inline_max_rows,
                    inline_max_bytes,
                    workers,
                    destination,
                ),
                (
                    file_ttl_hours,
                    link_ttl_secs,
                    link_secret_file,
                    link_key_version,
                ),
                (
                    max_jobs_per_key,
                    max_bytes_per_day,
                    heartbeat_secs,
                    stale_after_secs,
                ),
                poll_interval_ms,
            )
        };
        same_secret
            && self.exposed_options() == other.exposed_options()
            && without_secret(self) == without_secret(other)
    }
}

impl ExportConfig {
    /// `destination_options` with their values readable, for the object store's builder.
    fn exposed_options(&self) -> std::collections::BTreeMap<String, String> {
        self.destination_options
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect()
    }

    /// Where job files go.
    pub fn destination(&self, data_dir: &Path) -> Result<bqai_export::Destination, String> {
        match &self.destination {
            Some(d) => bqai_export::Destination::parse(
                d,
                &self.exposed_options(),
                &data_dir.join("exports-spool"),
            ),
            None => Ok(bqai_export::Destination::Local(data_dir.join("exports"))),
        }
    }

    /// The worker pool's settings.
    pub fn jobs(&self) -> bqai_export::jobs::JobSettings {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX);
        bqai_export::jobs::JobSettings {
            workers: self.workers,
            max_rows: self.max_rows,
            file_ttl: secs(self.file_ttl_hours * 3600.0),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
            heartbeat_interval: secs(self.heartbeat_secs),
            stale_after: secs(self.stale_after_secs),
            max_bytes_per_day: (self.max_bytes_per_day > 0).then_some(self.max_bytes_per_day),
            // Files go within a minute of their time, or a quarter of their TTL when shorter.
            expiry_interval: secs(self.file_ttl_hours * 900.0)
                .clamp(Duration::from_millis(100), Duration::from_secs(60)),
        }
    }

    fn problems(&self, data_dir: &Path, problems: &mut Vec<String>) {
        if let Err(e) = self.destination(data_dir) {
            problems.push(e);
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.file_ttl_hours) {
            problems.push("export.file_ttl_hours must be above 0".to_string());
        }
        if self.link_ttl_secs == 0 {
            problems.push("export.link_ttl_secs must be at least 1".to_string());
        }
        if self.max_jobs_per_key == 0 {
            problems.push("export.max_jobs_per_key must be at least 1".to_string());
        }
        if !positive(self.heartbeat_secs)
            || !positive(self.stale_after_secs)
            || self.stale_after_secs < 2.0 * self.heartbeat_secs
        {
            problems.push(
                "export.heartbeat_secs must be above 0 and export.stale_after_secs at least twice it"
                    .to_string(),
            );
        }
        if self.max_rows == 0 || self.inline_max_rows > self.max_rows {
            problems.push(
                "export.max_rows must be at least 1 and at least export.inline_max_rows"
                    .to_string(),
            );
        }
    }
}

/// `[telemetry]`: traces over OTLP. Off unless an endpoint is known (this section or the
/// standard `OTEL_EXPORTER_OTLP_ENDPOINT`); the standard `OTEL_*` variables fill what is
/// not set here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The collector's base URL, e.g. `http://otel-collector:4318` (HTTP/protobuf) or
    /// `http://otel-collector:4317` (gRPC). Unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// then `OTEL_EXPORTER_OTLP_ENDPOINT`; none of them: traces off.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` or `grpc`. Unset: `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`, else
    /// `http/protobuf`.
    pub otlp_protocol: Option<String>,
    /// `service.name` of the spans. Unset: `OTEL_SERVICE_NAME`, else `bqai`.
    pub service_name: Option<String>,
    /// Share of new traces kept, 0.0–1.0 (a caller's sampled `traceparent` is always
    /// followed). Unset: `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, else all.
    pub sampler_ratio: Option<f64>,
    /// Put the SQL text in spans (`db.query.text`). Off: SQL can name customers and
    /// amounts, and a tracing backend is often readable by more people than the data.
    pub record_sql: bool,
    /// `HOST:PORT` of a listener of its own for `GET /metrics` (e.g. `0.0.0.0:9464`), so the
    /// metrics need not be reachable where the API is; the API listener then answers
    /// `/metrics` with 404. Unset: `/metrics` is served on the API listener.
    pub metrics_addr: Option<String>,
}

/// `[conversations]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationsConfig {
    /// Where conversations live: `memory` (in-process, the default; lost on restart, not
    /// shared between replicas), `redis` (the Redis of `cache.url`, shared by replicas) or
    /// `sql` (the database of `store.url`, durable).
    pub store: String,
    /// Seconds an idle conversation lives (every turn extends it).
    pub ttl_secs: u64,
    /// Turns a conversation keeps (the oldest are dropped).
    pub max_turns: usize,
    /// Earlier turns given to the generator as context (the newest ones).
    pub context_turns: usize,
    /// Conversations the in-process store holds at most (least recently used dropped).
    pub max_conversations: u64,
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        Self {
            store: "memory".to_string(),
            ttl_secs: 3600,
            max_turns: 50,
            context_turns: 10,
            max_conversations: 100_000,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./bqai-data"),
            server: ServerSettings::default(),
            warehouse: WarehouseSettings::default(),
            query: QuerySettings::default(),
            cache: CacheSettings::default(),
            store: StoreSettings::default(),
            log: LogSettings::default(),
            llm: LlmConfig::default(),
            ask: AskConfig::default(),
            auth: AuthSettings::default(),
            ws: WsConfig::default(),
            conversations: ConversationsConfig::default(),
            telemetry: TelemetrySettings::default(),
            export: ExportConfig::default(),
            mcp: McpConfig::default(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Largest request body in bytes.
    pub body_limit_bytes: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Requests per minute per client (0 disables the limit).
    pub requests_per_minute: u32,
    /// Allow binding a non-loopback address although authentication is off
    /// (`--insecure-no-auth`).
    pub allow_insecure_bind: bool,
    /// Rate-limit units a query costs (a catalog read costs 1).
    pub query_weight: u32,
    /// Rate-limit units an ask costs.
    pub ask_weight: u32,
    /// Failed authentications per client address and minute before its requests are refused
    /// without a credential check (0 = no throttle).
    pub auth_failures_per_minute: u32,
    /// IP addresses of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Origins (`https://app.example.com`) whose pages may call the API (CORS); empty: none
    /// but the server's own; `*`: any.
    pub cors_origins: Vec<String>,
    /// Host names the server answers to besides IP addresses, `localhost` and `host` (DNS
    /// rebinding protection); `*`: any (behind a proxy that checks `Host` itself).
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            body_limit_bytes: 1024 * 1024,
            shutdown_timeout_secs: 30,
            requests_per_minute: 600,
            allow_insecure_bind: false,
            query_weight: 5,
            ask_weight: 10,
            auth_failures_per_minute: 30,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// `[auth] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// Everyone is the anonymous admin (loopback only, unless `--insecure-no-auth`).
    #[default]
    #[serde(rename = "off")]
    Off,
    /// API keys.
    #[serde(rename = "api_key")]
    ApiKey,
    /// API keys and OIDC bearer tokens (`[auth.oidc]`).
    #[serde(rename = "api_key+oidc")]
    ApiKeyOidc,
}

/// `[auth]`
///
/// The pepper is the server-side secret API-key hashes are keyed with. It comes from `pepper`
/// (best through the `BQAI__AUTH__PEPPER` environment variable), or the file `pepper_file`;
/// with neither, `<data_dir>/auth.pepper` is used, created with a random pepper (mode 0600)
/// on first use — fine for one server; replicas must share one configured pepper.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `off`, `api_key` or `api_key+oidc`.
    pub mode: AuthMode,
    /// The pepper itself (at least 16 bytes).
    #[serde(skip_serializing)]
    pub pepper: Option<SecretString>,
    /// A file holding the pepper.
    pub pepper_file: Option<PathBuf>,
    /// How long a WebSocket ticket is valid.
    pub ticket_ttl_secs: u64,
    /// How long a verified API key's record is kept in process before it is read from the
    /// store again; 0 reads it on every request. Changes made through bqai (revoking,
    /// updating) apply at once on the replica that made them and, with Redis, on every
    /// replica; without Redis, other replicas see them within this many seconds.
    pub key_cache_ttl_secs: u64,
    /// Keep an audit log of `/api/v1` calls.
    pub audit: bool,
    /// Also audit allowed reads (catalog, history and conversation reads). Unset: on when
    /// authentication is on, off when it is off (then every caller is the loopback
    /// anonymous principal and those rows say nothing). Denials, failures, queries, asks,
    /// exports and admin calls are always audited.
    pub audit_reads: Option<bool>,
    /// Answer every audited call only once its event is stored. Off (the default): denials,
    /// failures, admin changes and tickets still wait for their event; an allowed data access
    /// (a query, an ask, a read) is answered once its event is queued for the writer, which
    /// stores it within milliseconds, in order, and everything at a graceful stop — a crash
    /// can lose the events of the batch being written.
    pub audit_wait: bool,
    /// Days an audit event is kept (fractions allowed: 0.5 is 12 hours); 0 keeps them forever.
    pub audit_retention_days: f64,
    /// The OIDC issuer whose bearer tokens are accepted (`mode = "api_key+oidc"`).
    pub oidc: Option<OidcConfig>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::Off,
            pepper: None,
            pepper_file: None,
            ticket_ttl_secs: 60,
            key_cache_ttl_secs: 5,
            audit: true,
            audit_reads: None,
            audit_wait: false,
            audit_retention_days: 90.0,
            oidc: None,
        }
    }
}

// SecretString has no PartialEq on purpose; the config loader's tests compare settings.
impl PartialEq for AuthSettings {
    fn eq(&self, other: &Self) -> bool {
        let same = match (&self.pepper, &other.pepper) {
            (None, None) => true,
            (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        };
        same && self.mode == other.mode
            && self.pepper_file == other.pepper_file
            && self.ticket_ttl_secs == other.ticket_ttl_secs
            && self.key_cache_ttl_secs == other.key_cache_ttl_secs
            && self.audit == other.audit
            && self.audit_reads == other.audit_reads
            && self.audit_wait == other.audit_wait
            && self.audit_retention_days == other.audit_retention_days
            && self.oidc == other.oidc
    }
}

/// `[warehouse]`: chosen by `kind` (`local` when absent); each variant is its adapter's own
/// configuration type, so keys and defaults are declared once, next to the adapter, and keys
/// of another kind are refused (`deny_unknown_fields` on each type).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WarehouseSettings {
    /// The embedded DataFusion engine (`demo`, `data`, `memory_limit_mb`, `target_partitions`).
    Local(LocalConfig),
    /// Google BigQuery (`project`, `location`, `credentials`, `endpoint`, timeouts, retries,
    /// `max_bytes_billed`, `labels`; see `bqai_bigquery::BigQueryConfig`).
    #[serde(rename = "bigquery")]
    Bigquery(BigQueryConfig),
}

// By hand rather than `#[serde(tag = "kind")]`, so that a section without `kind` (only
// `data = [...]`, or an environment variable) still means the embedded engine, and an error
// names the section and the kind.
impl<'de> Deserialize<'de> for WarehouseSettings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let kind = match map.remove("kind") {
            None => "local".to_owned(),
            Some(serde_json::Value::String(kind)) => kind,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "warehouse.kind must be \"local\" or \"bigquery\", got {other}"
                )));
            }
        };
        let rest = serde_json::Value::Object(map);
        match kind.as_str() {
            "local" => LocalConfig::deserialize(rest)
                .map(WarehouseSettings::Local)
                .map_err(|e| D::Error::custom(format!("[warehouse] kind = \"local\": {e}"))),
            "bigquery" => BigQueryConfig::deserialize(rest)
                .map(WarehouseSettings::Bigquery)
                .map_err(|e| D::Error::custom(format!("[warehouse] kind = \"bigquery\": {e}"))),
            other => Err(D::Error::custom(format!(
                "warehouse.kind must be \"local\" or \"bigquery\", got {other:?}"
            ))),
        }
    }
}

impl WarehouseSettings {
    /// The embedded warehouse with default resource limits.
    pub fn local(demo: bool, data: Vec<String>) -> Self {
        WarehouseSettings::Local(LocalConfig {
            demo,
            data,
            ..LocalConfig::default()
        })
    }
}

impl Default for WarehouseSettings {
    fn default() -> Self {
        WarehouseSettings::local(true, Vec::new())
    }
}

/// `[query]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySettings {
    /// Datasets queries may read (`["*"]` for all of the warehouse's own).
    pub allowed_datasets: Vec<String>,
    /// Row cap when a request gives none.
    pub default_max_rows: u64,
    /// Largest row cap a request may ask for.
    pub max_rows_limit: u64,
    /// Timeout when a request gives none, in ms.
    pub default_timeout_ms: u64,
    /// Largest timeout a request may ask for, in ms.
    pub max_timeout_ms: u64,
    /// Byte cap per query (0 = no cap).
    pub max_bytes_billed: u64,
    /// On-demand price per TiB, for cost estimates.
    pub usd_per_tib: f64,
    /// Maximum rows of a table preview.
    pub max_preview_rows: u64,
    /// Largest JSON size of a result's rows in one response (REST, WebSocket, CLI); beyond it
    /// the rows are cut and `truncated` is set (0 = no cap).
    pub max_response_bytes: u64,
    /// Statements running on the warehouse at once (the query queue); unset: 50 on BigQuery,
    /// twice the cores (at least 4) on the embedded engine.
    pub max_concurrent: Option<usize>,
    /// Statements one principal (API key, token subject) may run at once; unset: half of
    /// `max_concurrent`, rounded up. Unauthenticated callers share `max_concurrent` only.
    pub max_concurrent_per_key: Option<usize>,
    /// Statements that may wait for a slot; beyond, 503 `QUEUE_FULL` (0: none wait).
    pub max_queued: usize,
    /// Longest wait for a slot, in ms; then 503 `QUEUE_FULL`.
    pub queue_timeout_ms: u64,
    /// Row cap of a paged query's whole result (`page_size` in the request), in place of
    /// `max_rows_limit`.
    pub max_paged_rows: u64,
    /// How long a paged result's next pages stay readable, in seconds.
    pub page_ttl_secs: u64,
    /// Largest encoded size of one paged result kept in the cache (the embedded engine keeps
    /// no results of its own); rows past it are not handed out.
    pub spool_max_bytes: u64,
    /// The key page tokens are signed with (or `page_token_secret_file`); unset: a key
    /// generated once into `data_dir/page-tokens.key`. Replicas must share it.
    #[serde(skip_serializing)]
    pub page_token_secret: Option<SecretString>,
    /// A file holding the page token key.
    pub page_token_secret_file: Option<PathBuf>,
}

impl Default for QuerySettings {
    fn default() -> Self {
        let limits = QueryLimits::default();
        let paging = PagingPolicy::default();
        Self {
            allowed_datasets: vec!["*".into()],
            default_max_rows: limits.default_max_rows,
            max_rows_limit: limits.max_rows_limit,
            default_timeout_ms: millis(limits.default_timeout),
            max_timeout_ms: millis(limits.max_timeout),
            max_bytes_billed: limits.max_bytes_billed.unwrap_or(0),
            usd_per_tib: limits.usd_per_tib,
            max_preview_rows: 1000,
            max_response_bytes: limits.max_response_bytes.unwrap_or(0),
            max_concurrent: None,
            max_concurrent_per_key: None,
            max_queued: 1000,
            queue_timeout_ms: 30_000,
            max_paged_rows: paging.max_rows,
            page_ttl_secs: paging.ttl.as_secs(),
            spool_max_bytes: paging.spool_max_bytes,
            page_token_secret: None,
            page_token_secret_file: None,
        }
    }
}

/// A `YYYY-MM-DD` day (`ask.today`).
fn parse_day(day: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d").ok()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `[cache]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Empty: the in-process cache and rate limiter. `redis://host:6379[/db]`: both shared
    /// through Redis (with the in-process limiter as fallback while Redis is down).
    pub url: String,
    /// Extra prefix for every Redis key (several deployments sharing one Redis).
    pub redis_namespace: String,
    /// Deadline of every Redis call, in milliseconds.
    pub redis_timeout_ms: u64,
    /// Connections in the Redis pool.
    pub redis_pool_size: usize,
    /// Bytes the in-process cache may hold.
    pub max_bytes: u64,
    /// TTL of catalog metadata, in seconds.
    pub metadata_ttl_secs: u64,
    /// TTL of query results, in seconds.
    pub result_ttl_secs: u64,
    /// Result TTL per dataset, in seconds (`{ shop = 60 }`), overriding `result_ttl_secs`.
    pub result_ttl_secs_by_dataset: std::collections::BTreeMap<String, u64>,
    /// Results larger than this (encoded) are not cached.
    pub max_result_bytes: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        let p = CachePolicy::default();
        Self {
            url: String::new(),
            redis_namespace: String::new(),
            redis_timeout_ms: 500,
            redis_pool_size: 16,
            max_bytes: 256 * 1024 * 1024,
            metadata_ttl_secs: p.metadata_ttl.as_secs(),
            result_ttl_secs: p.result_ttl.as_secs(),
            result_ttl_secs_by_dataset: std::collections::BTreeMap::new(),
            max_result_bytes: p.max_result_bytes,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://path/to/file.db`; empty means `sqlite://<data_dir>/bqai.db`.
    pub url: String,
    /// Run pending migrations at start.
    pub migrate_on_start: bool,
    /// History records kept in memory while the store is down (oldest dropped beyond).
    pub buffer_capacity: usize,
    /// Days a history entry is kept (fractions allowed); 0 keeps them forever.
    pub history_retention_days: f64,
    /// Seconds between two maintenance rounds: purge what retention says is old, give SQLite's
    /// free pages back, and measure the store (`/health`, `/metrics`).
    pub maintenance_interval_secs: u64,
    /// Milliseconds the history writer waits for more records after a batch's first: fewer,
    /// larger commits (on SQLite a commit costs as much as dozens of rows), and as much more
    /// that a crash can lose. 0 writes what has queued at once.
    pub history_linger_ms: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            migrate_on_start: true,
            buffer_capacity: 10_000,
            history_retention_days: 90.0,
            maintenance_interval_secs: 300,
            history_linger_ms: 5,
        }
    }
}

/// `[ask]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AskConfig {
    /// Generator attempts per question; each failure is fed back to the generator.
    pub max_attempts: u32,
    /// Longest question accepted, in characters.
    pub max_question_chars: usize,
    /// Token budget for the schema in an LLM prompt; larger datasets are narrowed.
    pub schema_token_budget: usize,
    /// Few-shot examples per prompt.
    pub max_examples: usize,
    /// How long a question's SQL is reused, in seconds.
    pub question_cache_ttl_secs: u64,
    /// The dataset questions are about when a request names none (default: `shop` when the
    /// demo is the only dataset, else the only dataset there is).
    pub default_dataset: Option<String>,
    /// Semantic model files (TOML, one per dataset) to load at start.
    pub semantic_models: Vec<PathBuf>,
    /// Whether the built-in planner samples categorical values (`SELECT DISTINCT col`) to
    /// recognise them in questions. Those queries pass the guard and caps like any other and
    /// are recorded in history as kind `system`, by principal `system:planner`.
    pub sample_values: bool,
    /// Largest dry-run estimate of one sampling query, in bytes (default 100 MiB).
    pub sampling_max_bytes: u64,
    /// Bytes per UTC day all sampling queries may bill together (default 10 GiB; 0 for no
    /// budget). Enforced through the same daily-quota ledger as API keys' quotas.
    pub sampling_daily_bytes: u64,
    /// The day questions are asked on, `YYYY-MM-DD` ("last month", "this year" are read
    /// against it); unset: today in UTC. For tests and demos: the demo data ends on
    /// 2025-12-31.
    pub today: Option<String>,
}

impl Default for AskConfig {
    fn default() -> Self {
        let d = AskSettings::default();
        Self {
            max_attempts: d.max_attempts,
            max_question_chars: d.max_question_chars,
            schema_token_budget: d.schema_token_budget,
            max_examples: d.max_examples,
            question_cache_ttl_secs: d.question_cache_ttl.as_secs(),
            default_dataset: None,
            semantic_models: Vec::new(),
            sample_values: true,
            sampling_max_bytes: 100 * 1024 * 1024,
            sampling_daily_bytes: 10 * 1024 * 1024 * 1024,
            today: None,
        }
    }
}

/// `[ws]`: limits and timers of the WebSocket API (see docs/API.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Largest client message in bytes; larger ones get an `error`, the connection stays.
    pub max_message_bytes: usize,
    /// Largest frame read at all; beyond it the connection is closed (1009).
    pub max_frame_bytes: usize,
    /// Seconds between server pings.
    pub heartbeat_secs: u64,
    /// Seconds a client may stay silent (no frame, not even a pong) before it is dropped.
    pub client_timeout_secs: u64,
    /// Seconds without a message and with nothing in flight before a connection is closed.
    pub idle_timeout_secs: u64,
    /// Events queued per connection; a client that lets it fill is disconnected (1008).
    pub outbound_queue: usize,
    /// Seconds one event may wait for a slow client before it is disconnected (1008).
    pub send_timeout_secs: u64,
    /// Asks in flight per connection.
    pub max_in_flight: usize,
    /// Open connections per server; more upgrades get 503 `TOO_MANY_CONNECTIONS`.
    pub max_connections: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        let d = bqai_http::WsSettings::default();
        Self {
            max_message_bytes: d.max_message_bytes,
            max_frame_bytes: d.max_frame_bytes,
            heartbeat_secs: d.heartbeat_interval.as_secs(),
            client_timeout_secs: d.client_timeout.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
            outbound_queue: d.outbound_queue,
            send_timeout_secs: d.send_timeout.as_secs(),
            max_in_flight: d.max_in_flight,
            max_connections: d.max_connections,
        }
    }
}

impl WsConfig {
    /// The HTTP layer's form.
    pub fn settings(&self) -> bqai_http::WsSettings {
        bqai_http::WsSettings {
            max_message_bytes: self.max_message_bytes,
            max_frame_bytes: self.max_frame_bytes,
            heartbeat_interval: Duration::from_secs(self.heartbeat_secs),
            client_timeout: Duration::from_secs(self.client_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            outbound_queue: self.outbound_queue,
            send_timeout: Duration::from_secs(self.send_timeout_secs),
            max_in_flight: self.max_in_flight,
            max_connections: self.max_connections,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter (`info`, `bqai=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (it must exist when given explicitly; `bqai.toml` in the
    /// working directory is read when present), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let settings: Settings = Self::figment(file)?
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(settings)
    }

    /// The layers `load` extracts from: defaults, the file, the environment.
    fn figment(file: Option<&Path>) -> anyhow::Result<Figment> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    anyhow::bail!("config file {} does not exist", path.display());
                }
                fig = fig.merge(Toml::file(path));
            }
            None => fig = fig.merge(Toml::file("bqai.toml")),
        }
        Ok(fig.merge(Env::prefixed("BQAI__").split("__").lowercase(true)))
    }

    /// Every problem of the configuration `load(file)` would read, each naming its key:
    /// unknown keys, values of the wrong type (serde stops at the first, so each section is
    /// also read on its own to find the others) and the cross-field rules of
    /// [`Settings::validate`]. Empty: the configuration is valid. `bqai config check`.
    pub fn check(file: Option<&Path>) -> Vec<String> {
        let fig = match Self::figment(file) {
            Ok(fig) => fig,
            Err(e) => return vec![e.to_string()],
        };
        let err = match fig.extract::<Settings>() {
            Ok(settings) => return settings.problems(),
            Err(e) => e,
        };
        // `section.key: what is wrong (where it came from)`, for an error found reading
        // `section` on its own (figment's own text puts the section after the key).
        fn describe(e: figment::Error, section: &str) -> String {
            // extract_inner leaves the section at the end of the path.
            let mut path = e.path.clone();
            if path.last().is_some_and(|last| last == section) {
                path.pop();
            }
            let mut key = vec![section.to_owned()];
            key.extend(path);
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (in {src})"),
                    None => format!(" (in {})", m.name),
                })
                .unwrap_or_default();
            format!("{}: {}{source}", key.join("."), e.kind)
        }
        fn section<T: serde::de::DeserializeOwned>(fig: &Figment, key: &str) -> Vec<String> {
            if !fig.contains(key) {
                return Vec::new();
            }
            match fig.extract_inner::<T>(key) {
                Ok(_) => Vec::new(),
                Err(e) => e.into_iter().map(|e| describe(e, key)).collect(),
            }
        }
        let mut problems: Vec<String> = [
            section::<PathBuf>(&fig, "data_dir"),
            section::<ServerSettings>(&fig, "server"),
            section::<WarehouseSettings>(&fig, "warehouse"),
            section::<QuerySettings>(&fig, "query"),
            section::<CacheSettings>(&fig, "cache"),
            section::<StoreSettings>(&fig, "store"),
            section::<LogSettings>(&fig, "log"),
            section::<LlmConfig>(&fig, "llm"),
            section::<AskConfig>(&fig, "ask"),
            section::<AuthSettings>(&fig, "auth"),
            section::<WsConfig>(&fig, "ws"),
            section::<ConversationsConfig>(&fig, "conversations"),
            section::<TelemetrySettings>(&fig, "telemetry"),
        ]
        .concat();
        if let Ok(data) = fig.data() {
            for dict in data.values() {
                for key in dict.keys() {
                    if !SECTIONS.contains(&key.as_str()) {
                        problems.push(format!(
                            "{key}: unknown key (known: {})",
                            SECTIONS.join(", ")
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            problems = err.into_iter().map(|e| e.to_string()).collect();
        }
        let mut seen = std::collections::HashSet::new();
        problems.retain(|p| seen.insert(p.clone()));
        problems
    }

    /// The effective configuration as TOML, secrets shown as `"<redacted>"` when set and
    /// passwords cut out of URLs. `bqai config show`.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut value = toml::Value::try_from(self)?;
        let warehouse = toml::Value::try_from(&self.warehouse)?;
        let redacted = || toml::Value::String("<redacted>".into());
        if let Some(root) = value.as_table_mut() {
            root.insert("warehouse".into(), warehouse);
            for (section, key, set) in [
                ("auth", "pepper", self.auth.pepper.is_some()),
                ("llm", "api_key", self.llm.api_key.is_some()),
                ("llm", "auth_token", self.llm.auth_token.is_some()),
            ] {
                if set && let Some(t) = root.get_mut(section).and_then(|v| v.as_table_mut()) {
                    t.insert(key.into(), redacted());
                }
            }
            for (section, key) in [("store", "url"), ("cache", "url")] {
                if let Some(toml::Value::String(url)) =
                    root.get_mut(section).and_then(|t| t.get_mut(key))
                {
                    *url = redact_url_password(url);
                }
            }
        }
        Ok(toml::to_string_pretty(&value)?)
    }

    /// Checks cross-field rules; every message names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "))
        }
    }

    /// The cross-field problems [`Settings::validate`] reports, one per broken rule.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.server.host.parse::<IpAddr>().is_err() && self.server.host != "localhost" {
            problems.push(format!(
                "server.host {:?} is not an IP address (use 127.0.0.1, 0.0.0.0, ::1 or localhost)",
                self.server.host
            ));
        }
        if self.server.body_limit_bytes < 1024 {
            problems.push("server.body_limit_bytes must be at least 1024".to_string());
        }
        let ws = &self.ws;
        if ws.max_message_bytes < 1024 || ws.max_message_bytes > ws.max_frame_bytes {
            problems.push(format!(
                "ws.max_message_bytes must be between 1024 and ws.max_frame_bytes ({})",
                ws.max_frame_bytes
            ));
        }
        if ws.heartbeat_secs == 0 || ws.client_timeout_secs <= ws.heartbeat_secs {
            problems.push(
                "ws.heartbeat_secs must be at least 1 and below ws.client_timeout_secs".to_string(),
            );
        }
        if ws.idle_timeout_secs == 0 || ws.send_timeout_secs == 0 {
            problems.push(
                "ws.idle_timeout_secs and ws.send_timeout_secs must be at least 1".to_string(),
            );
        }
        let q = &self.query;
        if q.max_concurrent == Some(0) || q.max_concurrent_per_key == Some(0) {
            problems.push(
                "query.max_concurrent and query.max_concurrent_per_key must be at least 1"
                    .to_string(),
            );
        }
        if q.queue_timeout_ms == 0 {
            problems.push("query.queue_timeout_ms must be at least 1".to_string());
        }
        if ws.max_connections == 0 {
            problems.push("ws.max_connections must be at least 1".to_string());
        }
        if self.export.max_rows == 0 {
            problems.push("export.max_rows must be at least 1".to_string());
        }
        if ws.outbound_queue < 8 || ws.max_in_flight == 0 {
            problems.push(
                "ws.outbound_queue must be at least 8 and ws.max_in_flight at least 1".to_string(),
            );
        }
        let q = &self.query;
        if q.default_max_rows == 0 || q.default_max_rows > q.max_rows_limit {
            problems.push(format!(
                "query.default_max_rows must be between 1 and query.max_rows_limit ({})",
                q.max_rows_limit
            ));
        }
        if q.default_timeout_ms == 0 || q.default_timeout_ms > q.max_timeout_ms {
            problems.push(format!(
                "query.default_timeout_ms must be between 1 and query.max_timeout_ms ({})",
                q.max_timeout_ms
            ));
        }
        if let Some(day) = self.ask.today.as_deref()
            && parse_day(day).is_none()
        {
            problems.push(format!("ask.today {day:?} is not a date (YYYY-MM-DD)"));
        }
        if q.max_paged_rows == 0 || q.page_ttl_secs == 0 {
            problems.push(
                "query.max_paged_rows and query.page_ttl_secs must be at least 1".to_string(),
            );
        }
        if !(q.usd_per_tib >= 0.0 && q.usd_per_tib.is_finite()) {
            problems.push("query.usd_per_tib must be a non-negative number".to_string());
        }
        if q.allowed_datasets.is_empty() {
            problems.push(
                "query.allowed_datasets is empty: nothing could be queried (use [\"*\"] for all)"
                    .to_string(),
            );
        }
        if self.cache.max_bytes < 1024 * 1024 {
            problems.push("cache.max_bytes must be at least 1 MiB".to_string());
        }
        if let Err(problem) = check_log_level(&self.log.level) {
            problems.push(problem);
        }
        if let Some(p) = self
            .telemetry
            .otlp_protocol
            .as_deref()
            .filter(|p| !matches!(*p, "http/protobuf" | "grpc"))
        {
            problems.push(format!(
                "telemetry.otlp_protocol {p:?} must be \"http/protobuf\" or \"grpc\""
            ));
        }
        if let Some(addr) = self.telemetry.metrics_addr.as_deref().filter(|a| {
            !a.rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        }) {
            problems.push(format!(
                "telemetry.metrics_addr {addr:?} must be HOST:PORT, e.g. \"0.0.0.0:9464\""
            ));
        }
        if let Some(r) = self
            .telemetry
            .sampler_ratio
            .filter(|r| !(0.0..=1.0).contains(r))
        {
            problems.push(format!(
                "telemetry.sampler_ratio {r} must be between 0.0 and 1.0"
            ));
        }
        if let Some(url) = self
            .telemetry
            .otlp_endpoint
            .as_deref()
            .filter(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            problems.push(format!(
                "telemetry.otlp_endpoint {url:?} must be an http:// or https:// URL"
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            problems.push(format!(
                "log.format {:?} must be \"text\" or \"json\"",
                self.log.format
            ));
        }
        if !self.store.url.is_empty()
            && !self.store.url.starts_with("sqlite://")
            && !self.store.url.starts_with("postgres://")
            && !self.store.url.starts_with("postgresql://")
        {
            problems.push(
                "store.url must start with sqlite://, postgres:// or postgresql://".to_string(),
            );
        }
        if !self.cache.url.is_empty()
            && !self.cache.url.starts_with("redis://")
            && !self.cache.url.starts_with("rediss://")
        {
            problems
                .push("cache.url must be empty (in-process) or start with redis://".to_string());
        }
        let c = &self.conversations;
        match c.store.as_str() {
            "memory" | "sql" => {}
            "redis" if self.cache.url.is_empty() => problems.push(
                "conversations.store = \"redis\" keeps conversations in the Redis of cache.url, \
                 which is empty"
                    .to_string(),
            ),
            "redis" => {}
            other => problems.push(format!(
                "conversations.store must be \"memory\", \"redis\" or \"sql\", not {other:?}"
            )),
        }
        if c.ttl_secs == 0 || c.ttl_secs > 30 * 24 * 3600 {
            problems.push("conversations.ttl_secs must be between 1 and 2592000".to_string());
        }
        if !(1..=1000).contains(&c.max_turns) || !(1..=100).contains(&c.context_turns) {
            problems.push(
                "conversations.max_turns must be 1–1000 and conversations.context_turns 1–100"
                    .to_string(),
            );
        }
        if c.max_conversations == 0 {
            problems.push("conversations.max_conversations must be at least 1".to_string());
        }
        if self.cache.redis_timeout_ms == 0 || self.cache.redis_pool_size == 0 {
            problems.push(
                "cache.redis_timeout_ms and cache.redis_pool_size must be at least 1".to_string(),
            );
        }
        if self.store.buffer_capacity == 0 {
            problems.push("store.buffer_capacity must be at least 1".to_string());
        }
        for (key, days) in [
            (
                "store.history_retention_days",
                self.store.history_retention_days,
            ),
            ("auth.audit_retention_days", self.auth.audit_retention_days),
        ] {
            if let Err(problem) = retention(days) {
                problems.push(format!("{key} {problem}"));
            }
        }
        self.export.problems(&self.data_dir, &mut problems);
        if self.store.history_linger_ms > 1000 {
            problems.push(
                "store.history_linger_ms must be at most 1000 (it is how long a crash can lose \
                 history records for)"
                    .to_string(),
            );
        }
        if self.store.maintenance_interval_secs == 0 {
            problems.push("store.maintenance_interval_secs must be at least 1".to_string());
        }
        for p in &self.server.trusted_proxies {
            if p.parse::<IpAddr>().is_err() {
                problems.push(format!(
                    "server.trusted_proxies: {p:?} is not an IP address"
                ));
            }
        }
        if let Err(e) = self.llm.validate() {
            problems.push(
                e.to_string()
                    .trim_start_matches("invalid request: ")
                    .to_string(),
            );
        }
        if self.ask.max_attempts == 0 || self.ask.max_attempts > 10 {
            problems.push("ask.max_attempts must be between 1 and 10".to_string());
        }
        if self.auth.ticket_ttl_secs == 0 || self.auth.ticket_ttl_secs > 3600 {
            problems.push("auth.ticket_ttl_secs must be between 1 and 3600".to_string());
        }
        if self.auth.key_cache_ttl_secs > 3600 {
            problems.push("auth.key_cache_ttl_secs must be between 0 and 3600".to_string());
        }
        if self
            .auth
            .pepper
            .as_ref()
            .is_some_and(|p| p.expose_secret().len() < bqai_core::auth::keys::MIN_PEPPER_LEN)
        {
            problems.push(format!(
                "auth.pepper must be at least {} bytes",
                bqai_core::auth::keys::MIN_PEPPER_LEN
            ));
        }
        match (&self.auth.mode, &self.auth.oidc) {
            (AuthMode::ApiKeyOidc, None) => problems.push(
                "auth.mode = \"api_key+oidc\" needs an [auth.oidc] section (issuer, audience)"
                    .to_string(),
            ),
            (AuthMode::ApiKeyOidc, Some(oidc)) => {
                if let Err(e) = oidc.validate() {
                    problems.push(
                        e.to_string()
                            .trim_start_matches("invalid request: ")
                            .to_string(),
                    );
                }
            }
            (_, Some(_)) => problems
                .push("[auth.oidc] is set but auth.mode is not \"api_key+oidc\"".to_string()),
            (_, None) => {}
        }
        if self.auth.pepper.is_some() && self.auth.pepper_file.is_some() {
            problems.push("set auth.pepper or auth.pepper_file, not both".to_string());
        }
        for origin in &self.server.cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                problems.push(format!(
                    "server.cors_origins: {origin:?} must be \"*\" or an origin like https://app.example.com"
                ));
            }
        }
        if self.ask.max_question_chars == 0 {
            problems.push("ask.max_question_chars must be at least 1".to_string());
        }
        if let WarehouseSettings::Bigquery(bq) = &self.warehouse
            && let Err(e) = bq.validate()
        {
            problems.push(
                e.to_string()
                    .trim_start_matches("invalid request: ")
                    .to_string(),
            );
        }
        problems
    }

    /// Whether the embedded warehouse serves the demo dataset.
    pub fn demo_enabled(&self) -> bool {
        match &self.warehouse {
            WarehouseSettings::Local(c) => c.demo,
            WarehouseSettings::Bigquery(_) => false,
        }
    }

    /// Whether the demo dataset is the only data (no user files).
    pub fn demo_only(&self) -> bool {
        match &self.warehouse {
            WarehouseSettings::Local(c) => c.demo && c.data.is_empty(),
            WarehouseSettings::Bigquery(_) => false,
        }
    }

    /// Whether the configured host is a loopback address.
    pub fn binds_loopback(&self) -> bool {
        self.server.host == "localhost"
            || self
                .server
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The store URL, defaulting to an SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("bqai.db").display())
        } else {
            self.store.url.clone()
        }
    }

    /// Limits of the planner's value sampling (`ask.sampling_*`).
    pub fn sampling_limits(&self) -> bqai_core::system::SystemQueryLimits {
        bqai_core::system::SystemQueryLimits {
            max_bytes_per_query: self.ask.sampling_max_bytes,
            daily_bytes: (self.ask.sampling_daily_bytes > 0)
                .then_some(self.ask.sampling_daily_bytes),
            ..bqai_core::system::SystemQueryLimits::default()
        }
    }

    /// Ask pipeline settings for the core (`default_dataset` as configured; the binary fills
    /// in the demo default).
    pub fn ask_settings(&self) -> AskSettings {
        let a = &self.ask;
        AskSettings {
            max_attempts: a.max_attempts,
            max_question_chars: a.max_question_chars,
            schema_token_budget: a.schema_token_budget,
            max_examples: a.max_examples,
            question_cache_ttl: Duration::from_secs(a.question_cache_ttl_secs),
            default_dataset: a.default_dataset.clone().filter(|d| !d.is_empty()),
            max_conversation_turns: self.conversations.context_turns,
            // Checked by `validate`: an unreadable date never gets here.
            today: a.today.as_deref().and_then(parse_day),
            ..AskSettings::default()
        }
    }

    /// Conversation settings for the core from `[conversations]`.
    pub fn conversation_settings(&self) -> bqai_core::ask::ConversationSettings {
        bqai_core::ask::ConversationSettings {
            ttl: Duration::from_secs(self.conversations.ttl_secs),
            max_turns: self.conversations.max_turns,
        }
    }

    /// Redis options from `[cache]`.
    pub fn redis_options(&self) -> bqai_redis::RedisOptions {
        let c = &self.cache;
        bqai_redis::RedisOptions {
            url: c.url.clone(),
            namespace: c.redis_namespace.clone(),
            pool_size: c.redis_pool_size,
            command_timeout: Duration::from_millis(c.redis_timeout_ms),
            ..bqai_redis::RedisOptions::default()
        }
    }

    /// Query limits for the core.
    pub fn query_limits(&self) -> QueryLimits {
        let q = &self.query;
        QueryLimits {
            allowed: DatasetScope::from_list(&q.allowed_datasets),
            default_max_rows: q.default_max_rows,
            max_rows_limit: q.max_rows_limit,
            default_timeout: Duration::from_millis(q.default_timeout_ms),
            max_timeout: Duration::from_millis(q.max_timeout_ms),
            max_bytes_billed: (q.max_bytes_billed > 0).then_some(q.max_bytes_billed),
            usd_per_tib: q.usd_per_tib,
            max_sql_bytes: QueryLimits::default().max_sql_bytes,
            max_response_bytes: (q.max_response_bytes > 0).then_some(q.max_response_bytes),
        }
    }

    /// How paged results are kept: `query.page_ttl_secs` and its neighbours.
    pub fn paging_policy(&self) -> PagingPolicy {
        let q = &self.query;
        PagingPolicy {
            ttl: Duration::from_secs(q.page_ttl_secs),
            max_rows: q.max_paged_rows,
            spool_max_bytes: q.spool_max_bytes,
        }
    }

    /// The query queue's bounds: `query.max_concurrent` and its neighbours, with the
    /// defaults of the configured warehouse.
    pub fn queue_limits(&self) -> QueueLimits {
        let q = &self.query;
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let bigquery = matches!(self.warehouse, WarehouseSettings::Bigquery(_));
        let auto = QueueLimits::for_warehouse(bigquery, cores);
        let max_concurrent = q.max_concurrent.unwrap_or(auto.max_concurrent);
        QueueLimits {
            max_concurrent,
            max_concurrent_per_key: q
                .max_concurrent_per_key
                .unwrap_or(max_concurrent.div_ceil(2)),
            max_queued: q.max_queued,
            max_wait: Duration::from_millis(q.queue_timeout_ms),
        }
    }

    /// Cache policy for the core.
    pub fn cache_policy(&self) -> CachePolicy {
        CachePolicy {
            metadata_ttl: Duration::from_secs(self.cache.metadata_ttl_secs),
            result_ttl: Duration::from_secs(self.cache.result_ttl_secs),
            result_ttl_by_dataset: self
                .cache
                .result_ttl_secs_by_dataset
                .iter()
                .map(|(ds, secs)| (ds.to_ascii_lowercase(), Duration::from_secs(*secs)))
                .collect(),
            max_result_bytes: self.cache.max_result_bytes,
        }
    }

    /// HTTP settings.
    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            body_limit: self.server.body_limit_bytes,
            requests_per_minute: self.server.requests_per_minute,
            query_weight: self.server.query_weight,
            ask_weight: self.server.ask_weight,
            auth_failures_per_minute: self.server.auth_failures_per_minute,
            trusted_proxies: self
                .server
                .trusted_proxies
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            cors_origins: self.server.cors_origins.clone(),
            allowed_hosts: self
                .server
                .allowed_hosts
                .iter()
                .cloned()
                .chain(std::iter::once(self.server.host.clone()))
                .collect(),
            audit_reads: self
                .auth
                .audit_reads
                .unwrap_or(self.auth.mode != AuthMode::Off),
            audit_wait: self.auth.audit_wait,
            history_retention_days: self.store.history_retention_days,
            ws: self.ws.settings(),
            metrics_on_api: self.telemetry.metrics_addr.is_none(),
            export: bqai_http::state::ExportSettings {
                max_rows: self.export.max_rows,
                inline_max_rows: self.export.inline_max_rows,
                inline_max_bytes: self.export.inline_max_bytes,
                link_ttl: Duration::from_secs(self.export.link_ttl_secs),
                max_jobs_per_key: self.export.max_jobs_per_key,
                max_bytes_per_day: (self.export.max_bytes_per_day > 0)
                    .then_some(self.export.max_bytes_per_day),
            },
            mcp: bqai_http::mcp::McpSettings {
                enabled: self.mcp.enabled,
                sessions: self.mcp.sessions,
                export_wait: Duration::from_secs(self.mcp.export_wait_secs),
                public_url: self.mcp.public_url.clone().unwrap_or_else(|| {
                    let host = match self.server.host.as_str() {
                        "0.0.0.0" | "::" => "127.0.0.1".to_string(),
                        h if h.contains(':') => format!("[{h}]"),
                        h => h.to_string(),
                    };
                    format!("http://{host}:{}", self.server.port)
                }),
            },
            ..HttpSettings::default()
        }
    }
}

/// How long rows are kept, from a number of days: `None` (0) keeps them forever; the error
/// says what is accepted.
pub fn retention(days: f64) -> Result<Option<chrono::TimeDelta>, String> {
    if !(days.is_finite() && (0.0..=36_500.0).contains(&days)) {
        return Err(format!(
            "must be 0 (keep forever) or a positive number of days up to 36500, not {days}"
        ));
    }
    if days == 0.0 {
        return Ok(None);
    }
    // Whole milliseconds: the store keeps microseconds, retention needs no finer.
    let millis = (days * 86_400_000.0).round() as i64;
    Ok(Some(chrono::TimeDelta::milliseconds(millis.max(1))))
}

/// A `log.level` is a level (`info`) or comma-separated `target=level` directives
/// (`info,bqai_http=debug`). `EnvFilter` would read an unknown word such as `verbose` as the
/// name of a target and then log nothing at all, so only levels are accepted where a level
/// stands.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    let ok = !level.trim().is_empty()
        && level
            .split(',')
            .all(|directive| match directive.split_once('=') {
                Some((target, l)) => !target.trim().is_empty() && is_level(l),
                None => is_level(directive),
            })
        && tracing_subscriber::EnvFilter::try_new(level).is_ok();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "log.level {level:?} must be one of trace, debug, info, warn, error, off, or \
             target=level directives such as \"info,bqai_http=debug\""
        ))
    }
}

#[cfg(test)]
// figment's Jail API fixes the (large) error type of its closures.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let mut s = Settings::default();
        s.query.default_max_rows = 0;
        s.server.host = "not a host".into();
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("query.default_max_rows"), "{msg}");
        assert!(msg.contains("server.host"), "{msg}");
    }

    #[test]
    fn the_metrics_address_is_host_and_port() {
        for good in [
            "0.0.0.0:9464",
            "127.0.0.1:0",
            "localhost:9464",
            "[::1]:9464",
        ] {
            let mut s = Settings::default();
            s.telemetry.metrics_addr = Some(good.into());
            assert!(s.problems().is_empty(), "{good}: {:?}", s.problems());
            assert!(
                !s.http().metrics_on_api,
                "{good}: /metrics moves off the API listener"
            );
        }
        for bad in ["9464", ":9464", "0.0.0.0:", "0.0.0.0:http", "0.0.0.0:70000"] {
            let mut s = Settings::default();
            s.telemetry.metrics_addr = Some(bad.into());
            let problems = s.problems();
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("telemetry.metrics_addr")),
                "{bad}: {problems:?}"
            );
        }
        assert!(Settings::default().http().metrics_on_api);
    }

    #[test]
    fn ask_today_is_a_day_and_paging_needs_its_bounds() {
        let mut s = Settings::default();
        s.ask.today = Some("2025-11-20".into());
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        assert_eq!(
            s.ask_settings().today,
            chrono::NaiveDate::from_ymd_opt(2025, 11, 20)
        );
        assert_eq!(Settings::default().ask_settings().today, None);
        for bad in ["2025-13-01", "yesterday", "20/11/2025"] {
            s.ask.today = Some(bad.into());
            let problems = s.problems();
            assert!(
                problems.iter().any(|p| p.contains("ask.today")),
                "{bad}: {problems:?}"
            );
        }
        let mut s = Settings::default();
        s.query.page_ttl_secs = 0;
        assert!(
            s.problems()
                .iter()
                .any(|p| p.contains("query.page_ttl_secs"))
        );
        assert_eq!(
            Settings::default().paging_policy(),
            bqai_core::paging::PagingPolicy::default()
        );
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bqai.toml",
                "[server]\nport = 9000\n[query]\ndefault_max_rows = 50\n",
            )?;
            jail.set_env("BQAI__SERVER__PORT", "9100");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.server.port, 9100);
            assert_eq!(s.query.default_max_rows, 50);
            Ok(())
        });
    }

    #[test]
    fn the_bigquery_warehouse_is_configured_under_its_kind() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bqai.toml",
                "[warehouse]\nkind = \"bigquery\"\nproject = \"p\"\nlocation = \"EU\"\n\
                 credentials = { type = \"key_file\", path = \"/k.json\" }\n\
                 [warehouse.labels]\nteam = \"data\"\n",
            )?;
            jail.set_env("BQAI__WAREHOUSE__REQUEST_TIMEOUT_MS", "5000");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            let WarehouseSettings::Bigquery(bq) = &s.warehouse else {
                panic!("bigquery expected: {:?}", s.warehouse)
            };
            assert_eq!(bq.project, "p");
            assert_eq!(bq.location.as_deref(), Some("EU"));
            assert_eq!(bq.request_timeout_ms, 5000);
            assert_eq!(bq.labels.get("team").map(String::as_str), Some("data"));
            assert!(!s.demo_enabled() && !s.demo_only());
            s.validate().map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn warehouse_keys_of_another_kind_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bqai.toml",
                "[warehouse]\nkind = \"bigquery\"\nproject = \"p\"\ndemo = true\n",
            )?;
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("demo") && err.contains("bigquery"), "{err}");
            jail.create_file("bqai.toml", "[warehouse]\nkind = \"snowflake\"\n")?;
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("warehouse.kind"), "{err}");
            // Without `kind`, the section is the embedded engine's.
            jail.create_file("bqai.toml", "[warehouse]\ndemo = false\n")?;
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.warehouse, WarehouseSettings::local(false, Vec::new()));
            jail.create_file(
                "bqai.toml",
                "[warehouse]\nkind = \"local\"\nproject = \"p\"\n",
            )?;
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("project"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bigquery_validation_names_the_key() {
        let mut s = Settings::default();
        let mut bq = BigQueryConfig::new("");
        bq.credentials = bqai_bigquery::CredentialsConfig::None;
        s.warehouse = WarehouseSettings::Bigquery(bq);
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("warehouse.project"), "{msg}");
        let mut bq = BigQueryConfig::new("p");
        bq.credentials = bqai_bigquery::CredentialsConfig::None;
        s.warehouse = WarehouseSettings::Bigquery(bq);
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("warehouse.endpoint"), "{msg}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bqai.toml", "[server]\nprot = 9000\n")?;
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("prot"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn retention_is_days_with_fractions_or_zero_for_forever() {
        assert_eq!(retention(0.0), Ok(None));
        assert_eq!(retention(90.0), Ok(Some(chrono::TimeDelta::days(90))));
        assert_eq!(retention(0.5), Ok(Some(chrono::TimeDelta::hours(12))));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 40_000.0] {
            assert!(retention(bad).is_err(), "{bad}");
        }
        let mut s = Settings::default();
        s.store.history_retention_days = -2.0;
        s.auth.audit_retention_days = f64::NAN;
        s.store.maintenance_interval_secs = 0;
        s.store.history_linger_ms = 5000;
        let err = s.validate().unwrap_err().to_string();
        for key in [
            "store.history_retention_days must be 0 (keep forever)",
            "auth.audit_retention_days must be 0 (keep forever)",
            "store.maintenance_interval_secs must be at least 1",
            "store.history_linger_ms must be at most 1000",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn log_level_is_a_level_or_directives() {
        for ok in ["info", "WARN", "off", "info,bqai_http=debug", "bqai=trace"] {
            assert_eq!(check_log_level(ok), Ok(()), "{ok}");
        }
        for bad in ["verbose", "", "info,loud", "bqai=chatty", "=debug"] {
            let problem = check_log_level(bad).unwrap_err();
            assert!(problem.contains("log.level"), "{bad}: {problem}");
        }
    }
}
