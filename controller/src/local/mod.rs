//! The local backend of `kiln up`: replicas are `kiln predictor` child processes.
//!
//! [`LocalBackend::define`] gives a revision its [`ReplicaTemplate`]; [`LocalBackend::scale`]
//! (also [`Scaler::scale`], for the autoscaler) sets how many replicas it runs. Each revision
//! has one actor task that converges in the background and tells the controller about
//! endpoints through [`EndpointEvents`].
//!
//! ```no_run
//! # async fn up(events: std::sync::Arc<dyn kiln_controller::local::EndpointEvents>) {
//! use kiln_api::load::RevisionKey;
//! use kiln_controller::local::{LocalBackend, LocalBackendConfig, ReplicaTemplate, detect_gpus};
//!
//! let mut config = LocalBackendConfig::new("/usr/local/bin/kiln", "/var/lib/kiln/models");
//! config.gpus = detect_gpus();
//! let backend = LocalBackend::new(config, events);
//! let revision = RevisionKey::new("default", "mlp-predictor-00001");
//! backend.define(ReplicaTemplate::new(
//!     revision.clone(),
//!     vec!["--model-name".into(), "mlp".into(), "--storage-uri".into(), "file:///models/mlp".into()],
//! ));
//! backend.scale(&revision, 2); // endpoint_ready arrives twice, in the background
//! // ... on Ctrl-C or SIGTERM:
//! backend.shutdown().await;
//! # }
//! ```
//!
//! # A replica's life
//! 1. Spawned as `<program> <program_args> <template args> --bind 127.0.0.1 --http-port 0
//!    --grpc-port 0 --model-cache-dir <model_cache_dir>`, in its own process group, with
//!    `KILN_PARENT_PID` set (see below) and, when the machine has GPUs, its own
//!    `CUDA_VISIBLE_DEVICES` (empty for a replica that asks for none).
//! 2. Its stdout carries one JSON line per event: `{"event":"listening","http_port":..,
//!    "grpc_port":..}` then `{"event":"ready",..}`. Only after the ready line is
//!    [`EndpointEvents::endpoint_ready`] called. No ready line within `ready_timeout`: the
//!    replica is killed and counts as a failed start.
//! 3. Its stderr goes into a bounded ring per revision ([`LocalBackend::logs`], each line
//!    prefixed with `[pid]`) and, with `log_dir`, into `<log_dir>/<namespace>/<revision>.log`.
//! 4. Scale-down picks replicas not ready yet first, then the newest; a ready one gets
//!    [`EndpointEvents::endpoint_draining`], whose answer is the router's drain: it completes
//!    once the router sends the endpoint nothing new and its in-flight requests have finished.
//!    The backend waits for it (at most `drain_timeout`), then sends SIGTERM to the process
//!    group, SIGKILL after `drain_timeout`, and calls [`EndpointEvents::endpoint_removed`]
//!    once the process is reaped. A stop without a drain (a replica not ready yet, the
//!    backend shutting down) waits `drain_grace` instead.
//! 5. A replica that exits unasked gets `endpoint_removed` at once (if it was ready) and is
//!    replaced after an exponential back-off (`restart_backoff_min` doubling up to
//!    `restart_backoff_max`), counted per replica slot as Kubernetes counts CrashLoopBackOff
//!    per pod: a replacement inherits its slot's count, which resets once a process in it
//!    has been ready for `restart_backoff_reset`. After `max_start_failures` consecutive
//!    replicas that never became ready, [`EndpointEvents::revision_unschedulable`] carries
//!    the last stderr line;
//!    the backend keeps retrying at the largest back-off.
//!
//! # GPUs
//! A replica with `gpus_per_replica = n` takes `n` free ids of [`LocalBackendConfig::gpus`]
//! for itself (`CUDA_VISIBLE_DEVICES=id,id`) and gives them back when it exits. When not
//! enough are free (or the machine has fewer than `n`), the replica is not started and the
//! revision is reported unschedulable ("needs N GPUs, the machine has M free (of T)"); it
//! starts as soon as ids are given back. The template chooses `--device cuda` itself.
//!
//! # No orphans: the contract with `kiln predictor`
//! * Every replica leads its own process group (`process_group(0)`); signals go to the group,
//!   so whatever a replica starts is stopped with it.
//! * Every `spawn` happens on one long-lived thread, `kiln-spawner`, because Linux ties the
//!   parent-death signal to the thread that forked the child, not to the process.
//! * Each child gets `KILN_PARENT_PID=<pid of kiln up>`. **The predictor side must**, first
//!   thing at start-up when that variable is set: call `prctl(PR_SET_PDEATHSIG, SIGKILL)`,
//!   then compare `getppid()` with the variable and exit at once (non-zero) if they differ
//!   (the parent died before the prctl). So even a SIGKILL of `kiln up` takes every replica
//!   with it. A predictor started any other way (no variable) does nothing of the kind.
//! * [`LocalBackend::shutdown`] drains and stops every child and returns once all are
//!   reaped. Dropping every handle without it stops every child too (in the background); a
//!   child whose supervising task is dropped with its runtime gets SIGKILL.
//!
//! # Runtime
//! [`LocalBackend::new`] must be called inside a Tokio runtime (with the time, I/O and
//! process drivers, i.e. `enable_all`); every method but `shutdown` is non-blocking.

mod backoff;
mod capacity;
mod config;
mod gpus;
mod logs;
mod replica;
mod revision;
mod slots;
mod spawner;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kiln_api::load::{RevisionKey, Scaler};
use parking_lot::Mutex;
use tokio::sync::oneshot;

pub use capacity::{
    Capacity, CapacityConfig, CapacityError, PROCESSES_PER_CPU, Share, Shortfall, never_fits,
};
pub use config::{
    Drained, Endpoint, EndpointEvents, LocalBackendConfig, ReplicaStatus, ReplicaTemplate,
    Unschedulable, detect_gpus,
};
use revision::{Command, RevisionHandle, Shared};

/// The environment variable that carries the pid of `kiln up` to its replicas.
pub const PARENT_PID_ENV: &str = "KILN_PARENT_PID";

/// Runs revisions as local `kiln predictor` processes. Cheap to clone: clones share the
/// same replicas.
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    shared: Shared,
    revisions: Mutex<HashMap<RevisionKey, RevisionHandle>>,
    runtime: tokio::runtime::Handle,
    shutting_down: AtomicBool,
    generations: AtomicU64,
}

impl LocalBackend {
    /// A backend with no revision yet; starts the `kiln-spawner` thread.
    ///
    /// # Panics
    /// Outside a Tokio runtime, or when the thread cannot be started.
    pub fn new(config: LocalBackendConfig, events: Arc<dyn EndpointEvents>) -> Self {
        let runtime = tokio::runtime::Handle::current();
        let spawner = spawner::Spawner::start(runtime.clone()).unwrap_or_else(|err| {
            panic!("cannot start the {} thread: {err}", spawner::THREAD_NAME)
        });
        let gpus = Arc::new(gpus::GpuPool::new(config.gpus.clone()));
        Self {
            inner: Arc::new(Inner {
                shared: Shared {
                    capacity: Arc::new(capacity::CapacityPool::new(config.capacity)),
                    config: Arc::new(config),
                    events,
                    spawner,
                    gpus,
                },
                revisions: Mutex::new(HashMap::new()),
                runtime,
                shutting_down: AtomicBool::new(false),
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// Creates or replaces a revision's template. Running replicas keep running; replicas
    /// started from now on use the new template.
    pub fn define(&self, template: ReplicaTemplate) {
        let key = template.revision.clone();
        self.send(&key, Command::Define(template), true);
    }

    /// Asks for `replicas` replicas of `revision`; returns at once and converges in the
    /// background. Before [`LocalBackend::define`], the number is kept and nothing starts.
    pub fn scale(&self, revision: &RevisionKey, replicas: u32) {
        self.send(revision, Command::Scale(replicas), true);
    }

    /// Scales `revision` to zero (draining), then forgets it.
    pub fn remove(&self, revision: &RevisionKey) {
        self.send(revision, Command::Remove, false);
    }

    /// The revision's replicas now; `None` for a revision the backend does not know.
    pub fn status(&self, revision: &RevisionKey) -> Option<ReplicaStatus> {
        let revisions = self.inner.revisions.lock();
        revisions
            .get(revision)
            .map(|handle| handle.status.lock().clone())
    }

    /// Recent stderr lines of the revision's replicas, oldest first, each prefixed with
    /// `[pid] `.
    pub fn logs(&self, revision: &RevisionKey) -> Vec<String> {
        let revisions = self.inner.revisions.lock();
        revisions
            .get(revision)
            .map(|handle| handle.logs.snapshot())
            .unwrap_or_default()
    }

    /// Drains and stops every replica of every revision; returns when all have exited.
    /// Later calls to `define` and `scale` are ignored.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let waiters: Vec<oneshot::Receiver<()>> = {
            let revisions = self.inner.revisions.lock();
            revisions
                .values()
                .map(|handle| {
                    let (done, waiter) = oneshot::channel();
                    let _ = handle.commands.send(Command::Shutdown(done));
                    waiter
                })
                .collect()
        };
        tracing::info!(revisions = waiters.len(), "stopping every replica");
        for waiter in waiters {
            let _ = waiter.await;
        }
    }

    /// Sends `command` to the revision's actor, starting the actor when `create`.
    fn send(&self, key: &RevisionKey, command: Command, create: bool) {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            tracing::warn!(revision = %key, ?command, "ignored: the local backend is shutting down");
            return;
        }
        let mut revisions = self.inner.revisions.lock();
        if !revisions.contains_key(key) {
            if !create {
                return;
            }
            let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed);
            let _entered = self.inner.runtime.enter();
            let handle = revision::start(
                key.clone(),
                self.inner.shared.clone(),
                Arc::downgrade(&self.inner),
                generation,
            );
            revisions.insert(key.clone(), handle);
        }
        if let Some(handle) = revisions.get(key) {
            let _ = handle.commands.send(command);
        }
    }
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("config", &self.inner.shared.config)
            .field("revisions", &self.inner.revisions.lock().len())
            .finish()
    }
}

impl Scaler for LocalBackend {
    fn scale(&self, revision: &RevisionKey, replicas: u32) {
        LocalBackend::scale(self, revision, replicas);
    }
}
