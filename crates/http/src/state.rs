//! `AppState`: the use cases and ports the handlers need, built once by the binary and shared
//! as `web::Data<AppState>`.

use std::sync::Arc;

use bqai_core::ask::AskService;
use bqai_core::auth::Authenticator;
use bqai_core::catalog::CatalogService;
use bqai_core::llm::Llm;
use bqai_core::model::Principal;
use bqai_core::ports::{AuditLog, Cache, HistoryStore, RateLimiter};
use bqai_core::query::QueryService;
use bqai_core::result_cache::CachedWarehouse;

/// Settings of the HTTP layer itself.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Default and maximum `page_size` of list endpoints.
    pub default_page_size: u32,
    /// Maximum `page_size`.
    pub max_page_size: u32,
    /// Default preview rows.
    pub default_preview_rows: u64,
    /// Requests per minute per client (0 disables rate limiting).
    pub requests_per_minute: u32,
    /// How many units a query costs against the rate limit (a catalog read costs 1).
    pub query_weight: u32,
    /// How many units an ask costs (generation, possibly an LLM call, and a query).
    pub ask_weight: u32,
    /// Proxies whose `X-Forwarded-For` is believed when identifying clients.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins allowed to call the API from a browser (CORS); empty: same origin only.
    /// `*` allows any origin (without credentials).
    pub cors_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            default_page_size: 50,
            max_page_size: 1000,
            default_preview_rows: 10,
            requests_per_minute: 600,
            query_weight: 5,
            ask_weight: 10,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// Catalog use case.
    pub catalog: CatalogService,
    /// Query use case.
    pub queries: QueryService,
    /// Ask use case.
    pub ask: Arc<AskService>,
    /// The language model behind the generator, if one is configured (for health).
    pub llm: Option<Arc<dyn Llm>>,
    /// History reads.
    pub history: Arc<dyn HistoryStore>,
    /// The cached warehouse (for health and cache invalidation).
    pub warehouse: Arc<CachedWarehouse>,
    /// The cache (for health).
    pub cache: Arc<dyn Cache>,
    /// Rate limiter for API calls.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Who callers are when authentication is off: one anonymous principal whose scope is
    /// the configured allow-list.
    pub anonymous: Principal,
    /// API keys, tokens and tickets; `None` when authentication is off.
    pub auth: Option<Authenticator>,
    /// Where every `/api/v1` call is recorded; `None` records nothing.
    pub audit: Option<Arc<dyn AuditLog>>,
    /// HTTP settings.
    pub settings: HttpSettings,
    /// Version string for `/health`.
    pub version: String,
}
