//! Each encoder on its own: one batch of 8,192 rows of the export benchmark's 8 mixed columns
//! (two INT64, a DATE, a TIMESTAMP, two STRING, a FLOAT64, a NUMERIC) into a `Vec`, so the
//! time is the encoding alone, without the warehouse or the network. Throughput is in rows:
//! `cargo bench -p bqai-export --bench encoders`. The whole path (engine, encoder, HTTP) is
//! `scripts/bench-export.sh` (docs/benchmarks.md, "Exports").
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use bqai_core::model::{Field, FieldType, Value};
use bqai_export::{Encoder, Format, Options};
use chrono::{NaiveDate, TimeZone as _, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ROWS: usize = 8192;

fn columns() -> Vec<Field> {
    [
        ("id", FieldType::Int64),
        ("customer_id", FieldType::Int64),
        ("order_date", FieldType::Date),
        ("placed_at", FieldType::Timestamp),
        ("status", FieldType::String),
        ("channel", FieldType::String),
        ("amount", FieldType::Float64),
        ("price", FieldType::Numeric),
    ]
    .into_iter()
    .map(|(name, ty)| Field::new(name, ty))
    .collect()
}

fn rows() -> Vec<Vec<Value>> {
    let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let at = Utc.with_ymd_and_hms(2024, 3, 1, 10, 30, 0).unwrap();
    (0..ROWS)
        .map(|i| {
            let i = i64::try_from(i).unwrap();
            vec![
                Value::Int64(i * 1000 + 17),
                Value::Int64(i % 5000),
                Value::Date(day),
                Value::Timestamp(at),
                Value::String(["completed", "shipped", "pending"][(i % 3) as usize].into()),
                Value::String(["web", "mobile", "store"][(i % 3) as usize].into()),
                #[allow(clippy::cast_precision_loss)]
                Value::Float64(i as f64 * 1.5 + 0.25),
                Value::Numeric(format!("{}.{:02}", i % 1000, i % 100)),
            ]
        })
        .collect()
}

fn encoders(c: &mut Criterion) {
    let columns = columns();
    let rows = rows();
    let mut group = c.benchmark_group("encode 8192 rows");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.measurement_time(Duration::from_secs(5));
    for format in Format::ALL {
        group.bench_function(format.as_str(), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(1 << 20);
                let mut encoder =
                    Encoder::new(format, &columns, &Options::default(), &mut out).unwrap();
                encoder.write_batch(black_box(&rows)).unwrap();
                black_box(encoder.finish().unwrap());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);
