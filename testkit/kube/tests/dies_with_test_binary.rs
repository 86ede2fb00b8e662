//! The control plane's processes die with the test binary, even when it is killed with
//! SIGKILL and runs no code on its way out.
//!
//! This binary has no test harness: run plainly, it is the parent, and runs a copy of
//! itself with `KILN_KUBE_DIE_REPORT` set. The copy starts a control plane from a thread
//! that then ends (as a test's thread would), uses it and checks that it outlived that
//! thread, writes the pids and the API server's address to the report file, and SIGKILLs
//! itself. The parent then checks that every pid is gone and the API server's port is closed.

use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use kiln_kube_testkit::{Component, ControlPlane};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const NAME: &str = "processes_die_with_the_test_binary_even_on_sigkill";
const REPORT: &str = "KILN_KUBE_DIE_REPORT";
/// The copy builds nothing (the parent's control plane binaries are there) but starts a
/// control plane: well within this on a busy machine.
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
    runtime.block_on(async {
        let client = control_plane.client().unwrap();
        // A namespace gets its ServiceAccount from the controller manager.
        control_plane.fresh_namespace(&client).await.unwrap();
    });
    for component in Component::ALL {
        let pid = control_plane.pid(component);
        assert!(
            alive(pid),
            "{component} ({pid}) died with the thread that started it"
        );
    }
    let address = control_plane.server_url().trim_start_matches("https://");
    TcpStream::connect(address).expect("the API server listens");
    let pids: Vec<String> = Component::ALL
        .iter()
        .map(|c| control_plane.pid(*c).to_string())
        .collect();
    let partial = report.with_extension("partial");
    std::fs::write(&partial, format!("{address}\n{}\n", pids.join(" "))).unwrap();
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
    let pids: Vec<u32> = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .filter_map(|p| p.parse().ok())
        .collect();
    if pids.len() != Component::ALL.len() {
        return Err(format!("the report is malformed: {text:?}"));
    }

    let deadline = Instant::now() + DEATH_TIMEOUT;
    loop {
        let living: Vec<(Component, u32)> = Component::ALL
            .into_iter()
            .zip(pids.iter().copied())
            .filter(|(_, pid)| alive(*pid))
            .collect();
        // A port closes once the process's last thread is gone.
        let listening = TcpStream::connect(&address).is_ok();
        if living.is_empty() && !listening {
            break;
        }
        if Instant::now() > deadline {
            for (_, pid) in &living {
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
    tasks.flatten().any(|task| {
        match std::fs::read_to_string(task.path().join("stat")) {
            // The state follows the command name, which is in parentheses and may hold spaces.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        }
    })
}
