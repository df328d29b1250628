//! The threads BigQuery calls run on, apart from the caller's runtime.
//!
//! Decoding a BigQuery reply is synchronous CPU work on the calling thread: a `Job` goes
//! through serde visitors for hundreds of optional fields, a result page is up to
//! `query.max_response_bytes` of JSON. On an HTTP worker that work holds the worker from its
//! other connections, and in unoptimised builds the visitors' frames are large enough that a
//! `jobs.insert` reply overflowed an actix worker's 2 MiB stack (debug build, API tests on the
//! emulator). On this runtime the threads have a large stack ([`CALL_THREAD_STACK`]) and the
//! caller's thread only waits; dropping the caller's future aborts the call, which drops the
//! job's cancel guard, so a dropped request still cancels its job.

use std::future::Future;

use bqai_core::{Error, Result};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

/// Stack of a call thread. Only the pages a call touches are ever committed.
const CALL_THREAD_STACK: usize = 16 * 1024 * 1024;

/// A tokio runtime of its own, shut down in the background when the last clone goes.
pub(crate) struct CallRuntime(Option<tokio::runtime::Runtime>);

impl CallRuntime {
    /// `threads` worker threads (at least one): BigQuery calls are mostly waiting, so a few
    /// threads serve many concurrent calls.
    pub(crate) fn new(threads: usize) -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_stack_size(CALL_THREAD_STACK)
            .thread_name("bqai-bigquery")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| Error::internal("starting the BigQuery call runtime", e))
    }

    /// Runs `work` on this runtime and waits for it; the work is aborted (dropped) when the
    /// caller stops waiting.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let rt = self
            .0
            .as_ref()
            .ok_or_else(|| Error::internal_msg("the BigQuery call runtime is shut down"))?;
        // The caller's span goes along, so the call's spans (and the traceparent the SDK
        // sends) stay in the caller's trace.
        AbortOnDropHandle::new(rt.spawn(work.instrument(tracing::Span::current())))
            .await
            .map_err(|join| Error::internal("a BigQuery call on its runtime", join))?
    }

    /// Starts `work` on this runtime in the caller's span; it is aborted when the returned
    /// handle is dropped.
    pub(crate) fn spawn<F>(&self, work: F) -> Result<AbortOnDropHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let rt = self
            .0
            .as_ref()
            .ok_or_else(|| Error::internal_msg("the BigQuery call runtime is shut down"))?;
        Ok(AbortOnDropHandle::new(
            rt.spawn(work.instrument(tracing::Span::current())),
        ))
    }
}

impl std::fmt::Debug for CallRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallRuntime")
    }
}

impl Drop for CallRuntime {
    fn drop(&mut self) {
        // A plain drop blocks until tasks finish and panics inside async code.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
