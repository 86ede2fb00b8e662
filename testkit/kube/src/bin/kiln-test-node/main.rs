//! `kiln-test-node`: stands in for a kubelet in Kiln's tests.
//!
//! It registers a Node (Ready, with capacity and allocatable), renews its Lease in
//! `kube-node-lease` and its Ready condition every 10 s, and runs the Pods bound to it as
//! local processes, each in a network namespace of its own on the node's bridge (see
//! `network.rs` and `pods.rs`). Needs root, for `ip netns`. On SIGTERM or SIGINT it stops its
//! Pods' processes, removes its network and exits. With `KILN_PARENT_PID` set it exits at once
//! if that process is no longer its parent (start it under `setpriv --pdeathsig KILL`, as
//! `kiln_kube_testkit::TestNode` does, to die with its parent).

mod network;
mod pods;
mod probe;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::network::Network;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How often the Lease and the Ready condition are renewed (a kubelet's default).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// The Lease's duration (a kubelet's default).
const LEASE_SECONDS: i32 = 40;

/// A stand-in for a kubelet: a Node whose Pods run as local processes.
#[derive(Parser)]
struct Args {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The Node's name.
    #[arg(long)]
    name: String,
    /// Where the Pods' output goes (`pods/<namespace>_<name>/<container>.log`).
    #[arg(long)]
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if let Ok(parent) = std::env::var("KILN_PARENT_PID")
        && parent != std::os::unix::process::parent_id().to_string()
    {
        tracing::error!(parent, "the parent is gone");
        return ExitCode::FAILURE;
    }
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "kiln-test-node failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    network::sweep().await;
    let network = Network::create().await?;
    let node = Arc::new(pods::Node {
        client: client.clone(),
        name: args.name.clone(),
        network,
        dir: args.dir,
    });
    let result = serve(&node, async {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("stopping");
    })
    .await;
    node.network.remove().await;
    result
}

async fn serve(
    node: &Arc<pods::Node>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(node.client.clone());
    let object = Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), node.name.clone()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(node.network.cidr()),
            pod_cidrs: Some(vec![node.network.cidr()]),
            ..NodeSpec::default()
        }),
        ..Node::default()
    };
    let created = match nodes.create(&PostParams::default(), &object).await {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.code == 409 => nodes.get(&node.name).await?,
        Err(error) => return Err(error.into()),
    };
    let uid = created.metadata.uid.clone().unwrap_or_default();
    heartbeat(node, &uid, true).await?;
    tracing::info!(node = node.name, cidr = node.network.cidr(), "registered");

    let beating = {
        let node = node.clone();
        async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = heartbeat(&node, &uid, false).await {
                    tracing::warn!(%error, "renewing the Lease and the Ready condition");
                }
            }
        }
    };
    tokio::select! {
        () = pods::run(node.clone(), shutdown) => {}
        () = beating => {}
    }
    Ok(())
}

/// Renews the Lease, and writes the Node's status (all of it the first time, then the
/// conditions).
async fn heartbeat(node: &pods::Node, uid: &str, first: bool) -> Result<()> {
    let now = Timestamp::now();
    let leases: Api<Lease> = Api::namespaced(node.client.clone(), "kube-node-lease");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            namespace: Some("kube-node-lease".to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Node".to_owned(),
                name: node.name.clone(),
                uid: uid.to_owned(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.name.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    };
    let apply = PatchParams::apply("kiln-test-node").force();
    leases
        .patch(&node.name, &apply, &Patch::Apply(&lease))
        .await?;

    let condition = |type_: &str, status: bool, reason: &str, message: &str| NodeCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: first.then_some(Time(now)),
    };
    let mut status = NodeStatus {
        conditions: Some(vec![
            condition(
                "Ready",
                true,
                "KubeletReady",
                "kiln-test-node is posting ready status",
            ),
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "enough memory",
            ),
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "no disk pressure",
            ),
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "enough PIDs",
            ),
        ]),
        ..NodeStatus::default()
    };
    if first {
        let resources = BTreeMap::from([
            ("cpu".to_owned(), Quantity("4".to_owned())),
            ("memory".to_owned(), Quantity("8Gi".to_owned())),
            ("ephemeral-storage".to_owned(), Quantity("20Gi".to_owned())),
            ("pods".to_owned(), Quantity("110".to_owned())),
        ]);
        status.capacity = Some(resources.clone());
        status.allocatable = Some(resources);
        status.addresses = Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: node.network.gateway().to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: node.name.clone(),
            },
        ]);
        status.node_info = Some(NodeSystemInfo {
            architecture: "amd64".to_owned(),
            operating_system: "linux".to_owned(),
            kubelet_version: "v1.37.2".to_owned(),
            container_runtime_version: concat!("kiln-test-node://", env!("CARGO_PKG_VERSION"))
                .to_owned(),
            os_image: "kiln-test-node".to_owned(),
            ..NodeSystemInfo::default()
        });
    }
    let nodes: Api<Node> = Api::all(node.client.clone());
    let patch = serde_json::json!({ "status": status });
    nodes
        .patch_status(
            &node.name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
    Ok(())
}
