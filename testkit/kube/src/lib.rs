//! A real Kubernetes control plane for Kiln's tests: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler of Kubernetes v1.37.2, on loopback.
//!
//! The binaries are built from the Go modules once per machine by `scripts/kube/build.sh`,
//! into `${KILN_KUBE_CACHE:-$HOME/.cache/kiln/kube}/v1.37.2/bin` (or taken from the folder
//! in `KILN_KUBE_BIN`). Each test binary starts one control plane the first time a test asks
//! for it, shares it between its tests, and takes it down when it exits, however it exits.
//! There is no kubelet: Pods stay Pending, unless a [`TestNode`] (the `kiln-test-node` program
//! of this crate) runs them as local processes in network namespaces of their own.
//!
//! ```no_run
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kiln_kube_testkit::ControlPlane;
//! use kube::api::{Api, PostParams};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let control_plane = ControlPlane::shared();
//! let client = control_plane.client()?;
//! let namespace = control_plane.fresh_namespace(&client).await?;
//! let config_maps: Api<ConfigMap> = Api::namespaced(client, &namespace);
//! let mut map = ConfigMap::default();
//! map.metadata.name = Some("settings".to_owned());
//! config_maps.create(&PostParams::default(), &map).await?;
//! # Ok(())
//! # }
//! ```

mod binaries;
mod control_plane;
mod error;
mod node;
mod pki;
mod process;
mod spawner;

pub use binaries::KUBERNETES_VERSION;
pub use control_plane::ControlPlane;
pub use error::Error;
pub use node::TestNode;
pub use process::Component;
pub use spawner::spawn;
