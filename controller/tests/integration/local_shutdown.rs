//! No replica outlives `kiln up`: shutdown, the spawning thread, and a SIGKILL of the parent.

use crate::support;

use std::time::Duration;

use support::{Event, Harness, TEST_LIMIT, alive, gone, no_such_process, revision, template};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::{Instant, sleep, timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_replica_of_every_revision() {
    timeout(TEST_LIMIT, async {
        let mut h = Harness::new(|_| {});
        let a = revision("a-00001");
        let b = revision("b-00001");
        h.backend.define(template("a-00001", &[]));
        h.backend
            .define(template("b-00001", &[("FAKE_READY_DELAY_MS", "30000")]));
        h.backend.scale(&a, 2);
        h.backend.scale(&b, 1);
        let endpoints = h.ready(2).await;
        let b_pid = loop {
            let logs = h.backend.logs(&b);
            if let Some(line) = logs.iter().find(|l| l.contains("listening pid=")) {
                break line[1..line.find(']').unwrap()].parse::<u32>().unwrap();
            }
            sleep(Duration::from_millis(20)).await;
        };
        let started = Instant::now();
        h.backend.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(5));
        for endpoint in &endpoints {
            assert!(no_such_process(endpoint.pid), "{} survived", endpoint.pid);
        }
        // The replica of b never became ready: it is stopped too, and never published.
        let mut removed = 0;
        while let Ok(event) = h.events.try_recv() {
            match event.1 {
                Event::Draining(..) => {}
                Event::Removed(..) => removed += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(removed, 2);
        assert!(no_such_process(b_pid));
        assert!(h.backend.status(&a).is_none());
        // Later requests are ignored.
        h.backend.scale(&a, 1);
        assert!(h.backend.status(&a).is_none());
    })
    .await
    .expect("test ran too long");
}

const HELPER_ENV: &str = "KILN_TEST_KILN_UP_HELPER";

/// Plays `kiln up` in a child process for the test below; does nothing otherwise.
#[test]
fn kiln_up_helper_process() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut h = Harness::new(|_| {});
        let rev = revision("orphan-00001");
        h.backend.define(template("orphan-00001", &[]));
        h.backend.scale(&rev, 2);
        let endpoints = h.ready(2).await;
        println!("PIDS {} {}", endpoints[0].pid, endpoints[1].pid);
        sleep(Duration::from_secs(60)).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_kiln_up_leaves_no_replica_behind() {
    timeout(TEST_LIMIT, async {
        let mut kiln_up = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "local_shutdown::kiln_up_helper_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, "1")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(kiln_up.stdout.take().unwrap()).lines();
        let pids: Vec<u32> = loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the helper's PIDS line");
            // libtest prints `test kiln_up_helper_process ... ` just before, on the same line.
            if let Some((_, pids)) = line.split_once("PIDS ") {
                break pids.split(' ').map(|p| p.parse().unwrap()).collect();
            }
        };
        assert_eq!(pids.len(), 2);
        assert!(pids.iter().all(|&pid| alive(pid)));
        kiln_up.start_kill().unwrap();
        kiln_up.wait().await.unwrap();
        for pid in pids {
            gone(pid, Duration::from_secs(5)).await;
        }
    })
    .await
    .expect("test ran too long");
}
