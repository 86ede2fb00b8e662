//! Load statistics: time-weighted concurrency counting queued requests, samples handed to
//! the LoadSink, and the same figures as Prometheus text.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, Upstream, client, eventually, get, key};
use kiln_router::stats::LoadWindow;
use kiln_router::{RevisionSpec, Router, ServiceSpec};
use tokio::time::Instant;

#[test]
fn the_window_averages_concurrency_over_time_and_counts_arrivals() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut window = LoadWindow::new(t0);
    window.arrive(t0); // one request for the whole second
    window.arrive(ms(500)); // another for the second half
    window.arrive(ms(500));
    window.depart(ms(750));
    let figures = window.take(ms(1000));
    // 1 * 1.0 + 1 * 0.5 + 1 * 0.25 = 1.75
    assert!(
        (figures.average_concurrency - 1.75).abs() < 1e-9,
        "{figures:?}"
    );
    assert!((figures.requests_per_second - 3.0).abs() < 1e-9);
    // The next window starts with the two still present and no arrivals.
    let next = window.take(ms(2000));
    assert!((next.average_concurrency - 2.0).abs() < 1e-9);
    assert_eq!(next.requests_per_second, 0.0);
    assert_eq!(window.level(), 2);
}

#[tokio::test]
async fn samples_count_requests_held_in_the_activator_queue() {
    let recorder = Arc::new(Recorder::default());
    let router = Router::builder()
        .load_sink(recorder.clone())
        .activation(recorder.clone())
        .sample_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let table = router.table();
    table
        .upsert_service(ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100)))
        .unwrap();
    let router = router.start().await.unwrap();
    let addr = router.http_addr();
    let c = client();
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get(&c, addr, "/v2/models/mlp/infer", &[]).await })
        })
        .collect();
    eventually("4 queued", || table.queued(&key("mlp-1")) == Some(4)).await;
    recorder.samples.lock().clear();
    eventually("two full samples", || recorder.samples.lock().len() >= 2).await;
    let sample = recorder.samples.lock()[1].clone();
    assert_eq!(sample.revision, key("mlp-1"));
    assert!(
        (sample.average_concurrency - 4.0).abs() < 1e-6,
        "{sample:?}"
    );
    assert_eq!(sample.requests_per_second, 0.0);
    let upstream = Upstream::start("mlp").await;
    table
        .set_endpoints(&key("mlp-1"), vec![upstream.addr])
        .unwrap();
    for w in waiting {
        assert_eq!(w.await.unwrap().status, 200);
    }
    // After they finish, the figures go back to zero.
    recorder.samples.lock().clear();
    eventually("two more samples", || recorder.samples.lock().len() >= 2).await;
    assert_eq!(recorder.samples.lock()[1].average_concurrency, 0.0);

    let metrics = get(&c, addr, "/metrics", &[]).await.body;
    let labels = r#"namespace="default",revision="mlp-1",service="mlp""#;
    for series in [
        format!("kiln_router_responses_total{{class=\"2xx\",{labels}}} 4"),
        format!("kiln_router_request_duration_seconds_count{{{labels}}} 4"),
        format!("kiln_router_activator_queue_seconds_count{{{labels}}} 4"),
        format!("kiln_router_cold_start_wait_seconds_count{{{labels}}} 4"),
        format!("kiln_router_average_concurrency{{{labels}}} 0"),
    ] {
        assert!(metrics.contains(&series), "missing {series} in\n{metrics}");
    }
}

#[tokio::test]
async fn samples_report_requests_per_second() {
    let recorder = Arc::new(Recorder::default());
    let upstream = Upstream::start("mlp").await;
    let router = Router::builder()
        .load_sink(recorder.clone())
        .sample_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(RevisionSpec::new("mlp-1", 100).endpoints([upstream.addr])),
        )
        .unwrap();
    let router = router.start().await.unwrap();
    let c = client();
    eventually("a sample", || !recorder.samples.lock().is_empty()).await;
    let first = recorder.samples.lock().len();
    for _ in 0..20 {
        get(&c, router.http_addr(), "/v2/models/mlp/infer", &[]).await;
    }
    eventually("two more samples", || {
        recorder.samples.lock().len() >= first + 2
    })
    .await;
    let samples = recorder.samples.lock().clone();
    // Arrivals = sum of rate x window length over the windows since the requests started.
    let total: f64 = (first..samples.len())
        .map(|i| samples[i].requests_per_second * (samples[i].at - samples[i - 1].at).as_secs_f64())
        .sum();
    assert!((total - 20.0).abs() < 1e-6, "{total}");
}
