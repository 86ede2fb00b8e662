//! What the local backend is given (settings, replica templates) and what it reports
//! (endpoints, status, events).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kiln_api::load::RevisionKey;

use super::capacity::{Capacity, Share};

/// Why a revision's replicas (some or all) cannot run, for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// The condition's reason: [`Unschedulable::INSUFFICIENT_CAPACITY`] or
    /// [`Unschedulable::UNSCHEDULABLE`].
    pub reason: &'static str,
    /// What is short or failing, for a person.
    pub message: String,
}

impl Unschedulable {
    /// Too little of `kiln up`'s capacity is free: the rest of the replicas wait for room.
    pub const INSUFFICIENT_CAPACITY: &'static str = "InsufficientCapacity";
    /// The machine cannot run them as asked (GPUs), or they keep failing to start.
    pub const UNSCHEDULABLE: &'static str = "Unschedulable";
}

/// The router's drain of one endpoint, as [`EndpointEvents::endpoint_draining`] answers it:
/// completes once nothing new is sent to the endpoint and its in-flight requests have
/// finished. The backend sends SIGTERM only then.
pub type Drained = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Settings of the local backend.
#[derive(Clone)]
pub struct LocalBackendConfig {
    /// The program that runs a replica: the `kiln` binary in production, `python3` in tests.
    pub program: PathBuf,
    /// Arguments placed before the template's: `["predictor"]` in production (see
    /// [`LocalBackendConfig::new`]), a fake predictor script in tests.
    pub program_args: Vec<String>,
    /// Model cache shared by every replica (`--model-cache-dir`), so a cold start after the
    /// first download does not download again.
    pub model_cache_dir: PathBuf,
    /// When set, replica stderr is also appended to `<log_dir>/<namespace>/<revision>.log`.
    pub log_dir: Option<PathBuf>,
    /// How long a stopping replica gets between SIGTERM and SIGKILL; also the longest the
    /// backend waits for in-flight requests to reach 0 before SIGTERM.
    pub drain_timeout: Duration,
    /// How long a replica stopped without a drain (not ready yet) waits before SIGTERM.
    pub drain_grace: Duration,
    /// What may run at once (processes, CPU and memory requests).
    pub capacity: Capacity,
    /// A replica that has not printed its ready line within this time is killed and counts
    /// as a failed start.
    pub ready_timeout: Duration,
    /// First delay before a crashed replica is replaced; doubles on each consecutive crash.
    pub restart_backoff_min: Duration,
    /// Largest delay before a crashed replica is replaced.
    pub restart_backoff_max: Duration,
    /// A replica that stayed ready this long before it crashed resets the back-off.
    pub restart_backoff_reset: Duration,
    /// After this many consecutive failed starts, the revision is reported unschedulable
    /// (the backend keeps retrying at the largest back-off).
    pub max_start_failures: u32,
    /// GPU ids replicas may use (see [`detect_gpus`]: `KILN_GPUS` or `nvidia-smi -L`); empty
    /// means none.
    pub gpus: Vec<String>,
    /// How many recent stderr lines [`crate::local::LocalBackend::logs`] keeps per revision.
    pub log_lines: usize,
}

impl LocalBackendConfig {
    /// Production defaults: runs `<program> predictor ...`, 30 s drain, 5 min ready timeout
    /// (a first start may download the model), back-off from 1 s to 1 min, no GPUs (set
    /// `gpus` from [`detect_gpus`]).
    pub fn new(program: impl Into<PathBuf>, model_cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            program_args: vec!["predictor".to_owned()],
            model_cache_dir: model_cache_dir.into(),
            log_dir: None,
            drain_timeout: Duration::from_secs(30),
            drain_grace: Duration::from_millis(100),
            capacity: Capacity::of_machine(),
            ready_timeout: Duration::from_secs(300),
            restart_backoff_min: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(60),
            restart_backoff_reset: Duration::from_secs(60),
            max_start_failures: 5,
            gpus: Vec::new(),
            log_lines: 1000,
        }
    }
}

/// The GPU ids of this machine: `KILN_GPUS` (comma-separated ids, empty for none) when set,
/// else the indices `nvidia-smi -L` lists, else none.
pub fn detect_gpus() -> Vec<String> {
    if let Ok(ids) = std::env::var("KILN_GPUS") {
        return ids
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
    }
    match std::process::Command::new("nvidia-smi").arg("-L").output() {
        Ok(out) if out.status.success() => {
            parse_nvidia_smi_list(&String::from_utf8_lossy(&out.stdout))
        }
        _ => Vec::new(),
    }
}

/// Indices from `nvidia-smi -L` lines such as `GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)`
/// (MIG lines, indented, are skipped).
fn parse_nvidia_smi_list(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|line| line.strip_prefix("GPU "))
        .filter_map(|rest| rest.split_once(':'))
        .filter(|(index, _)| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        .map(|(index, _)| index.to_owned())
        .collect()
}

impl fmt::Debug for LocalBackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBackendConfig")
            .field("program", &self.program)
            .field("program_args", &self.program_args)
            .field("model_cache_dir", &self.model_cache_dir)
            .field("log_dir", &self.log_dir)
            .field("drain_timeout", &self.drain_timeout)
            .field("drain_grace", &self.drain_grace)
            .field("capacity", &self.capacity)
            .field("ready_timeout", &self.ready_timeout)
            .field("restart_backoff_min", &self.restart_backoff_min)
            .field("restart_backoff_max", &self.restart_backoff_max)
            .field("restart_backoff_reset", &self.restart_backoff_reset)
            .field("max_start_failures", &self.max_start_failures)
            .field("gpus", &self.gpus)
            .field("log_lines", &self.log_lines)
            .finish()
    }
}

/// How to start one replica of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaTemplate {
    /// The revision the replicas serve.
    pub revision: RevisionKey,
    /// Arguments after `kiln predictor`: `--model-name`, `--storage-uri`, `--model-format`,
    /// `--device`, `--max-batch-size`... The backend appends `--bind 127.0.0.1 --http-port 0
    /// --grpc-port 0 --model-cache-dir <dir>`, so the template must not carry those.
    pub args: Vec<String>,
    /// Extra environment of the replica process.
    pub env: Vec<(String, String)>,
    /// GPUs each replica gets for itself, through `CUDA_VISIBLE_DEVICES`.
    pub gpus_per_replica: u32,
    /// The CPU and memory each replica's requests take of the capacity.
    pub share: Share,
}

impl ReplicaTemplate {
    /// A template without extra environment or GPUs.
    pub fn new(revision: RevisionKey, args: Vec<String>) -> Self {
        Self {
            revision,
            args,
            env: Vec::new(),
            gpus_per_replica: 0,
            share: Share::default(),
        }
    }
}

/// Where a ready replica serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// REST (v1/v2) address.
    pub http: SocketAddr,
    /// v2 gRPC address.
    pub grpc: SocketAddr,
    /// The replica's process id (also its process group id).
    pub pid: u32,
}

/// A revision's replicas as the backend sees them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Replicas asked for.
    pub desired: u32,
    /// Replicas started but not ready yet.
    pub starting: u32,
    /// Replicas ready and routable.
    pub ready: u32,
    /// Replicas being drained and stopped.
    pub draining: u32,
    /// Replicas replaced after they exited unasked (crash or ready timeout).
    pub restarts: u32,
    /// The last reason a replica failed or could not be started, if any.
    pub last_error: Option<String>,
    /// Endpoints of the ready replicas.
    pub endpoints: Vec<Endpoint>,
}

/// Receives the life of endpoints (implemented by the controller, which updates the router).
pub trait EndpointEvents: Send + Sync + 'static {
    /// A replica printed its ready line: route to it.
    fn endpoint_ready(&self, revision: &RevisionKey, endpoint: Endpoint);
    /// A replica is about to be stopped: stop routing new requests to it, and answer the
    /// drain that completes once its in-flight requests have finished.
    fn endpoint_draining(&self, revision: &RevisionKey, endpoint: &Endpoint) -> Drained;
    /// A replica is gone (crashed, or drained and stopped).
    fn endpoint_removed(&self, revision: &RevisionKey, endpoint: &Endpoint);
    /// The revision cannot run as asked: too little capacity free, not enough GPUs, or
    /// replicas keep failing to start.
    fn revision_unschedulable(&self, revision: &RevisionKey, why: Unschedulable);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gpu_indices_from_nvidia_smi() {
        let list = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1a2b)\n\
                    GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-3c4d)\n  \
                    MIG 3g.40gb     Device  0: (UUID: MIG-5e6f)\n";
        assert_eq!(parse_nvidia_smi_list(list), vec!["0", "1"]);
        assert!(parse_nvidia_smi_list("No devices were found\n").is_empty());
    }
}
