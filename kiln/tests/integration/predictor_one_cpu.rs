//! A predictor given one CPU (as in a one-core pod) runs its runtime threads under
//! `SCHED_BATCH`, so arriving requests do not preempt the model thread mid-run
//! (kiln_predictor::one_cpu); with more CPUs every thread keeps the default policy.

use crate::common;

use common::{Predictor, assert_close, fixtures, input_row, reference_mlp};
use serde_json::{Value, json};

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

fn mlp_args(dir: &std::path::Path) -> Vec<&str> {
    vec![
        "--model-name",
        "mlp",
        "--storage-uri",
        dir.to_str().unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_one_cpu_runtime_threads_do_not_preempt_the_model_thread() {
    let dir = fixtures().join("mlp");
    let p = Predictor::start_on_one_cpu(&mlp_args(&dir));
    answer_concurrent_callers(&p).await;
    let threads = thread_policies(p.child.id());
    let runtime: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name == "tokio-rt-worker")
        .collect();
    assert!(!runtime.is_empty(), "no runtime threads in {threads:?}");
    assert!(
        runtime.iter().all(|(_, policy)| *policy == SCHED_BATCH),
        "{threads:?}"
    );
    assert!(
        threads.contains(&("kiln-model".to_owned(), SCHED_OTHER)),
        "the model thread keeps the default policy: {threads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_more_cpus_every_thread_keeps_the_default_policy() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skipped: this machine has one CPU");
        return;
    }
    let dir = fixtures().join("mlp");
    let p = Predictor::start(&mlp_args(&dir));
    answer_concurrent_callers(&p).await;
    let threads = thread_policies(p.child.id());
    assert!(
        threads.iter().all(|(_, policy)| *policy == SCHED_OTHER),
        "{threads:?}"
    );
}

/// 16 concurrent callers, each answered with its own row's outputs.
async fn answer_concurrent_callers(p: &Predictor) {
    let client = reqwest::Client::new();
    let calls = (0..16).map(|i| {
        let client = client.clone();
        let url = p.url("/v2/models/mlp/infer");
        async move {
            let row = input_row(i);
            let body = json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": row}]});
            let v: Value = client.post(url).json(&body).send().await.unwrap().json().await.unwrap();
            (row, v)
        }
    });
    for (row, v) in futures::future::join_all(calls).await {
        let out: Vec<f32> = v["outputs"][0]["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_close(&out, &reference_mlp(&row));
    }
}

/// Each thread of process `pid`: its name and scheduling policy (`/proc/PID/task/TID/stat`,
/// field 41).
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .map(|stat| {
            let open = stat.find('(').unwrap();
            let close = stat.rfind(')').unwrap();
            let name = stat[open + 1..close].to_owned();
            // Fields after the name start at field 3 (the state).
            let policy = stat[close + 1..]
                .split_whitespace()
                .nth(41 - 3)
                .and_then(|f| f.parse().ok())
                .unwrap();
            (name, policy)
        })
        .collect()
}
