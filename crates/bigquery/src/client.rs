//! The SDK clients the adapter talks through, built once from [`BigQueryConfig`]: the
//! generated `DatasetService`, `TableService` and `JobService` of `google-cloud-bigquery-v2`,
//! plus one REST call the SDK does not generate (`tabledata.list`, the free way to preview a
//! table), made with the same credentials object.
//!
//! The SDK's own retry loop is switched off ([`NeverRetry`]): retries are the adapter's
//! ([`crate::retry`]), bounded by configuration and decided by BigQuery's error reasons.

use std::sync::Arc;

use google_cloud_auth::credentials::{CacheableResource, Credentials, anonymous, service_account};
use google_cloud_bigquery_v2::client::{DatasetService, JobService, TableService};
use google_cloud_gax::retry_policy::NeverRetry;

use bqai_core::Error;

use crate::config::{BigQueryConfig, CredentialsConfig};
use crate::error::{Failure, Transport};

/// The clients of one adapter instance (cheap to clone: each holds an `Arc` inside).
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub datasets: DatasetService,
    pub tables: TableService,
    pub jobs: JobService,
    pub rest: Arc<Rest>,
}

/// Credentials for the configured mode. ADC and key files are read here, so a missing or
/// malformed key fails at start, not on the first query.
pub(crate) fn credentials(config: &BigQueryConfig) -> Result<Credentials, Error> {
    let invalid = |what: String| Error::InvalidRequest(what);
    match &config.credentials {
        CredentialsConfig::None => Ok(anonymous::Builder::new().build()),
        CredentialsConfig::Adc => google_cloud_auth::credentials::Builder::default()
            .build()
            .map_err(|e| {
                invalid(format!(
                    "warehouse.credentials = adc: no application default credentials ({e})"
                ))
            }),
        CredentialsConfig::KeyFile { path } => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(format!(
                    "warehouse.credentials.path {}: cannot read the key file ({e})",
                    path.display()
                ))
            })?;
            let key: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                invalid(format!(
                    "warehouse.credentials.path {}: not a JSON key ({e})",
                    path.display()
                ))
            })?;
            service_account::Builder::new(key).build().map_err(|e| {
                invalid(format!(
                    "warehouse.credentials.path {}: not a service-account key ({e})",
                    path.display()
                ))
            })
        }
    }
}

impl Clients {
    /// Builds every client with the same endpoint and credentials.
    pub async fn build(config: &BigQueryConfig) -> Result<Self, Error> {
        let creds = credentials(config)?;
        let failed = |what: &str, e: google_cloud_gax::client_builder::Error| {
            Error::internal(format!("building the BigQuery {what} client"), e)
        };
        macro_rules! service {
            ($ty:ty, $what:literal) => {{
                let mut builder = <$ty>::builder()
                    .with_credentials(creds.clone())
                    .with_retry_policy(NeverRetry);
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
                }
                builder.build().await.map_err(|e| failed($what, e))?
            }};
        }
        let datasets = service!(DatasetService, "dataset");
        let tables = service!(TableService, "table");
        let jobs = service!(JobService, "job");
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout())
            .build()
            .map_err(|e| Error::internal("building the BigQuery HTTP client", e))?;
        Ok(Self {
            datasets,
            tables,
            jobs,
            rest: Arc::new(Rest {
                http,
                creds,
                root: config.api_root().to_owned(),
            }),
        })
    }
}

/// Direct REST calls for what the generated clients lack, authenticated like the SDK.
#[derive(Debug)]
pub(crate) struct Rest {
    http: reqwest::Client,
    creds: Credentials,
    root: String,
}

impl Rest {
    /// `tabledata.list`: one page of a table's rows, without running (or billing) a query.
    pub async fn list_table_data(
        &self,
        project: &str,
        dataset: &str,
        table: &str,
        max_results: u32,
        page_token: Option<&str>,
    ) -> Result<serde_json::Value, Failure> {
        let url = format!(
            "{}/bigquery/v2/projects/{}/datasets/{}/tables/{}/data",
            self.root,
            segment(project),
            segment(dataset),
            segment(table)
        );
        let mut query = vec![
            ("maxResults", max_results.to_string()),
            ("formatOptions.useInt64Timestamp", "true".to_owned()),
        ];
        if let Some(token) = page_token {
            query.push(("pageToken", token.to_owned()));
        }
        let headers = match self.creds.headers(http::Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => http::HeaderMap::new(),
            Err(e) => return Err(Failure::transport(Transport::Auth, e.to_string())),
        };
        let mut request = self.http.get(url).query(&query);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_bytes());
        }
        // The SDK's own calls carry the trace context; this one is ours to label.
        if let Some(tp) = bqai_trace::traceparent() {
            request = request.header("traceparent", tp);
        }
        let response = request.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                Transport::Timeout
            } else {
                Transport::Io
            };
            Failure::transport(kind, e.to_string())
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::transport(Transport::Io, e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(Failure::from_http(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Failure::transport(Transport::Protocol, format!("tabledata.list: {e}")))
    }
}

/// A path segment: BigQuery ids are letters, digits, `_`, `-` (projects also `.` and `:`),
/// so only the characters a URL would misread are escaped.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("shop"), "shop");
        assert_eq!(segment("example.com:proj"), "example.com:proj");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn a_missing_key_file_fails_at_start() {
        let mut config = BigQueryConfig::new("p");
        config.credentials = CredentialsConfig::KeyFile {
            path: "/nonexistent/bqai-key.json".into(),
        };
        let err = credentials(&config).unwrap_err();
        assert_eq!(err.code(), "INVALID_REQUEST");
        assert!(err.to_string().contains("bqai-key.json"), "{err}");
    }
}
