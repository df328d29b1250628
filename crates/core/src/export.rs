//! Export jobs: a large export runs in the background instead of inside one HTTP request.
//!
//! A job is a row in the store ([`crate::ports::ExportJobStore`]) that outlives the process:
//! `queued` when submitted, `running` once a worker claimed it (the worker's heartbeat keeps
//! the claim alive), then `succeeded` (a file waits at `location` until `expires_at`),
//! `failed`, or `cancelled`; a succeeded job whose file was deleted is `expired`. A running
//! job whose heartbeat stopped (its process died) is claimed again by the next worker, so a
//! restart re-runs it rather than losing it; after [`MAX_ATTEMPTS`] interrupted runs it fails.
//!
//! Download links are signed, not authenticated ([`LinkSigner`]): an HMAC over the job id,
//! the expiry and the signing key's version, checked in constant time, like an S3 or GCS
//! presigned URL.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::model::Principal;

/// How many times a job is started before an interrupted run counts as a failure.
pub const MAX_ATTEMPTS: u32 = 3;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is writing the file.
    Running,
    /// The file is ready until the job's `expires_at`.
    Succeeded,
    /// The export stopped with an error.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
    /// Succeeded, but its file has been deleted (its time was up, or its owner deleted it).
    Expired,
}

impl ExportStatus {
    /// Every status, in life order.
    pub const ALL: [ExportStatus; 6] = [
        ExportStatus::Queued,
        ExportStatus::Running,
        ExportStatus::Succeeded,
        ExportStatus::Failed,
        ExportStatus::Cancelled,
        ExportStatus::Expired,
    ];

    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Queued => "queued",
            ExportStatus::Running => "running",
            ExportStatus::Succeeded => "succeeded",
            ExportStatus::Failed => "failed",
            ExportStatus::Cancelled => "cancelled",
            ExportStatus::Expired => "expired",
        }
    }

    /// Parses [`ExportStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Queued or running: the job still holds a slot of its owner's concurrency limit.
    pub fn is_active(self) -> bool {
        matches!(self, ExportStatus::Queued | ExportStatus::Running)
    }
}

impl std::fmt::Display for ExportStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job runs: the statement and how to write it, as submitted (the worker plans it
/// again, through every check, when it runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ExportSpec {
    /// The SQL as submitted.
    pub sql: String,
    /// Dataset unqualified table names refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_dataset: Option<String>,
    /// Query parameters as the API received them (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    /// Row cap asked for (at most `export.max_rows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Timeout asked for, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// CSV field delimiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// The history entry the export re-runs, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// The request that submitted the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Why a job failed, as its owner may read it (codes as in the API's error envelope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// The error code (`TIMEOUT`, `QUOTA_EXCEEDED`, `INTERRUPTED`, …).
    pub code: String,
    /// A message safe to show.
    pub message: String,
}

impl JobError {
    /// The error as the owner sees it: its code and safe message.
    pub fn from_error(e: &crate::Error) -> Self {
        Self {
            code: e.code().to_owned(),
            message: e.safe_message(),
        }
    }
}

/// One export job.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportJob {
    /// Public id (UUIDv7).
    pub id: String,
    /// Who submitted it (the principal's id; `None` on an unauthenticated deployment).
    pub owner: Option<String>,
    /// The identity the job runs as: the submitter's role, scope and quota at submission.
    pub principal: Principal,
    /// File format (`csv`, `ndjson`, `json`, `xlsx`, `parquet`).
    pub format: String,
    /// The download's file name.
    pub file_name: String,
    /// What to run.
    pub spec: ExportSpec,
    /// Where the job is.
    pub status: ExportStatus,
    /// Rows written so far (all of them once succeeded).
    pub rows: u64,
    /// Bytes written so far.
    pub bytes: u64,
    /// The result's row count, when the warehouse said it before the end.
    pub total_rows: Option<u64>,
    /// Why it failed.
    pub error: Option<JobError>,
    /// The history entry of the run.
    pub query_id: Option<String>,
    /// Where the file is (a path or object URL the destination understands).
    pub location: Option<String>,
    /// The worker holding it while running.
    pub worker: Option<String>,
    /// How many times a worker started it.
    pub attempts: u32,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its current run started.
    pub started_at: Option<DateTime<Utc>>,
    /// The running worker's last sign of life.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When its file is deleted (succeeded jobs).
    pub expires_at: Option<DateTime<Utc>>,
}

impl ExportJob {
    /// A new queued job with a fresh id.
    pub fn new(
        principal: Principal,
        format: &str,
        file_name: &str,
        spec: ExportSpec,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            owner: principal.id.clone(),
            principal,
            format: format.to_owned(),
            file_name: file_name.to_owned(),
            spec,
            status: ExportStatus::Queued,
            rows: 0,
            bytes: 0,
            total_rows: None,
            error: None,
            query_id: None,
            location: None,
            worker: None,
            attempts: 0,
            created_at: now,
            started_at: None,
            heartbeat_at: None,
            finished_at: None,
            expires_at: None,
        }
    }

    /// How far it is, from 0 to 1: 1 once succeeded, rows over the known total while
    /// running, `None` while the total is unknown.
    pub fn progress(&self) -> Option<f64> {
        match self.status {
            ExportStatus::Succeeded | ExportStatus::Expired => Some(1.0),
            ExportStatus::Queued => Some(0.0),
            _ => self.total_rows.filter(|t| *t > 0).map(|total| {
                #[allow(clippy::cast_precision_loss)] // a fraction for display
                let p = self.rows as f64 / total as f64;
                p.min(1.0)
            }),
        }
    }
}

/// Which jobs a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportJobFilter {
    /// Only this owner's (`None`: everyone's, for admins).
    pub owner: Option<String>,
    /// Only jobs in this status.
    pub status: Option<ExportStatus>,
}

/// A running job's progress, reported by its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobProgress {
    /// Rows written so far.
    pub rows: u64,
    /// Bytes written so far.
    pub bytes: u64,
    /// The result's row count, if known.
    pub total_rows: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    /// The file is complete.
    Succeeded {
        /// Rows and bytes written.
        progress: JobProgress,
        /// Where the file is.
        location: String,
        /// When it is deleted.
        expires_at: DateTime<Utc>,
        /// The history entry of the run.
        query_id: Option<String>,
    },
    /// The export failed.
    Failed {
        /// Rows and bytes written before it stopped.
        progress: JobProgress,
        /// Why.
        error: JobError,
        /// The history entry of the run, if it got that far.
        query_id: Option<String>,
    },
}

/// An owner's use of export jobs, for the per-key limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportUsage {
    /// Jobs queued or running.
    pub active: u64,
    /// Bytes written by the owner's jobs created since the asked-for time.
    pub bytes: u64,
}

/// The queue of every replica at one moment, for the operator's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Jobs waiting for a worker.
    pub queued: u64,
    /// Jobs a worker holds.
    pub running: u64,
}

/// Signs and checks download links: `sig` = hex HMAC-SHA-256 over the key version, the job id
/// and the expiry (Unix seconds). Bumping the version (or changing the secret) invalidates
/// every link handed out before.
#[derive(Clone)]
pub struct LinkSigner {
    secret: Vec<u8>,
    version: u32,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The signature does not match (tampered, another key, another version).
    BadSignature,
    /// The link's time is up.
    Expired,
}

impl LinkSigner {
    /// A signer with `secret` (any length; 32 random bytes or more is right) and key `version`.
    pub fn new(secret: impl Into<Vec<u8>>, version: u32) -> Self {
        Self {
            secret: secret.into(),
            version,
        }
    }

    /// The key version links are signed with.
    pub fn version(&self) -> u32 {
        self.version
    }

    fn mac(&self, id: &str, expires: i64) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC takes keys of any length
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC accepts any key length");
        mac.update(format!("bqai-export-link\n{}\n{id}\n{expires}", self.version).as_bytes());
        mac
    }

    /// The signature of a link to job `id` valid until `expires` (Unix seconds).
    pub fn sign(&self, id: &str, expires: i64) -> String {
        hex::encode(self.mac(id, expires).finalize().into_bytes())
    }

    /// Checks `sig` for job `id` and `expires` in constant time, then the expiry against
    /// `now`. A malformed signature is a bad one.
    pub fn verify(
        &self,
        id: &str,
        expires: i64,
        sig: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let Ok(given) = hex::decode(sig) else {
            return Err(LinkError::BadSignature);
        };
        self.mac(id, expires)
            .verify_slice(&given)
            .map_err(|_| LinkError::BadSignature)?;
        if now.timestamp() >= expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DatasetScope;

    #[test]
    fn statuses_round_trip_and_only_queued_and_running_are_active() {
        for s in ExportStatus::ALL {
            assert_eq!(ExportStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        let active: Vec<_> = ExportStatus::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [ExportStatus::Queued, ExportStatus::Running]);
        assert_eq!(ExportStatus::parse("done"), None);
    }

    #[test]
    fn a_link_verifies_only_unchanged_and_in_time() {
        let signer = LinkSigner::new(b"secret".to_vec(), 1);
        let now = Utc::now();
        let expires = now.timestamp() + 60;
        let sig = signer.sign("job-1", expires);
        assert_eq!(signer.verify("job-1", expires, &sig, now), Ok(()));
        assert_eq!(
            signer.verify("job-2", expires, &sig, now),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify("job-1", expires + 1, &sig, now),
            Err(LinkError::BadSignature),
            "a later expiry is a tampered link"
        );
        assert_eq!(
            signer.verify("job-1", expires, "zz", now),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify("job-1", expires, &sig[..10], now),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            LinkSigner::new(b"secret".to_vec(), 2).verify("job-1", expires, &sig, now),
            Err(LinkError::BadSignature),
            "a new key version revokes the old links"
        );
        assert_eq!(
            signer.verify("job-1", expires, &sig, now + chrono::TimeDelta::seconds(61)),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn progress_is_known_when_the_total_is() {
        let mut job = ExportJob::new(
            Principal::anonymous(DatasetScope::All),
            "csv",
            "x.csv",
            ExportSpec::default(),
            Utc::now(),
        );
        assert_eq!(job.progress(), Some(0.0));
        job.status = ExportStatus::Running;
        job.rows = 50;
        assert_eq!(job.progress(), None);
        job.total_rows = Some(200);
        assert_eq!(job.progress(), Some(0.25));
        job.status = ExportStatus::Succeeded;
        assert_eq!(job.progress(), Some(1.0));
    }
}
