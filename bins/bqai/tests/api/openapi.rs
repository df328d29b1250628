//! The OpenAPI spec against what the server really answers.
//!
//! [`check`] runs on every reply the API tests receive through the helpers: when the call's
//! path and method are in the spec, its status must be documented and its JSON body must
//! validate against the documented schema (error bodies against the envelope, whose `code`
//! is an enum of every code). So the whole API suite doubles as a conformance test of the
//! spec. The tests below check the spec itself and that it lists exactly the routes there are.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Value, json};

use crate::helpers::spawn_app;

static SPEC: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(bqai_http::openapi::spec()).expect("the spec serializes")
});

type Validators = Mutex<HashMap<String, Option<Arc<jsonschema::Validator>>>>;
static VALIDATORS: LazyLock<Validators> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The spec path template `path` (no query string) falls under, if any. Literal segments win
/// over `{parameters}`.
fn template_of(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, String)> = None;
    for template in SPEC["paths"].as_object()?.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let matches = parts.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') {
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        if matches && best.as_ref().is_none_or(|(n, _)| literal > *n) {
            best = Some((literal, template.clone()));
        }
    }
    best.map(|(_, t)| t)
}

/// The compiled schema of a documented JSON response (`None`: no JSON body documented).
fn validator(template: &str, method: &str, status: u16) -> Option<Arc<jsonschema::Validator>> {
    let key = format!("{method} {template} {status}");
    // A panic below (an undocumented status) must not poison the cache for other tests: the
    // lock is never held while building.
    if let Some(v) = VALIDATORS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return v.clone();
    }
    let responses = &SPEC["paths"][template][method]["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| {
            panic!("undocumented status: {key} is not in the OpenAPI spec's responses")
        });
    let built =
        response["content"]["application/json"]
            .get("schema")
            .map(|schema| {
                // The schema with the spec's components beside it, so `#/components/...`
                // references resolve inside the one document.
                let mut root = schema.clone();
                if let Some(obj) = root.as_object_mut() {
                    obj.insert("components".into(), SPEC["components"].clone());
                }
                Arc::new(jsonschema::validator_for(&root).unwrap_or_else(|e| {
                    panic!("the spec's schema for {key} does not compile: {e}")
                }))
            });
    VALIDATORS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, built.clone());
    built
}

/// Checks one reply against the spec (see the module documentation).
pub fn check(method: &reqwest::Method, url: &reqwest::Url, status: u16, body: &Value) {
    let Some(template) = template_of(url.path()) else {
        return;
    };
    let method = method.as_str().to_ascii_lowercase();
    if SPEC["paths"][&template].get(&method).is_none() {
        return;
    }
    let Some(validator) = validator(&template, &method, status) else {
        return;
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} {} answered {status} with a body that does not match the OpenAPI spec:\n{}\nbody: {body}",
        method.to_uppercase(),
        url.path(),
        errors.join("\n")
    );
}

/// Routes as declared by the actix macros in the handlers' sources, as `METHOD /path`.
fn routes_in_sources() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/http/src");
    let mut files = vec![
        format!("{dir}/openapi.rs"),
        format!("{dir}/mcp/transport.rs"),
    ];
    for entry in std::fs::read_dir(format!("{dir}/routes")).unwrap() {
        files.push(entry.unwrap().path().display().to_string());
    }
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(rest) = line.strip_prefix(&format!("#[{method}(\"")) else {
                    continue;
                };
                let path = rest.split('"').next().unwrap();
                // Everything but the service's own routes and MCP's lives under /api/v1.
                let full = if file.ends_with("mcp/transport.rs") {
                    format!("/mcp{path}")
                } else if matches!(
                    path,
                    "/health" | "/health/live" | "/health/ready" | "/metrics" | "/openapi.json"
                ) {
                    path.to_owned()
                } else {
                    format!("/api/v1{path}")
                };
                assert!(
                    lines[..i]
                        .iter()
                        .rev()
                        .take(40)
                        .any(|l| l.contains("#[utoipa::path(")),
                    "{file}: {method} {full} has no #[utoipa::path] annotation"
                );
                routes.insert(format!("{} {full}", method.to_uppercase()));
            }
        }
    }
    routes
}

fn routes_in_spec() -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in SPEC["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[test]
fn the_spec_lists_exactly_the_routes_there_are() {
    let sources = routes_in_sources();
    let spec = routes_in_spec();
    assert!(sources.len() >= 24, "found only {sources:?}");
    let undocumented: Vec<_> = sources.difference(&spec).collect();
    let phantom: Vec<_> = spec.difference(&sources).collect();
    assert!(
        undocumented.is_empty(),
        "routes without a spec path: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "spec paths without a route: {phantom:?}"
    );
}

#[test]
fn every_api_operation_documents_errors_security_and_headers() {
    for (path, item) in SPEC["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{method} {path}: no success response"
            );
            for status in ["400", "500"] {
                assert_eq!(
                    responses[status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorEnvelope",
                    "{method} {path} {status}"
                );
            }
            for (status, response) in responses {
                assert!(
                    response["headers"].get("X-Request-Id").is_some(),
                    "{method} {path} {status}: no X-Request-Id header"
                );
            }
            if path.starts_with("/api/v1/") && path.ends_with("/download") {
                // A signed export link is its own credential: no key, so no 401.
                assert!(!responses.contains_key("401"), "{method} {path}");
                assert_eq!(op["security"], json!([{}]), "{method} {path}");
                assert_eq!(path, "/api/v1/exports/{id}/download");
            } else if path.starts_with("/api/v1/") {
                for status in ["401", "403", "429", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
                assert!(responses["429"]["headers"].get("Retry-After").is_some());
                assert_eq!(op["security"], json!([{"api_key": []}, {"bearer": []}]));
            }
        }
    }
    let mut ids = BTreeSet::new();
    for item in SPEC["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} is not unique");
        }
    }
    let schemes = &SPEC["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let codes = SPEC["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    for code in [
        "SQL_REJECTED",
        "HOST_NOT_ALLOWED",
        "ORIGIN_NOT_ALLOWED",
        "QUOTA_EXCEEDED",
        "LLM_BUSY",
    ] {
        assert!(codes.contains(&json!(code)), "{code} missing");
    }
    for schema in ["WsClientMessage", "WsServerEvent"] {
        assert!(SPEC["components"]["schemas"].get(schema).is_some());
    }
}

#[tokio::test]
async fn the_spec_and_the_docs_page_are_served_without_a_key() {
    let app = crate::helpers::spawn_auth_app(|_| {}).await.0;
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(r.body, *SPEC);

    let resp = app
        .client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    // reqwest follows the redirect to /docs/.
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().path(), "/docs/");
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://unpkg"));
    let init = app.text("/docs/swagger-initializer.js").await;
    assert!(init.contains("/openapi.json"), "{init}");
    let missing = app.get("/docs/no-such-file.js").await;
    missing.assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn replies_are_checked_against_the_spec() {
    // The checker itself: a documented answer passes, a wrong shape does not.
    let app = spawn_app().await;
    let ok = app.get("/api/v1/datasets").await;
    assert_eq!(ok.status, 200);
    let url = reqwest::Url::parse(&format!("{}/api/v1/datasets", app.address)).unwrap();
    let wrong = std::panic::catch_unwind(|| {
        check(
            &reqwest::Method::GET,
            &url,
            200,
            &json!({"data": "not a list"}),
        );
    });
    assert!(wrong.is_err(), "a wrong body must fail the check");
    let undocumented = std::panic::catch_unwind(|| {
        check(&reqwest::Method::GET, &url, 418, &json!({}));
    });
    assert!(
        undocumented.is_err(),
        "an undocumented status must fail the check"
    );
}
