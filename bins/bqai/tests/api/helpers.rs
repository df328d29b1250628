//! `spawn_app`: a fresh application per test (its own SQLite file, cache and limiter) on a
//! random port. The read-only demo warehouse is built once and shared, because generating
//! 400,000 rows per test would dominate the run time; nothing a test does can change it.

use std::path::Path;
use std::sync::Arc;

use bqai::config::{Settings, WarehouseSettings};
use bqai::startup::{Application, Services, build_warehouse};
use bqai_core::ask::{
    Generation, GenerationContext, GenerationOutcome, GeneratorInfo, SqlGenerator,
};
use bqai_core::ports::Warehouse;
use serde_json::Value;
use tokio::sync::OnceCell;

static DEMO: OnceCell<Arc<dyn Warehouse>> = OnceCell::const_new();

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:PORT` of `telemetry.metrics_addr`, when set.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The audit writer, for tests that read the store behind the server's back.
    pub audit_writer: Option<Arc<bqai_memory::BatchedAuditLog>>,
}

/// The response of a call: status, headers and JSON body.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error envelope with this status and code, carrying the request id.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status; body: {}", self.body);
        assert_eq!(self.error_code(), code, "code; body: {}", self.body);
        let id = self.header("x-request-id").expect("X-Request-Id header");
        assert_eq!(self.body["error"]["request_id"], id, "request id in body");
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

pub fn test_settings(dir: &Path) -> Settings {
    let mut s = Settings {
        data_dir: dir.to_path_buf(),
        ..Settings::default()
    };
    s.server.port = 0;
    s.server.requests_per_minute = 0;
    s.log.level = "warn".into();
    s
}

/// An app on the shared demo warehouse with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An app on the shared demo warehouse, with settings changed by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    let warehouse = DEMO
        .get_or_init(|| async {
            build_warehouse(&test_settings(Path::new("/nonexistent")))
                .await
                .unwrap()
        })
        .await
        .clone();
    let services = Services::assemble(&settings, warehouse).await.unwrap();
    start(settings, services, dir)
}

/// An app whose warehouse is built from its own settings (e.g. with user data files).
pub async fn spawn_app_own_warehouse(tweak: impl FnOnce(&mut Settings, &Path)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.warehouse = WarehouseSettings::local(false, Vec::new());
    tweak(&mut settings, dir.path());
    let services = Services::build(&settings).await.unwrap();
    start(settings, services, dir)
}

/// An app over an arbitrary warehouse (fakes for failure tests).
pub async fn spawn_app_over(warehouse: Arc<dyn Warehouse>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let services = Services::assemble(&settings, warehouse).await.unwrap();
    start(settings, services, dir)
}

/// An app on the shared demo warehouse whose SQL generator is `generator` (a scripted one).
pub async fn spawn_app_with_generator(generator: Arc<dyn SqlGenerator>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let services = Services::assemble_with(&settings, demo_warehouse().await, generator, None)
        .await
        .unwrap();
    start(settings, services, dir)
}

/// An app over `warehouse` with `generator` (the built-in planner when `None`) and settings
/// changed by `tweak`.
pub async fn spawn_app_over_with(
    warehouse: Arc<dyn Warehouse>,
    generator: Option<Arc<dyn SqlGenerator>>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    let services = match generator {
        Some(generator) => Services::assemble_with(&settings, warehouse, generator, None).await,
        None => Services::assemble(&settings, warehouse).await,
    }
    .unwrap();
    start(settings, services, dir)
}

/// The shared read-only demo warehouse.
pub async fn demo_warehouse() -> Arc<dyn Warehouse> {
    DEMO.get_or_init(|| async {
        build_warehouse(&test_settings(Path::new("/nonexistent")))
            .await
            .unwrap()
    })
    .await
    .clone()
}

/// A generator that answers from a script, one step per call, and remembers what it saw.
pub struct ScriptedGenerator {
    script: std::sync::Mutex<std::collections::VecDeque<Step>>,
    /// The contexts of every call, in order.
    pub seen: std::sync::Mutex<Vec<GenerationContext>>,
}

/// One scripted answer.
pub enum Step {
    Sql(&'static str),
    CannotAnswer(&'static str),
    Fail(bqai_core::Error),
}

impl ScriptedGenerator {
    pub fn new(steps: Vec<Step>) -> Arc<Self> {
        Arc::new(Self {
            script: std::sync::Mutex::new(steps.into()),
            seen: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl SqlGenerator for ScriptedGenerator {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            kind: "scripted".into(),
            model: Some("script-1".into()),
        }
    }

    async fn generate(&self, ctx: &GenerationContext) -> bqai_core::Result<Generation> {
        self.seen.lock().unwrap().push(ctx.clone());
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .expect("the scripted generator ran out of steps");
        let outcome = match step {
            Step::Sql(sql) => GenerationOutcome::Sql {
                sql: sql.into(),
                explanation: "scripted".into(),
            },
            Step::CannotAnswer(r) => GenerationOutcome::CannotAnswer { reason: r.into() },
            Step::Fail(e) => return Err(e),
        };
        Ok(Generation::new(outcome, None))
    }
}

fn start(settings: Settings, services: Services, dir: tempfile::TempDir) -> TestApp {
    let audit_writer = services.audit.clone();
    let app = Application::with_services(&settings, services).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        client: reqwest::Client::new(),
        dir,
        audit_writer,
    }
}

impl TestApp {
    /// Waits until the audit events of the calls made so far are in the store (allowed calls
    /// are answered once their event is queued).
    pub async fn flush_audit(&self) {
        if let Some(writer) = &self.audit_writer {
            assert!(writer.flush(std::time::Duration::from_secs(5)).await);
        }
    }

    /// The body of `GET path` as text (`/metrics`, scripts, pages).
    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Reply {
        let resp = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap();
        reply(&reqwest::Method::GET, resp).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let resp = self
            .client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .unwrap();
        reply(&reqwest::Method::POST, resp).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let resp = self
            .client
            .post(format!("{}{path}", self.address))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        reply(&reqwest::Method::POST, resp).await
    }

    pub async fn query(&self, sql: &str) -> Reply {
        self.post_json("/api/v1/query", &serde_json::json!({ "sql": sql }))
            .await
    }
}

/// Reads a reply and checks it against the OpenAPI spec ([`crate::openapi::check`]).
async fn reply(method: &reqwest::Method, resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let url = resp.url().clone();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?} (status {status})"));
    crate::openapi::check(method, &url, status, &body);
    Reply {
        status,
        headers,
        body,
    }
}

/// Keys made for an app with authentication on.
pub struct Keys {
    pub admin: String,
    /// Analyst limited to `shop`.
    pub analyst: String,
    pub analyst_id: String,
    /// Analyst on every dataset.
    pub analyst_all: String,
    /// Viewer limited to `shop`.
    pub viewer: String,
}

/// The demo warehouse plus a second dataset, `secret` (table `salaries`), built once.
pub async fn demo_and_secret_warehouse() -> Arc<dyn Warehouse> {
    static WAREHOUSE: OnceCell<(Arc<dyn Warehouse>, tempfile::TempDir)> = OnceCell::const_new();
    WAREHOUSE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let secret = dir.path().join("secret");
            std::fs::create_dir_all(&secret).unwrap();
            std::fs::write(
                secret.join("salaries.csv"),
                "name,salary\nada,100\nbob,90\n",
            )
            .unwrap();
            let mut s = test_settings(Path::new("/nonexistent"));
            s.warehouse = WarehouseSettings::local(true, vec![secret.display().to_string()]);
            (build_warehouse(&s).await.unwrap(), dir)
        })
        .await
        .0
        .clone()
}

/// An app with API keys on (over the demo and `secret` datasets), and one key per role.
pub async fn spawn_auth_app(tweak: impl FnOnce(&mut Settings)) -> (TestApp, Keys) {
    spawn_auth_app_with_generator(tweak, None).await
}

/// [`spawn_auth_app`] with `generator` instead of the built-in planner.
pub async fn spawn_auth_app_with_generator(
    tweak: impl FnOnce(&mut Settings),
    generator: Option<Arc<dyn SqlGenerator>>,
) -> (TestApp, Keys) {
    use bqai_core::auth::keys::NewKey;
    use bqai_core::model::{DatasetScope, Role};
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.auth.mode = bqai::config::AuthMode::ApiKey;
    settings.auth.pepper = Some("test pepper of enough length".to_string().into());
    tweak(&mut settings);
    let warehouse = demo_and_secret_warehouse().await;
    let services = match generator {
        Some(g) => Services::assemble_with(&settings, warehouse, g, None).await,
        None => Services::assemble(&settings, warehouse).await,
    }
    .unwrap();
    let auth = services.auth.clone().expect("auth is on");
    let make = |name: &str, role: Role, datasets: &[&str]| NewKey {
        name: name.into(),
        owner: Some("tests".into()),
        role,
        datasets: DatasetScope::from_list(datasets),
        rate_limit_per_minute: None,
        daily_byte_quota: None,
        expires_at: None,
    };
    let (_, admin) = auth
        .create_key(make("admin", Role::Admin, &["*"]))
        .await
        .unwrap();
    let (analyst_rec, analyst) = auth
        .create_key(make("analyst", Role::Analyst, &["shop"]))
        .await
        .unwrap();
    let (_, analyst_all) = auth
        .create_key(make("analyst-all", Role::Analyst, &["*"]))
        .await
        .unwrap();
    let (_, viewer) = auth
        .create_key(make("viewer", Role::Viewer, &["shop"]))
        .await
        .unwrap();
    let app = start(settings, services, dir);
    (
        app,
        Keys {
            admin,
            analyst,
            analyst_id: analyst_rec.id,
            analyst_all,
            viewer,
        },
    )
}

impl TestApp {
    /// Any call, with an optional key (as `Authorization: Bearer`) and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.address));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        reply(&method, req.send().await.unwrap()).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Some(key), None).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(key), Some(body))
            .await
    }
}

/// The price the tests give the LLM stand-in's model (`stand-in-model`, priced by prefix).
pub fn stand_in_price() -> bqai_core::llm::ModelPrice {
    bqai_core::llm::ModelPrice {
        input: 3.0,
        output: 15.0,
        cache_read: None,
        cache_write: None,
    }
}

/// An export's answer: the file when it succeeded, else the error envelope (checked against
/// the spec like every reply).
pub struct FileReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl FileReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (errors, JSON and NDJSON files).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.bytes))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.bytes.clone()).unwrap()
    }
}

impl TestApp {
    /// `POST /api/v1/exports{query}` with `body`, as `key` when given.
    pub async fn export(&self, query: &str, key: Option<&str>, body: &Value) -> FileReply {
        let mut req = self
            .client
            .post(format!("{}/api/v1/exports{query}", self.address))
            .json(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let url = resp.url().clone();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap().to_vec();
        let is_json = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !(200..300).contains(&status) || is_json {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{status}: not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            crate::openapi::check(&reqwest::Method::POST, &url, status, &body);
        }
        FileReply {
            status,
            headers,
            bytes,
        }
    }
}
