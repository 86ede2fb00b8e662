//! The reconcile core: one pure, idempotent function from the desired state (an
//! InferenceService with its revision history) and the observed state (what each revision's
//! replicas are doing) to what should be done about it and the status to report.
//!
//! Both backends call it, the way kube-rs controllers are shaped: `kiln up`'s local process
//! backend, and the Kubernetes backend (Deployments and Services). Everything KServe users
//! rely on is decided here, once: revision numbering (a new `{name}-predictor-0000N` per change
//! of the predictor spec), first readiness and the rollout it advances (latest, canary
//! percent, the `latest`/`prev` tags, promote and rollback through the spec), garbage
//! collection of old revisions, each revision's autoscaling, and KServe's status conditions.
//! A backend only carries out the [`Action`]s, and events only queue the service's key.
//!
//! Reconciling twice with the same inputs gives the same record and the same actions, so a
//! lost or repeated event costs nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use kiln_api::inference_service::{InferenceService, ReplicaCounts, ServableSpec, validate};
use kiln_autoscaler::{AutoscalerConfig, PredictorScaling, RevisionScaling};

use crate::revision::RevisionRecord;
use crate::service::ServiceRecord;
use crate::traffic::TrafficTarget;

/// What a backend observed of one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedRevision {
    /// Replicas asked for.
    pub desired: u32,
    /// Replicas ready and routable.
    pub ready: u32,
    /// Why the revision's replicas (all, or the rest of them) cannot run, if so.
    pub unschedulable: Option<Waiting>,
}

/// Why replicas wait: a condition's reason and message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Waiting {
    /// `InsufficientCapacity` (too little free: the rest wait for room) or `Unschedulable`
    /// (the machine cannot run them as asked, or they keep failing to start).
    pub reason: String,
    /// For a person.
    pub message: String,
}

/// What a backend observed of one service's revisions, by revision name. A revision it does
/// not know reads as nothing running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Per revision.
    pub revisions: BTreeMap<String, ObservedRevision>,
}

impl Observed {
    fn of(&self, revision: &str) -> ObservedRevision {
        self.revisions.get(revision).cloned().unwrap_or_default()
    }

    /// The replica counts of each revision, as the status reports them.
    pub fn replica_counts(&self) -> BTreeMap<String, ReplicaCounts> {
        self.revisions
            .iter()
            .map(|(name, seen)| {
                (
                    name.clone(),
                    ReplicaCounts {
                        desired: seen.desired,
                        ready: seen.ready,
                    },
                )
            })
            .collect()
    }
}

/// How a revision is reached from the service: its share and tag.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRoute {
    /// The revision.
    pub revision: String,
    /// Share of requests, 0 to 100.
    pub percent: u32,
    /// `latest` or `prev`.
    pub tag: Option<String>,
    /// `containerConcurrency` (0: unlimited).
    pub container_concurrency: u32,
}

/// The service's routes: what the router (or the cluster's Services) should send where.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Every revision still kept, in creation order, with its share (0 for idle ones).
    pub revisions: Vec<RevisionRoute>,
    /// `timeout` of the predictor, when set.
    pub timeout: Option<Duration>,
}

/// One thing the backend is to do for a service.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The revision should exist with this template and autoscaling (created, or updated
    /// in place when only its scaling changed).
    EnsureRevision {
        /// The revision.
        revision: RevisionRecord,
        /// Its autoscaling settings (boxed: the largest part of an action).
        scaling: Box<RevisionScaling>,
    },
    /// Route the service's traffic so.
    Publish(Route),
    /// Stop and forget a revision (garbage-collected, or its service deleted).
    RemoveRevision {
        /// The revision's name.
        revision: String,
    },
    /// Remove the service's routes (it was deleted).
    Unpublish,
}

/// What every reconcile of one controller shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// The domain of service hosts (`{name}.{namespace}.{domain}`).
    pub domain: String,
    /// The address in `status.address`.
    pub address: SocketAddr,
    /// The autoscaler's defaults, which each service's settings are checked against.
    pub autoscaler: AutoscalerConfig,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// The record with its revisions and rollout brought up to date: persist it.
    pub record: ServiceRecord,
    /// What the backend is to do, in order.
    pub actions: Vec<Action>,
    /// The revisions garbage-collected by this reconcile.
    pub collected: Vec<String>,
    /// Whether a new revision was created from the spec.
    pub created: Option<String>,
    /// The object with its KServe status.
    pub status: InferenceService,
}

/// A service whose spec Kiln cannot serve: the message `kiln apply` gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unservable(pub String);

/// Validates a service's spec and its autoscaling: what [`reconcile`] needs before acting,
/// and what an apply checks of every service before it changes anything.
pub fn check(
    object: &InferenceService,
    autoscaler: &AutoscalerConfig,
) -> Result<ServableSpec, Unservable> {
    let servable = validate(object).map_err(|errors| {
        Unservable(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    scaling(&servable, true)
        .and_then(|s| s.resolve(autoscaler))
        .map_err(|e| Unservable(e.to_string()))?;
    Ok(servable)
}

/// Adds a revision when the predictor spec changed (or there is none); returns its name.
fn next_revision(record: &mut ServiceRecord, servable: &ServableSpec) -> Option<String> {
    let hash = servable.spec_hash();
    if record.revisions.last().is_some_and(|r| r.spec_hash == hash) {
        return None;
    }
    let generation = record.revisions.last().map_or(1, |r| r.generation + 1);
    let revision = RevisionRecord::new(record.name(), generation, servable);
    let name = revision.name.clone();
    record.rollout.latest_created = Some(name.clone());
    record.unschedulable = None;
    record.revisions.push(revision);
    Some(name)
}

/// Reconciles one service: the desired `record` (its object as applied, revision history and
/// rollout) against what the backend `observed`.
pub fn reconcile(
    record: &ServiceRecord,
    observed: &Observed,
    context: &Context,
) -> Result<Reconciled, Unservable> {
    let servable = check(&record.object, &context.autoscaler)?;
    let mut record = record.clone();
    let created = next_revision(&mut record, &servable);

    // First readiness: Knative's revision Ready, and the rollout it advances.
    let canary = record.canary_percent();
    let mut became_ready = Vec::new();
    for revision in &mut record.revisions {
        if !revision.ready_once && observed.of(&revision.name).ready > 0 {
            revision.ready_once = true;
            became_ready.push(revision.name.clone());
        }
    }
    for name in &became_ready {
        record.rollout.revision_ready(name, canary);
    }
    // Why the latest revision's replicas wait, if they do: all of them (it is not ready),
    // or the rest of them (it runs the replicas that fit).
    record.unschedulable = record
        .rollout
        .latest_created
        .as_deref()
        .and_then(|latest| observed.of(latest).unschedulable);

    let collected: Vec<String> = record
        .collect_garbage()
        .into_iter()
        .map(|r| r.name)
        .collect();

    let traffic = record.traffic();
    let mut actions = Vec::with_capacity(record.revisions.len() + collected.len() + 1);
    let mut routes = Vec::with_capacity(record.revisions.len());
    for revision in &record.revisions {
        let target = traffic.iter().find(|t| t.revision_name == revision.name);
        let percent = target.map_or(0, |t| t.percent);
        let scaling = scaling(&servable, percent > 0).map_err(|e| Unservable(e.to_string()))?;
        actions.push(Action::EnsureRevision {
            revision: revision.clone(),
            scaling: Box::new(scaling),
        });
        routes.push(RevisionRoute {
            revision: revision.name.clone(),
            percent,
            tag: target.and_then(|t: &TrafficTarget| t.tag.clone()),
            container_concurrency: revision.container_concurrency,
        });
    }
    actions.push(Action::Publish(Route {
        revisions: routes,
        timeout: servable.timeout,
    }));
    actions.extend(collected.iter().map(|name| Action::RemoveRevision {
        revision: name.clone(),
    }));

    let replicas: BTreeMap<String, ReplicaCounts> = observed
        .replica_counts()
        .into_iter()
        .filter(|(name, _)| record.revision(name).is_some())
        .collect();
    let status = record.with_status(&context.domain, context.address, &replicas);
    Ok(Reconciled {
        record,
        actions,
        collected,
        created,
        status,
    })
}

/// What deleting a service takes: its routes, then each of its revisions.
pub fn teardown(record: &ServiceRecord) -> Vec<Action> {
    std::iter::once(Action::Unpublish)
        .chain(record.revisions.iter().map(|r| Action::RemoveRevision {
            revision: r.name.clone(),
        }))
        .collect()
}

/// A revision's autoscaling: the service's annotations and predictor fields; a revision
/// without traffic may go to zero whatever `minReplicas` says.
fn scaling(
    servable: &ServableSpec,
    routed: bool,
) -> Result<RevisionScaling, kiln_autoscaler::ConfigError> {
    let predictor = PredictorScaling {
        min_replicas: Some(if routed { servable.min_replicas } else { 0 }),
        max_replicas: servable.max_replicas,
        scale_target: servable.scale_target,
        scale_metric: servable.scale_metric.map(|m| m.to_string()),
        container_concurrency: Some(servable.container_concurrency),
    };
    RevisionScaling::from_annotations(
        servable
            .annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )?
    .with_predictor(&predictor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_api::inference_service::{ConditionStatus, load_str};

    fn context() -> Context {
        Context {
            domain: "example.com".into(),
            address: "127.0.0.1:8080".parse().unwrap(),
            autoscaler: AutoscalerConfig::default(),
        }
    }

    fn object(storage: &str, predictor_extra: &str) -> InferenceService {
        let text = format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n\
             spec:\n  predictor:\n{predictor_extra}    model:\n      modelFormat: {{name: onnx}}\n      \
             storageUri: {storage}\n"
        );
        load_str(&text, None).unwrap().services.remove(0).object
    }

    fn ready(names: &[&str]) -> Observed {
        Observed {
            revisions: names
                .iter()
                .map(|n| {
                    let seen = ObservedRevision {
                        desired: 1,
                        ready: 1,
                        unschedulable: None,
                    };
                    ((*n).to_owned(), seen)
                })
                .collect(),
        }
    }

    fn published(reconciled: &Reconciled) -> Vec<(String, u32, Option<String>)> {
        reconciled
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Publish(route) => Some(
                    route
                        .revisions
                        .iter()
                        .map(|r| (r.revision.clone(), r.percent, r.tag.clone()))
                        .collect(),
                ),
                _ => None,
            })
            .expect("every reconcile publishes the routes")
    }

    fn removed(reconciled: &Reconciled) -> Vec<&str> {
        reconciled
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::RemoveRevision { revision } => Some(revision.as_str()),
                _ => None,
            })
            .collect()
    }

    fn condition(reconciled: &Reconciled, type_: &str) -> ConditionStatus {
        let status = reconciled.status.status.as_ref().unwrap();
        status.condition(type_).unwrap().status
    }

    /// Reconciles once, and checks that what follows is a fixed point, as repeated events
    /// would find it: the same record and the same actions (a collected revision is
    /// removed once), nothing created again.
    fn settle(record: &ServiceRecord, observed: &Observed) -> Reconciled {
        let first = reconcile(record, observed, &context()).unwrap();
        let second = reconcile(&first.record, observed, &context()).unwrap();
        let third = reconcile(&second.record, observed, &context()).unwrap();
        assert_eq!(second.record.revisions, first.record.revisions);
        assert_eq!(second.record.rollout, first.record.rollout);
        assert_eq!(second.created, None, "nothing is created twice");
        assert!(second.collected.is_empty(), "nothing is collected twice");
        assert_eq!(third.actions, second.actions, "the same actions again");
        first
    }

    #[test]
    fn a_new_service_gets_its_first_revision_with_all_traffic_waiting_for_it() {
        let record = ServiceRecord::new(object("file:///a", ""));
        let r = settle(&record, &Observed::default());
        assert_eq!(r.created.as_deref(), Some("m-predictor-00001"));
        assert!(matches!(
            &r.actions[0],
            Action::EnsureRevision { revision, .. } if revision.name == "m-predictor-00001"
        ));
        assert_eq!(
            published(&r),
            [("m-predictor-00001".into(), 100, Some("latest".into()))]
        );
        assert_eq!(condition(&r, "Ready"), ConditionStatus::False);
        let r = settle(&r.record, &ready(&["m-predictor-00001"]));
        assert!(r.record.revisions[0].ready_once);
        assert_eq!(condition(&r, "Ready"), ConditionStatus::True);
    }

    #[test]
    fn a_canary_splits_traffic_with_the_tags_then_promotes_and_rolls_back_through_the_spec() {
        let first = settle(
            &ServiceRecord::new(object("file:///a", "")),
            &ready(&["m-predictor-00001"]),
        );
        let mut record = first.record;
        record.object = object("file:///b", "    canaryTrafficPercent: 10\n");
        let created = reconcile(&record, &ready(&["m-predictor-00001"]), &context()).unwrap();
        assert_eq!(created.created.as_deref(), Some("m-predictor-00002"));
        // Until the new revision is ready, the old one keeps all traffic.
        assert_eq!(
            published(&created)[..],
            [
                ("m-predictor-00001".into(), 100, Some("latest".into())),
                ("m-predictor-00002".into(), 0, None)
            ]
        );
        let both = ready(&["m-predictor-00001", "m-predictor-00002"]);
        let canary = settle(&created.record, &both);
        assert_eq!(
            published(&canary),
            [
                ("m-predictor-00001".into(), 90, Some("prev".into())),
                ("m-predictor-00002".into(), 10, Some("latest".into()))
            ]
        );
        // Rollback is canaryTrafficPercent: 0; promote is removing it.
        let mut record = canary.record.clone();
        record.object = object("file:///b", "    canaryTrafficPercent: 0\n");
        let rolled_back = settle(&record, &both);
        assert_eq!(published(&rolled_back)[0].1, 100);
        assert_eq!(published(&rolled_back)[1].1, 0);
        let mut record = canary.record;
        record.object = object("file:///b", "");
        record.rollout.roll_out("m-predictor-00002");
        let promoted = settle(&record, &both);
        assert_eq!(
            published(&promoted),
            [
                ("m-predictor-00001".into(), 0, Some("prev".into())),
                ("m-predictor-00002".into(), 100, Some("latest".into()))
            ]
        );
    }

    #[test]
    fn old_revisions_are_collected_beyond_retention_but_never_prev() {
        let mut record = ServiceRecord::new(object("file:///1", ""));
        let mut names = Vec::new();
        for n in 1..=5 {
            record.object = object(&format!("file:///{n}"), "");
            names.push(format!("m-predictor-{n:05}"));
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            record = settle(&record, &ready(&refs)).record;
        }
        let kept: Vec<&str> = record.revisions.iter().map(|r| r.name.as_str()).collect();
        assert!(kept.contains(&"m-predictor-00005"), "latest: {kept:?}");
        assert!(kept.contains(&"m-predictor-00004"), "prev: {kept:?}");
        assert!(!kept.contains(&"m-predictor-00001"), "collected: {kept:?}");
        // One more revision: the oldest kept idle one goes, with a RemoveRevision.
        record.object = object("file:///6", "");
        let r = reconcile(&record, &ready(&["m-predictor-00005"]), &context()).unwrap();
        let r = reconcile(
            &r.record,
            &ready(&["m-predictor-00005", "m-predictor-00006"]),
            &context(),
        )
        .unwrap();
        assert_eq!(
            removed(&r),
            r.collected.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(!r.collected.is_empty());
        assert!(
            !r.collected.contains(&"m-predictor-00005".to_owned()),
            "prev stays"
        );
    }

    #[test]
    fn a_spec_kiln_cannot_serve_is_refused_with_the_validation_message() {
        let mut record = ServiceRecord::new(object("file:///a", ""));
        record.object.spec.predictor.min_replicas = Some(3);
        record.object.spec.predictor.max_replicas = Some(1);
        let error = reconcile(&record, &Observed::default(), &context()).unwrap_err();
        assert!(error.0.contains("maxReplicas"), "{error}");
    }

    #[test]
    fn a_revision_that_cannot_run_says_why_in_the_status() {
        let record = ServiceRecord::new(object("file:///a", ""));
        let observed = Observed {
            revisions: [(
                "m-predictor-00001".to_owned(),
                ObservedRevision {
                    desired: 1,
                    ready: 0,
                    unschedulable: Some(Waiting {
                        reason: "Unschedulable".into(),
                        message: "needs 1 GPU, 0 free".into(),
                    }),
                },
            )]
            .into(),
        };
        let r = settle(&record, &observed);
        let status = r.status.status.unwrap();
        let predictor = status.condition("PredictorReady").unwrap();
        assert_eq!(predictor.reason.as_deref(), Some("Unschedulable"));
        assert_eq!(predictor.message.as_deref(), Some("needs 1 GPU, 0 free"));
    }

    #[test]
    fn teardown_unpublishes_then_removes_every_revision() {
        let r = settle(
            &ServiceRecord::new(object("file:///a", "")),
            &Observed::default(),
        );
        assert_eq!(
            teardown(&r.record),
            [
                Action::Unpublish,
                Action::RemoveRevision {
                    revision: "m-predictor-00001".into()
                }
            ]
        );
    }
}
