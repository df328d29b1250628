//! The server's Prometheus metrics, served by `GET /metrics` ([`crate::routes::metrics`]): a
//! registry this server owns (prometheus-client:
//! no process-global recorder, so every server — and every test app in one process — has its
//! own numbers, and the registry is passed explicitly like every other dependency).
//!
//! Today it holds the store's gauges (size, free bytes, rows per table), refreshed from the
//! maintenance round's latest [`StoreStats`] at each scrape; request, warehouse, cache and LLM
//! families join the same registry.

use bqai_core::model::StoreStats;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    store_size: Family<Labels, Gauge>,
    store_free: Family<Labels, Gauge>,
    store_rows: Family<Labels, Gauge>,
    store_measured: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bqai");
        let store_size = Family::<Labels, Gauge>::default();
        let store_free = Family::<Labels, Gauge>::default();
        let store_rows = Family::<Labels, Gauge>::default();
        let store_measured = Family::<Labels, Gauge>::default();
        registry.register(
            "store_size_bytes",
            "Bytes of the durable store on disk (SQLite file and WAL, or PostgreSQL tables)",
            store_size.clone(),
        );
        registry.register(
            "store_free_bytes",
            "Bytes of free pages in the store not yet given back (SQLite)",
            store_free.clone(),
        );
        registry.register(
            "store_rows",
            "Rows per table of the durable store",
            store_rows.clone(),
        );
        registry.register(
            "store_measured_timestamp_seconds",
            "When the store was last measured (Unix time)",
            store_measured.clone(),
        );
        Self {
            registry,
            store_size,
            store_free,
            store_rows,
            store_measured,
        }
    }

    /// Sets the store's gauges from a measurement.
    pub fn observe_store(&self, stats: &StoreStats) {
        let backend: Labels = vec![("backend", stats.backend.clone())];
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.store_size
            .get_or_create(&backend)
            .set(gauge(stats.size_bytes));
        self.store_free
            .get_or_create(&backend)
            .set(gauge(stats.free_bytes));
        self.store_measured
            .get_or_create(&backend)
            .set(stats.measured_at.timestamp());
        for (table, rows) in &stats.rows {
            self.store_rows
                .get_or_create(&vec![
                    ("backend", stats.backend.clone()),
                    ("table", table.clone()),
                ])
                .set(gauge(*rows));
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_gauges_are_exposed_per_table() {
        let m = Metrics::new();
        m.observe_store(&StoreStats {
            backend: "sqlite".into(),
            size_bytes: 4096,
            free_bytes: 0,
            rows: [
                ("audit_log".to_owned(), 12),
                ("query_history".to_owned(), 3),
            ]
            .into(),
            measured_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        });
        let text = m.render();
        for line in [
            "# TYPE bqai_store_size_bytes gauge",
            "bqai_store_size_bytes{backend=\"sqlite\"} 4096",
            "bqai_store_rows{backend=\"sqlite\",table=\"audit_log\"} 12",
            "bqai_store_rows{backend=\"sqlite\",table=\"query_history\"} 3",
            "bqai_store_measured_timestamp_seconds{backend=\"sqlite\"} 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
