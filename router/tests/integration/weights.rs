//! Canary weights and pinning.

use crate::common;

use std::sync::Arc;

use common::{Upstream, client, get};
use kiln_router::{RevisionSpec, Router, ServiceSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_at_20_percent_canary_land_within_18_to_22_percent() {
    let stable = Upstream::start("stable").await;
    let canary = Upstream::start("canary").await;
    let router = Router::builder().seed(7).build().unwrap();
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(RevisionSpec::new("mlp-1", 80).endpoints([stable.addr]))
                .revision(RevisionSpec::new("mlp-2", 20).endpoints([canary.addr])),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let addr = router.http_addr();
    let c = client();
    let canary_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let c = c.clone();
        let canary_count = canary_count.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..625 {
                let reply = get(&c, addr, "/v2/models/mlp/infer", &[]).await;
                assert_eq!(reply.status, 200);
                assert_eq!(
                    reply.body,
                    if reply.revision() == "mlp-2" {
                        "canary"
                    } else {
                        "stable"
                    }
                );
                if reply.revision() == "mlp-2" {
                    canary_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let share = canary_count.load(std::sync::atomic::Ordering::Relaxed) as f64 / 10_000.0;
    assert!((0.18..=0.22).contains(&share), "canary share {share}");
    assert_eq!(stable.requests() + canary.requests(), 10_000);
}

#[tokio::test]
async fn headers_pin_a_revision_or_a_tag_and_weight_changes_apply_to_the_next_request() {
    let one = Upstream::start("one").await;
    let two = Upstream::start("two").await;
    let router = Router::builder().build().unwrap();
    let table = router.table();
    table
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(
                    RevisionSpec::new("mlp-1", 100)
                        .tag("prev")
                        .endpoints([one.addr]),
                )
                .revision(
                    RevisionSpec::new("mlp-2", 0)
                        .tag("latest")
                        .endpoints([two.addr]),
                ),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let addr = router.http_addr();
    let c = client();
    for _ in 0..20 {
        assert_eq!(
            get(&c, addr, "/v2/models/mlp", &[]).await.revision(),
            "mlp-1"
        );
        let pinned = get(&c, addr, "/v2/models/mlp", &[("x-kiln-revision", "mlp-2")]).await;
        assert_eq!((pinned.revision(), pinned.body.as_str()), ("mlp-2", "two"));
        let tagged = get(&c, addr, "/v2/models/mlp", &[("x-kiln-tag", "latest")]).await;
        assert_eq!(tagged.revision(), "mlp-2");
    }
    let unknown_tag = get(&c, addr, "/v2/models/mlp", &[("x-kiln-tag", "nope")]).await;
    assert_eq!(unknown_tag.status, 404);

    table
        .set_traffic("default", "mlp", &[("mlp-1", 0), ("mlp-2", 100)])
        .unwrap();
    for _ in 0..20 {
        assert_eq!(
            get(&c, addr, "/v2/models/mlp", &[]).await.revision(),
            "mlp-2"
        );
    }
    assert!(
        table
            .set_traffic("default", "mlp", &[("mlp-9", 100)])
            .is_err()
    );
}
