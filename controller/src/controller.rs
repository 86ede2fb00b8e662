//! The controller: applied InferenceServices into revisions, replicas, routes and status.
//!
//! It keeps the desired state (each service as applied, with its revision history and
//! rollout) and hands every change to the reconcile core ([`crate::reconcile`]), whose
//! actions a [`Backend`] carries out. An apply, a delete or a rollout reconciles its services
//! at once (so the answer can name the revision it made); the backend's events only queue a
//! service's key, and one worker reconciles each queued key. Records persist after every
//! change, so a restart brings back the same services, revisions and traffic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kiln_api::inference_service::{InferenceService, load_str};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, ServiceKey};
use crate::queue::{QueuedKeys, ReconcileQueue};
use crate::reconcile::{self, Action, Context, Reconciled};
use crate::service::ServiceRecord;
use crate::store::{Store, StoreError};

/// A request the controller refuses or cannot carry out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The manifests are invalid; nothing was applied.
    #[error("{0}")]
    Invalid(String),
    /// No such service.
    #[error("inferenceservice {0} not found")]
    NotFound(String),
    /// The action does not apply in the service's current state.
    #[error("{0}")]
    Conflict(String),
    /// The state could not be persisted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backend could not carry out a change.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// One service touched by an apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its latest revision after the apply.
    pub revision: String,
    /// What the apply did to it.
    pub action: ApplyAction,
}

/// What an apply did to one service, in `kubectl apply`'s words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    /// A new service, or a new revision of it (the predictor spec changed).
    Created,
    /// The same revision with other settings (scaling, traffic, annotations).
    Configured,
    /// Nothing changed.
    Unchanged,
}

impl std::fmt::Display for ApplyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        })
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The services, in manifest order.
    pub applied: Vec<Applied>,
    /// Fields Kiln ignored.
    pub warnings: Vec<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    services: Vec<ServiceRecord>,
}

/// Shared state behind [`Controller`].
struct Inner {
    context: Context,
    backend: Arc<dyn Backend>,
    services: Mutex<BTreeMap<ServiceKey, ServiceRecord>>,
    /// The actions last carried out per service: a reconcile that decides the same again
    /// has nothing to do.
    executed: Mutex<HashMap<ServiceKey, Vec<Action>>>,
    store: Store,
    queue: Arc<ReconcileQueue>,
}

/// Applies InferenceServices and reports their status. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

/// The parts a controller drives.
pub struct Parts {
    /// The domain, address and autoscaler defaults every reconcile uses.
    pub context: Context,
    /// What carries out the reconciles.
    pub backend: Arc<dyn Backend>,
    /// Where the records persist.
    pub store: Store,
    /// The queue the backend's events put keys on, and its worker's end.
    pub queue: (Arc<ReconcileQueue>, QueuedKeys),
}

impl Controller {
    /// A controller over `parts`, with the records found in its store brought back, and the
    /// worker that reconciles queued keys running on the current Tokio runtime.
    pub fn start(parts: Parts) -> Result<Controller, ControlError> {
        let persisted: Persisted = parts.store.load()?.unwrap_or_default();
        let (queue, keys) = parts.queue;
        let controller = Controller {
            inner: Arc::new(Inner {
                context: parts.context,
                backend: parts.backend,
                services: Mutex::new(BTreeMap::new()),
                executed: Mutex::new(HashMap::new()),
                store: parts.store,
                queue,
            }),
        };
        {
            let mut services = controller.inner.services.lock();
            for record in persisted.services {
                let key = ServiceKey::new(record.namespace(), record.name());
                let reconciled = controller.inner.reconcile(&key, &record)?;
                tracing::info!(service = %key, revisions = reconciled.record.revisions.len(), "restored");
                services.insert(key, reconciled.record);
            }
            controller.inner.persist(&services)?;
        }
        tokio::spawn(work(Arc::downgrade(&controller.inner), keys));
        Ok(controller)
    }

    /// Validates every service in `manifests` (YAML, one or more documents) and applies
    /// them all, or none when any is invalid.
    pub fn apply(&self, manifests: &str) -> Result<ApplyReport, ControlError> {
        let loaded = load_str(manifests, None).map_err(|e| ControlError::Invalid(e.to_string()))?;
        // Every service is checked (autoscaling included) before anything changes.
        let problems: Vec<String> = loaded
            .services
            .iter()
            .filter_map(|service| {
                reconcile::check(&service.object, &self.inner.context.autoscaler)
                    .err()
                    .map(|e| format!("{}/{}: {e}", service.namespace, service.name))
            })
            .collect();
        if !problems.is_empty() {
            return Err(ControlError::Invalid(problems.join("\n")));
        }
        let mut report = ApplyReport {
            warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
            ..Default::default()
        };
        let mut services = self.inner.services.lock();
        for service in loaded.services {
            let key = ServiceKey::new(&service.namespace, &service.name);
            let mut object = service.object;
            object.status = None;
            let previous = services.get(&key);
            let unchanged_object = previous.is_some_and(|r| r.object == object);
            let mut record = previous
                .cloned()
                .unwrap_or_else(|| ServiceRecord::new(object.clone()));
            record.object = object;
            let reconciled = self.inner.reconcile(&key, &record)?;
            let action = match (&reconciled.created, unchanged_object) {
                (Some(_), _) => ApplyAction::Created,
                (None, true) => ApplyAction::Unchanged,
                (None, false) => ApplyAction::Configured,
            };
            report.applied.push(Applied {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                revision: reconciled
                    .record
                    .revisions
                    .last()
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                action,
            });
            services.insert(key, reconciled.record);
        }
        self.inner.persist(&services)?;
        Ok(report)
    }

    /// Deletes a service, its revisions and their replicas.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<(), ControlError> {
        let key = ServiceKey::new(namespace, name);
        let mut services = self.inner.services.lock();
        let record = services
            .remove(&key)
            .ok_or_else(|| ControlError::NotFound(key.to_string()))?;
        self.inner.executed.lock().remove(&key);
        self.inner
            .backend
            .execute(&key, &reconcile::teardown(&record))?;
        self.inner.persist(&services)?;
        Ok(())
    }

    /// One service with its status.
    pub fn get(&self, namespace: &str, name: &str) -> Result<InferenceService, ControlError> {
        let key = ServiceKey::new(namespace, name);
        let services = self.inner.services.lock();
        let record = services
            .get(&key)
            .ok_or_else(|| ControlError::NotFound(key.to_string()))?;
        Ok(self.inner.status_of(&key, record))
    }

    /// Every service in `namespace` (all namespaces when `None`), with status.
    pub fn list(&self, namespace: Option<&str>) -> Vec<InferenceService> {
        let services = self.inner.services.lock();
        services
            .iter()
            .filter(|(key, _)| namespace.is_none_or(|n| n == key.namespace))
            .map(|(key, record)| self.inner.status_of(key, record))
            .collect()
    }

    /// Recent log lines of a service's replicas (its latest revision unless one is named).
    pub fn logs(
        &self,
        namespace: &str,
        name: &str,
        revision: Option<&str>,
    ) -> Result<Vec<String>, ControlError> {
        let key = ServiceKey::new(namespace, name);
        let services = self.inner.services.lock();
        let record = services
            .get(&key)
            .ok_or_else(|| ControlError::NotFound(key.to_string()))?;
        let revision = match revision {
            Some(r) => record
                .revision(r)
                .ok_or_else(|| ControlError::NotFound(format!("revision {r} of {key}")))?,
            None => record
                .revisions
                .last()
                .ok_or_else(|| ControlError::NotFound(format!("a revision of {key}")))?,
        };
        Ok(self.inner.backend.logs(namespace, &revision.name))
    }

    /// Sets the canary percent (`canaryTrafficPercent`) of the latest revision.
    pub fn canary(&self, namespace: &str, name: &str, percent: u32) -> Result<(), ControlError> {
        if percent > 100 {
            return Err(ControlError::Invalid(format!(
                "--percent {percent}: must be 0 to 100"
            )));
        }
        self.change(namespace, name, |record| {
            record.object.spec.predictor.canary_traffic_percent = Some(i64::from(percent));
            Ok(())
        })
    }

    /// Promotes the latest ready revision to all of the traffic.
    pub fn promote(&self, namespace: &str, name: &str) -> Result<(), ControlError> {
        self.change(namespace, name, |record| {
            let latest = record.rollout.latest_created.clone().unwrap_or_default();
            if record.rollout.latest_ready.as_deref() != Some(latest.as_str()) {
                return Err(ControlError::Conflict(format!(
                    "revision {latest} is not ready yet; promote it once it is"
                )));
            }
            record.object.spec.predictor.canary_traffic_percent = None;
            record.rollout.roll_out(&latest);
            Ok(())
        })
    }

    /// Sends all traffic back to the previously rolled-out revision (canary 0).
    pub fn rollback(&self, namespace: &str, name: &str) -> Result<(), ControlError> {
        self.change(namespace, name, |record| {
            let latest = record.rollout.latest_ready.clone();
            let stable = record.rollout.latest_rolled_out.clone();
            if latest == stable {
                // The latest was promoted: go back to the one before it.
                let Some(previous) = record.rollout.previous_rolled_out.clone() else {
                    return Err(ControlError::Conflict(
                        "there is no previous revision to roll back to".into(),
                    ));
                };
                record.rollout.latest_rolled_out = Some(previous);
                record.rollout.previous_rolled_out = None;
                record.rollout.latest_ready = latest;
            }
            record.object.spec.predictor.canary_traffic_percent = Some(0);
            Ok(())
        })
    }

    fn change(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut ServiceRecord) -> Result<(), ControlError>,
    ) -> Result<(), ControlError> {
        let key = ServiceKey::new(namespace, name);
        let mut services = self.inner.services.lock();
        let mut record = services
            .get(&key)
            .cloned()
            .ok_or_else(|| ControlError::NotFound(key.to_string()))?;
        change(&mut record)?;
        let reconciled = self.inner.reconcile(&key, &record)?;
        services.insert(key, reconciled.record);
        self.inner.persist(&services)
    }
}

impl Inner {
    /// Reconciles one service against what the backend observes and carries out the
    /// actions, unless they are the ones last carried out.
    fn reconcile(
        &self,
        key: &ServiceKey,
        record: &ServiceRecord,
    ) -> Result<Reconciled, ControlError> {
        let observed = self.backend.observe(key, &record.revisions);
        let reconciled = reconcile::reconcile(record, &observed, &self.context)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        if let Some(revision) = &reconciled.created {
            tracing::info!(service = %key, %revision, "revision created");
        }
        for revision in &reconciled.collected {
            tracing::info!(service = %key, %revision, "revision garbage-collected");
        }
        let mut executed = self.executed.lock();
        if executed.get(key) != Some(&reconciled.actions) {
            self.backend.execute(key, &reconciled.actions)?;
            executed.insert(key.clone(), reconciled.actions.clone());
        }
        Ok(reconciled)
    }

    /// Reconciles a queued key; persists when the record changed.
    fn reconcile_queued(&self, key: &ServiceKey) -> Result<(), ControlError> {
        let mut services = self.services.lock();
        let Some(record) = services.get(key) else {
            return Ok(()); // deleted meanwhile
        };
        let reconciled = self.reconcile(key, record)?;
        let changed = reconciled.record.revisions != record.revisions
            || reconciled.record.rollout != record.rollout
            || reconciled.record.unschedulable != record.unschedulable;
        if changed {
            for revision in reconciled.record.revisions.iter().filter(|r| {
                r.ready_once && record.revision(&r.name).is_some_and(|old| !old.ready_once)
            }) {
                tracing::info!(service = %key, revision = %revision.name, "revision ready");
            }
            services.insert(key.clone(), reconciled.record);
            self.persist(&services)?;
        }
        Ok(())
    }

    fn persist(&self, services: &BTreeMap<ServiceKey, ServiceRecord>) -> Result<(), ControlError> {
        let persisted = Persisted {
            services: services.values().cloned().collect(),
        };
        Ok(self.store.save(&persisted)?)
    }

    fn status_of(&self, key: &ServiceKey, record: &ServiceRecord) -> InferenceService {
        let observed = self.backend.observe(key, &record.revisions);
        record.with_status(
            &self.context.domain,
            self.context.address,
            &observed.replica_counts(),
        )
    }
}

/// Reconciles queued keys until the controller is gone.
async fn work(inner: std::sync::Weak<Inner>, mut keys: QueuedKeys) {
    while let Some(key) = keys.next().await {
        let Some(inner) = inner.upgrade() else { return };
        inner.queue.taken(&key);
        if let Err(e) = inner.reconcile_queued(&key) {
            tracing::warn!(service = %key, error = %e, "reconcile failed");
        }
    }
}
