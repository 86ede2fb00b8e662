//! `kiln up` end to end: real predictor processes, the real router and autoscaler, on
//! loopback, with Knative's smallest windows (6 s stable window, 6 s grace period).

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::mlp_body;
use common::up::{Up, manifest, nix_kill};
use serde_json::Value;

fn replicas(service: &Value, revision: &str) -> (u64, u64) {
    let r = &service["status"]["components"]["predictor"]["kilnReplicas"][revision];
    (
        r["desired"].as_u64().unwrap_or(0),
        r["ready"].as_u64().unwrap_or(0),
    )
}

fn ready(service: &Value) -> bool {
    service["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn percent_of(service: &Value, revision: &str) -> i64 {
    service["status"]["components"]["predictor"]["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["revisionName"] == revision)
        .and_then(|t| t["percent"].as_i64())
        .unwrap_or(0)
}

async fn infer(client: &reqwest::Client, up: &Up, name: &str) -> Result<String, String> {
    let r = client
        .post(up.url(&format!("/v2/models/{name}/infer")))
        .json(&mlp_body(1))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let revision = r
        .headers()
        .get("x-kiln-revision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = r.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(revision)
}

/// Sends requests from `workers` loops until stopped; counts successes and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(up: &Up, name: &str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let url = up.url(&format!("/v2/models/{name}/infer"));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, ok, failed, url) =
                    (stop.clone(), ok.clone(), failed.clone(), url.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        match client.post(&url).json(&mlp_body(2)).send().await {
                            Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            Ok(r) => {
                                eprintln!("load: {}", r.status());
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) => {
                                eprintln!("load: {e}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_at_zero_replicas_succeeds_then_idles_back_to_zero() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    let annotations = "    minReplicas: 0\n";
    let text = manifest("burst", annotations, "1").replace(
        "metadata:\n  name: burst\n",
        "metadata:\n  name: burst\n  annotations:\n    autoscaling.knative.dev/initial-scale: \"0\"\n",
    );
    up.apply(&text);
    let service = up.get("burst");
    assert_eq!(
        replicas(&service, "burst-predictor-00001"),
        (0, 0),
        "starts at zero"
    );

    let client = reqwest::Client::new();
    let started = Instant::now();
    let calls = (0..200).map(|_| infer(&client, &up, "burst"));
    let results = futures::future::join_all(calls).await;
    let failures: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} of 200 failed: {:?}",
        failures.len(),
        failures.first()
    );
    eprintln!(
        "200 requests from zero replicas answered in {:?}",
        started.elapsed()
    );

    // No traffic for stable window + grace: back to zero; the next request brings one back.
    up.wait_for("burst", Duration::from_secs(40), "scale to zero", |s| {
        replicas(s, "burst-predictor-00001") == (0, 0)
    });
    assert_eq!(
        infer(&client, &up, "burst").await.unwrap(),
        "burst-predictor-00001"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_promote_and_rollback_under_steady_load() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    up.apply(&manifest("mlp", "    minReplicas: 1\n", "v1"));
    up.wait_for("mlp", Duration::from_secs(30), "v1 ready", ready);
    let load = Load::start(&up, "mlp", 2);

    // A new spec with a 10% canary.
    up.apply(&manifest(
        "mlp",
        "    minReplicas: 1\n    canaryTrafficPercent: 10\n",
        "v2",
    ));
    up.wait_for("mlp", Duration::from_secs(30), "v2 ready with 10%", |s| {
        ready(s) && percent_of(s, "mlp-predictor-00002") == 10
    });
    let client = reqwest::Client::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..2000 {
        *counts
            .entry(infer(&client, &up, "mlp").await.unwrap())
            .or_default() += 1;
    }
    let canary = counts.get("mlp-predictor-00002").copied().unwrap_or(0);
    assert!(
        (160..=240).contains(&canary),
        "canary answered {canary} of 2000: {counts:?}"
    );

    // Promote: 100% on the new revision.
    let out = up.kiln(&["rollout", "promote", "mlp", "--wait", "--timeout", "30s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..50 {
        assert_eq!(
            infer(&client, &up, "mlp").await.unwrap(),
            "mlp-predictor-00002"
        );
    }

    // A third spec rolls out fully, then rollback sends everything back to the second.
    up.apply(&manifest("mlp", "    minReplicas: 1\n", "v3"));
    up.wait_for("mlp", Duration::from_secs(30), "v3 rolled out", |s| {
        ready(s) && percent_of(s, "mlp-predictor-00003") == 100
    });
    let out = up.kiln(&["rollout", "rollback", "mlp", "--wait", "--timeout", "30s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let service = up.get("mlp");
    assert_eq!(
        percent_of(&service, "mlp-predictor-00002"),
        100,
        "{service}"
    );
    for _ in 0..50 {
        assert_eq!(
            infer(&client, &up, "mlp").await.unwrap(),
            "mlp-predictor-00002"
        );
    }
    let (ok, failed) = load.stop().await;
    assert!(ok > 0);
    assert_eq!(
        failed, 0,
        "requests failed during the rollout changes ({ok} succeeded)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_costs_at_most_its_in_flight_requests() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    up.apply(&manifest("mlp", "    minReplicas: 2\n", "a"));
    up.wait_for("mlp", Duration::from_secs(30), "two replicas", |s| {
        replicas(s, "mlp-predictor-00001").1 == 2
    });
    let workers = 4;
    let load = Load::start(&up, "mlp", workers);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = up.replica_pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(nix_kill(pids[0], "KILL"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, failed) = load.stop().await;
    assert!(ok > 100, "the service kept answering ({ok} ok)");
    assert!(
        failed <= workers,
        "{failed} failures, more than the {workers} requests that could be in flight"
    );
    up.wait_for("mlp", Duration::from_secs(30), "replaced replica", |s| {
        replicas(s, "mlp-predictor-00001").1 == 2
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_and_restart_keeps_services_and_leaves_no_orphans() {
    let state = tempfile::tempdir().unwrap();
    let mut up = Up::start(state.path());
    up.apply(&manifest("mlp", "    minReplicas: 1\n", "v1"));
    up.wait_for("mlp", Duration::from_secs(30), "v1 ready", ready);
    up.apply(&manifest(
        "mlp",
        "    minReplicas: 1\n    canaryTrafficPercent: 30\n",
        "v2",
    ));
    let before = up.wait_for("mlp", Duration::from_secs(30), "v2 at 30%", |s| {
        ready(s) && percent_of(s, "mlp-predictor-00002") == 30
    });
    let pids = up.replica_pids();
    assert!(!pids.is_empty());
    up.child.kill().unwrap(); // SIGKILL
    up.child.wait().unwrap();
    assert_gone_within(&pids, Duration::from_secs(5));
    drop(up);

    let up = Up::start(state.path());
    let after = up.wait_for("mlp", Duration::from_secs(30), "restored and ready", ready);
    let predictor = |s: &Value| s["status"]["components"]["predictor"].clone();
    assert_eq!(predictor(&after)["traffic"], predictor(&before)["traffic"]);
    assert_eq!(
        predictor(&after)["latestCreatedRevision"],
        "mlp-predictor-00002"
    );
    let client = reqwest::Client::new();
    assert!(infer(&client, &up, "mlp").await.is_ok());
}

#[test]
fn kill_9_during_a_loop_of_applies_loses_no_acknowledged_apply_and_leaves_nothing_behind() {
    let state = tempfile::tempdir().unwrap();
    let mut up = Up::start(state.path());
    up.apply(&manifest("steady", "    minReplicas: 1\n", "s"));
    up.wait_for("steady", Duration::from_secs(30), "Ready", ready);
    let pids = up.replica_pids();
    assert!(!pids.is_empty());
    let at_zero = "    minReplicas: 0\n";
    let admin = format!("http://127.0.0.1:{}", up.admin_port);
    let dir = state.path().to_owned();
    // Applies one after another, noting each one kiln acknowledged, until one is refused.
    let applier = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for i in 0..200 {
            let name = format!("loop-{i}");
            let file = dir.join(format!("{name}.yaml"));
            let text = manifest(&name, at_zero, "l").replace(
                "metadata:\n",
                "metadata:\n  annotations:\n    autoscaling.knative.dev/initial-scale: \"0\"\n",
            );
            std::fs::write(&file, text).unwrap();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
                .args(["apply", "-f", file.to_str().unwrap()])
                .env("KILN_SERVER", &admin)
                .output()
                .unwrap();
            if !out.status.success() {
                break;
            }
            acknowledged.push(name);
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(1500));
    up.child.kill().unwrap(); // SIGKILL, in the middle of the loop
    up.child.wait().unwrap();
    let acknowledged = applier.join().unwrap();
    assert!(acknowledged.len() >= 2, "the loop ran: {acknowledged:?}");
    assert_gone_within(&pids, Duration::from_secs(5));
    drop(up);

    let up = Up::start(state.path());
    for name in &acknowledged {
        let out = up.kiln(&["get", "isvc", name, "-o", "json"]);
        assert!(
            out.status.success(),
            "acknowledged {name} lost after kill -9"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(state.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    up.wait_for(
        "steady",
        Duration::from_secs(30),
        "restored and Ready",
        ready,
    );
}

#[test]
fn bad_manifests_exit_2_and_apply_nothing() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    let good = manifest("good", "    minReplicas: 0\n", "x");
    let cases = [
        (
            "unknown format",
            good.replace("name: onnx", "name: sklearn"),
            "sklearn",
        ),
        (
            "malformed YAML",
            format!("{good}\n  bad: [unclosed\n"),
            "YAML",
        ),
        (
            "min above max",
            manifest("good", "    minReplicas: 3\n    maxReplicas: 1\n", "x"),
            "maxReplicas",
        ),
        (
            "canary 150",
            manifest("good", "    canaryTrafficPercent: 150\n", "x"),
            "canaryTrafficPercent",
        ),
    ];
    for (what, text, needle) in cases {
        let file = state.path().join("bad.yaml");
        // A good service in the same apply must not be applied either.
        std::fs::write(
            &file,
            format!(
                "{}\n---\n{text}",
                manifest("other", "    minReplicas: 0\n", "y")
            ),
        )
        .unwrap();
        let out = up.kiln(&["apply", "-f", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{what}: '{stderr}' should mention {needle}"
        );
    }
    let out = up.kiln(&["get", "isvc", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"], serde_json::json!([]), "nothing applied");
    let out = up.kiln(&["get", "isvc", "nothing"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_cli_exits_quietly_when_its_reader_goes_away() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    up.apply(&manifest("quiet", "    minReplicas: 0\n", "x"));
    for args in [
        &["get", "isvc"][..],
        &["get", "isvc", "-o", "yaml"],
        &["get", "isvc", "quiet", "-o", "json"],
        &["rollout", "status", "quiet"],
    ] {
        // As `kiln get isvc | head -0`: the reader is gone before the first write.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .env("KILN_SERVER", format!("http://127.0.0.1:{}", up.admin_port))
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} printed: {stderr}");
    }
}

/// Waits until none of `pids` (replicas of a killed `kiln up`) runs; panics after `within`.
fn assert_gone_within(pids: &[i32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|&p| common::is_running(p)) {
        assert!(
            Instant::now() < deadline,
            "replicas {pids:?} outlived kiln up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn condition<'a>(service: &'a Value, type_: &str) -> Option<&'a Value> {
    service["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
}

#[test]
fn kiln_up_runs_within_its_capacity_and_says_why_replicas_wait() {
    let state = tempfile::tempdir().unwrap();
    let config = format!("{}capacity:\n  processes: 2\n", common::up::CONFIG);
    let up = Up::start_configured(state.path(), &config, &[]);
    // What can never fit is refused at apply, naming the field and the limit.
    let file = state.path().join("huge.yaml");
    std::fs::write(&file, manifest("huge", "    minReplicas: 1000000\n", "x")).unwrap();
    let out = up.kiln(&["apply", "-f", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("spec.predictor.minReplicas"), "{stderr}");
    assert!(stderr.contains("capacity.processes"), "{stderr}");
    assert!(up.replica_pids().is_empty(), "nothing started");

    // Two processes: one service takes both, the next one waits, and says why.
    up.apply(&manifest("first", "    minReplicas: 2\n", "a"));
    up.wait_for("first", Duration::from_secs(60), "Ready", ready);
    up.apply(&manifest("second", "    minReplicas: 1\n", "b"));
    let waiting = up.wait_for(
        "second",
        Duration::from_secs(20),
        "an InsufficientCapacity condition",
        |s| {
            condition(s, "ResourcesAvailable")
                .is_some_and(|c| c["reason"] == "InsufficientCapacity")
        },
    );
    assert!(!ready(&waiting));
    let message = condition(&waiting, "ResourcesAvailable").unwrap()["message"].to_string();
    assert!(message.contains("capacity.processes"), "{message}");
    assert_eq!(up.replica_pids().len(), 2, "never more than the capacity");

    // Room made: the waiting replica starts.
    let out = up.kiln(&["delete", "isvc", "first"]);
    assert!(out.status.success());
    let started = up.wait_for("second", Duration::from_secs(60), "Ready", ready);
    assert!(
        condition(&started, "ResourcesAvailable").is_none(),
        "{started}"
    );
}

#[test]
fn asking_for_more_gpus_than_the_machine_has_leaves_the_revision_not_ready_with_a_reason() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    let fields =
        "    minReplicas: 1\n    resources:\n      limits:\n        nvidia.com/gpu: \"1\"\n";
    up.apply(&manifest("gpu", fields, "g"));
    let service = up.wait_for(
        "gpu",
        Duration::from_secs(20),
        "an Unschedulable condition",
        |s| {
            s["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "PredictorReady" && c["reason"] == "Unschedulable")
        },
    );
    let text = service.to_string();
    assert!(text.contains("GPU"), "the condition says why: {text}");
    assert!(!ready(&service));
}

#[test]
fn old_revisions_lose_their_replicas_and_are_garbage_collected() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    for n in 1..=5 {
        up.apply(&manifest("gc", "    minReplicas: 1\n", &format!("v{n}")));
        let revision = format!("gc-predictor-0000{n}");
        up.wait_for(
            "gc",
            Duration::from_secs(30),
            "the new revision rolled out",
            |s| ready(s) && percent_of(s, &revision) == 100,
        );
    }
    let service = up.get("gc");
    let kept: Vec<String> = service["status"]["components"]["predictor"]["kilnReplicas"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(
        !kept.contains(&"gc-predictor-00001".to_owned()),
        "the oldest is collected: {kept:?}"
    );
    assert!(
        kept.contains(&"gc-predictor-00004".to_owned()),
        "prev is never collected: {kept:?}"
    );
    assert_eq!(
        kept.len(),
        4,
        "latest, prev and two idle revisions: {kept:?}"
    );
    // Revisions without traffic scale to zero (stable window + grace), whatever minReplicas says.
    up.wait_for(
        "gc",
        Duration::from_secs(45),
        "idle revisions at zero",
        |s| {
            [
                "gc-predictor-00002",
                "gc-predictor-00003",
                "gc-predictor-00004",
            ]
            .iter()
            .all(|r| replicas(s, r) == (0, 0))
                && replicas(s, "gc-predictor-00005").1 == 1
        },
    );
}

#[test]
fn logs_show_why_a_revision_cannot_start() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start(state.path());
    let text = manifest("broken", "    minReplicas: 1\n", "b").replace(
        &common::fixtures().join("mlp").display().to_string(),
        "/nonexistent/models/broken",
    );
    up.apply(&text);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = up.kiln(&["logs", "isvc", "broken"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("/nonexistent/models/broken") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error line in the logs: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!ready(&up.get("broken")));
}

#[test]
fn the_admin_api_requires_the_token_when_one_is_set() {
    let state = tempfile::tempdir().unwrap();
    let up = Up::start_with(state.path(), &[("KILN_TOKEN", "s3cret")]);
    let denied = up.kiln_with(&["get", "isvc"], &[("KILN_TOKEN", "wrong")]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("bearer token"));
    let allowed = up.kiln_with(&["get", "isvc"], &[("KILN_TOKEN", "s3cret")]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}

#[test]
fn sigterm_stops_every_replica_before_kiln_up_exits() {
    let state = tempfile::tempdir().unwrap();
    let mut up = Up::start(state.path());
    up.apply(&manifest("mlp", "    minReplicas: 2\n", "t"));
    up.wait_for("mlp", Duration::from_secs(30), "two replicas", |s| {
        replicas(s, "mlp-predictor-00001").1 == 2
    });
    let pids = up.replica_pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(nix_kill(up.child.id() as i32, "TERM"));
    let status = up.child.wait().unwrap();
    assert!(
        status.success(),
        "kiln up exits cleanly on SIGTERM: {status}"
    );
    for pid in pids {
        assert!(!common::is_running(pid), "replica {pid} outlived kiln up");
    }
}
