//! Contract suite for the [`ExportJobStore`] port: the SQLite and PostgreSQL stores must both
//! pass it.
//!
//! Claims take any job of the store, so the suite needs a store of its own (no other run
//! claiming from it at the same time). Times are passed in, so nothing sleeps: a heartbeat is
//! "stale" because the claim says so.

use std::collections::HashSet;
use std::sync::Arc;

use bqai_core::Error;
use bqai_core::export::{
    ExportJob, ExportJobFilter, ExportSpec, ExportStatus, JobEnd, JobError, JobProgress, QueueDepth,
};
use bqai_core::model::{DatasetScope, PageRequest, Principal, Role};
use bqai_core::ports::ExportJobStore;
use chrono::{DateTime, TimeDelta, Utc};

/// Runs every check against `store`, which no one else claims from meanwhile; panics with a
/// description of the first violation.
pub async fn export_job_contract(store: Arc<dyn ExportJobStore>) {
    round_trip(store.as_ref()).await;
    listing(store.as_ref()).await;
    claims_oldest_first_and_once(&store).await;
    workers_lose_what_they_no_longer_hold(store.as_ref()).await;
    stale_jobs_are_claimed_again_then_failed(store.as_ref()).await;
    cancel_and_expiry(store.as_ref()).await;
    usage_counts_active_jobs_and_todays_bytes(store.as_ref()).await;
    queue_depth_counts_queued_and_running_jobs(store.as_ref()).await;
}

/// A principal named `id` with a narrowed scope, so a round trip shows it is kept whole.
pub fn principal(id: &str) -> Principal {
    Principal {
        id: Some(id.to_owned()),
        role: Role::Analyst,
        datasets: DatasetScope::Only(["shop".to_owned()].into_iter().collect()),
        rate_limit_per_minute: Some(60),
        daily_byte_quota: Some(1 << 30),
    }
}

/// A queued job of `owner` created at `at` (whole microseconds, as both databases keep).
pub fn job(owner: &str, at: DateTime<Utc>) -> ExportJob {
    let at = DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at);
    ExportJob::new(
        principal(owner),
        "csv",
        "orders.csv",
        ExportSpec {
            sql: "SELECT * FROM orders".into(),
            default_dataset: Some("shop".into()),
            parameters: Some(serde_json::json!({"n": 1})),
            max_rows: Some(10),
            timeout_ms: Some(5000),
            delimiter: Some(";".into()),
            rerun_of: None,
            request_id: Some("req-1".into()),
        },
        at,
    )
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

async fn create(store: &dyn ExportJobStore, job: &ExportJob) {
    store
        .create_job(job)
        .await
        .unwrap_or_else(|e| panic!("create_job({}) failed: {e}", job.id));
}

async fn get(store: &dyn ExportJobStore, id: &str) -> ExportJob {
    store
        .get_job(id)
        .await
        .unwrap_or_else(|e| panic!("get_job({id}) failed: {e}"))
        .unwrap_or_else(|| panic!("job {id} is missing"))
}

async fn claim(store: &dyn ExportJobStore, worker: &str, now: DateTime<Utc>) -> Option<ExportJob> {
    store
        .claim_job(worker, now, now - TimeDelta::seconds(30), 3)
        .await
        .unwrap_or_else(|e| panic!("claim_job({worker}) failed: {e}"))
}

/// Ends every job still waiting or running (claimed from a day ahead, when every heartbeat is
/// stale) as failed, so the next check starts from an idle queue.
async fn drain(store: &dyn ExportJobStore) {
    let now = Utc::now() + TimeDelta::days(1);
    while let Some(j) = claim(store, "drain", now).await {
        let end = JobEnd::Failed {
            progress: JobProgress::default(),
            error: JobError {
                code: "TEST".into(),
                message: "drained".into(),
            },
            query_id: None,
        };
        store.finish_job(&j.id, "drain", &end, now).await.unwrap();
    }
}

async fn round_trip(store: &dyn ExportJobStore) {
    let j = job("owner-rt", Utc::now());
    create(store, &j).await;
    assert_eq!(get(store, &j.id).await, j, "a job reads back as written");
    match store.create_job(&j).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("a duplicate id must be a Conflict, got {other:?}"),
    }
    assert_eq!(store.get_job("no-such-job").await.unwrap(), None);
    drain(store).await;
}

async fn listing(store: &dyn ExportJobStore) {
    let owner = format!("owner-{}", uuid::Uuid::now_v7());
    let t0 = Utc::now() - TimeDelta::hours(1);
    let mut ids = Vec::new();
    for i in 0..5 {
        let j = job(&owner, t0 + TimeDelta::seconds(i));
        create(store, &j).await;
        ids.push(j.id);
    }
    create(store, &job("someone-else", t0)).await;
    let filter = ExportJobFilter {
        owner: Some(owner.clone()),
        status: None,
    };
    let first = store
        .list_jobs(&filter, &PageRequest::first(3))
        .await
        .unwrap();
    let newest: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(
        first.items.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        newest[..3],
        "newest first, the owner's only"
    );
    let second = store
        .list_jobs(
            &filter,
            &PageRequest {
                page_size: 3,
                page_token: first.next_page_token.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|j| j.id.clone())
            .collect::<Vec<_>>(),
        newest[3..]
    );
    assert_eq!(second.next_page_token, None);
    drain(store).await;
    let failed = store
        .list_jobs(
            &ExportJobFilter {
                owner: Some(owner),
                status: Some(ExportStatus::Failed),
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 5, "the status filter");
    let everyone = store
        .list_jobs(&ExportJobFilter::default(), &PageRequest::first(1000))
        .await
        .unwrap();
    assert!(
        everyone
            .items
            .iter()
            .any(|j| j.owner.as_deref() == Some("someone-else")),
        "no owner filter lists everyone's"
    );
}

async fn claims_oldest_first_and_once(store: &Arc<dyn ExportJobStore>) {
    let now = Utc::now();
    let older = job("owner-claim", now - TimeDelta::seconds(10));
    let newer = job("owner-claim", now - TimeDelta::seconds(5));
    create(store.as_ref(), &newer).await;
    create(store.as_ref(), &older).await;
    let first = claim(store.as_ref(), "w1", now).await.expect("a job waits");
    assert_eq!(first.id, older.id, "the oldest first");
    assert_eq!(first.status, ExportStatus::Running);
    assert_eq!(first.worker.as_deref(), Some("w1"));
    assert_eq!(first.attempts, 1);
    assert_eq!(first.started_at, Some(micros(now)));
    assert_eq!(first.heartbeat_at, Some(micros(now)));
    let second = claim(store.as_ref(), "w2", now)
        .await
        .expect("another waits");
    assert_eq!(second.id, newer.id);
    assert_eq!(claim(store.as_ref(), "w3", now).await, None, "nothing left");
    drain(store.as_ref()).await;

    // Many workers at once over many jobs: every job is claimed exactly once.
    let base = Utc::now();
    let mut created = HashSet::new();
    for i in 0..20 {
        let j = job("owner-race", base - TimeDelta::milliseconds(i));
        create(store.as_ref(), &j).await;
        created.insert(j.id);
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let worker = format!("racer-{w}");
            let mut mine = Vec::new();
            while let Some(j) = claim(store.as_ref(), &worker, base).await {
                assert_eq!(j.worker.as_deref(), Some(worker.as_str()));
                let end = JobEnd::Failed {
                    progress: JobProgress::default(),
                    error: JobError {
                        code: "TEST".into(),
                        message: "raced".into(),
                    },
                    query_id: None,
                };
                assert!(store.finish_job(&j.id, &worker, &end, base).await.unwrap());
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    assert_eq!(claimed.len(), 20, "each job claimed once: {claimed:?}");
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), created);
    drain(store.as_ref()).await;
}

async fn workers_lose_what_they_no_longer_hold(store: &dyn ExportJobStore) {
    let now = Utc::now();
    let j = job("owner-hb", now);
    create(store, &j).await;
    let claimed = claim(store, "w1", now).await.unwrap();
    assert_eq!(claimed.id, j.id);
    let p = JobProgress {
        rows: 10,
        bytes: 100,
        total_rows: Some(40),
    };
    let later = now + TimeDelta::seconds(1);
    assert!(store.heartbeat(&j.id, "w1", &p, later).await.unwrap());
    let read = get(store, &j.id).await;
    assert_eq!(
        (read.rows, read.bytes, read.total_rows),
        (10, 100, Some(40))
    );
    assert_eq!(read.heartbeat_at, Some(micros(later)));
    assert!(
        !store.heartbeat(&j.id, "w2", &p, later).await.unwrap(),
        "another worker's heartbeat changes nothing"
    );

    // A graceful stop puts it back; the next claim starts it again from zero.
    assert!(store.release_job(&j.id, "w1").await.unwrap());
    assert_eq!(get(store, &j.id).await.status, ExportStatus::Queued);
    let again = claim(store, "w2", later).await.unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (j.id.as_str(), 2));
    assert_eq!((again.rows, again.bytes, again.total_rows), (0, 0, None));
    assert!(!store.heartbeat(&j.id, "w1", &p, later).await.unwrap());

    let expires_at = micros(later + TimeDelta::hours(1));
    let end = JobEnd::Succeeded {
        progress: JobProgress {
            rows: 40,
            bytes: 400,
            total_rows: Some(40),
        },
        location: "/tmp/x.csv".into(),
        expires_at,
        query_id: Some("q-1".into()),
    };
    assert!(!store.finish_job(&j.id, "w1", &end, later).await.unwrap());
    assert!(store.finish_job(&j.id, "w2", &end, later).await.unwrap());
    let done = get(store, &j.id).await;
    assert_eq!(done.status, ExportStatus::Succeeded);
    assert_eq!((done.rows, done.bytes), (40, 400));
    assert_eq!(done.location.as_deref(), Some("/tmp/x.csv"));
    assert_eq!(done.expires_at, Some(expires_at));
    assert_eq!(done.finished_at, Some(micros(later)));
    assert_eq!(done.query_id.as_deref(), Some("q-1"));
    assert!(
        !store.finish_job(&j.id, "w2", &end, later).await.unwrap(),
        "a finished job is finished once"
    );
    assert!(!store.release_job(&j.id, "w2").await.unwrap());

    let failing = job("owner-hb", now);
    create(store, &failing).await;
    let c = claim(store, "w3", now).await.unwrap();
    let error = JobError {
        code: "TIMEOUT".into(),
        message: "too slow".into(),
    };
    let end = JobEnd::Failed {
        progress: JobProgress {
            rows: 3,
            bytes: 30,
            total_rows: None,
        },
        error: error.clone(),
        query_id: None,
    };
    assert!(store.finish_job(&c.id, "w3", &end, now).await.unwrap());
    let failed = get(store, &c.id).await;
    assert_eq!(failed.status, ExportStatus::Failed);
    assert_eq!(failed.error, Some(error));
    assert_eq!(failed.location, None);
}

async fn stale_jobs_are_claimed_again_then_failed(store: &dyn ExportJobStore) {
    let t0 = Utc::now();
    let j = job("owner-stale", t0);
    create(store, &j).await;
    let mut now = t0;
    for attempt in 1..=3 {
        let c = store
            .claim_job("w", now, now - TimeDelta::seconds(30), 3)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("attempt {attempt}: a stale job is claimed again"));
        assert_eq!((c.id.as_str(), c.attempts), (j.id.as_str(), attempt));
        // A live heartbeat keeps it: nothing to claim.
        assert_eq!(
            store
                .claim_job("other", now, now - TimeDelta::seconds(30), 3)
                .await
                .unwrap(),
            None,
            "a job with a live heartbeat stays with its worker"
        );
        now += TimeDelta::seconds(60);
    }
    assert_eq!(
        store
            .claim_job("w", now, now - TimeDelta::seconds(30), 3)
            .await
            .unwrap(),
        None,
        "after its last attempt it is not claimed"
    );
    let failed = get(store, &j.id).await;
    assert_eq!(failed.status, ExportStatus::Failed);
    assert_eq!(
        failed.error.as_ref().map(|e| e.code.as_str()),
        Some("INTERRUPTED")
    );
}

async fn cancel_and_expiry(store: &dyn ExportJobStore) {
    let now = Utc::now();
    let queued = job("owner-cancel", now);
    create(store, &queued).await;
    let c = store.cancel_job(&queued.id, now).await.unwrap().unwrap();
    assert_eq!(c.status, ExportStatus::Cancelled);
    assert_eq!(
        claim(store, "w", now).await,
        None,
        "a cancelled job is not run"
    );

    let running = job("owner-cancel", now);
    create(store, &running).await;
    claim(store, "w", now).await.unwrap();
    assert_eq!(
        store
            .cancel_job(&running.id, now)
            .await
            .unwrap()
            .unwrap()
            .status,
        ExportStatus::Cancelled
    );
    assert!(
        !store
            .heartbeat(&running.id, "w", &JobProgress::default(), now)
            .await
            .unwrap(),
        "the worker of a cancelled job learns it from its heartbeat"
    );

    // Succeeded jobs expire at their deadline, once; or when their owner deletes them.
    let mut done = Vec::new();
    for ttl in [-10, -5, 3600] {
        let j = job("owner-cancel", now);
        create(store, &j).await;
        claim(store, "w", now).await.unwrap();
        let end = JobEnd::Succeeded {
            progress: JobProgress::default(),
            location: format!("/files/{}", j.id),
            expires_at: now + TimeDelta::seconds(ttl),
            query_id: None,
        };
        assert!(store.finish_job(&j.id, "w", &end, now).await.unwrap());
        done.push(j.id);
    }
    let expired = store.expire_jobs(now, 1).await.unwrap();
    assert_eq!(
        expired.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [done[0].as_str()],
        "the earliest deadline first, within the limit"
    );
    assert_eq!(expired[0].status, ExportStatus::Expired);
    assert_eq!(
        expired[0].location.as_deref(),
        Some(format!("/files/{}", done[0]).as_str()),
        "the location, for the caller to delete"
    );
    let rest = store.expire_jobs(now, 100).await.unwrap();
    assert_eq!(
        rest.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [done[1].as_str()]
    );
    assert_eq!(get(store, &done[2]).await.status, ExportStatus::Succeeded);
    let deleted = store.cancel_job(&done[2], now).await.unwrap().unwrap();
    assert_eq!(
        deleted.status,
        ExportStatus::Expired,
        "deleting a file expires the job"
    );
    let later = store
        .expire_jobs(now + TimeDelta::days(1), 100)
        .await
        .unwrap();
    assert!(
        later.iter().all(|j| !done.contains(&j.id)),
        "an expired job does not expire again"
    );
    let again = store.cancel_job(&done[2], now).await.unwrap().unwrap();
    assert_eq!(again.status, ExportStatus::Expired, "nothing else changes");
    assert_eq!(store.cancel_job("no-such-job", now).await.unwrap(), None);
}

async fn usage_counts_active_jobs_and_todays_bytes(store: &dyn ExportJobStore) {
    let owner = format!("owner-{}", uuid::Uuid::now_v7());
    let now = Utc::now();
    let midnight = now - TimeDelta::hours(1);
    let yesterday = job(&owner, now - TimeDelta::hours(30));
    create(store, &yesterday).await;
    let today = job(&owner, now);
    create(store, &today).await;
    let waiting = job(&owner, now);
    create(store, &waiting).await;
    for (j, bytes) in [(&yesterday, 1000), (&today, 70)] {
        let c = claim(store, "w", now).await.unwrap();
        assert_eq!(c.id, j.id);
        let end = JobEnd::Succeeded {
            progress: JobProgress {
                rows: 1,
                bytes,
                total_rows: None,
            },
            location: "x".into(),
            expires_at: now + TimeDelta::hours(1),
            query_id: None,
        };
        store.finish_job(&j.id, "w", &end, now).await.unwrap();
    }
    let usage = store.usage(&owner, midnight).await.unwrap();
    assert_eq!(usage.active, 1, "the queued job");
    assert_eq!(usage.bytes, 70, "bytes of today's jobs only");
    let nobody = store.usage("nobody", midnight).await.unwrap();
    assert_eq!((nobody.active, nobody.bytes), (0, 0));
    drain(store).await;
}

async fn queue_depth_counts_queued_and_running_jobs(store: &dyn ExportJobStore) {
    let none = QueueDepth::default();
    assert_eq!(
        store.queue_depth().await.unwrap(),
        none,
        "the suite drained the queue"
    );
    let owner = format!("owner-{}", uuid::Uuid::now_v7());
    let now = Utc::now();
    let jobs = [job(&owner, now), job(&owner, now), job(&owner, now)];
    for j in &jobs {
        create(store, j).await;
    }
    assert_eq!(
        store.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 3,
            running: 0
        }
    );
    let held = claim(store, "w", now).await.unwrap();
    assert_eq!(
        store.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 2,
            running: 1
        }
    );
    store.cancel_job(&jobs[2].id, now).await.unwrap();
    let end = JobEnd::Failed {
        error: JobError {
            code: "UNAVAILABLE".into(),
            message: "down".into(),
        },
        progress: JobProgress::default(),
        query_id: None,
    };
    store.finish_job(&held.id, "w", &end, now).await.unwrap();
    assert_eq!(
        store.queue_depth().await.unwrap(),
        QueueDepth {
            queued: 1,
            running: 0
        },
        "ended and cancelled jobs are not counted"
    );
    drain(store).await;
    assert_eq!(store.queue_depth().await.unwrap(), none);
}
