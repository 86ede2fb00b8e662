//! A running component: its child process, its log file, and the wait for its readiness.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use parking_lot::Mutex;

use crate::{Error, spawner};

/// One process of the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// etcd, the store.
    Etcd,
    /// kube-apiserver.
    ApiServer,
    /// kube-controller-manager: garbage collection, Deployments, ReplicaSets, namespaces, ...
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// A `kiln-test-node`, standing in for a kubelet (see [`TestNode`](crate::TestNode)).
    Node,
}

impl Component {
    /// Every component of the control plane, in start order.
    pub const ALL: [Component; 4] = [
        Component::Etcd,
        Component::ApiServer,
        Component::ControllerManager,
        Component::Scheduler,
    ];

    /// The name of its binary (and of its log file, with `.log`).
    pub fn binary(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Node => "kiln-test-node",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary())
    }
}

/// A free port on 127.0.0.1 (free when asked; the component binds it moments later).
pub(crate) fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(Error::Port)
}

/// A started component. Dropping it kills the process; the shared control plane is never
/// dropped, and dies with the test binary through the parent-death signal instead.
#[derive(Debug)]
pub(crate) struct Process {
    component: Component,
    pid: u32,
    child: Mutex<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args`, stdout and stderr to `<dir>/<component>.log`.
    pub(crate) fn start(
        component: Component,
        binary: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<Self, Error> {
        let log = dir.join(format!("{component}.log"));
        let write_error = |source| Error::Write {
            path: log.clone(),
            source,
        };
        let stdout = File::create(&log).map_err(write_error)?;
        let stderr = stdout.try_clone().map_err(write_error)?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Everything is on loopback: no proxy may see it.
        for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            command.env_remove(proxy);
        }
        let child = spawner::spawn(command).map_err(|source| Error::Spawn { component, source })?;
        tracing::debug!(%component, pid = child.id(), log = %log.display(), "started");
        Ok(Self {
            component,
            pid: child.id(),
            child: Mutex::new(child),
            log,
        })
    }

    pub(crate) fn component(&self) -> Component {
        self.component
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Polls `ready` every 100 ms until it answers true, failing at once if the process
    /// exits, or after `timeout`.
    pub(crate) async fn wait_until<F, Fut>(
        &self,
        condition: &str,
        timeout: Duration,
        mut ready: F,
    ) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(Error::Exited {
                    component: self.component,
                    status,
                    log: self.log.clone(),
                    tail: self.tail(),
                });
            }
            if ready().await {
                tracing::debug!(component = %self.component, condition, "ready");
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotReady {
                    component: self.component,
                    condition: condition.to_owned(),
                    timeout,
                    log: self.log.clone(),
                    tail: self.tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit (dropping it kills it
    /// if it is still there).
    pub(crate) fn terminate(&self, grace: Duration) {
        if self.exit_status().is_some() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while self.exit_status().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().try_wait().ok().flatten()
    }

    /// The last 30 lines of the log.
    pub(crate) fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}
