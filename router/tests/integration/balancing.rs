//! Load balancing: container concurrency, retry on connect errors, failures after the
//! request may have reached the model, draining endpoints.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Upstream, client, eventually, get, key, post, refused_addr};
use kiln_router::{RevisionSpec, Router, ServiceSpec};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_concurrency_is_never_exceeded_and_excess_requests_wait() {
    let a = Upstream::with_delay("a", Duration::from_millis(5)).await;
    let b = Upstream::with_delay("b", Duration::from_millis(5)).await;
    let router = Router::builder().build().unwrap();
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp").revision(
                RevisionSpec::new("mlp-1", 100)
                    .container_concurrency(2)
                    .endpoints([a.addr, b.addr]),
            ),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let addr = router.http_addr();
    let c = client();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    assert_eq!(get(&c, addr, "/v2/models/mlp/infer", &[]).await.status, 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.requests() + b.requests(), 200);
    assert!(a.seen.max_concurrent.load(Ordering::SeqCst) <= 2);
    assert!(b.seen.max_concurrent.load(Ordering::SeqCst) <= 2);
    // Both were used to their limit (40 clients, 4 slots).
    assert_eq!(a.seen.max_concurrent.load(Ordering::SeqCst), 2);
    assert_eq!(b.seen.max_concurrent.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_endpoint() {
    let good = Upstream::start("good").await;
    let dead = refused_addr().await;
    // Twenty routers with different seeds: about half draw the dead endpoint first.
    for seed in 0..20 {
        let router = Router::builder().seed(seed).build().unwrap();
        router
            .table()
            .upsert_service(
                ServiceSpec::new("mlp")
                    .revision(RevisionSpec::new("mlp-1", 100).endpoints([dead, good.addr])),
            )
            .unwrap();
        let router = router.start().await.unwrap();
        let reply = post(
            &client(),
            router.http_addr(),
            "/v2/models/mlp/infer",
            &seed.to_string(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.body,
            format!("good:{seed}"),
            "the body survives the retry"
        );
        router.shutdown().await;
    }
    assert_eq!(good.requests(), 20);
}

#[tokio::test]
async fn a_failure_after_the_request_was_sent_is_not_retried_and_becomes_502() {
    // An upstream that reads the request and hangs up without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    let good = Upstream::start("good").await;
    let router = Router::builder().build().unwrap();
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(RevisionSpec::new("mlp-1", 100).endpoints([rude]))
                .revision(RevisionSpec::new("mlp-2", 0).endpoints([good.addr])),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let reply = post(&client(), router.http_addr(), "/v2/models/mlp/infer", "{}").await;
    assert_eq!(reply.status, 502);
    assert!(reply.json()["error"].as_str().unwrap().contains("upstream"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(good.requests(), 0);
    server.abort();
}

#[tokio::test]
async fn all_endpoints_refusing_gives_502_with_json() {
    let router = Router::builder().build().unwrap();
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(RevisionSpec::new("mlp-1", 100).endpoints([refused_addr().await])),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let reply = get(&client(), router.http_addr(), "/v2/models/mlp/infer", &[]).await;
    assert_eq!(reply.status, 502);
    assert!(reply.json()["error"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_endpoint_takes_no_new_requests_and_its_in_flight_ones_finish() {
    let slow = Upstream::with_delay("slow", Duration::from_millis(300)).await;
    let other = Upstream::start("other").await;
    let router = Router::builder().build().unwrap();
    let table = router.table();
    table
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(RevisionSpec::new("mlp-1", 100).endpoints([slow.addr])),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let addr = router.http_addr();
    let c = client();
    let in_flight = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "/v2/models/mlp/infer", &[]).await })
    };
    eventually("request in flight", || {
        slow.seen.current.load(Ordering::SeqCst) == 1
    })
    .await;
    table.add_endpoint(&key("mlp-1"), other.addr).unwrap();
    let drained = table.drain_endpoint(&key("mlp-1"), slow.addr).unwrap();
    let drained = tokio::spawn(drained);
    for _ in 0..10 {
        assert_eq!(
            get(&c, addr, "/v2/models/mlp/infer", &[]).await.body,
            "other"
        );
    }
    assert!(!drained.is_finished(), "still one request in flight");
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "slow"));
    drained.await.unwrap();
    assert_eq!(slow.requests(), 1);
    assert_eq!(table.services()[0].revisions[0].endpoints, vec![other.addr]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_waits_while_another_endpoint_has_a_free_slot() {
    let slow = Upstream::with_delay("slow", Duration::from_secs(2)).await;
    let fast = Upstream::start("fast").await;
    let router = Router::builder().build().unwrap();
    let table = router.table();
    table
        .upsert_service(
            ServiceSpec::new("mlp").revision(
                RevisionSpec::new("mlp-1", 100)
                    .container_concurrency(1)
                    .endpoints([slow.addr]),
            ),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let addr = router.http_addr();
    let c = client();
    let first = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "/v2/models/mlp/infer", &[]).await })
    };
    eventually("the slow endpoint busy", || {
        slow.seen.current.load(Ordering::SeqCst) == 1
    })
    .await;
    // Its only slot is taken: the next request waits in the queue...
    let second = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "/v2/models/mlp/infer", &[]).await })
    };
    eventually("one queued", || table.queued(&key("mlp-1")) == Some(1)).await;
    // ...until an endpoint with a free slot appears, then goes there at once.
    table.add_endpoint(&key("mlp-1"), fast.addr).unwrap();
    let reply = second.await.unwrap();
    assert_eq!(reply.body, "fast");
    assert!(
        !first.is_finished(),
        "served while the slow one still held its slot"
    );
    for _ in 0..5 {
        assert_eq!(
            get(&c, addr, "/v2/models/mlp/infer", &[]).await.body,
            "fast"
        );
    }
    assert_eq!(first.await.unwrap().body, "slow");
    assert_eq!(slow.seen.max_concurrent.load(Ordering::SeqCst), 1);
}
