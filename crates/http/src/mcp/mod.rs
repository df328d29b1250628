//! bqai as a Model Context Protocol server: the guarded data tool for AI agents.
//!
//! [`BqaiMcp`] is the server handler of the official SDK (`rmcp`). It offers tools (catalog
//! reads, `run_query`, `estimate_query`, `ask`, `get_history`, `export`), each table's schema and
//! each semantic model as resources, and an `explore_dataset` prompt. Every tool runs the same
//! use case as its REST endpoint — the guard, the caller's dataset scope, the dry run, the byte
//! cap, the quota, the timeout, the caches and the history — so an agent can do through MCP
//! exactly what its key may do through `/api/v1`, and nothing more.
//!
//! Two transports reach it:
//! - streamable HTTP at `/mcp` on the API listener ([`transport`]): authenticated by the same
//!   middleware as `/api/v1` (API key or OIDC bearer), which hands the principal to the
//!   handler with each request;
//! - stdio (`bqai mcp`): one principal for the process, from `--key` / `BQAI_API_KEY`,
//!   read again from the key store before every call so a revoked key stops at once.
//!
//! Each MCP request that does something (a tool call, a resource read, a prompt, a listing) is
//! charged against the caller's rate limit with the weight of its REST twin (a query weighs
//! `server.query_weight`, an ask `server.ask_weight`, anything else 1) and leaves one audit
//! event (route `MCP tools/call <tool>` and so on), like a REST call; allowed reads are left
//! out when `auth.audit_reads` is off. Tool failures are tool results with `isError` whose
//! structured content is the REST error envelope (`{"error": {"code", "message"}}`), so an
//! agent can read `SQL_REJECTED` or `COST_LIMIT_EXCEEDED` and correct itself; only a request
//! the protocol cannot route (an unknown tool) is a JSON-RPC error.

mod prompts;
mod render;
mod resources;
mod tools;
pub mod transport;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::web;
use bqai_core::auth::audit::{AuditAction, AuditEvent, AuditOutcome, sql_fingerprint};
use bqai_core::model::Principal;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::auth::AuditNote;
use crate::error::ApiError;
use crate::state::AppState;

pub use transport::McpTransport;

/// Settings of the MCP server (`[mcp]`).
#[derive(Debug, Clone, PartialEq)]
pub struct McpSettings {
    /// Whether `/mcp` is served.
    pub enabled: bool,
    /// Sessions on the HTTP transport (`Mcp-Session-Id`, server-sent events for a request's
    /// progress and a standalone stream). Off, every request stands alone and is answered
    /// with plain JSON: any replica can take any request, no sticky sessions needed.
    pub sessions: bool,
    /// How long the `export` tool waits for its job before answering with the job's status
    /// instead of the link.
    pub export_wait: std::time::Duration,
    /// Where download links of exports made over stdio point (`bqai serve` of the same store
    /// serves them); over HTTP they point at the host the client called.
    pub public_url: String,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            sessions: true,
            export_wait: std::time::Duration::from_secs(20),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// Who makes an MCP request and from where; over HTTP the transport attaches one to each
/// request, over stdio it is the process's.
#[derive(Debug, Clone)]
pub struct McpCaller {
    /// The authenticated principal.
    pub principal: Principal,
    /// The client's address (HTTP only), for the rate limit of anonymous callers and the
    /// audit log.
    pub client: Option<IpAddr>,
    /// The HTTP request's id (`X-Request-Id`).
    pub request_id: Option<String>,
    /// `scheme://host` the client called (HTTP) or `mcp.public_url` (stdio): download links
    /// point there.
    pub base_url: String,
}

/// The MCP server handler (see the module docs).
#[derive(Clone)]
pub struct BqaiMcp {
    /// The stdio transport's state and caller; `None` over HTTP, where both come with each
    /// request.
    fixed: Option<Arc<(web::Data<AppState>, McpCaller)>>,
}

impl BqaiMcp {
    /// The handler of the HTTP transport: state and caller come with each request.
    pub(crate) fn per_request() -> Self {
        Self { fixed: None }
    }

    /// The handler of one stdio session acting as `caller`.
    pub fn stdio(state: web::Data<AppState>, caller: McpCaller) -> Self {
        Self {
            fixed: Some(Arc::new((state, caller))),
        }
    }

    /// The state and the caller of a request: the process's (stdio, with the key read again
    /// so a revoked or narrowed key takes effect at once) or the request's (HTTP).
    async fn resolve(
        &self,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(web::Data<AppState>, McpCaller), ApiError> {
        if let Some(fixed) = &self.fixed {
            let (state, caller) = (&fixed.0, &fixed.1);
            let mut caller = caller.clone();
            if let Some(auth) = &state.auth {
                caller.principal = auth.refresh(&caller.principal).await?;
            }
            return Ok((state.clone(), caller));
        }
        let parts = ctx.extensions.get::<http::request::Parts>();
        let state = parts.and_then(|p| p.extensions.get::<web::Data<AppState>>());
        let caller = parts.and_then(|p| p.extensions.get::<McpCaller>());
        match (state, caller) {
            (Some(state), Some(caller)) => Ok((state.clone(), caller.clone())),
            _ => Err(
                bqai_core::Error::Unauthenticated("no credentials were presented".into()).into(),
            ),
        }
    }

    /// Runs one MCP request (`route`: `tools/call run_query`, `resources/read`, …): resolves
    /// the caller, charges `weight` against its rate limit, runs `f`, and appends the audit
    /// event of `action` with what `f` noted.
    async fn call<T, F>(
        &self,
        ctx: &RequestContext<RoleServer>,
        route: &str,
        action: AuditAction,
        weight: impl FnOnce(&AppState) -> u32,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: AsyncFnOnce(&AppState, &McpCaller, &mut AuditNote) -> Result<T, ApiError>,
    {
        let started = Instant::now();
        let (state, caller) = match self.resolve(ctx).await {
            Ok(resolved) => resolved,
            Err(e) => {
                if let Some(fixed) = &self.fixed {
                    audit(
                        &fixed.0,
                        &fixed.1,
                        route,
                        action,
                        AuditNote::default(),
                        Err(&e),
                    )
                    .await;
                }
                return Err(e);
            }
        };
        let mut note = AuditNote::default();
        let weight = weight(&state);
        let result =
            match crate::rate_limit::charge(&state, &caller.principal, caller.client, weight).await
            {
                Ok(()) => f(&state, &caller, &mut note).await,
                Err(e) => Err(e),
            };
        if let Err(e) = &result {
            e.log_server_error(&format!("MCP {route} failed"));
        }
        tracing::info!(
            route,
            principal = caller.principal.id.as_deref(),
            request_id = caller.request_id.as_deref(),
            error_code = result.as_ref().err().map(ApiError::code),
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "mcp call"
        );
        audit(
            &state,
            &caller,
            route,
            action,
            note,
            result.as_ref().map(|_| ()),
        )
        .await;
        result
    }
}

/// Serves MCP on stdin and stdout as `caller` until the client closes stdin or `stop`
/// completes (`bqai mcp`). Nothing else may write to stdout meanwhile: logs go to stderr.
pub async fn serve_stdio(
    state: web::Data<AppState>,
    caller: McpCaller,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use rmcp::ServiceExt as _;
    let running = BqaiMcp::stdio(state, caller)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    let token = running.cancellation_token();
    tokio::select! {
        done = running.waiting() => {
            done.map_err(std::io::Error::other)?;
        }
        () = stop => token.cancel(),
    }
    Ok(())
}

/// Appends the audit event of one MCP request (allowed reads only with `audit_reads`). The
/// answer waits for it, as a REST call's does: a call is not answered before it is recorded.
async fn audit(
    state: &AppState,
    caller: &McpCaller,
    route: &str,
    action: AuditAction,
    note: AuditNote,
    result: Result<(), &ApiError>,
) {
    let (status, outcome, error_code) = match result {
        Ok(()) => (200, AuditOutcome::Allowed, None),
        Err(e) => (
            e.status().as_u16(),
            crate::auth::refusal_outcome(e.status().as_u16(), e.code()),
            Some(e.code().to_string()),
        ),
    };
    let Some(log) = &state.audit else {
        return;
    };
    let event = AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at: chrono::Utc::now(),
        request_id: caller.request_id.clone(),
        principal: caller.principal.id.clone(),
        action: note.action.unwrap_or(action),
        route: format!("MCP {route}"),
        targets: note.targets,
        sql_fingerprint: note.sql.as_deref().map(sql_fingerprint),
        outcome,
        status,
        error_code,
        bytes: note.bytes,
        client_addr: caller.client.map(|c| c.to_string()),
        detail: note.detail,
    };
    // MCP requests are POSTs; the method only matters for conversation reads, which MCP has not.
    if !state.settings.audit_reads
        && crate::auth::is_allowed_read(&event, &actix_web::http::Method::POST)
    {
        return;
    }
    crate::auth::append_audit(log.as_ref(), &event, state.settings.audit_wait).await;
}

/// A failed resource or prompt request as the JSON-RPC error the protocol expects there
/// (tool failures are tool results instead, see [`tools`]): the envelope's code and message
/// travel in `data`.
fn protocol_error(e: &ApiError) -> McpError {
    let data = Some(serde_json::json!({"code": e.code(), "message": e.message()}));
    let message = format!("{}: {}", e.code(), e.message());
    match e.status().as_u16() {
        404 => McpError::resource_not_found(message, data),
        400 | 401 | 403 | 413 | 422 | 429 => McpError::invalid_params(message, data),
        _ => McpError::internal_error(message, data),
    }
}

impl ServerHandler for BqaiMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("bqai", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "bqai answers questions over a data warehouse with guarded, read-only SQL. \
             Find data with list_datasets, list_tables and describe_table; ask in plain \
             language with `ask`, or write SQL and run it with run_query (estimate_query first \
             for large tables: it costs nothing). Only SELECT statements over the datasets \
             your key may read are accepted; every query is capped in bytes and rows. A tool \
             error carries a code (SQL_REJECTED, FORBIDDEN, COST_LIMIT_EXCEEDED, …) and a \
             message saying what to change.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.call(
            &ctx,
            "tools/list",
            AuditAction::CatalogRead,
            |_| 1,
            async |_, _, _| {
                Ok(ListToolsResult::with_all_items(
                    tools::definitions().to_vec(),
                ))
            },
        )
        .await
        .map_err(|e| protocol_error(&e))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        tools::definitions()
            .iter()
            .find(|t| t.name == name)
            .cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(tool) = tools::Tool::parse(&request.name) else {
            return Err(McpError::invalid_params(
                format!("no tool named {:?}; tools/list names them", request.name),
                None,
            ));
        };
        let args = request.arguments.unwrap_or_default();
        let route = format!("tools/call {}", tool.name());
        let outcome = self
            .call(
                &ctx,
                &route,
                tool.audit_action(),
                |state| tool.weight(&state.settings),
                async |state, caller, note| tool.run(state, caller, args, note).await,
            )
            .await;
        Ok(tools::result(outcome).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.call(
            &ctx,
            "resources/list",
            AuditAction::CatalogRead,
            |_| 1,
            async |state, caller, _| resources::list(state, &caller.principal).await,
        )
        .await
        .map(ListResourcesResult::with_all_items)
        .map_err(|e| protocol_error(&e))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.call(
            &ctx,
            "resources/read",
            AuditAction::CatalogRead,
            |_| 1,
            async |state, caller, note| {
                resources::read(state, &caller.principal, &request.uri, note).await
            },
        )
        .await
        .map(Into::into)
        .map_err(|e| protocol_error(&e))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts::definitions()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.call(
            &ctx,
            "prompts/get",
            AuditAction::CatalogRead,
            |_| 1,
            async |state, caller, note| {
                prompts::get(state, &caller.principal, &request, note).await
            },
        )
        .await
        .map(Into::into)
        .map_err(|e| protocol_error(&e))
    }
}
