//! WebSocket load tool for docs/benchmarks.md (run by `scripts/bench-ws.sh`). Loopback only,
//! bounded in count and time.
//!
//! ```text
//! ws_load idle <ws-url> <sessions> <hold-secs>   open and configure N sessions, hold them
//! ws_load ask  <ws-url> <asks>                   sequential asks on one session: time to the
//!                                                first `status` and to `result`, p50/p95
//! ```
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn event(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("connection closed"))??;
        if let Message::Text(t) = frame {
            return Ok(serde_json::from_str(&t)?);
        }
    }
}

async fn open(url: &str) -> anyhow::Result<Ws> {
    // No Nagle delay on small frames (a browser's WebSocket does not wait either).
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    ws.send(Message::Text(
        json!({"type": "configure"}).to_string().into(),
    ))
    .await?;
    let ev = event(&mut ws).await?;
    anyhow::ensure!(ev["type"] == "configured", "unexpected {ev}");
    Ok(ws)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("idle") if args.len() == 5 => {
            let url = args[2].clone();
            let n: usize = args[3].parse()?;
            let hold: u64 = args[4].parse()?;
            let started = Instant::now();
            let mut sessions = Vec::with_capacity(n);
            // Open in batches of 50 so the accept queue is not the bottleneck.
            for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
                let opened = futures::future::join_all(chunk.iter().map(|_| open(&url))).await;
                for ws in opened {
                    sessions.push(ws?);
                }
            }
            println!(
                "open {} sessions in {:.1} s; holding {hold} s",
                sessions.len(),
                started.elapsed().as_secs_f64()
            );
            // Hold them, answering the server's pings (reading each socket now and then).
            let until = Instant::now() + Duration::from_secs(hold);
            while Instant::now() < until {
                for ws in &mut sessions {
                    while let Ok(Some(_)) =
                        tokio::time::timeout(Duration::from_millis(1), ws.next()).await
                    {
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            println!("held {} sessions", sessions.len());
        }
        Some("ask") if args.len() == 4 => {
            let url = &args[2];
            let n: usize = args[3].parse()?;
            let questions = [
                "revenue by country in 2024",
                "orders by channel",
                "top 5 products by revenue",
                "average order value by month in 2023",
            ];
            let mut ws = open(url).await?;
            let (mut first, mut result) = (Vec::new(), Vec::new());
            for i in 0..n {
                let id = format!("b{i}");
                let q = questions[i % questions.len()];
                let t0 = Instant::now();
                ws.send(Message::Text(
                    json!({"type": "ask", "question": q, "request_id": id})
                        .to_string()
                        .into(),
                ))
                .await?;
                let mut got_first = false;
                loop {
                    let ev = event(&mut ws).await?;
                    if !got_first {
                        first.push(t0.elapsed().as_secs_f64() * 1000.0);
                        got_first = true;
                    }
                    match ev["type"].as_str() {
                        Some("result") => result.push(t0.elapsed().as_secs_f64() * 1000.0),
                        Some("done") => break,
                        Some("error") => anyhow::bail!("ask failed: {ev}"),
                        _ => {}
                    }
                }
            }
            first.sort_by(f64::total_cmp);
            result.sort_by(f64::total_cmp);
            println!(
                "asks {n}: first status p50 {:.2} ms p95 {:.2} ms; result p50 {:.1} ms p95 {:.1} ms",
                percentile(&first, 0.5),
                percentile(&first, 0.95),
                percentile(&result, 0.5),
                percentile(&result, 0.95)
            );
        }
        _ => anyhow::bail!("usage: ws_load idle <url> <sessions> <hold-secs> | ask <url> <asks>"),
    }
    Ok(())
}
