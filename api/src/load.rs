//! The contract between the data plane and the autoscaler.
//!
//! The router measures load per revision and hands it out as [`LoadSample`]s through a
//! [`LoadSink`]; when a request arrives for a revision with no ready replica it calls
//! [`Activation::poke`] at once. The autoscaler answers with replica counts through a
//! [`Scaler`]. Neither side imports the other: both depend only on these types.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// Identifies one revision of one service: `{namespace}/{revision}` is unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    /// Namespace of the service (`default` when none is given).
    pub namespace: String,
    /// The revision's name, e.g. `mlp-predictor-00001`.
    pub revision: String,
}

impl RevisionKey {
    /// Builds a key from a namespace and a revision name.
    pub fn new(namespace: impl Into<String>, revision: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            revision: revision.into(),
        }
    }
}

impl std::fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.revision)
    }
}

/// One second of load on one revision, as Knative's queue-proxy reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSample {
    /// Which revision the sample describes.
    pub revision: RevisionKey,
    /// When the sampled second ended, measured from an arbitrary epoch shared by the
    /// producer and the consumer (the router uses the time since it started).
    pub at: Duration,
    /// Time-weighted average number of requests in the revision over the second: those in
    /// flight on replicas plus those held in the activator queue.
    pub average_concurrency: f64,
    /// Requests that arrived during the second.
    pub requests_per_second: f64,
}

/// Receives load samples from the data plane (implemented by the autoscaler's side).
pub trait LoadSink: Send + Sync + 'static {
    /// Records one sample. Must not block: it is called from the data plane.
    fn record(&self, sample: LoadSample);
}

/// Told by the data plane that a revision with no ready replica has a waiting request.
pub trait Activation: Send + Sync + 'static {
    /// Asks for capacity for `revision` now, without waiting for the next autoscaler tick.
    /// Must not block; called once per request that starts waiting (callers may coalesce).
    fn poke(&self, revision: &RevisionKey);
}

/// Sets how many replicas a revision should run (implemented by a backend).
pub trait Scaler: Send + Sync + 'static {
    /// Asks the backend to run `replicas` replicas of `revision`. Idempotent.
    fn scale(&self, revision: &RevisionKey, replicas: u32);
}

/// Largest `containerConcurrency` Knative accepts (`container-concurrency-max-limit`): the
/// manifest validator and the autoscaler's settings both bound it with this.
pub const CONTAINER_CONCURRENCY_MAX: u32 = 1000;

/// `scaleMetric` (and Knative's `autoscaling.knative.dev/metric`): which field of a
/// [`LoadSample`] the autoscaler scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleMetric {
    /// Average number of requests in the revision (in flight plus held), per replica.
    #[default]
    Concurrency,
    /// Requests per second, per replica.
    Rps,
}

impl ScaleMetric {
    /// The name manifests and annotations use: `concurrency`, `rps`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Rps => "rps",
        }
    }
}

impl fmt::Display for ScaleMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metric name the KPA does not scale on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a scale metric Kiln supports (concurrency or rps)")]
pub struct UnknownScaleMetric(pub String);

impl FromStr for ScaleMetric {
    type Err = UnknownScaleMetric;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim() {
            "concurrency" => Ok(Self::Concurrency),
            "rps" => Ok(Self::Rps),
            other => Err(UnknownScaleMetric(other.to_owned())),
        }
    }
}
