//! One revision's reconcile loop: an actor task that owns its replicas' records, starts and
//! stops replicas until their number matches the desired one, and replaces crashed ones.

use std::sync::{Arc, Weak};

use kiln_api::load::RevisionKey;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

use super::Inner;
use super::capacity::{CapacityPool, Share};
use super::config::{
    Drained, Endpoint, EndpointEvents, LocalBackendConfig, ReplicaStatus, ReplicaTemplate,
    Unschedulable,
};
use super::gpus::GpuPool;
use super::logs::LogRing;
use super::replica::{self, ReplicaCtx, ReplicaEvent};
use super::slots::{Backoff, Slots};
use super::spawner::Spawner;

/// What the backend asks of a revision.
#[derive(Debug)]
pub(crate) enum Command {
    Define(ReplicaTemplate),
    Scale(u32),
    Remove,
    Shutdown(oneshot::Sender<()>),
}

/// The backend's handle on a revision actor.
pub(crate) struct RevisionHandle {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) status: Arc<Mutex<ReplicaStatus>>,
    pub(crate) logs: Arc<LogRing>,
    generation: u64,
}

/// What every revision actor shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: Arc<LocalBackendConfig>,
    pub(crate) events: Arc<dyn EndpointEvents>,
    pub(crate) spawner: Spawner,
    pub(crate) gpus: Arc<GpuPool>,
    pub(crate) capacity: Arc<CapacityPool>,
}

/// Starts the actor of `key`; the caller inserts the handle in the map.
pub(crate) fn start(
    key: RevisionKey,
    shared: Shared,
    backend: Weak<Inner>,
    generation: u64,
) -> RevisionHandle {
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (replica_tx, replica_rx) = mpsc::unbounded_channel();
    let status = Arc::new(Mutex::new(ReplicaStatus::default()));
    let logs = Arc::new(LogRing::new(shared.config.log_lines));
    let actor = Actor {
        gpu_released: shared.gpus.subscribe(),
        capacity_released: shared.capacity.subscribe(),
        key,
        shared,
        backend,
        generation,
        commands: commands_rx,
        commands_closed: false,
        replica_tx,
        replica_rx,
        status: status.clone(),
        logs: logs.clone(),
        template: None,
        desired: 0,
        removing: false,
        shutting_down: false,
        shutdown_waiters: Vec::new(),
        replicas: Vec::new(),
        next_id: 0,
        slots: Slots::default(),
        start_failures: 0,
        restarts: 0,
        next_start: None,
        waiting_for_gpus: false,
        waiting_for_capacity: false,
        last_error: None,
        reported: None,
    };
    tokio::spawn(actor.run());
    RevisionHandle {
        commands,
        status,
        logs,
        generation,
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Starting,
    Ready {
        endpoint: Endpoint,
        since: Instant,
    },
    /// Asked to stop; the endpoint is set when it had been published.
    Draining {
        endpoint: Option<Endpoint>,
    },
}

struct Replica {
    id: u64,
    /// Its slot, for the crash back-off.
    slot: usize,
    pid: u32,
    started: Instant,
    phase: Phase,
    gpus: Vec<String>,
    /// What it holds of the capacity.
    share: Share,
    stop: Option<oneshot::Sender<Option<Drained>>>,
}

struct Actor {
    key: RevisionKey,
    shared: Shared,
    backend: Weak<Inner>,
    generation: u64,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_closed: bool,
    replica_tx: mpsc::UnboundedSender<ReplicaEvent>,
    replica_rx: mpsc::UnboundedReceiver<ReplicaEvent>,
    gpu_released: watch::Receiver<u64>,
    capacity_released: watch::Receiver<u64>,
    status: Arc<Mutex<ReplicaStatus>>,
    logs: Arc<LogRing>,

    template: Option<ReplicaTemplate>,
    desired: u32,
    removing: bool,
    shutting_down: bool,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    replicas: Vec<Replica>,
    next_id: u64,
    /// Crash back-off, per replica slot.
    slots: Slots,
    /// Consecutive replicas that never became ready.
    start_failures: u32,
    restarts: u32,
    /// When the next free slot's back-off ends (the actor wakes then to start a replica).
    next_start: Option<Instant>,
    waiting_for_gpus: bool,
    waiting_for_capacity: bool,
    last_error: Option<String>,
    /// The unschedulable reason last reported, so that it is reported once (until a replica
    /// becomes ready or the desired count changes).
    reported: Option<String>,
}

impl Actor {
    async fn run(mut self) {
        tracing::debug!(revision = %self.key, "revision actor starts");
        loop {
            self.reconcile().await;
            self.publish_status();
            if self.finished() && self.leave_map() {
                break;
            }
            let timer = self.next_start.filter(|_| self.wants_more());
            tokio::select! {
                // Commands first: a delete, a scale-down or a shutdown is acted on before
                // the next replica starts.
                biased;
                command = self.commands.recv(), if !self.commands_closed => match command {
                    Some(command) => self.on_command(command),
                    None => {
                        // Every handle on the backend is gone: stop everything.
                        self.commands_closed = true;
                        self.shutting_down = true;
                    }
                },
                Some(event) = self.replica_rx.recv() => self.on_replica(event),
                _ = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    self.next_start = None;
                }
                _ = self.gpu_released.changed(), if self.waiting_for_gpus => {}
                _ = self.capacity_released.changed(), if self.waiting_for_capacity => {}
            }
        }
        for waiter in self.shutdown_waiters.drain(..) {
            let _ = waiter.send(());
        }
        tracing::debug!(revision = %self.key, "revision actor ends");
    }

    fn target(&self) -> u32 {
        if self.removing || self.shutting_down {
            0
        } else {
            self.desired
        }
    }

    fn live(&self) -> u32 {
        let live = self
            .replicas
            .iter()
            .filter(|r| !matches!(r.phase, Phase::Draining { .. }))
            .count();
        u32::try_from(live).unwrap_or(u32::MAX)
    }

    fn wants_more(&self) -> bool {
        self.live() < self.target()
    }

    fn finished(&self) -> bool {
        (self.removing || self.shutting_down) && self.replicas.is_empty()
    }

    /// Takes this actor out of the backend's map; false when a command arrived meanwhile.
    fn leave_map(&mut self) -> bool {
        let Some(backend) = self.backend.upgrade() else {
            return true;
        };
        let mut revisions = backend.revisions.lock();
        // Senders only send while holding this lock: an empty queue now stays empty.
        if let Ok(command) = self.commands.try_recv() {
            drop(revisions);
            self.on_command(command);
            return false;
        }
        if revisions
            .get(&self.key)
            .is_some_and(|handle| handle.generation == self.generation)
        {
            revisions.remove(&self.key);
        }
        true
    }

    fn on_command(&mut self, command: Command) {
        tracing::debug!(revision = %self.key, ?command, "command");
        match command {
            Command::Define(template) => {
                self.template = Some(template);
                self.removing = false;
            }
            Command::Scale(replicas) => {
                if replicas != self.desired {
                    // A new request gets a new verdict.
                    self.reported = None;
                }
                self.desired = replicas;
            }
            Command::Remove => {
                self.removing = true;
                self.desired = 0;
            }
            Command::Shutdown(waiter) => {
                self.shutting_down = true;
                self.shutdown_waiters.push(waiter);
            }
        }
    }

    async fn reconcile(&mut self) {
        self.waiting_for_gpus = false;
        self.waiting_for_capacity = false;
        let target = self.target();
        let mut live = self.live();
        while live > target {
            self.stop_one();
            live -= 1;
        }
        if live >= target {
            return;
        }
        let Some(template) = self.template.clone() else {
            self.last_error = Some("no replica template defined".to_owned());
            return;
        };
        self.next_start = None;
        // One start per pass: the actor's loop takes pending commands before the next one.
        {
            let occupied: Vec<usize> = self
                .replicas
                .iter()
                .filter(|r| !matches!(r.phase, Phase::Draining { .. }))
                .map(|r| r.slot)
                .collect();
            let slot = match self.slots.free(&occupied, target as usize, Instant::now()) {
                Ok(slot) => slot,
                Err(backing_off_until) => {
                    self.next_start = backing_off_until;
                    return;
                }
            };
            if let Err(short) = self.shared.capacity.take(template.share) {
                self.waiting_for_capacity = true;
                let running = self.live();
                self.unschedulable(Unschedulable {
                    reason: Unschedulable::INSUFFICIENT_CAPACITY,
                    message: format!(
                        "{running} of {target} replicas run; the rest wait for room: {short}"
                    ),
                });
                return;
            }
            let gpus = match self.shared.gpus.take(template.gpus_per_replica) {
                Ok(gpus) => gpus,
                Err(short) => {
                    self.shared.capacity.give_back(template.share);
                    self.waiting_for_gpus = true;
                    self.unschedulable(Unschedulable {
                        reason: Unschedulable::UNSCHEDULABLE,
                        message: short.to_string(),
                    });
                    return;
                }
            };
            if let Err(err) = self.start_one(&template, gpus, slot).await {
                self.shared.capacity.give_back(template.share);
                let error = format!(
                    "cannot start {}: {err}",
                    self.shared.config.program.display()
                );
                self.crashed(slot, None, error.clone(), Some(error));
                return;
            }
        }
        if self.wants_more() {
            // Come straight back for the next one, after any command that arrived.
            self.next_start = Some(Instant::now());
        }
    }

    /// Stops the least useful replica: one not ready yet, else the newest.
    fn stop_one(&mut self) {
        let victim = self
            .replicas
            .iter_mut()
            .filter(|r| !matches!(r.phase, Phase::Draining { .. }))
            .max_by_key(|r| (matches!(r.phase, Phase::Starting), r.started, r.id));
        let Some(victim) = victim else { return };
        let endpoint = match victim.phase {
            Phase::Ready { endpoint, .. } => Some(endpoint),
            _ => None,
        };
        tracing::info!(revision = %self.key, pid = victim.pid, "stopping a replica");
        victim.phase = Phase::Draining { endpoint };
        let stop = victim.stop.take();
        let drained = endpoint.as_ref().map(|endpoint| {
            self.publish_status();
            self.shared.events.endpoint_draining(&self.key, endpoint)
        });
        if let Some(stop) = stop {
            let _ = stop.send(drained);
        }
    }

    async fn start_one(
        &mut self,
        template: &ReplicaTemplate,
        gpus: Vec<String>,
        slot: usize,
    ) -> std::io::Result<()> {
        let config = &self.shared.config;
        let mut command = std::process::Command::new(&config.program);
        command
            .args(&config.program_args)
            .args(&template.args)
            .args([
                "--bind",
                "127.0.0.1",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
            ])
            .arg("--model-cache-dir")
            .arg(&config.model_cache_dir)
            .envs(template.env.iter().map(|(k, v)| (k, v)))
            .env(super::PARENT_PID_ENV, std::process::id().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if template.gpus_per_replica > 0 || self.shared.gpus.total() > 0 {
            command.env("CUDA_VISIBLE_DEVICES", gpus.join(","));
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = match self.shared.spawner.spawn(command).await {
            Ok(child) => child,
            Err(err) => {
                self.shared.gpus.give_back(gpus);
                return Err(err);
            }
        };
        let pid = child.id().unwrap_or_default();
        self.next_id += 1;
        let id = self.next_id;
        tracing::info!(revision = %self.key, pid, gpus = ?gpus, "replica started");
        let (stop, stop_rx) = oneshot::channel();
        self.replicas.push(Replica {
            id,
            slot,
            share: template.share,
            pid,
            started: Instant::now(),
            phase: Phase::Starting,
            gpus,
            stop: Some(stop),
        });
        let ctx = ReplicaCtx {
            id,
            revision: self.key.clone(),
            config: config.clone(),
            logs: self.logs.clone(),
            events: self.replica_tx.clone(),
        };
        tokio::spawn(replica::supervise(child, ctx, stop_rx));
        Ok(())
    }

    fn on_replica(&mut self, event: ReplicaEvent) {
        match event {
            ReplicaEvent::Ready { id, endpoint } => {
                let Some(replica) = self.replicas.iter_mut().find(|r| r.id == id) else {
                    return;
                };
                // A replica asked to stop meanwhile is never published.
                if let Phase::Starting = replica.phase {
                    replica.phase = Phase::Ready {
                        endpoint,
                        since: Instant::now(),
                    };
                    self.start_failures = 0;
                    self.reported = None;
                    tracing::info!(revision = %self.key, pid = endpoint.pid, http = %endpoint.http, "replica ready");
                    self.publish_status();
                    self.shared.events.endpoint_ready(&self.key, endpoint);
                }
            }
            ReplicaEvent::Exited {
                id,
                asked,
                error,
                last_line,
            } => {
                let Some(index) = self.replicas.iter().position(|r| r.id == id) else {
                    return;
                };
                let replica = self.replicas.swap_remove(index);
                self.shared.gpus.give_back(replica.gpus);
                self.shared.capacity.give_back(replica.share);
                let crashed = !asked && !matches!(replica.phase, Phase::Draining { .. });
                if crashed {
                    self.restarts += 1;
                }
                match replica.phase {
                    Phase::Ready { endpoint, .. }
                    | Phase::Draining {
                        endpoint: Some(endpoint),
                    } => {
                        self.publish_status();
                        self.shared.events.endpoint_removed(&self.key, &endpoint);
                    }
                    _ => {}
                }
                if crashed {
                    let error = match &last_line {
                        Some(line) => format!("replica {}: {error}: {line}", replica.pid),
                        None => format!("replica {}: {error}", replica.pid),
                    };
                    self.crashed(replica.slot, Some(replica.phase), error, last_line);
                }
            }
        }
    }

    /// Counts a crash of the replica in `slot` (`phase`: what it was; `None`: it could not
    /// be spawned) and sets that slot's back-off before its next start.
    fn crashed(
        &mut self,
        slot: usize,
        phase: Option<Phase>,
        error: String,
        last_line: Option<String>,
    ) {
        tracing::warn!(revision = %self.key, slot, error, "replica failed");
        self.last_error = Some(error.clone());
        let config = &self.shared.config;
        let up_for = match phase {
            Some(Phase::Ready { since, .. }) => Some(since.elapsed()),
            _ => {
                self.start_failures += 1;
                None
            }
        };
        let backoff = Backoff {
            min: config.restart_backoff_min,
            max: config.restart_backoff_max,
            reset: config.restart_backoff_reset,
        };
        let at_max = self.start_failures >= config.max_start_failures;
        let now = Instant::now();
        let delay = self.slots.crashed(slot, up_for, at_max, backoff, now);
        // Wake when the slot may start again (a reconcile recomputes this from every slot).
        self.next_start = Some(
            self.next_start
                .map_or(now + delay, |at| at.min(now + delay)),
        );
        if self.start_failures >= config.max_start_failures {
            let reason = last_line.unwrap_or(error);
            self.unschedulable(Unschedulable {
                reason: Unschedulable::UNSCHEDULABLE,
                message: format!("replicas keep failing to start: {reason}"),
            });
        }
    }

    fn unschedulable(&mut self, why: Unschedulable) {
        self.last_error = Some(why.message.clone());
        if self.reported.as_ref() == Some(&why.message) {
            return;
        }
        tracing::warn!(revision = %self.key, reason = why.reason, message = why.message, "revision cannot run as asked");
        self.reported = Some(why.message.clone());
        self.publish_status();
        self.shared.events.revision_unschedulable(&self.key, why);
    }

    fn publish_status(&self) {
        let mut status = ReplicaStatus {
            desired: self.target(),
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            ..ReplicaStatus::default()
        };
        for replica in &self.replicas {
            match replica.phase {
                Phase::Starting => status.starting += 1,
                Phase::Ready { endpoint, .. } => {
                    status.ready += 1;
                    status.endpoints.push(endpoint);
                }
                Phase::Draining { .. } => status.draining += 1,
            }
        }
        *self.status.lock() = status;
    }
}
