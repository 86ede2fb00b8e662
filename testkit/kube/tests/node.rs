//! A `kiln-test-node` registers a Node that the control plane treats as Ready, and runs the
//! Pods bound to it as processes with real addresses in network namespaces of their own.
//! Needs root (`ip netns`).

mod common;

use std::time::Duration;

use common::{ACT_TIMEOUT, children, deployment, eventually};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, Node, Pod, PodSpec, Probe, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kiln_kube_testkit::{ControlPlane, TestNode};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

static NODE: OnceCell<TestNode> = OnceCell::const_new();

/// This test binary's node (one for all its tests).
async fn node() -> &'static TestNode {
    NODE.get_or_init(|| async {
        let name = format!("kiln-test-node-{}", std::process::id());
        TestNode::start(
            ControlPlane::shared(),
            env!("CARGO_BIN_EXE_kiln-test-node").as_ref(),
            &name,
        )
        .await
        .unwrap_or_else(|error| panic!("the test node did not start: {error}"))
    })
    .await
}

/// A Pod on `node` running Python's HTTP server on port 8080 of its own address, ready when
/// `GET /` answers.
fn web_pod(name: &str, node: &str) -> Pod {
    slow_web_pod(name, node, 0)
}

/// [`web_pod`], whose server starts `delay` seconds after its container.
fn slow_web_pod(name: &str, node: &str, delay: u32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([("app".to_owned(), name.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_selector: Some([("kubernetes.io/hostname".to_owned(), node.to_owned())].into()),
            termination_grace_period_seconds: Some(5),
            containers: vec![Container {
                name: "web".to_owned(),
                image: Some("kiln-test/never-pulled:1".to_owned()),
                command: Some(vec![
                    "sh".to_owned(),
                    "-c".to_owned(),
                    format!("sleep {delay}; exec python3 -m http.server 8080 --bind 0.0.0.0"),
                ]),
                readiness_probe: Some(Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some("/".to_owned()),
                        port: IntOrString::Int(8080),
                        ..HTTPGetAction::default()
                    }),
                    period_seconds: Some(1),
                    ..Probe::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The first line of the answer to `GET /` at `ip:8080`, or the reason there is none.
async fn get(ip: &str) -> Result<String, String> {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect((ip, 8080)).await?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(
            String::from_utf8_lossy(&answer)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    match tokio::time::timeout(Duration::from_secs(5), ask).await {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

#[tokio::test]
async fn the_node_is_ready_untainted_and_renews_its_lease() {
    let node = node().await;
    let client = ControlPlane::shared().client().unwrap();
    let registered = Api::<Node>::all(client.clone())
        .get(node.name())
        .await
        .unwrap();
    let status = registered.status.unwrap();
    assert_eq!(status.allocatable.unwrap()["pods"].0, "110");
    assert!(
        registered
            .spec
            .unwrap()
            .taints
            .unwrap_or_default()
            .is_empty()
    );
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let renewed = |lease: Lease| lease.spec.and_then(|s| s.renew_time).map(|t| t.0);
    let first = renewed(leases.get(node.name()).await.unwrap()).unwrap();
    eventually("the Lease is renewed", Duration::from_secs(30), || async {
        let now = renewed(leases.get(node.name()).await.unwrap()).unwrap();
        (now > first).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_pod_runs_as_a_process_with_its_own_address_behind_a_service() {
    let node = node().await;
    let control_plane = ControlPlane::shared();
    let client = control_plane.client().unwrap();
    let namespace = control_plane.fresh_namespace(&client).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    pods.create(&PostParams::default(), &web_pod("web", node.name()))
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let service = Service {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some([("app".to_owned(), "web".to_owned())].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();

    let pod = eventually("the Pod is Running and Ready", ACT_TIMEOUT, || async {
        let pod = pods.get("web").await.unwrap();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (running && is_ready(&pod)).then_some(pod)
    })
    .await;
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some(node.name())
    );
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.244."), "{ip}");
    // The server binds 0.0.0.0 in its namespace: it answers on the Pod's address only.
    let answer = eventually(
        "the Pod's server answers on its address",
        ACT_TIMEOUT,
        || async { get(&ip).await.ok() },
    )
    .await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
    eventually(
        "the Service's EndpointSlice holds the ready Pod",
        ACT_TIMEOUT,
        || async {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .unwrap();
            list.items
                .iter()
                .flat_map(|slice| slice.endpoints.iter().flatten())
                .any(|e| {
                    e.addresses.contains(&ip)
                        && e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
                })
                .then_some(())
        },
    )
    .await;

    // Deleted: the node stops the process, removes the namespace and finishes the deletion.
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("the Pod is gone", ACT_TIMEOUT, || async {
        pods.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(get(&ip).await.is_err(), "the Pod's server still answers");
}

#[tokio::test]
async fn a_deployment_on_the_node_gets_ready_replicas_with_addresses_of_their_own() {
    let node = node().await;
    let control_plane = ControlPlane::shared();
    let client = control_plane.client().unwrap();
    let namespace = control_plane.fresh_namespace(&client).await.unwrap();
    let mut web = deployment("pair", 2);
    let template = web.spec.template.spec.as_mut().unwrap();
    let pod = web_pod("pair", node.name()).spec.unwrap();
    template.containers = pod.containers;
    template.node_selector = pod.node_selector;
    template.termination_grace_period_seconds = Some(5);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    deployments
        .create(&PostParams::default(), &web)
        .await
        .unwrap();

    eventually(
        "the Deployment reports 2 ready replicas",
        ACT_TIMEOUT,
        || async {
            let status = deployments.get("pair").await.unwrap().status?;
            (status.ready_replicas == Some(2) && status.available_replicas == Some(2)).then_some(())
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let list = pods
        .list(&ListParams::default().labels("app=pair"))
        .await
        .unwrap();
    let ips: Vec<String> = list
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert_ne!(ips[0], ips[1]);
    for ip in &ips {
        let answer = get(ip).await.unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"), "{ip}: {answer}");
    }

    // Scaled down, the ReplicaSet's extra Pod is deleted and the node lets it go.
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, &namespace);
    deployments
        .patch(
            "pair",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("one Pod is left", ACT_TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=pair"))
            .await
            .unwrap();
        (list.items.len() == 1).then_some(())
    })
    .await;
    let rs = replica_sets.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        rs.items[0].status.as_ref().unwrap().replicas,
        1,
        "{:?}",
        rs.items[0].name_any()
    );
}

#[tokio::test]
async fn a_pod_is_ready_only_once_its_readiness_probe_passes() {
    let node = node().await;
    let control_plane = ControlPlane::shared();
    let client = control_plane.client().unwrap();
    let namespace = control_plane.fresh_namespace(&client).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    pods.create(
        &PostParams::default(),
        &slow_web_pod("slow", node.name(), 3),
    )
    .await
    .unwrap();
    let running =
        |pod: &Pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    eventually("the Pod runs but is not ready yet", ACT_TIMEOUT, || async {
        let pod = pods.get("slow").await.unwrap();
        (running(&pod) && !is_ready(&pod)).then_some(())
    })
    .await;
    let pod = eventually("the Pod is ready", ACT_TIMEOUT, || async {
        let pod = pods.get("slow").await.unwrap();
        is_ready(&pod).then_some(pod)
    })
    .await;
    // Ready means the server answers.
    let ip = pod.status.unwrap().pod_ip.unwrap();
    let answer = get(&ip).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
}

/// Whether the machine has a network interface named `name`.
fn has_link(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

#[tokio::test]
async fn a_node_that_is_stopped_removes_its_bridge_and_namespaces() {
    let control_plane = ControlPlane::shared();
    let name = format!("kiln-stopped-node-{}", std::process::id());
    let node = TestNode::start(
        control_plane,
        env!("CARGO_BIN_EXE_kiln-test-node").as_ref(),
        &name,
    )
    .await
    .unwrap();
    let client = control_plane.client().unwrap();
    let namespace = control_plane.fresh_namespace(&client).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    pods.create(&PostParams::default(), &web_pod("doomed", &name))
        .await
        .unwrap();
    let pod = eventually("the Pod is Ready", ACT_TIMEOUT, || async {
        let pod = pods.get("doomed").await.unwrap();
        is_ready(&pod).then_some(pod)
    })
    .await;
    let ip = pod.status.unwrap().pod_ip.unwrap();
    assert!(get(&ip).await.unwrap().starts_with("HTTP/1.0 200"));
    let bridge = format!("kbr{}", node.pid());
    assert!(has_link(&bridge), "{bridge}");
    // The Pod's process is the node's child (setpriv and ip exec into it).
    let pod_process = children(node.pid());
    assert_eq!(pod_process.len(), 1, "{pod_process:?}");

    // Dropping it sends SIGTERM: the node stops its Pods and removes its network.
    let pid = node.pid();
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .unwrap();
    assert!(!has_link(&bridge), "{bridge} is still there");
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    assert!(
        !namespaces.contains(&format!("kiln-{pid}-")),
        "{namespaces}"
    );
    // The Pod's former address is unreachable from the host, never routed off the machine:
    // asked without sending anything (`ip route get` only looks the route up).
    let route = std::process::Command::new("ip")
        .args(["route", "get", &ip])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&route.stdout).to_string()
        + &String::from_utf8_lossy(&route.stderr);
    assert!(
        route.contains("unreachable") || route.contains("No route"),
        "a gone Pod's address must not route anywhere: {route}"
    );
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pod_process[0]));
    assert!(
        stat.is_err()
            || stat
                .unwrap()
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z'),
        "the Pod's process still runs"
    );
}
