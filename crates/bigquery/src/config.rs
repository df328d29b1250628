//! Configuration of the BigQuery adapter: project, location, credentials, endpoint, timeouts,
//! retries and the defaults every job gets (byte cap, labels).
//!
//! Deserializes from the `[warehouse]` section of bqai's configuration (`kind = "bigquery"`
//! is the caller's tag; the fields below are this struct's). Every duration is in
//! milliseconds so the TOML stays plain integers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use bqai_core::Error;

/// How the adapter authenticates to BigQuery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CredentialsConfig {
    /// Application default credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud user
    /// credentials, or the metadata server on Google Cloud.
    #[default]
    Adc,
    /// A service-account key file (JSON).
    KeyFile {
        /// Path of the JSON key.
        path: PathBuf,
    },
    /// No credentials at all: only for an emulator or a local stand-in reached through
    /// `endpoint` (which is then required).
    None,
}

/// Bounded exponential backoff with full jitter for transient BigQuery failures
/// (`backendError`, `internalError`, `rateLimitExceeded`, HTTP 5xx/429, connection errors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per call, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt.
    pub initial_backoff_ms: u64,
    /// Upper bound of one backoff.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff_ms: 200,
            max_backoff_ms: 5_000,
        }
    }
}

impl RetryConfig {
    /// The backoff ceiling before attempt `attempt + 1` (`attempt` counts from 1), before
    /// jitter: `initial * 2^(attempt-1)`, capped at `max_backoff_ms`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        Duration::from_millis(
            self.initial_backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }
}

/// Everything the BigQuery adapter needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQueryConfig {
    /// The project jobs run in (and are billed to), and the home project of unqualified
    /// dataset names.
    pub project: String,
    /// Where jobs run (`US`, `EU`, `europe-west1`); `None` lets BigQuery pick from the data.
    #[serde(default)]
    pub location: Option<String>,
    /// How to authenticate.
    #[serde(default)]
    pub credentials: CredentialsConfig,
    /// API root instead of `https://bigquery.googleapis.com` (an emulator, a proxy, a VPC-SC
    /// endpoint). Plain `http://` is allowed for local emulators.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Deadline of one catalog call or one request of a job (not of the job itself, whose
    /// deadline is the query's timeout).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Longest single wait for a job to finish (`getQueryResults` long-poll); the loop polls
    /// again until the job's own timeout.
    #[serde(default = "default_poll_wait_ms")]
    pub poll_wait_ms: u32,
    /// Rows per `getQueryResults` / `tabledata.list` page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// `maximumBytesBilled` for jobs that do not bring their own (and for view previews,
    /// which must run a query). `None`: only the per-query cap applies.
    #[serde(default)]
    pub max_bytes_billed: Option<u64>,
    /// Labels added to every job (next to `bqai_query_id` and the job's own labels).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Retry policy for transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_request_timeout_ms() -> u64 {
    30_000
}

fn default_poll_wait_ms() -> u32 {
    10_000
}

fn default_page_size() -> u32 {
    10_000
}

impl BigQueryConfig {
    /// A configuration with defaults for everything but the project.
    pub fn new(project: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            location: None,
            credentials: CredentialsConfig::Adc,
            endpoint: None,
            request_timeout_ms: default_request_timeout_ms(),
            poll_wait_ms: default_poll_wait_ms(),
            page_size: default_page_size(),
            max_bytes_billed: None,
            labels: BTreeMap::new(),
            retry: RetryConfig::default(),
        }
    }

    /// A configuration for an emulator or stand-in at `endpoint`, without credentials.
    pub fn emulator(project: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self {
            credentials: CredentialsConfig::None,
            endpoint: Some(endpoint.into()),
            ..Self::new(project)
        }
    }

    /// The request deadline as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The API root requests go to.
    pub fn api_root(&self) -> &str {
        self.endpoint
            .as_deref()
            .unwrap_or("https://bigquery.googleapis.com")
            .trim_end_matches('/')
    }

    /// Checks the configuration; the message names the offending field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidRequest(m));
        if self.project.trim().is_empty() {
            return bad("warehouse.project must not be empty".into());
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return bad(format!(
                "warehouse.endpoint must be an http(s) URL, got {endpoint:?}"
            ));
        }
        if self.credentials == CredentialsConfig::None && self.endpoint.is_none() {
            return bad(
                "warehouse.credentials = none needs warehouse.endpoint (an emulator); \
                 BigQuery itself needs credentials"
                    .into(),
            );
        }
        if self.request_timeout_ms == 0 || self.poll_wait_ms == 0 || self.page_size == 0 {
            return bad(
                "warehouse.request_timeout_ms, poll_wait_ms and page_size must be positive".into(),
            );
        }
        if self.retry.max_attempts == 0 || self.retry.max_attempts > 20 {
            return bad("warehouse.retry.max_attempts must be between 1 and 20".into());
        }
        if self.retry.initial_backoff_ms > self.retry.max_backoff_ms {
            return bad("warehouse.retry.initial_backoff_ms exceeds max_backoff_ms".into());
        }
        for (key, value) in &self.labels {
            if crate::job::label_key(key) != *key || crate::job::label_value(value) != *value {
                return bad(format!(
                    "warehouse.labels: {key:?} = {value:?} is not a valid BigQuery label \
                     (lowercase letters, digits, _ and -; keys start with a letter; at most 63)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_toml_with_defaults() {
        let config: BigQueryConfig = toml_like(
            r#"{"project": "p", "location": "EU",
                "credentials": {"type": "key_file", "path": "/k.json"}}"#,
        );
        assert_eq!(config.project, "p");
        assert_eq!(config.location.as_deref(), Some("EU"));
        assert_eq!(
            config.credentials,
            CredentialsConfig::KeyFile {
                path: "/k.json".into()
            }
        );
        assert_eq!(config.retry, RetryConfig::default());
        assert_eq!(config.page_size, 10_000);
        assert!(config.validate().is_ok());
    }

    fn toml_like(json: &str) -> BigQueryConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn validation_names_the_field() {
        let mut config = BigQueryConfig::new("p");
        config.credentials = CredentialsConfig::None;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("endpoint"), "{err}");

        let mut config = BigQueryConfig::emulator("p", "ftp://x");
        assert!(config.validate().unwrap_err().to_string().contains("http"));
        config.endpoint = Some("http://127.0.0.1:9050".into());
        assert!(config.validate().is_ok());

        config.labels.insert("Team".into(), "x".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("labels")
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let retry = RetryConfig {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 350,
        };
        assert_eq!(retry.ceiling(1), Duration::from_millis(100));
        assert_eq!(retry.ceiling(2), Duration::from_millis(200));
        assert_eq!(retry.ceiling(3), Duration::from_millis(350));
        assert_eq!(retry.ceiling(40), Duration::from_millis(350));
    }
}
