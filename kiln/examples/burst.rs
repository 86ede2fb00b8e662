//! Sends N concurrent v2 inference requests for the fixture MLP at once and prints their
//! latencies as JSON (used by benches/cold_start.py for the burst at zero replicas).
//!
//! `cargo run --release -p kiln --example burst -- URL [N]`

use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: burst URL [N]"))?;
    let n: usize = args.next().map_or(Ok(200), |n| n.parse())?;
    let row: Vec<f32> = (0..784)
        .map(|i| ((i * 7 + 13) % 23) as f32 / 23.0 - 0.5)
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": row}]
    }))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()?;
    let started = Instant::now();
    let calls = (0..n).map(|_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let status = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            (status, t0.elapsed().as_secs_f64() * 1000.0)
        })
    });
    let mut results = Vec::with_capacity(n);
    for call in calls.collect::<Vec<_>>() {
        results.push(call.await?);
    }
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let mut latencies: Vec<f64> = results.iter().map(|(_, ms)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((p * latencies.len() as f64) as usize).min(latencies.len() - 1)];
    println!(
        "{}",
        serde_json::json!({"n": n, "ok": ok, "wall_ms": wall_ms, "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": latencies[latencies.len() - 1]})
    );
    Ok(())
}
