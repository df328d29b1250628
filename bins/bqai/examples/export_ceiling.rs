//! The ceiling of docs/benchmarks.md's export measurements: DataFusion's own CSV and Parquet
//! writers on the same generated rows bqai exports (the demo tables, a cross join of orders
//! and products: 8 mixed columns), into files, timed.
//!
//!   cargo run --profile dist -p bqai --example export_ceiling -- DIR [ROWS...]
//!
//! `scripts/bench-export.sh` runs it next to bqai's exports.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
// The benchmark runs its own fixed statements (and a CREATE SCHEMA) on its own session, never a
// user's SQL: the rule that user SQL goes through `sql_with_options` does not apply.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Instant;

use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// The benchmark's statement for `rows` rows (`scripts/bench-export.sh` sends the same one).
fn statement(rows: u64) -> String {
    let products = rows.div_ceil(100_000).max(1);
    format!(
        "SELECT o.order_id * 1000 + p.product_id AS id, o.customer_id, o.order_date, \
         CAST(o.order_date AS TIMESTAMP) + INTERVAL '90 minutes' AS placed_at, \
         o.status, o.channel, p.unit_price * 1.5 AS amount, \
         CAST(p.unit_price AS DECIMAL(12, 2)) AS price \
         FROM shop.orders o CROSS JOIN shop.products p WHERE p.product_id <= {products} \
         LIMIT {rows}"
    )
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("an output directory"));
    let sizes: Vec<u64> = args.map(|a| a.parse().expect("a row count")).collect();
    let ctx = SessionContext::new();
    ctx.sql("CREATE SCHEMA shop").await?.collect().await?;
    for (name, batch) in bqai_local::demo::tables() {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        ctx.register_table(format!("shop.{name}").as_str(), Arc::new(table))?;
    }
    println!("| format | rows | seconds | rows/s | bytes |");
    println!("|---|---|---|---|---|");
    for rows in sizes {
        for format in ["csv", "parquet"] {
            let path = dir.join(format!("ceiling-{rows}.{format}"));
            let frame = ctx.sql(&statement(rows)).await?;
            let options = DataFrameWriteOptions::new().with_single_file_output(true);
            let started = Instant::now();
            let path_str = path.to_str().expect("a UTF-8 path");
            if format == "csv" {
                frame.write_csv(path_str, options, None).await?;
            } else {
                let mut parquet = TableParquetOptions::default();
                // The same codec as bqai's encoder.
                parquet.global.compression = Some("snappy".to_owned());
                frame
                    .write_parquet(path_str, options, Some(parquet))
                    .await?;
            }
            let took = started.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&path)?.len();
            #[allow(clippy::cast_precision_loss)]
            let rate = rows as f64 / took;
            println!("| datafusion {format} | {rows} | {took:.2} | {rate:.0} | {bytes} |");
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
