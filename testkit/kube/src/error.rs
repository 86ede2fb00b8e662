//! What can go wrong while starting or using the control plane.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::Component;

/// An error of the control plane. A component that failed to start is named, with the last
/// lines of its log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `scripts/kube/build.sh` could not be run.
    #[error("running {script}")]
    BuildSpawn {
        /// The script.
        script: PathBuf,
        /// Why it could not be run.
        #[source]
        source: io::Error,
    },
    /// `scripts/kube/build.sh` failed (its own messages went to stderr).
    #[error("{script} failed with {status}")]
    BuildFailed {
        /// The script.
        script: PathBuf,
        /// How it ended.
        status: ExitStatus,
    },
    /// A binary is missing from the folder the binaries were taken from.
    #[error("{path} is missing (binaries from {from})")]
    MissingBinary {
        /// The binary that is missing.
        path: PathBuf,
        /// Where the folder came from: `KILN_KUBE_BIN` or `scripts/kube/build.sh`.
        from: &'static str,
    },
    /// The certificates or keys could not be made.
    #[error("making the {what}")]
    Pki {
        /// Which certificate or key.
        what: &'static str,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },
    /// A file or folder of the control plane could not be written.
    #[error("writing {path}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The reason.
        #[source]
        source: io::Error,
    },
    /// No free port on 127.0.0.1.
    #[error("finding a free port on 127.0.0.1")]
    Port(#[source] io::Error),
    /// A component could not be started.
    #[error("starting {component}")]
    Spawn {
        /// The component.
        component: Component,
        /// The reason.
        #[source]
        source: io::Error,
    },
    /// A component exited before it was ready.
    #[error("{component} exited ({status}) before it was ready; the end of {log}:\n{tail}")]
    Exited {
        /// The component.
        component: Component,
        /// How it ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A component was not ready in time.
    #[error("{component}: {condition} not reached within {timeout:?}; the end of {log}:\n{tail}")]
    NotReady {
        /// The component.
        component: Component,
        /// The condition waited for.
        condition: String,
        /// How long it was waited for.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// The kubeconfig that was written could not be read back into a client configuration.
    #[error("reading the kubeconfig {path}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// kube's reason.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A client could not be built.
    #[error("building a Kubernetes client")]
    Client(#[source] kube::Error),
    /// A request to the API server failed.
    #[error("{what}")]
    Api {
        /// What was asked.
        what: String,
        /// kube's reason.
        #[source]
        source: kube::Error,
    },
    /// A condition of the cluster was not reached in time.
    #[error("{condition} not reached within {timeout:?}")]
    Timeout {
        /// The condition waited for.
        condition: String,
        /// How long it was waited for.
        timeout: Duration,
    },
    /// The thread that starts the control plane, or its Tokio runtime, could not be made.
    #[error("starting the thread that starts the control plane")]
    Thread(#[source] io::Error),
    /// The thread that starts the control plane panicked.
    #[error("the thread starting the control plane panicked")]
    StartPanicked,
}

impl Error {
    /// Whether a component exited because a port it was given was taken meanwhile.
    pub fn is_port_taken(&self) -> bool {
        matches!(self, Error::Exited { tail, .. } if tail.contains("address already in use"))
    }
}

/// `error` and its sources, one per line: what a panic message should show.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str("\n  caused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
