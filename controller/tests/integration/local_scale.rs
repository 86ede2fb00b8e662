//! Scaling up and down with real (fake predictor) processes on 127.0.0.1.

use crate::support;

use std::time::Duration;

use support::{Event, Harness, TEST_LIMIT, alive, gone, http_get, revision, template};
use tokio::time::{Instant, sleep, timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_from_zero_to_two_publishes_two_endpoints_that_answer() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|_| {});
        let rev = revision("mlp-00001");
        h.backend.define(template("mlp-00001", &[]));
        h.backend.scale(&rev, 2);
        let endpoints = h.ready(2).await;
        assert_ne!(endpoints[0].pid, endpoints[1].pid);
        assert_ne!(endpoints[0].http, endpoints[1].http);
        for endpoint in &endpoints {
            assert!(endpoint.http.ip().is_loopback());
            let (status, body) = http_get(endpoint.http, "/v2/health/ready").await;
            assert_eq!(status, 200);
            let info: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(info["pid"], endpoint.pid);
            // Every replica shares the backend's model cache.
            let cache = h.dir.path().join("models");
            assert_eq!(info["model_cache_dir"], cache.display().to_string());
        }
        let status = h.backend.status(&rev).unwrap();
        assert_eq!((status.desired, status.ready, status.starting), (2, 2, 0));
        let mut published = status.endpoints.clone();
        published.sort_by_key(|e| e.pid);
        let mut expected = endpoints.clone();
        expected.sort_by_key(|e| e.pid);
        assert_eq!(published, expected);
        let logs = h.backend.logs(&rev);
        for endpoint in &endpoints {
            let prefix = format!("[{}] ", endpoint.pid);
            assert!(
                logs.iter()
                    .any(|l| l.starts_with(&prefix) && l.ends_with("ready")),
                "{logs:?}"
            );
        }
        h.backend.shutdown().await;
        for endpoint in &endpoints {
            assert!(!alive(endpoint.pid));
        }
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_drains_the_newest_replica_then_stops_it() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|_| {});
        let rev = revision("mlp-00001");
        h.backend
            .define(template("mlp-00001", &[("FAKE_EXIT_DELAY_MS", "300")]));
        h.backend.scale(&rev, 1);
        let first = h.ready(1).await[0];
        h.backend.scale(&rev, 2);
        let second = h.ready(1).await[0];

        h.drain_gate.send_replace(false);
        h.backend.scale(&rev, 1);
        assert_eq!(
            h.next(Duration::from_secs(5)).await,
            Event::Draining(rev.clone(), second)
        );
        // While the router drains it, it still serves what is in flight.
        assert_eq!(http_get(second.http, "/v2/health/ready").await.0, 200);
        let drained_at = Instant::now();
        h.drain_gate.send_replace(true);
        let (removed_at, removed) = h.next_timed(Duration::from_secs(5)).await;
        assert_eq!(removed, Event::Removed(rev.clone(), second));
        // SIGTERM came after the drain: the replica's own exit delay (300 ms) follows it.
        assert!(removed_at - drained_at >= Duration::from_millis(290));
        assert!(!alive(second.pid));
        assert!(alive(first.pid));
        assert_eq!(http_get(first.http, "/v2/health/ready").await.0, 200);
        let status = h.backend.status(&rev).unwrap();
        assert_eq!((status.desired, status.ready, status.draining), (1, 1, 0));
        assert_eq!(status.endpoints, vec![first]);
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_waits_for_the_routers_drain_before_sigterm() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| c.drain_timeout = Duration::from_secs(5));
        let rev = revision("mlp-00001");
        h.backend.define(template("mlp-00001", &[]));
        h.backend.scale(&rev, 1);
        let endpoint = h.ready(1).await[0];
        // As if a request were still in flight on the endpoint: the drain does not complete.
        h.drain_gate.send_replace(false);
        h.backend.scale(&rev, 0);
        assert_eq!(
            h.next(Duration::from_secs(5)).await,
            Event::Draining(rev.clone(), endpoint)
        );
        // Well past drain_grace (50 ms): without the hand-shake it would have been stopped.
        h.quiet(Duration::from_millis(500)).await;
        assert!(alive(endpoint.pid), "stopped with a request in flight");
        h.drain_gate.send_replace(true);
        assert_eq!(
            h.next(Duration::from_secs(3)).await,
            Event::Removed(rev.clone(), endpoint)
        );
        assert!(!alive(endpoint.pid));
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_ignores_sigterm_is_killed_after_the_drain_timeout() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| c.drain_timeout = Duration::from_millis(500));
        let rev = revision("stubborn-00001");
        h.backend
            .define(template("stubborn-00001", &[("FAKE_IGNORE_TERM", "1")]));
        h.backend.scale(&rev, 1);
        let endpoint = h.ready(1).await[0];
        let asked = Instant::now();
        h.backend.scale(&rev, 0);
        assert!(matches!(
            h.next(Duration::from_secs(5)).await,
            Event::Draining(..)
        ));
        assert_eq!(
            h.next(Duration::from_secs(5)).await,
            Event::Removed(rev.clone(), endpoint)
        );
        let took = asked.elapsed();
        assert!(took >= Duration::from_millis(500), "{took:?}");
        assert!(!alive(endpoint.pid));
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_before_define_starts_once_the_template_arrives() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|_| {});
        let rev = revision("late-00001");
        h.backend.scale(&rev, 1);
        h.quiet(Duration::from_millis(300)).await;
        let status = h.backend.status(&rev).unwrap();
        assert_eq!((status.desired, status.starting, status.ready), (1, 0, 0));
        h.backend.define(template("late-00001", &[]));
        h.ready(1).await;
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_drains_and_forgets_the_revision() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|_| {});
        let rev = revision("gone-00001");
        h.backend.define(template("gone-00001", &[]));
        h.backend.scale(&rev, 1);
        let endpoint = h.ready(1).await[0];
        h.backend.remove(&rev);
        assert_eq!(
            h.next(Duration::from_secs(5)).await,
            Event::Draining(rev.clone(), endpoint)
        );
        assert_eq!(
            h.next(Duration::from_secs(5)).await,
            Event::Removed(rev.clone(), endpoint)
        );
        while h.backend.status(&rev).is_some() {
            sleep(Duration::from_millis(10)).await;
        }
        assert!(h.backend.logs(&rev).is_empty());
        assert!(!alive(endpoint.pid));
        gone(endpoint.pid, Duration::from_secs(1)).await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_stderr_goes_to_the_ring_and_the_log_file() {
    timeout(TEST_LIMIT, async {
        let logs = tempfile::tempdir().unwrap();
        let log_dir = logs.path().to_owned();
        let mut h = Harness::new(move |c| c.log_dir = Some(log_dir));
        let rev = revision("mlp-00001");
        h.backend.define(template("mlp-00001", &[]));
        h.backend.scale(&rev, 1);
        let endpoint = h.ready(1).await[0];
        let expected = format!("[{}] ready", endpoint.pid);
        let file = logs.path().join("default").join("mlp-00001.log");
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let written = std::fs::read_to_string(&file).unwrap_or_default();
            if written.lines().any(|l| l == expected) {
                break;
            }
            assert!(Instant::now() < deadline, "{file:?} holds {written:?}");
            sleep(Duration::from_millis(20)).await;
        }
        assert!(h.backend.logs(&rev).contains(&expected));
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_template_applies_to_new_replicas_only() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|_| {});
        let rev = revision("mlp-00001");
        h.backend
            .define(template("mlp-00001", &[("FAKE_MARKER", "old")]));
        h.backend.scale(&rev, 1);
        let old = h.ready(1).await[0];
        h.backend
            .define(template("mlp-00001", &[("FAKE_MARKER", "new")]));
        h.quiet(Duration::from_millis(300)).await;
        h.backend.scale(&rev, 2);
        let new = h.ready(1).await[0];
        for (endpoint, marker) in [(old, "old"), (new, "new")] {
            let (_, body) = http_get(endpoint.http, "/v2/health/ready").await;
            let info: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(info["marker"], marker);
        }
        assert!(alive(old.pid));
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_right_after_a_big_scale_up_stops_the_starts_at_once() {
    timeout(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let starts = dir.path().join("starts");
        let starts_arg = starts.display().to_string();
        let h = Harness::new(move |c| {
            // Each process notes its start before anything else, then becomes the fake.
            c.program = "/bin/sh".into();
            c.program_args = vec![
                "-c".into(),
                format!(
                    "echo $$ >> '{starts_arg}'; exec python3 '{}' \"$@\"",
                    support::fake_predictor().display()
                ),
                "sh".into(),
            ];
        });
        let rev = revision("many-00001");
        h.backend.define(template("many-00001", &[]));
        h.backend.scale(&rev, 12);
        h.backend.remove(&rev);
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.backend.status(&rev).is_some() {
            assert!(Instant::now() < deadline, "the revision was not removed");
            sleep(Duration::from_millis(20)).await;
        }
        let started = std::fs::read_to_string(&starts).unwrap_or_default();
        // The remove is taken before the second start (all 12 started before it once).
        assert!(started.lines().count() <= 2, "started: {started:?}");
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}
