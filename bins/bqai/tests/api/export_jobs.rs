//! Export jobs: `202 Accepted` for what the dry run does not call small, the worker pool, the
//! status and listing, signed download links (tampered, expired, ranges), cancellation,
//! per-key limits, file expiry, and a job that outlives its server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with, spawn_auth_app};

const ORDERS: &str = "SELECT * FROM shop.orders";

/// Polls `GET /api/v1/exports/{id}` (as `key`) until the job leaves queued and running.
async fn wait_for_end(app: &TestApp, key: Option<&str>, id: &str) -> Value {
    for _ in 0..600 {
        let r = app
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/exports/{id}"),
                key,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        if !matches!(r.body["status"].as_str(), Some("queued" | "running")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("export {id} did not end");
}

/// Submits a job (`mode=job`) as `key`; its id.
async fn submit(app: &TestApp, key: Option<&str>, body: &Value) -> String {
    let r = app.export("?mode=job", key, body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    let id = body["export_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["status_url"], format!("/api/v1/exports/{id}"));
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/exports/{id}").as_str())
    );
    id
}

/// The download link of `job` with one query parameter changed.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == name => format!("{k}={value}"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

async fn fetch(url: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_export_becomes_a_job_whose_signed_link_serves_the_file() {
    let app = spawn_app_with(|s| {
        s.export.inline_max_bytes = 1024;
        s.export.inline_max_rows = 50;
    })
    .await;
    // auto: the dry run does not call 100,000 orders small, so it is queued.
    let r = app
        .export(
            "",
            None,
            &json!({"sql": ORDERS, "format": "csv", "filename": "orders"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["export_id"].as_str().unwrap().to_owned();
    let job = wait_for_end(&app, None, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["rows"], 100_000);
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["file_name"], "orders.csv");
    let bytes = job["bytes"].as_u64().unwrap();
    let url = job["download_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!(
            "{}/api/v1/exports/{id}/download?expires=",
            app.address
        )),
        "{url}"
    );

    // The link is its own credential: no key, the whole file.
    let file = fetch(&url, None).await;
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.headers()["content-disposition"],
        "attachment; filename=\"orders.csv\""
    );
    assert_eq!(file.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(file.headers()["accept-ranges"], "bytes");
    let body = file.bytes().await.unwrap();
    assert_eq!(body.len() as u64, bytes);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(text.lines().count(), 100_001);
    assert!(text.starts_with("order_id,"), "{}", &text[..40]);

    // A resumed download: a range of the same bytes.
    let part = fetch(&url, Some("bytes=10-109")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-109/{bytes}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), body.slice(10..110));

    // Tampered links are refused with the envelope.
    let expires: i64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for bad in [
        with_param(&url, "expires", &(expires + 3600).to_string()),
        with_param(&url, "sig", &"0".repeat(64)),
        with_param(&url, "sig", "not-hex"),
        url.replace(&id, "0190aaaa-0000-7000-8000-000000000000"),
        url.split('?').next().unwrap().to_owned(),
    ] {
        let r = fetch(&bad, None).await;
        assert_eq!(r.status(), 403, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "FORBIDDEN", "{bad}: {body}");
    }

    // The run is in history (kind export) and the job in the listing.
    let query_id = job["query_id"].as_str().unwrap();
    let entry = app.get(&format!("/api/v1/history/{query_id}")).await;
    assert_eq!(entry.body["kind"], "export");
    assert_eq!(entry.body["status"], "succeeded");
    assert_eq!(entry.body["row_count"], 100_000);
    let list = app.get("/api/v1/exports").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"][0]["export_id"], id.as_str());
    let metrics = app.text("/metrics").await;
    assert_eq!(
        bqai_testkit::metric_value(
            &metrics,
            "bqai_exports_total{format=\"csv\",mode=\"job\",outcome=\"ok\"}"
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_link_is_refused_and_a_fresh_one_works() {
    // Links expire on whole Unix seconds: with a 1 s TTL a fresh link could have only
    // milliseconds left (seen under CI load), so 2 s, and a wait past it.
    let app = spawn_app_with(|s| s.export.link_ttl_secs = 2).await;
    let id = submit(
        &app,
        None,
        &json!({"sql": "SELECT * FROM shop.products", "format": "parquet"}),
    )
    .await;
    let job = wait_for_end(&app, None, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let url = job["download_url"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = fetch(&url, None).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    let fresh = app.get(&format!("/api/v1/exports/{id}")).await;
    let again = fetch(fresh.body["download_url"].as_str().unwrap(), None).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    assert_eq!(&again.bytes().await.unwrap()[..4], b"PAR1");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_queued_job_and_deleting_a_finished_file() {
    let app = spawn_app_with(|s| s.export.workers = 0).await;
    let id = submit(&app, None, &json!({"sql": ORDERS, "format": "csv"})).await;
    let queued = app.get(&format!("/api/v1/exports/{id}")).await;
    assert_eq!(queued.body["status"], "queued");
    assert!(queued.body["download_url"].is_null());
    let cancelled = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/exports/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");

    let app = spawn_app().await;
    let id = submit(
        &app,
        None,
        &json!({"sql": "SELECT * FROM shop.products", "format": "json"}),
    )
    .await;
    let job = wait_for_end(&app, None, &id).await;
    let url = job["download_url"].as_str().unwrap().to_owned();
    assert_eq!(fetch(&url, None).await.status(), 200);
    let deleted = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/exports/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.body["status"], "expired");
    assert!(deleted.body["download_url"].is_null());
    let gone = fetch(&url, None).await;
    assert_eq!(gone.status(), 404);
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("exports"))
            .unwrap()
            .count(),
        0,
        "the file is deleted"
    );
    let unknown = app
        .send(
            reqwest::Method::DELETE,
            "/api/v1/exports/0190aaaa-0000-7000-8000-000000000000",
            None,
            None,
        )
        .await;
    unknown.assert_error(404, "NOT_FOUND");
    app.get("/api/v1/exports/not a uuid")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/exports?status=done")
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_job_is_cancelled_and_its_rows_stop() {
    let app = spawn_app_with(|s| s.export.heartbeat_secs = 0.2).await;
    // Enough rows that the workbook takes a while.
    let id = submit(&app, None, &json!({"sql": ORDERS, "format": "xlsx"})).await;
    let mut running = false;
    for _ in 0..400 {
        let r = app.get(&format!("/api/v1/exports/{id}")).await;
        if r.body["status"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running, "the job never ran");
    let mut busy = 0.0;
    for _ in 0..100 {
        busy = bqai_testkit::metric_value(&app.text("/metrics").await, "bqai_export_workers_busy");
        if busy == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(busy, 1.0, "one worker runs it");
    let cancelled = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/exports/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    // It stays cancelled, and no file is left behind.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = app.get(&format!("/api/v1/exports/{id}")).await;
    assert_eq!(after.body["status"], "cancelled");
    let files = std::fs::read_dir(app.dir.path().join("exports"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_belong_to_their_key_within_its_limits() {
    let (app, keys) = spawn_auth_app(|s| {
        s.export.workers = 0;
        s.export.max_jobs_per_key = 1;
    })
    .await;
    let body = json!({"sql": "SELECT * FROM shop.products", "format": "csv"});
    let id = submit(&app, Some(&keys.analyst), &body).await;
    let second = app.export("?mode=job", Some(&keys.analyst), &body).await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.json()["error"]["code"], "EXPORT_LIMIT_EXCEEDED");

    // Another key does not see it; an admin does.
    let other = app
        .get_as(&keys.analyst_all, &format!("/api/v1/exports/{id}"))
        .await;
    other.assert_error(404, "NOT_FOUND");
    let theirs = app.get_as(&keys.analyst_all, "/api/v1/exports").await;
    assert_eq!(theirs.body["data"].as_array().unwrap().len(), 0);
    let admin = app
        .get_as(&keys.admin, &format!("/api/v1/exports/{id}"))
        .await;
    assert_eq!(admin.status, 200);
    assert_eq!(admin.body["owner"], keys.analyst_id.as_str());
    let mine = app.get_as(&keys.analyst, "/api/v1/exports").await;
    assert_eq!(mine.body["data"][0]["export_id"], id.as_str());
    let none = app.get("/api/v1/exports").await;
    none.assert_error(401, "UNAUTHENTICATED");

    // Job submissions pass every check of the query pipeline first.
    let secret = app
        .export(
            "?mode=job",
            Some(&keys.analyst),
            &json!({"sql": "SELECT * FROM secret.salaries", "format": "csv"}),
        )
        .await;
    assert_eq!(secret.status, 403, "{}", secret.text());
    let dml = app
        .export(
            "?mode=job",
            Some(&keys.analyst),
            &json!({"sql": "DELETE FROM shop.orders", "format": "csv"}),
        )
        .await;
    assert_eq!(dml.json()["error"]["code"], "SQL_REJECTED");

    // Submitting and cancelling are audited.
    let cancel = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/exports/{id}"),
            Some(&keys.analyst),
            None,
        )
        .await;
    assert_eq!(cancel.body["status"], "cancelled");
    let audit: Reply = app
        .get_as(&keys.admin, "/api/v1/admin/audit?action=export")
        .await;
    let routes: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["route"].as_str())
        .collect();
    assert!(routes.contains(&"POST /api/v1/exports"), "{routes:?}");
    assert!(
        routes.contains(&"DELETE /api/v1/exports/{id}"),
        "{routes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_deleted_when_their_time_is_up() {
    let app = spawn_app_with(|s| s.export.file_ttl_hours = 1.0 / 3600.0).await;
    let id = submit(
        &app,
        None,
        &json!({"sql": "SELECT * FROM shop.products", "format": "csv"}),
    )
    .await;
    assert_eq!(wait_for_end(&app, None, &id).await["status"], "succeeded");
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.get(&format!("/api/v1/exports/{id}")).await.body["status"].clone();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired");
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("exports"))
            .unwrap()
            .count(),
        0
    );
}

/// A job queued on a server that stops runs when a server on the same store starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_queued_job_outlives_its_server() {
    let shared = tempfile::tempdir().unwrap();
    let data_dir = shared.path().to_owned();
    let first = spawn_app_with(|s| {
        s.data_dir = data_dir.clone();
        s.export.workers = 0;
    })
    .await;
    let id = submit(
        &first,
        None,
        &json!({"sql": "SELECT * FROM shop.products", "format": "ndjson"}),
    )
    .await;
    drop(first);
    let second = spawn_app_with(|s| s.data_dir = data_dir.clone()).await;
    let job = wait_for_end(&second, None, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["rows"], 300);
    let file = fetch(job["download_url"].as_str().unwrap(), None).await;
    assert_eq!(file.text().await.unwrap().lines().count(), 300);
}

/// The S3-compatible server the bucket tests write to (`scripts/s3emulator.sh` starts moto on
/// `BQAI_S3_EMULATOR`, default `http://127.0.0.1:9070`); panics when nothing answers there.
async fn s3_emulator() -> String {
    let endpoint =
        std::env::var("BQAI_S3_EMULATOR").unwrap_or_else(|_| "http://127.0.0.1:9070".to_owned());
    match reqwest::get(format!("{endpoint}/moto-api/")).await {
        Ok(r) if r.status().is_success() => endpoint,
        other => panic!(
            "no S3 emulator answers at {endpoint} ({other:?}): run scripts/s3emulator.sh, or \
             point BQAI_S3_EMULATOR at a running one"
        ),
    }
}

/// Points the export jobs of `settings` at `destination` on the S3 emulator at `endpoint`.
fn s3_destination(settings: &mut bqai::config::Settings, endpoint: &str, destination: &str) {
    settings.export.destination = Some(destination.to_owned());
    for (k, v) in [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
    ] {
        settings
            .export
            .destination_options
            .insert(k.to_owned(), secrecy::SecretString::from(v));
    }
}

/// The keys of the objects of `bucket` (S3's ListObjectsV2, read from its XML).
async fn object_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let xml = reqwest::get(format!("{endpoint}/{bucket}?list-type=2"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    xml.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_with_an_s3_destination_uploads_its_file_and_links_to_a_presigned_url() {
    let endpoint = s3_emulator().await;
    let bucket = format!("bqai-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let app = spawn_app_with(|s| {
        s3_destination(s, &endpoint, &format!("s3://{bucket}/exports/daily"));
    })
    .await;

    let id = submit(
        &app,
        None,
        &json!({"sql": ORDERS, "format": "ndjson", "filename": "orders"}),
    )
    .await;
    let job = wait_for_end(&app, None, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["rows"], 100_000);
    let bytes = job["bytes"].as_u64().unwrap();
    assert!(
        bytes > 8 * 1024 * 1024,
        "more than one upload part: {bytes}"
    );
    let key = format!("exports/daily/{id}.ndjson");
    assert_eq!(object_keys(&endpoint, &bucket).await, vec![key.clone()]);
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("exports-spool"))
            .unwrap()
            .count(),
        0,
        "the spooled file is gone once uploaded"
    );

    // The signed link is checked here, then redirects to the bucket's presigned URL.
    let url = job["download_url"].as_str().unwrap();
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_follow.get(url).send().await.unwrap();
    assert_eq!(redirect.status(), 307);
    let presigned = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        presigned.starts_with(&format!("{endpoint}/{bucket}/{key}?")),
        "{presigned}"
    );
    assert!(presigned.contains("X-Amz-Signature="), "{presigned}");
    assert!(presigned.contains("X-Amz-Expires=300"), "{presigned}");
    let tampered = no_follow
        .get(with_param(url, "sig", &"0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 403, "no redirect for a bad link");

    // Followed, the bucket serves the file with the labels it was uploaded with, and ranges.
    let file = fetch(url, None).await;
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.headers()["content-disposition"],
        "attachment; filename=\"orders.ndjson\""
    );
    assert_eq!(file.headers()["content-type"], "application/x-ndjson");
    let body = file.bytes().await.unwrap();
    assert_eq!(body.len() as u64, bytes);
    let text = std::str::from_utf8(&body).unwrap();
    assert_eq!(text.lines().count(), 100_000);
    assert!(text.starts_with("{\"order_id\":"), "{}", &text[..40]);
    let part = fetch(url, Some("bytes=10-109")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), body.slice(10..110));

    // Deleting the job deletes the object.
    let deleted = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/exports/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.body["status"], "expired", "{}", deleted.body);
    assert!(object_keys(&endpoint, &bucket).await.is_empty());
    assert_eq!(fetch(url, None).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_bucket_fails_the_job_with_a_clear_error() {
    let endpoint = s3_emulator().await;
    // A bucket that does not exist: the upload is refused.
    let app = spawn_app_with(|s| s3_destination(s, &endpoint, "s3://bqai-no-such-bucket")).await;
    let id = submit(
        &app,
        None,
        &json!({"sql": "SELECT * FROM shop.products", "format": "csv"}),
    )
    .await;
    let job = wait_for_end(&app, None, &id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["download_url"].is_null());
    let error = job["error"].to_string();
    assert!(
        !error.contains("test"),
        "no credentials in the error: {error}"
    );
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("exports-spool"))
            .unwrap()
            .count(),
        0,
        "the spooled file is gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_queue_and_the_busy_workers() {
    // No workers: what is submitted stays queued, and the gauges say so.
    let app = spawn_app_with(|s| {
        s.export.workers = 0;
        s.export.heartbeat_secs = 0.1;
    })
    .await;
    for _ in 0..2 {
        submit(&app, None, &json!({"sql": ORDERS, "format": "csv"})).await;
    }
    let mut text = String::new();
    for _ in 0..100 {
        text = app.text("/metrics").await;
        if bqai_testkit::metric_value(&text, "bqai_export_jobs{status=\"queued\"}") == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        bqai_testkit::metric_value(&text, "bqai_export_jobs{status=\"queued\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        bqai_testkit::metric_value(&text, "bqai_export_jobs{status=\"running\"}"),
        0.0
    );
    assert_eq!(
        bqai_testkit::metric_value(&text, "bqai_export_workers_busy"),
        0.0
    );
}
