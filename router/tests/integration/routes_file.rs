//! The routes file: parsing, and hot reload under load without a failed request.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Upstream, client, eventually, get};
use kiln_router::routes_file::{self, parse, parse_duration};
use kiln_router::{DEFAULT_TIMEOUT, Router};

const EXAMPLE: &str = r#"
services:
  - name: mlp                    # the model name in /v2/models/{name}
    namespace: default
    timeout: 300s
    revisions:
      - name: mlp-predictor-00001
        percent: 90
        tags: [prev]
        containerConcurrency: 0
        endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"]
      - name: mlp-predictor-00002
        percent: 10
        tags: [latest]
        endpoints: []
"#;

#[test]
fn the_documented_example_parses() {
    let services = parse(EXAMPLE, DEFAULT_TIMEOUT).unwrap();
    assert_eq!(services.len(), 1);
    let mlp = &services[0];
    assert_eq!(
        (mlp.name.as_str(), mlp.namespace.as_str()),
        ("mlp", "default")
    );
    assert_eq!(mlp.timeout, Duration::from_secs(300));
    assert_eq!(mlp.revisions[0].percent, 90);
    assert_eq!(mlp.revisions[0].tags, vec!["prev"]);
    assert_eq!(mlp.revisions[0].endpoints.len(), 2);
    assert!(mlp.revisions[1].endpoints.is_empty());
}

#[test]
fn bad_files_name_the_problem() {
    assert!(
        parse("services: [{name: a, colour: red}]", DEFAULT_TIMEOUT)
            .unwrap_err()
            .contains("colour")
    );
    let bad_endpoint = "services: [{name: a, revisions: [{name: r, endpoints: [nowhere]}]}]";
    assert!(
        parse(bad_endpoint, DEFAULT_TIMEOUT)
            .unwrap_err()
            .contains("nowhere")
    );
    assert!(
        parse(
            "services: [{name: a, timeout: 5 fortnights}]",
            DEFAULT_TIMEOUT
        )
        .is_err()
    );
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    // One grammar with the manifests and the CLI (Go's): a bare number has no unit.
    let refused = parse_duration("2").unwrap_err();
    assert!(refused.contains("unit is missing"), "{refused}");
    assert!(parse("services: [{name: a, timeout: 60}]", DEFAULT_TIMEOUT).is_err());
}

fn routes(revision: &str, addr: std::net::SocketAddr) -> String {
    format!(
        "services:\n  - name: mlp\n    revisions:\n      - name: {revision}\n        percent: 100\n        endpoints: [\"{addr}\"]\n"
    )
}

fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_file_change_under_load_takes_effect_with_zero_failed_requests() {
    let old = Upstream::start("old").await;
    let new = Upstream::start("new").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    write_atomically(&path, &routes("mlp-1", old.addr));

    let router = Router::builder().build().unwrap();
    let table = router.table();
    routes_file::apply(&path, &table, DEFAULT_TIMEOUT).unwrap();
    let router = router.start().await.unwrap();
    let watcher = tokio::spawn(routes_file::watch(
        path.clone(),
        table.clone(),
        Duration::from_millis(20),
        DEFAULT_TIMEOUT,
    ));

    let addr = router.http_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let c = client();
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (c, stop, done) = (c.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let reply = get(&c, addr, "/v2/models/mlp/infer", &[]).await;
                    assert_eq!(reply.status, 200, "{}", reply.body);
                    revisions.push(reply.revision().to_owned());
                    done.fetch_add(1, Ordering::Relaxed);
                }
                revisions
            })
        })
        .collect();
    eventually("load running", || done.load(Ordering::Relaxed) >= 200).await;
    write_atomically(&path, &routes("mlp-2", new.addr));
    eventually("traffic on the new revision", || new.requests() >= 200).await;
    // A broken file is rejected and the table stays as it was.
    write_atomically(&path, "services: [{{");
    let before = new.requests();
    eventually("more traffic on the new revision", || {
        new.requests() >= before + 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut seen_old = false;
    let mut seen_new = false;
    for worker in load {
        let revisions = worker.await.unwrap();
        seen_old |= revisions.iter().any(|r| r == "mlp-1");
        seen_new |= revisions.iter().any(|r| r == "mlp-2");
        // Once a worker sees the new revision it never goes back.
        let first_new = revisions.iter().position(|r| r == "mlp-2").unwrap();
        assert!(revisions[first_new..].iter().all(|r| r == "mlp-2"));
    }
    assert!(seen_old && seen_new);
    assert_eq!(table.services()[0].revisions[0].name, "mlp-2");
    watcher.abort();
}
