//! One long-lived thread, `kiln-spawner`, forks every replica.
//!
//! Linux ties `PR_SET_PDEATHSIG` to the thread that forked the child, not to the process:
//! a replica forked from a short-lived thread (a Tokio blocking thread, a worker that is
//! shut down) would be killed when that thread exits. So every `spawn` happens here.

use std::io;
use std::sync::mpsc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Name of the spawning thread (visible in `/proc/<pid>/task/*/comm`).
pub(crate) const THREAD_NAME: &str = "kiln-spawner";

struct Request {
    command: std::process::Command,
    reply: oneshot::Sender<io::Result<tokio::process::Child>>,
}

/// Handle to the spawner thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Spawner {
    requests: mpsc::Sender<Request>,
}

impl Spawner {
    /// Starts the thread. The children are registered with `runtime`'s process driver.
    pub(crate) fn start(runtime: Handle) -> io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || {
                let _entered = runtime.enter();
                for Request { command, reply } in incoming {
                    let mut command = tokio::process::Command::from(command);
                    // A safety net: a child whose supervisor task is dropped is killed.
                    command.kill_on_drop(true);
                    let _ = reply.send(command.spawn());
                }
                tracing::debug!("spawner thread ends");
            })?;
        Ok(Self { requests })
    }

    /// Spawns `command` on the spawner thread.
    pub(crate) async fn spawn(
        &self,
        command: std::process::Command,
    ) -> io::Result<tokio::process::Child> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { command, reply })
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}
