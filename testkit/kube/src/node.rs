//! Starting a `kiln-test-node`: a stand-in for a kubelet that registers a Node and runs the
//! Pods bound to it as local processes, each in a network namespace of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::process::Process;
use crate::{Component, ControlPlane, Error};

/// How long a node may take to register and be found Ready, untainted.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping node may take to stop its Pods and remove its network.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// A running `kiln-test-node` process, registered as a Node of a [`ControlPlane`].
///
/// It needs root (it makes network namespaces, a bridge and veth pairs with `ip`). It runs
/// with `setpriv --pdeathsig KILL`, forked by the long-lived spawner thread, so it dies with
/// the test binary; its Pods' processes die with it the same way. Dropping it stops it
/// (SIGTERM: it stops its Pods and removes its network, then exits).
#[derive(Debug)]
pub struct TestNode {
    name: String,
    dir: PathBuf,
    process: Process,
}

impl TestNode {
    /// Starts the node program `binary` (an integration test finds it as
    /// `env!("CARGO_BIN_EXE_kiln-test-node")`) as the Node `name`, and waits until the Node is
    /// Ready and the controller manager has lifted its `not-ready` taint, so Pods can be
    /// scheduled to it.
    pub async fn start(
        control_plane: &ControlPlane,
        binary: &Path,
        name: &str,
    ) -> Result<TestNode, Error> {
        let dir = control_plane.dir().join(format!("node-{name}"));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
        let args = [
            "--pdeathsig".to_owned(),
            "KILL".to_owned(),
            "--".to_owned(),
            binary.display().to_string(),
            format!("--kubeconfig={}", control_plane.kubeconfig().display()),
            format!("--name={name}"),
            format!("--dir={}", dir.display()),
        ];
        let process = Process::start(Component::Node, Path::new("setpriv"), &args, &dir)?;
        let nodes: Api<Node> = Api::all(control_plane.client()?);
        process
            .wait_until("the Node is Ready and has no taint", READY_TIMEOUT, || {
                let nodes = nodes.clone();
                async move {
                    let Ok(Some(node)) = nodes.get_opt(name).await else {
                        return false;
                    };
                    let ready = node
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .into_iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    let tainted = node
                        .spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .is_some_and(|t| !t.is_empty());
                    ready && !tainted
                }
            })
            .await?;
        Ok(TestNode {
            name: name.to_owned(),
            dir,
            process,
        })
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node program's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The node program's log.
    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// The node's folder: its log, and a folder per Pod with each container's output.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.process.terminate(STOP_GRACE);
    }
}
