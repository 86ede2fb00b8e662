//! Every replica is forked by one long-lived thread, `kiln-spawner` (alone in its test
//! binary, so that the thread count is this test's).

#[path = "fixtures/support.rs"]
mod support;

use std::time::Duration;

use support::{Harness, TEST_LIMIT, alive, revision, template};
use tokio::time::{sleep, timeout};

fn spawner_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "kiln-spawner")
        .count()
}

/// The fake predictor arms the parent-death signal (as `kiln predictor` does): a replica
/// forked from the thread that called `scale` would die with that thread.
/// Blocking threads of this runtime end 10 ms after their last task.
#[test]
fn replicas_outlive_the_threads_that_asked_for_them() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(10))
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        timeout(TEST_LIMIT, async {
            let mut h = Harness::new(|_| {});
            // The thread names itself once it runs.
            for _ in 0..100 {
                if spawner_threads() > 0 {
                    break;
                }
                sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(spawner_threads(), 1);
            let rev = revision("t-00001");
            let backend = h.backend.clone();
            std::thread::spawn(move || {
                backend.define(template("t-00001", &[]));
                backend.scale(&revision("t-00001"), 1);
            })
            .join()
            .unwrap();
            let first = h.ready(1).await[0];
            let backend = h.backend.clone();
            let rev2 = rev.clone();
            tokio::task::spawn_blocking(move || backend.scale(&rev2, 2))
                .await
                .unwrap();
            let second = h.ready(1).await[0];
            sleep(Duration::from_millis(300)).await;
            assert!(alive(first.pid) && alive(second.pid));
            assert_eq!(spawner_threads(), 1);
            h.backend.shutdown().await;
        })
        .await
        .expect("test ran too long");
    });
}
