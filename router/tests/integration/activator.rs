//! Cold start: requests wait for a revision with no ready endpoint, poke the autoscaler,
//! and drain in order once an endpoint is published; bounds: queue depth, timeout, client
//! going away.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, Upstream, client, eventually, get, key, send};
use kiln_router::{RevisionSpec, Router, RunningRouter, ServiceSpec, TableHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn cold_router(
    recorder: &Arc<Recorder>,
    depth: usize,
    timeout: Duration,
) -> (RunningRouter, TableHandle) {
    let router = Router::builder()
        .activation(recorder.clone())
        .queue_depth(depth)
        .build()
        .unwrap();
    let table = router.table();
    table
        .upsert_service(
            ServiceSpec::new("mlp")
                .timeout(timeout)
                .revision(RevisionSpec::new("mlp-1", 100)),
        )
        .unwrap();
    (router.start().await.unwrap(), table)
}

#[tokio::test]
async fn requests_wait_for_a_cold_revision_then_all_succeed_once_an_endpoint_is_published() {
    let recorder = Arc::new(Recorder::default());
    let (router, table) = cold_router(&recorder, 100, Duration::from_secs(30)).await;
    let addr = router.http_addr();
    let c = client();
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get(&c, addr, "/v2/models/mlp/infer", &[]).await })
        })
        .collect();
    eventually("20 queued requests", || {
        table.queued(&key("mlp-1")) == Some(20)
    })
    .await;
    assert_eq!(
        recorder.pokes_for(&key("mlp-1")),
        20,
        "every waiting request pokes at once"
    );

    let upstream = Upstream::start("mlp").await;
    table
        .set_endpoints(&key("mlp-1"), vec![upstream.addr])
        .unwrap();
    for request in waiting {
        let reply = request.await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "mlp"));
    }
    assert_eq!(table.queued(&key("mlp-1")), Some(0));
    // Warm now: no more pokes.
    get(&c, addr, "/v2/models/mlp/infer", &[]).await;
    assert_eq!(recorder.pokes_for(&key("mlp-1")), 20);
}

/// A held request's head gets its own memory while it waits (kiln_router's `detach_head`);
/// it must reach the upstream unchanged.
#[tokio::test]
async fn a_held_request_reaches_the_upstream_with_its_query_headers_and_body() {
    let recorder = Arc::new(Recorder::default());
    let (router, table) = cold_router(&recorder, 100, Duration::from_secs(30)).await;
    let addr = router.http_addr();
    let c = client();
    let held = tokio::spawn(async move {
        send(
            &c,
            "POST",
            format!("http://{addr}/v2/models/mlp/infer?trace=1&x=%20y"),
            &[("x-trace", "abc-123")],
            "{\"inputs\": []}",
        )
        .await
    });
    eventually("1 queued request", || {
        table.queued(&key("mlp-1")) == Some(1)
    })
    .await;
    let upstream = Upstream::start("mlp").await;
    table
        .set_endpoints(&key("mlp-1"), vec![upstream.addr])
        .unwrap();
    let reply = held.await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "mlp:{\"inputs\": []}")
    );
    assert_eq!(
        upstream.seen.heads.lock().clone(),
        vec![(
            "/v2/models/mlp/infer?trace=1&x=%20y".to_owned(),
            Some("abc-123".to_owned())
        )]
    );
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let recorder = Arc::new(Recorder::default());
    let (router, table) = cold_router(&recorder, 3, Duration::from_secs(30)).await;
    let addr = router.http_addr();
    let c = client();
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get(&c, addr, "/v2/models/mlp/infer", &[]).await })
        })
        .collect();
    eventually("3 queued", || table.queued(&key("mlp-1")) == Some(3)).await;
    let rejected = get(&c, addr, "/v2/models/mlp/infer", &[]).await;
    assert_eq!(rejected.status, 503);
    assert!(rejected.headers.contains_key("retry-after"));
    assert!(rejected.json()["error"].as_str().unwrap().contains("mlp-1"));
    for w in &waiting {
        assert!(!w.is_finished());
    }
    let upstream = Upstream::start("mlp").await;
    table
        .set_endpoints(&key("mlp-1"), vec![upstream.addr])
        .unwrap();
    for w in waiting {
        assert_eq!(w.await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn a_request_waiting_past_the_timeout_gets_504() {
    let recorder = Arc::new(Recorder::default());
    let (router, table) = cold_router(&recorder, 10, Duration::from_millis(200)).await;
    let started = tokio::time::Instant::now();
    let reply = get(&client(), router.http_addr(), "/v2/models/mlp/infer", &[]).await;
    assert_eq!(reply.status, 504);
    assert!(reply.json()["error"].is_string());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        table.queued(&key("mlp-1")),
        Some(0),
        "the timed-out request left the queue"
    );
}

#[tokio::test]
async fn a_client_going_away_removes_its_request_from_the_queue() {
    let recorder = Arc::new(Recorder::default());
    let (router, table) = cold_router(&recorder, 10, Duration::from_secs(30)).await;
    let mut stream = tokio::net::TcpStream::connect(router.http_addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /v2/models/mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    eventually("1 queued", || table.queued(&key("mlp-1")) == Some(1)).await;
    drop(stream);
    eventually("queue emptied", || table.queued(&key("mlp-1")) == Some(0)).await;

    // The slot it would have used goes to the next client, and the upstream never saw it.
    let upstream = Upstream::start("mlp").await;
    table
        .set_endpoints(&key("mlp-1"), vec![upstream.addr])
        .unwrap();
    let reply = get(&client(), router.http_addr(), "/v2/models/mlp/infer", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test]
async fn queued_requests_drain_in_arrival_order() {
    let recorder = Arc::new(Recorder::default());
    let (router, table) = cold_router(&recorder, 100, Duration::from_secs(30)).await;
    let upstream = Upstream::start("mlp").await;
    // One endpoint, one request at a time: the queue order is the service order.
    table
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(RevisionSpec::new("mlp-1", 100).container_concurrency(1)),
        )
        .unwrap();
    let mut streams = Vec::new();
    for i in 0..10 {
        let mut stream = tokio::net::TcpStream::connect(router.http_addr())
            .await
            .unwrap();
        let body = format!("{i}");
        let request = format!(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        eventually("queued", || table.queued(&key("mlp-1")) == Some(i + 1)).await;
        streams.push(stream);
    }
    table
        .set_endpoints(&key("mlp-1"), vec![upstream.addr])
        .unwrap();
    let mut finished = Vec::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with(&format!("mlp:{i}")), "{text}");
        finished.push(i);
    }
    assert_eq!(finished.len(), 10);
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(
        *upstream.seen.bodies.lock(),
        expected,
        "served in arrival order"
    );
}

#[tokio::test]
async fn a_revision_removed_while_requests_wait_answers_them_503() {
    let recorder = Arc::new(Recorder::default());
    let (router, table) = cold_router(&recorder, 10, Duration::from_secs(30)).await;
    let addr = router.http_addr();
    let c = client();
    let waiting = tokio::spawn(async move { get(&c, addr, "/v2/models/mlp/infer", &[]).await });
    eventually("queued", || table.queued(&key("mlp-1")) == Some(1)).await;
    table.remove_service("default", "mlp").unwrap();
    assert_eq!(waiting.await.unwrap().status, 503);
}
