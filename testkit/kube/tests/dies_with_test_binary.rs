//! Nothing the test kit starts outlives the test binary, even when it is killed with SIGKILL
//! and runs no code on its way out: not the control plane, not a test node, not a Pod's
//! process.
//!
//! This binary has no test harness: run plainly, it is the parent, and runs a copy of
//! itself with `KILN_KUBE_DIE_REPORT` set. The copy starts a control plane from a thread
//! that then ends (as a test's thread would), uses it and checks that it outlived that
//! thread, starts a test node running one Pod, writes every process id and the API server's
//! address to the report file, and SIGKILLs itself. The parent then checks that every one of
//! those processes is gone and the API server's port is closed. Needs root (the test node).

mod common;

use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kiln_kube_testkit::{Component, ControlPlane, TestNode};
use kube::api::{Api, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::children;

const NAME: &str = "processes_die_with_the_test_binary_even_on_sigkill";
const REPORT: &str = "KILN_KUBE_DIE_REPORT";
/// The copy builds nothing (the parent's control plane binaries are there) but starts a
/// control plane and a node: well within this on a busy machine.
const CHILD_TIMEOUT: Duration = Duration::from_secs(400);
/// A SIGKILLed process's children get their parent-death signal at once; reaping is quick.
const DEATH_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    if let Some(report) = std::env::var_os(REPORT) {
        child(Path::new(&report));
    }
    // Behave like a test harness for `--list` and name filters.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        println!("\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 1 filtered out\n");
        return ExitCode::SUCCESS;
    }
    println!("\nrunning 1 test");
    match parent() {
        Ok(()) => {
            println!("test {NAME} ... ok\n\ntest result: ok. 1 passed; 0 failed\n");
            ExitCode::SUCCESS
        }
        Err(message) => {
            println!(
                "test {NAME} ... FAILED\n\n{message}\n\ntest result: FAILED. 0 passed; 1 failed\n"
            );
            ExitCode::FAILURE
        }
    }
}

/// A Pod on `node` whose process sleeps.
fn sleeper(node: &str) -> Pod {
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("sleeper".to_owned()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            containers: vec![Container {
                name: "sleep".to_owned(),
                image: Some("kiln-test/never-pulled:1".to_owned()),
                command: Some(vec!["sleep".to_owned(), "600".to_owned()]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn child(report: &Path) -> ! {
    let control_plane = std::thread::spawn(ControlPlane::start)
        .join()
        .expect("the starting thread panicked")
        .unwrap_or_else(|error| panic!("{error}"));
    // The threads that asked for the control plane have ended (a parent-death signal tied
    // to one of them would be on its way): use the cluster, then check every component.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (node, pod_processes) = runtime.block_on(async {
        let client = control_plane.client().unwrap();
        // A namespace gets its ServiceAccount from the controller manager.
        let namespace = control_plane.fresh_namespace(&client).await.unwrap();
        let node = TestNode::start(
            &control_plane,
            env!("CARGO_BIN_EXE_kiln-test-node").as_ref(),
            "kiln-die-node",
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
        let pods: Api<Pod> = Api::namespaced(client, &namespace);
        pods.create(&PostParams::default(), &sleeper(node.name()))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let pod = pods.get("sleeper").await.unwrap();
            let phase = pod.status.and_then(|s| s.phase);
            if phase.as_deref() == Some("Running") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the Pod did not run"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let processes = children(node.pid());
        (node, processes)
    });
    assert_eq!(pod_processes.len(), 1, "the node runs one Pod process");
    let mut pids: Vec<(String, u32)> = Component::ALL
        .iter()
        .map(|c| (c.to_string(), control_plane.pid(*c)))
        .collect();
    pids.push(("kiln-test-node".to_owned(), node.pid()));
    pids.push(("the Pod's process".to_owned(), pod_processes[0]));
    for (name, pid) in &pids {
        assert!(alive(*pid), "{name} ({pid}) is not running");
    }
    let address = control_plane.server_url().trim_start_matches("https://");
    TcpStream::connect(address).expect("the API server listens");
    let mut text = format!("{address}\n");
    for (name, pid) in &pids {
        text.push_str(&format!("{pid} {name}\n"));
    }
    let partial = report.with_extension("partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, report).unwrap();
    kill(Pid::this(), Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL cannot be caught");
}

fn parent() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("kiln-kube-die-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let report = dir.join("report");
    let mut copy = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(REPORT, &report)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("running a copy of the test binary: {e}"))?;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = copy.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = copy.kill();
            let _ = copy.wait();
            return Err(format!("the copy did not finish within {CHILD_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.signal() != Some(Signal::SIGKILL as i32) {
        return Err(format!("the copy did not die of SIGKILL but {status}"));
    }
    let text =
        std::fs::read_to_string(&report).map_err(|e| format!("the copy wrote no report ({e})"))?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = text.lines();
    let address = lines.next().unwrap_or_default().to_owned();
    let pids: Vec<(u32, String)> = lines
        .filter_map(|line| {
            let (pid, name) = line.split_once(' ')?;
            Some((pid.parse().ok()?, name.to_owned()))
        })
        .collect();
    if pids.len() != Component::ALL.len() + 2 {
        return Err(format!("the report is malformed: {text:?}"));
    }

    let deadline = Instant::now() + DEATH_TIMEOUT;
    loop {
        let living: Vec<&(u32, String)> = pids.iter().filter(|(pid, _)| alive(*pid)).collect();
        // A port closes once the process's last thread is gone.
        let listening = TcpStream::connect(&address).is_ok();
        if living.is_empty() && !listening {
            break;
        }
        if Instant::now() > deadline {
            for (pid, _) in &living {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
            return Err(format!(
                "{DEATH_TIMEOUT:?} after the test binary was killed, still running: {living:?}; \
                 the API server's {address} listening: {listening}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Whether any thread of process `pid` has not exited. A zombie waiting for its reaper has
/// exited, but a killed process's first thread turns zombie while others still wind down.
fn alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(
        |task| match std::fs::read_to_string(task.path().join("stat")) {
            // The state follows the command name, which is in parentheses and may hold spaces.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        },
    )
}
