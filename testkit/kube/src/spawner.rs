//! One long-lived thread, `kiln-kube-spawner`, forks every component.
//!
//! The components arm `PR_SET_PDEATHSIG` themselves (when `KILN_PARENT_PID` is set), and Linux
//! sends that signal when the *thread* that forked them exits, not the process. Cargo runs each
//! test on a thread of its own that ends with the test, so a component forked there would die
//! with the first test. This thread is started once per process and never ends (its channel's
//! sender lives in a static), so the components live exactly as long as the test binary.

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

/// Name of the spawning thread (visible in `/proc/<pid>/task/*/comm`).
const THREAD_NAME: &str = "kiln-kube-spawner";

struct Request {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

static REQUESTS: OnceLock<io::Result<mpsc::Sender<Request>>> = OnceLock::new();

fn requests() -> io::Result<&'static mpsc::Sender<Request>> {
    REQUESTS
        .get_or_init(|| {
            let (requests, incoming) = mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name(THREAD_NAME.to_owned())
                .spawn(move || {
                    for Request { mut command, reply } in incoming {
                        let _ = reply.send(command.spawn());
                    }
                })?;
            Ok(requests)
        })
        .as_ref()
        .map_err(|error| io::Error::new(error.kind(), error.to_string()))
}

/// Spawns `command` from a thread that lives as long as this process, with `KILN_PARENT_PID`
/// set to this process's id. A child that arms a parent-death signal (the control plane's
/// binaries do when they see `KILN_PARENT_PID`; any command does under
/// `setpriv --pdeathsig KILL --`) then dies with this process, not with the calling thread.
pub fn spawn(mut command: Command) -> io::Result<Child> {
    command.env("KILN_PARENT_PID", std::process::id().to_string());
    let (reply, answer) = mpsc::channel();
    requests()?
        .send(Request { command, reply })
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}
