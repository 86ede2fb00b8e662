//! One InferenceService as the controller keeps it: the applied object, its revisions and
//! its rollout, and the KServe status computed from them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use kiln_api::inference_service::status;
use kiln_api::inference_service::{
    Addressable, ComponentStatus, Components, Condition, ConditionStatus, InferenceService,
    InferenceServiceStatus, ReplicaCounts, TrafficTarget as StatusTraffic,
};
use serde::{Deserialize, Serialize};

use crate::reconcile::Waiting;
use crate::revision::RevisionRecord;
use crate::traffic::{Rollout, TrafficTarget};

/// The condition that says why replicas asked for are not running (Knative's revision
/// condition of that name), present only while some wait.
pub const RESOURCES_AVAILABLE: &str = "ResourcesAvailable";

/// How many revisions without traffic are kept (besides the `prev` one).
pub const RETAINED_REVISIONS: usize = 2;

/// One service, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The object as applied (its `status` is computed, not stored).
    pub object: InferenceService,
    /// Its revisions, oldest first.
    pub revisions: Vec<RevisionRecord>,
    /// Which revisions are created, ready and rolled out.
    pub rollout: Rollout,
    /// Why the latest revision's replicas (all, or the rest) wait, when they do.
    #[serde(default, deserialize_with = "waiting_or_message")]
    pub unschedulable: Option<Waiting>,
}

/// Reads [`ServiceRecord::unschedulable`] as this release writes it, or as a bare message
/// (what state files written before it hold).
fn waiting_or_message<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Waiting>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Waiting(Waiting),
        Message(String),
    }
    Ok(
        Option::<Stored>::deserialize(deserializer)?.map(|stored| match stored {
            Stored::Waiting(waiting) => waiting,
            Stored::Message(message) => Waiting {
                reason: "Unschedulable".to_owned(),
                message,
            },
        }),
    )
}

impl ServiceRecord {
    /// A service just applied: no revision yet.
    pub fn new(object: InferenceService) -> Self {
        Self {
            object,
            revisions: Vec::new(),
            rollout: Rollout::default(),
            unschedulable: None,
        }
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> &str {
        self.object.namespace()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object.name()
    }

    /// The canary percent in force (`spec.predictor.canaryTrafficPercent`).
    pub fn canary_percent(&self) -> Option<u32> {
        self.object
            .spec
            .predictor
            .canary_traffic_percent
            .map(|p| p.clamp(0, 100) as u32)
    }

    /// The revision named `name`.
    pub fn revision(&self, name: &str) -> Option<&RevisionRecord> {
        self.revisions.iter().find(|r| r.name == name)
    }

    /// The current traffic split.
    pub fn traffic(&self) -> Vec<TrafficTarget> {
        self.rollout.traffic(self.canary_percent())
    }

    /// Drops old revisions beyond the retention count; never one with traffic or a tag,
    /// nor the latest created. Returns the dropped ones.
    pub fn collect_garbage(&mut self) -> Vec<RevisionRecord> {
        let traffic = self.traffic();
        let keep = |r: &RevisionRecord| {
            traffic.iter().any(|t| t.revision_name == r.name)
                || self.rollout.latest_created.as_deref() == Some(r.name.as_str())
                || self.rollout.previous_rolled_out.as_deref() == Some(r.name.as_str())
        };
        let idle: Vec<String> = self
            .revisions
            .iter()
            .filter(|r| !keep(r))
            .map(|r| r.name.clone())
            .collect();
        let drop_count = idle.len().saturating_sub(RETAINED_REVISIONS);
        let dropped: Vec<String> = idle.into_iter().take(drop_count).collect();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.revisions)
            .into_iter()
            .partition(|r| dropped.contains(&r.name));
        self.revisions = kept;
        gone
    }

    /// The object with its status in KServe's shape.
    pub fn with_status(
        &self,
        domain: &str,
        router: SocketAddr,
        replicas: &BTreeMap<String, ReplicaCounts>,
    ) -> InferenceService {
        let mut object = self.object.clone();
        let url = format!("http://{}.{}.{domain}", self.name(), self.namespace());
        let address = format!("http://{router}/v2/models/{}", self.name());
        let traffic = self.traffic();
        let latest = self.rollout.latest_created.as_deref();
        let latest_ready = latest.is_some() && self.rollout.latest_ready.as_deref() == latest;
        let mut predictor_ready = Condition::new(
            status::PREDICTOR_READY,
            if latest_ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
        );
        if !latest_ready {
            match &self.unschedulable {
                Some(waiting) => {
                    predictor_ready.reason = Some(waiting.reason.clone());
                    predictor_ready.message = Some(waiting.message.clone());
                }
                None => {
                    predictor_ready.reason = Some("RevisionNotReady".into());
                    predictor_ready.message = Some(format!(
                        "revision {} has not been ready yet",
                        latest.unwrap_or("(none)")
                    ));
                }
            }
        }
        let routed = !traffic.is_empty() && self.rollout.latest_rolled_out.is_some();
        let mut ingress = Condition::new(
            status::INGRESS_READY,
            if routed {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
        );
        if !routed {
            ingress.reason = Some("NoReadyRevision".into());
            ingress.message =
                Some("no revision has been ready yet; requests wait in the activator".into());
        }
        let all_ready = latest_ready && routed;
        let mut ready = Condition::new(
            status::READY,
            if all_ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
        );
        if !all_ready {
            ready.reason = predictor_ready.reason.clone().or(ingress.reason.clone());
            ready.message = predictor_ready.message.clone().or(ingress.message.clone());
        }
        let mut conditions = vec![ingress, predictor_ready, ready];
        if let Some(waiting) = &self.unschedulable {
            // Knative's revision condition: why replicas asked for are not running.
            let mut resources = Condition::new(RESOURCES_AVAILABLE, ConditionStatus::False);
            resources.reason = Some(waiting.reason.clone());
            resources.message = Some(waiting.message.clone());
            conditions.push(resources);
        }
        object.status = Some(InferenceServiceStatus {
            observed_generation: None,
            url: Some(url.clone()),
            address: Some(Addressable {
                url: Some(address.clone()),
            }),
            conditions,
            components: Some(Components {
                predictor: Some(ComponentStatus {
                    url: Some(url),
                    address: Some(Addressable { url: Some(address) }),
                    latest_created_revision: self.rollout.latest_created.clone(),
                    latest_ready_revision: self.rollout.latest_ready.clone(),
                    latest_rolledout_revision: self.rollout.latest_rolled_out.clone(),
                    previous_rolledout_revision: self.rollout.previous_rolled_out.clone(),
                    traffic: traffic
                        .iter()
                        .map(|t| StatusTraffic {
                            revision_name: Some(t.revision_name.clone()),
                            percent: Some(i64::from(t.percent)),
                            tag: t.tag.clone(),
                            latest_revision: Some(t.latest_revision),
                            url: t.tag.as_ref().map(|tag| {
                                format!(
                                    "http://{tag}-{}.{}.{domain}",
                                    self.name(),
                                    self.namespace()
                                )
                            }),
                        })
                        .collect(),
                    kiln_replicas: replicas.clone(),
                }),
            }),
        });
        object
    }
}
