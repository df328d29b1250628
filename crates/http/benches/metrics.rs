//! What the Prometheus metrics add to a request, measured on the registry itself: the
//! request middleware's count (every request, `/health` included), everything a result-cache
//! hit of `POST /api/v1/query` counts (request, cache lookup, the dry run under the cache,
//! the history record), and one scrape of a populated registry. Compare with the requests'
//! own times in docs/benchmarks.md ("Telemetry cost"):
//! `cargo bench -p bqai-http --bench metrics`.

use std::hint::black_box;
use std::time::Duration;

use bqai_http::Metrics;
use criterion::{Criterion, criterion_group, criterion_main};

fn metrics(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut entry = bqai_testkit::history::minimal("q".into(), chrono::Utc::now());
    entry.bytes_processed = 4096;
    entry.cache_hit = true;
    entry.duration_ms = 2;

    c.bench_function("metrics/request (every request)", |b| {
        b.iter(|| {
            metrics.observe_request(
                black_box("GET"),
                black_box("/health".to_owned()),
                200,
                black_box(0.000_2),
            );
        });
    });
    c.bench_function(
        "metrics/cached query (request, lookup, dry run, history)",
        |b| {
            b.iter(|| {
                metrics.observe_cache_lookup(black_box("result"), "hit");
                metrics.observe_warehouse_call(
                    black_box("dry_run"),
                    None,
                    Duration::from_micros(300),
                );
                metrics.observe_entry(black_box(&entry), 6.25);
                metrics.observe_request(
                    black_box("POST"),
                    black_box("/api/v1/query".to_owned()),
                    200,
                    black_box(0.001),
                );
            });
        },
    );
    c.bench_function("metrics/scrape (render)", |b| {
        b.iter(|| black_box(metrics.render()));
    });
}

criterion_group!(benches, metrics);
criterion_main!(benches);
