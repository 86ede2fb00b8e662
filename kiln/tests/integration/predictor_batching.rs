//! Dynamic batching: concurrent callers are joined into fewer model runs, and each caller
//! gets exactly its own rows back.

use crate::common;

use common::{Predictor, assert_close, fixtures, input_row, reference_mlp};
use serde_json::{Value, json};

fn batching_args(dir: &std::path::Path) -> Vec<&str> {
    vec![
        "--model-name",
        "mlp",
        "--storage-uri",
        dir.to_str().unwrap(),
        "--max-batch-size",
        "16",
        "--max-batch-delay-ms",
        "20",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_each_get_their_own_rows() {
    let dir = fixtures().join("mlp");
    let p = Predictor::start(&batching_args(&dir));
    check_batched_answers(&p).await;
}

/// On one CPU the model thread is woken when the runtime parks, not on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_one_cpu_concurrent_callers_each_get_their_own_rows() {
    let dir = fixtures().join("mlp");
    let p = Predictor::start_on_one_cpu(&batching_args(&dir));
    check_batched_answers(&p).await;
}

/// 48 concurrent callers of 1-3 rows each: every caller gets its own rows' outputs, and the
/// model ran fewer than 48 times.
async fn check_batched_answers(p: &Predictor) {
    let client = reqwest::Client::new();
    let calls = (0..48).map(|i| {
        let client = client.clone();
        let url = p.url("/v2/models/mlp/infer");
        async move {
            let rows: Vec<Vec<f32>> = (0..1 + i % 3).map(|k| input_row(i * 10 + k)).collect();
            let body = json!({"inputs": [{"name": "input", "shape": [rows.len(), 784], "datatype": "FP32", "data": rows}]});
            let v: Value = client.post(url).json(&body).send().await.unwrap().json().await.unwrap();
            (rows, v)
        }
    });
    let results = futures::future::join_all(calls).await;
    for (rows, v) in &results {
        let out: Vec<f32> = v["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(out.len(), rows.len() * 10, "{v}");
        for (r, row) in rows.iter().enumerate() {
            assert_close(&out[r * 10..(r + 1) * 10], &reference_mlp(row));
        }
    }
    let metrics = client
        .get(p.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let runs: f64 = metrics
        .lines()
        .find(|l| l.starts_with("kiln_predictor_batch_size_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("batch size histogram");
    assert!(
        runs < 48.0,
        "48 concurrent requests ran as {runs} model runs: nothing was batched"
    );
}
