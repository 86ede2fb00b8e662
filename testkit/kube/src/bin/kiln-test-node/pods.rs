//! The Pods bound to this node: each runs as local processes (one per container, its
//! `command` and `args`; the image is not used) inside a network namespace of its own.
//!
//! One task per Pod owns its namespace and its containers' supervisors, and writes the Pod's
//! status after every change. A deleted Pod's containers get SIGTERM, then SIGKILL after the
//! Pod's grace period; then its namespace is removed and the Pod deleted for good, as a
//! kubelet does. Readiness probes are `httpGet` and `tcpSocket` (see `probe.rs`); a container
//! without one is ready while it runs. No liveness probes, volumes or images.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::network::{Network, PodNetwork};
use crate::probe::Readiness;

/// What the node shares with its Pods' tasks.
pub(crate) struct Node {
    pub(crate) client: kube::Client,
    pub(crate) name: String,
    pub(crate) network: Network,
    pub(crate) dir: PathBuf,
}

/// Why a Pod's task stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    No,
    /// The Pod is being deleted: stop it, then delete it for good.
    Delete,
    /// The node is stopping: stop the processes, leave the Pod object.
    Shutdown,
}

/// Watches the Pods bound to the node and runs them until `shutdown` resolves.
pub(crate) async fn run(node: Arc<Node>, shutdown: impl std::future::Future<Output = ()>) {
    let api: Api<Pod> = Api::all(node.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node.name));
    let events = watcher(api, config).default_backoff();
    futures::pin_mut!(events);
    futures::pin_mut!(shutdown);
    let mut pods: HashMap<String, watch::Sender<Stop>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let event = tokio::select! {
            () = &mut shutdown => break,
            event = events.next() => event,
        };
        let (pod, deleted) = match event {
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => (pod, false),
            Some(Ok(watcher::Event::Delete(pod))) => (pod, true),
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                tracing::warn!(%error, "watching Pods");
                continue;
            }
            None => break,
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        let terminating = deleted || pod.metadata.deletion_timestamp.is_some();
        if let Some(stop) = pods.get(&uid) {
            if terminating {
                stop.send_if_modified(|s| {
                    let changed = *s == Stop::No;
                    if changed {
                        *s = Stop::Delete;
                    }
                    changed
                });
            }
            if deleted {
                pods.remove(&uid);
            }
            continue;
        }
        if deleted {
            continue;
        }
        let (stop, stopped) = watch::channel(if terminating { Stop::Delete } else { Stop::No });
        pods.insert(uid, stop);
        let span = tracing::info_span!(
            "pod",
            namespace = pod.metadata.namespace.as_deref().unwrap_or_default(),
            name = pod.metadata.name.as_deref().unwrap_or_default(),
        );
        tasks.spawn(run_pod(node.clone(), pod, stopped).instrument(span));
    }
    for stop in pods.values() {
        stop.send_if_modified(|s| {
            let changed = *s == Stop::No;
            if changed {
                *s = Stop::Shutdown;
            }
            changed
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A change of one container, from its supervisor to the Pod's task.
struct Update {
    index: usize,
    state: ContainerState,
    restarts: i32,
    /// Running and, if it has a readiness probe, passing it.
    ready: bool,
    /// No more runs will follow.
    done: bool,
}

async fn run_pod(node: Arc<Node>, pod: Pod, mut stop: watch::Receiver<Stop>) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(node.client.clone(), &namespace);
    let spec = pod.spec.clone().unwrap_or_default();
    let started_at = Time(Timestamp::now());
    let reporter = Reporter {
        api: api.clone(),
        name: name.clone(),
        node_ip: node.network.gateway().to_string(),
        started_at: started_at.clone(),
        containers: spec.containers.clone(),
    };

    let network = if *stop.borrow() == Stop::No {
        match node.network.attach().await {
            Ok(network) => Some(network),
            Err(error) => {
                tracing::warn!(%error, "making the Pod's network");
                reporter
                    .failed("NetworkSetupFailed", &error.to_string())
                    .await;
                None
            }
        }
    } else {
        None
    };

    if let Some(network) = &network {
        tracing::info!(ip = %network.ip, netns = network.netns, "starting");
        let dir = node.dir.join("pods").join(format!("{namespace}_{name}"));
        let _ = std::fs::create_dir_all(&dir);
        let grace = Duration::from_secs(
            spec.termination_grace_period_seconds
                .unwrap_or(30)
                .clamp(0, 30) as u64,
        );
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".to_owned());
        let (updates, mut received) = mpsc::channel(16);
        let mut supervisors = JoinSet::new();
        for (index, container) in spec.containers.iter().enumerate() {
            supervisors.spawn(supervise(Supervised {
                index,
                container: container.clone(),
                network: network.clone(),
                dir: dir.clone(),
                policy: policy.clone(),
                grace,
                stop: stop.clone(),
                updates: updates.clone(),
            }));
        }
        drop(updates);
        let mut states: Vec<Option<Update>> = spec.containers.iter().map(|_| None).collect();
        while let Some(update) = received.recv().await {
            let index = update.index;
            states[index] = Some(update);
            reporter.report(network, &states).await;
        }
        while supervisors.join_next().await.is_some() {}
    }

    // Wait for the end: the Pod's deletion, or the node's.
    let reason = loop {
        let reason = *stop.borrow_and_update();
        if reason != Stop::No {
            break reason;
        }
        if stop.changed().await.is_err() {
            break Stop::Shutdown;
        }
    };
    if let Some(network) = &network {
        node.network.detach(network).await;
    }
    if reason == Stop::Delete {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => tracing::info!("deleted"),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => tracing::warn!(%error, "deleting the Pod"),
        }
    }
}

/// Writes a Pod's status.
struct Reporter {
    api: Api<Pod>,
    name: String,
    node_ip: String,
    started_at: Time,
    containers: Vec<Container>,
}

fn condition(type_: &str, ok: bool, now: &Time) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        last_transition_time: Some(now.clone()),
        ..PodCondition::default()
    }
}

impl Reporter {
    async fn report(&self, network: &PodNetwork, states: &[Option<Update>]) {
        let now = Time(Timestamp::now());
        let ready_one = |u: &Option<Update>| u.as_ref().is_some_and(|u| u.ready);
        let running = |u: &Option<Update>| u.as_ref().is_some_and(|u| u.state.running.is_some());
        let ready = states.iter().all(ready_one);
        let finished = states.iter().all(|u| u.as_ref().is_some_and(|u| u.done));
        let succeeded = states.iter().all(|u| {
            u.as_ref()
                .and_then(|u| u.state.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        });
        let phase = match (finished, succeeded) {
            (true, true) => "Succeeded",
            (true, false) => "Failed",
            _ => "Running",
        };
        let statuses = self
            .containers
            .iter()
            .zip(states)
            .map(|(container, update)| ContainerStatus {
                name: container.name.clone(),
                image: container.image.clone().unwrap_or_default(),
                image_id: String::new(),
                ready: ready_one(update),
                started: Some(running(update)),
                restart_count: update.as_ref().map_or(0, |u| u.restarts),
                state: Some(update.as_ref().map_or_else(
                    || ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("ContainerCreating".to_owned()),
                            ..ContainerStateWaiting::default()
                        }),
                        ..ContainerState::default()
                    },
                    |u| u.state.clone(),
                )),
                ..ContainerStatus::default()
            })
            .collect();
        let ip = network.ip.to_string();
        let status = PodStatus {
            phase: Some(phase.to_owned()),
            host_ip: Some(self.node_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.node_ip.clone(),
            }]),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            start_time: Some(self.started_at.clone()),
            conditions: Some(vec![
                condition("PodReadyToStartContainers", true, &now),
                condition("Initialized", true, &now),
                condition("ContainersReady", ready, &now),
                condition("Ready", ready, &now),
            ]),
            container_statuses: Some(statuses),
            ..PodStatus::default()
        };
        self.patch(status).await;
    }

    async fn failed(&self, reason: &str, message: &str) {
        let status = PodStatus {
            phase: Some("Failed".to_owned()),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            ..PodStatus::default()
        };
        self.patch(status).await;
    }

    async fn patch(&self, status: PodStatus) {
        let patch = serde_json::json!({ "status": status });
        if let Err(error) = self
            .api
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            tracing::warn!(pod = self.name, %error, "writing the Pod's status");
        }
    }
}

struct Supervised {
    index: usize,
    container: Container,
    network: PodNetwork,
    dir: PathBuf,
    policy: String,
    grace: Duration,
    stop: watch::Receiver<Stop>,
    updates: mpsc::Sender<Update>,
}

impl Supervised {
    async fn send(&self, state: ContainerState, restarts: i32, ready: bool, done: bool) {
        let update = Update {
            index: self.index,
            state,
            restarts,
            ready,
            done,
        };
        // The Pod's task stops listening only once every supervisor is done.
        let _ = self.updates.send(update).await;
    }
}

/// Runs one container, again as its restart policy says, until the Pod stops.
async fn supervise(mut s: Supervised) {
    let mut restarts = 0;
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = Time(Timestamp::now());
        let (code, reason) = match start(&s) {
            Ok(child) => {
                let pid = child.id();
                let running = ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started.clone()),
                    }),
                    ..ContainerState::default()
                };
                let readiness = Readiness::of(&s.container);
                let mut ready = readiness.is_none();
                s.send(running.clone(), restarts, ready, false).await;
                let mut child = child;
                let mut exit = tokio::task::spawn_blocking(move || child.wait());
                let (mut passes, mut fails) = (0u32, 0u32);
                let mut next_probe = tokio::time::Instant::now()
                    + readiness
                        .as_ref()
                        .map_or(Duration::ZERO, |r| r.initial_delay);
                let status = loop {
                    tokio::select! {
                        status = &mut exit => break status,
                        () = stopped(&mut s.stop) => break terminate(pid, s.grace, &mut exit).await,
                        () = tokio::time::sleep_until(next_probe), if readiness.is_some() => {
                            let Some(readiness) = &readiness else { continue };
                            next_probe += readiness.period;
                            if readiness.check(s.network.ip).await {
                                (passes, fails) = (passes + 1, 0);
                            } else {
                                (passes, fails) = (0, fails + 1);
                            }
                            let now_ready = if passes >= readiness.success_threshold {
                                true
                            } else if fails >= readiness.failure_threshold {
                                false
                            } else {
                                ready
                            };
                            if now_ready != ready {
                                ready = now_ready;
                                s.send(running.clone(), restarts, ready, false).await;
                            }
                        }
                    }
                };
                match status {
                    Ok(Ok(status)) => {
                        use std::os::unix::process::ExitStatusExt;
                        let code = status
                            .code()
                            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                        (code, if code == 0 { "Completed" } else { "Error" })
                    }
                    _ => (128, "Error"),
                }
            }
            Err(error) => {
                tracing::warn!(container = s.container.name, %error, "starting");
                (128, "StartError")
            }
        };
        let stopping = *s.stop.borrow() != Stop::No;
        let again = !stopping
            && match s.policy.as_str() {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => true,
            };
        let terminated = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.to_owned()),
                started_at: Some(started),
                finished_at: Some(Time(Timestamp::now())),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        };
        s.send(terminated, restarts, false, !again).await;
        if !again {
            return;
        }
        restarts += 1;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut s.stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Resolves once the Pod is told to stop.
async fn stopped(stop: &mut watch::Receiver<Stop>) {
    let _ = stop.wait_for(|stop| *stop != Stop::No).await;
}

type Exit = tokio::task::JoinHandle<std::io::Result<std::process::ExitStatus>>;

/// SIGTERM, then SIGKILL after `grace`; waits for the exit.
async fn terminate(
    pid: u32,
    grace: Duration,
    exit: &mut Exit,
) -> Result<std::io::Result<std::process::ExitStatus>, tokio::task::JoinError> {
    let pid = Pid::from_raw(pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    match tokio::time::timeout(grace, &mut *exit).await {
        Ok(status) => status,
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            exit.await
        }
    }
}

/// Starts the container's process in the Pod's namespace, dying with the node.
fn start(s: &Supervised) -> std::io::Result<std::process::Child> {
    let container = &s.container;
    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    argv.extend(container.args.clone().unwrap_or_default());
    if argv.is_empty() {
        return Err(std::io::Error::other(
            "the container has no command: kiln-test-node runs commands, not images",
        ));
    }
    let log = s.dir.join(format!("{}.log", container.name));
    let stdout = OpenOptions::new().create(true).append(true).open(&log)?;
    let stderr = stdout.try_clone()?;
    let mut command = Command::new("setpriv");
    command
        .args([
            "--pdeathsig",
            "KILL",
            "--",
            "ip",
            "netns",
            "exec",
            &s.network.netns,
        ])
        .args(&argv)
        .current_dir(
            container
                .working_dir
                .as_deref()
                .map_or(s.dir.as_path(), std::path::Path::new),
        )
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            command.env(&var.name, value);
        }
    }
    command.env("POD_IP", s.network.ip.to_string());
    kiln_kube_testkit::spawn(command)
}
