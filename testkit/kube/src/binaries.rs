//! Where the control plane's binaries come from: `KILN_KUBE_BIN`, or `scripts/kube/build.sh`,
//! which builds them once into a cache outside the clone and prints that folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Component, Error};

/// The Kubernetes release the binaries are built from.
pub const KUBERNETES_VERSION: &str = "v1.37.2";

/// The folder holding `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// `KILN_KUBE_BIN` when it is set; otherwise runs `scripts/kube/build.sh` (a no-op once
    /// the cache holds the binaries; a cold build takes tens of minutes).
    pub(crate) fn locate() -> Result<Self, Error> {
        if let Some(dir) = std::env::var_os("KILN_KUBE_BIN") {
            return Self::check(PathBuf::from(dir), "KILN_KUBE_BIN");
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube/build.sh");
        let output = Command::new(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| Error::BuildSpawn {
                script: script.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::BuildFailed {
                script,
                status: output.status,
            });
        }
        let printed = String::from_utf8_lossy(&output.stdout);
        let dir = printed.lines().last().unwrap_or_default().trim();
        Self::check(PathBuf::from(dir), "scripts/kube/build.sh")
    }

    fn check(dir: PathBuf, from: &'static str) -> Result<Self, Error> {
        let binaries = Self { dir };
        for component in Component::ALL {
            let path = binaries.path(component);
            if !path.is_file() {
                return Err(Error::MissingBinary { path, from });
            }
        }
        Ok(binaries)
    }

    /// The binary of `component`.
    pub(crate) fn path(&self, component: Component) -> PathBuf {
        self.dir.join(component.binary())
    }
}
