//! `status` of an `InferenceService`, in KServe's shape, plus Kiln's replica counts.
//!
//! ```yaml
//! status:
//!   url: http://mnist.default.example.com
//!   address: {url: http://mnist.default.svc.cluster.local}
//!   conditions:
//!     - {type: Ready, status: "True", lastTransitionTime: "2026-01-01T00:00:00Z"}
//!   components:
//!     predictor:
//!       latestCreatedRevision: mnist-predictor-00002
//!       latestReadyRevision: mnist-predictor-00002
//!       latestRolledoutRevision: mnist-predictor-00001
//!       traffic:
//!         - {revisionName: mnist-predictor-00002, percent: 10, tag: latest, latestRevision: true}
//!         - {revisionName: mnist-predictor-00001, percent: 90, tag: prev, latestRevision: false}
//!       kilnReplicas:
//!         mnist-predictor-00001: {desired: 2, ready: 2}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Condition type `Ready`: the service answers at its URL.
pub const READY: &str = "Ready";
/// Condition type `PredictorReady`: the predictor's latest revision is ready.
pub const PREDICTOR_READY: &str = "PredictorReady";
/// Condition type `IngressReady`: the router serves the service's host.
pub const INGRESS_READY: &str = "IngressReady";
/// Condition type `LatestDeploymentReady`: the latest revision's replicas are up.
pub const LATEST_DEPLOYMENT_READY: &str = "LatestDeploymentReady";

/// `status` of an `InferenceService`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceStatus {
    /// `observedGeneration`: the `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `url`: where clients reach the service, e.g. `http://mnist.default.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `address`: the in-cluster address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// `conditions`, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `components`: per-component status (Kiln has only the predictor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,
}

impl InferenceServiceStatus {
    /// The condition of type `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.condition(READY)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    /// Sets a condition, replacing the one of the same type. As in Knative, when the status
    /// does not change the old `lastTransitionTime` is kept. Returns whether anything changed.
    pub fn set_condition(&mut self, mut condition: Condition) -> bool {
        match self
            .conditions
            .iter_mut()
            .find(|c| c.type_ == condition.type_)
        {
            Some(old) => {
                if old.status == condition.status {
                    condition
                        .last_transition_time
                        .clone_from(&old.last_transition_time);
                }
                let changed = *old != condition;
                *old = condition;
                changed
            }
            None => {
                self.conditions.push(condition);
                true
            }
        }
    }

    /// The predictor's status, created empty if absent.
    pub fn predictor_mut(&mut self) -> &mut ComponentStatus {
        self.components
            .get_or_insert_with(Components::default)
            .predictor
            .get_or_insert_with(ComponentStatus::default)
    }

    /// The predictor's status, if any.
    pub fn predictor(&self) -> Option<&ComponentStatus> {
        self.components.as_ref()?.predictor.as_ref()
    }
}

/// An address: `{url}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Addressable {
    /// `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A Knative-style condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `type`, e.g. [`READY`].
    #[serde(rename = "type")]
    pub type_: String,
    /// `status`: `"True"`, `"False"` or `"Unknown"`.
    pub status: ConditionStatus,
    /// `reason`: a CamelCase word saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `message`: for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `lastTransitionTime`: RFC 3339, e.g. `2026-01-01T00:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// `severity`: empty (an error), `Warning` or `Info`, as in Knative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

impl Condition {
    /// A condition of `type_` with `status`, and nothing else set.
    pub fn new(type_: &str, status: ConditionStatus) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: None,
            message: None,
            last_transition_time: None,
            severity: None,
        }
    }
}

/// A condition's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    #[default]
    Unknown,
}

impl std::fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        })
    }
}

/// `components`: status per component (`predictor`; KServe also has `transformer` and
/// `explainer`, which Kiln refuses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Components {
    /// `predictor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<ComponentStatus>,
}

/// One component's status: its revisions and traffic, as KServe reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// `url`: the component's own URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `address`: the component's in-cluster address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// `latestCreatedRevision`: the newest revision, ready or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision: Option<String>,
    /// `latestReadyRevision`: the newest revision that became ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision: Option<String>,
    /// `latestRolledoutRevision`: the revision that last took all the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_rolledout_revision: Option<String>,
    /// `previousRolledoutRevision`: the one before it (the canary's fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_rolledout_revision: Option<String>,
    /// `traffic`: how requests split between revisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    /// `kilnReplicas`: Kiln's own replica counts per revision name (not in KServe).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kiln_replicas: BTreeMap<String, ReplicaCounts>,
}

/// One entry of `traffic`, as in Knative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// `revisionName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// `percent`: 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// `tag`: e.g. `latest` or `prev`, giving the revision its own URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `latestRevision`: whether this entry follows the latest ready revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// `url`: the tag's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Kiln's replica counts for one revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    /// Replicas the autoscaler asked for.
    pub desired: u32,
    /// Replicas that are ready.
    pub ready: u32,
}
