//! Replicas that crash, never become ready, or cannot start.

use crate::support;

use std::time::Duration;

use support::{Event, Harness, TEST_LIMIT, alive, gone, revision, template};
use tokio::time::{sleep, timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replica_is_removed_at_once_and_replaced_after_a_back_off() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| {
            c.restart_backoff_min = Duration::from_millis(300);
            c.restart_backoff_max = Duration::from_secs(2);
        });
        let rev = revision("flaky-00001");
        h.backend
            .define(template("flaky-00001", &[("FAKE_CRASH_AFTER_MS", "400")]));
        h.backend.scale(&rev, 1);

        let (ready_at, first) = match h.next_timed(Duration::from_secs(10)).await {
            (at, Event::Ready(_, endpoint)) => (at, endpoint),
            other => panic!("{other:?}"),
        };
        let (removed_at, removed) = h.next_timed(Duration::from_secs(5)).await;
        assert_eq!(removed, Event::Removed(rev.clone(), first));
        // Removed as soon as it died (it crashes 400 ms after ready), not after a poll period.
        let lived = removed_at - ready_at;
        assert!(lived < Duration::from_millis(1000), "{lived:?}");
        assert!(!alive(first.pid));

        let (second_at, second) = match h.next_timed(Duration::from_secs(5)).await {
            (at, Event::Ready(_, endpoint)) => (at, endpoint),
            other => panic!("{other:?}"),
        };
        assert_ne!(second.pid, first.pid);
        assert!(second_at - removed_at >= Duration::from_millis(300));
        // The second crash doubles the back-off.
        let (removed_again_at, _) = h.next_timed(Duration::from_secs(5)).await;
        let (third_at, third) = h.next_timed(Duration::from_secs(5)).await;
        assert!(matches!(third, Event::Ready(..)), "{third:?}");
        assert!(third_at - removed_again_at >= Duration::from_millis(600));

        let status = h.backend.status(&rev).unwrap();
        assert!(status.restarts >= 2, "{status:?}");
        let error = status.last_error.unwrap();
        assert!(error.contains("crashing on purpose"), "{error}");
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_not_ready_in_time_is_killed_and_counts_as_a_failure() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| {
            c.ready_timeout = Duration::from_millis(500);
            c.restart_backoff_min = Duration::from_secs(5);
        });
        let rev = revision("slow-00001");
        h.backend
            .define(template("slow-00001", &[("FAKE_READY_DELAY_MS", "60000")]));
        h.backend.scale(&rev, 1);
        let status = loop {
            let status = h.backend.status(&rev).unwrap();
            if status.restarts >= 1 {
                break status;
            }
            sleep(Duration::from_millis(20)).await;
        };
        assert_eq!((status.ready, status.starting), (0, 0));
        let error = status.last_error.unwrap();
        assert!(error.contains("not ready within"), "{error}");
        // The stalled replica was killed.
        let line = h
            .backend
            .logs(&rev)
            .into_iter()
            .find(|l| l.contains("listening pid="))
            .expect("the replica's log");
        let pid: u32 = line[1..line.find(']').unwrap()].parse().unwrap();
        gone(pid, Duration::from_secs(1)).await;
        h.quiet(Duration::from_millis(200)).await;
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_keep_failing_to_start_make_the_revision_unschedulable() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| {
            c.max_start_failures = 3;
            c.restart_backoff_min = Duration::from_millis(20);
            c.restart_backoff_max = Duration::from_millis(100);
        });
        let rev = revision("broken-00001");
        let line = "error: no model at file:///nowhere";
        h.backend
            .define(template("broken-00001", &[("FAKE_FAIL_AT_START", line)]));
        h.backend.scale(&rev, 1);
        match h.next(Duration::from_secs(10)).await {
            Event::Unschedulable(r, reason) => {
                assert_eq!(r, rev);
                assert!(reason.contains(line), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let restarts = h.backend.status(&rev).unwrap().restarts;
        // Reported once, while the backend keeps trying.
        h.quiet(Duration::from_millis(800)).await;
        let status = h.backend.status(&rev).unwrap();
        assert!(status.restarts > restarts, "{status:?}");
        assert!(status.last_error.unwrap().contains(line));
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_be_run_is_reported() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|c| {
            c.program = "/nonexistent/kiln".into();
            c.max_start_failures = 2;
            c.restart_backoff_min = Duration::from_millis(10);
            c.restart_backoff_max = Duration::from_millis(20);
        });
        let rev = revision("nobin-00001");
        h.backend.define(template("nobin-00001", &[]));
        h.backend.scale(&rev, 1);
        match h.next(Duration::from_secs(5)).await {
            Event::Unschedulable(_, reason) => {
                assert!(reason.contains("/nonexistent/kiln"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        h.backend.shutdown().await;
    })
    .await
    .expect("test ran too long");
}
