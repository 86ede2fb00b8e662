//! The controller: applied InferenceServices into revisions, replicas, routes and status.
//!
//! It keeps the desired state (each service as applied, with its revision history and
//! rollout) and hands every change to the reconcile core ([`crate::reconcile`]), whose
//! actions a [`Backend`] carries out. An apply, a delete or a rollout reconciles its services
//! at once (so the answer can name the revision it made); the backend's events only queue a
//! service's key, and one worker reconciles each queued key. Records persist after every
//! change, so a restart brings back the same services, revisions and traffic.
//!
//! The work grows with what changes, not with what exists: an apply (or a restart) of N
//! services reconciles each once and hands the backend one batch, so the router's table is
//! rebuilt once; and reads (`get`, `list`, `logs`) answer from the last published snapshot
//! of the records, never waiting for an apply in progress.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
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

/// The records as stored.
#[derive(Default, Deserialize)]
struct Persisted {
    services: Vec<ServiceRecord>,
}

/// [`Persisted`], written from borrowed records.
#[derive(Serialize)]
struct PersistedRef<'a> {
    services: Vec<&'a ServiceRecord>,
}

/// The records, by service. Each record is shared between snapshots, so publishing a change
/// copies pointers, not records.
type Records = BTreeMap<ServiceKey, Arc<ServiceRecord>>;

/// Shared state behind [`Controller`].
struct Inner {
    context: Context,
    backend: Arc<dyn Backend>,
    /// The records as last published: what reads answer from.
    published: ArcSwap<Records>,
    /// Held by every change, from reading the records to publishing the new ones.
    changing: Mutex<()>,
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
                published: ArcSwap::from_pointee(Records::new()),
                changing: Mutex::new(()),
                executed: Mutex::new(HashMap::new()),
                store: parts.store,
                queue,
            }),
        };
        let restored = persisted.services.len();
        {
            let _changing = controller.inner.changing.lock();
            let mut records = Records::new();
            let mut planned = Vec::with_capacity(restored);
            let mut changed = false;
            for record in persisted.services {
                let key = ServiceKey::new(record.namespace(), record.name());
                let reconciled = controller.inner.plan(&key, &record)?;
                changed |= reconciled.record.revisions != record.revisions
                    || reconciled.record.rollout != record.rollout;
                records.insert(key.clone(), Arc::new(reconciled.record));
                planned.push((key, reconciled.actions));
            }
            controller.inner.carry_out(planned)?;
            // Written back only when the reconcile changed something (a spec of an older
            // release hashing differently, say): a restart reads, it does not rewrite.
            controller.inner.publish(records, changed)?;
        }
        tracing::info!(services = restored, "restored");
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
                    .map_err(|e| e.to_string())
                    .and_then(|servable| self.inner.backend.check_fits(&servable))
                    .err()
                    .map(|e| format!("{}/{}: {e}", service.namespace, service.name))
            })
            .collect();
        if !problems.is_empty() {
            return Err(ControlError::Invalid(problems.join("\n")));
        }
        let mut report = ApplyReport {
            warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
            applied: Vec::with_capacity(loaded.services.len()),
        };
        let _changing = self.inner.changing.lock();
        let mut records = Records::clone(&self.inner.published.load());
        let mut planned = Vec::with_capacity(loaded.services.len());
        for service in loaded.services {
            let key = ServiceKey::new(&service.namespace, &service.name);
            let mut object = service.object;
            object.status = None;
            let previous = records.get(&key);
            let unchanged_object = previous.is_some_and(|r| r.object == object);
            let mut record = previous
                .map(|r| ServiceRecord::clone(r))
                .unwrap_or_else(|| ServiceRecord::new(object.clone()));
            record.object = object;
            let reconciled = self.inner.plan(&key, &record)?;
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
            records.insert(key.clone(), Arc::new(reconciled.record));
            planned.push((key, reconciled.actions));
        }
        self.inner.carry_out(planned)?;
        self.inner.publish(records, true)?;
        Ok(report)
    }

    /// Deletes a service, its revisions and their replicas.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<(), ControlError> {
        let key = ServiceKey::new(namespace, name);
        let _changing = self.inner.changing.lock();
        let mut records = Records::clone(&self.inner.published.load());
        let record = records
            .remove(&key)
            .ok_or_else(|| ControlError::NotFound(key.to_string()))?;
        self.inner.executed.lock().remove(&key);
        self.inner
            .backend
            .execute(&key, &reconcile::teardown(&record))?;
        self.inner.publish(records, true)
    }

    /// One service with its status.
    pub fn get(&self, namespace: &str, name: &str) -> Result<InferenceService, ControlError> {
        let key = ServiceKey::new(namespace, name);
        let records = self.inner.published.load();
        let record = records
            .get(&key)
            .ok_or_else(|| ControlError::NotFound(key.to_string()))?;
        Ok(self.inner.status_of(&key, record))
    }

    /// Every service in `namespace` (all namespaces when `None`), with status.
    pub fn list(&self, namespace: Option<&str>) -> Vec<InferenceService> {
        let records = self.inner.published.load();
        records
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
        let records = self.inner.published.load();
        let record = records
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
        let _changing = self.inner.changing.lock();
        let mut records = Records::clone(&self.inner.published.load());
        let mut record = records
            .get(&key)
            .map(|r| ServiceRecord::clone(r))
            .ok_or_else(|| ControlError::NotFound(key.to_string()))?;
        change(&mut record)?;
        let reconciled = self.inner.plan(&key, &record)?;
        self.inner
            .carry_out(vec![(key.clone(), reconciled.actions)])?;
        records.insert(key, Arc::new(reconciled.record));
        self.inner.publish(records, true)
    }
}

impl Inner {
    /// Reconciles one service against what the backend observes: the new record and the
    /// actions to carry out.
    fn plan(&self, key: &ServiceKey, record: &ServiceRecord) -> Result<Reconciled, ControlError> {
        let observed = self.backend.observe(key, &record.revisions);
        let reconciled = reconcile::reconcile(record, &observed, &self.context)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        if let Some(revision) = &reconciled.created {
            tracing::info!(service = %key, %revision, "revision created");
        }
        for revision in &reconciled.collected {
            tracing::info!(service = %key, %revision, "revision garbage-collected");
        }
        Ok(reconciled)
    }

    /// Hands the backend, in one batch, the actions that differ from those last carried out
    /// for their service.
    fn carry_out(&self, planned: Vec<(ServiceKey, Vec<Action>)>) -> Result<(), ControlError> {
        let mut executed = self.executed.lock();
        let batch: Vec<(ServiceKey, Vec<Action>)> = planned
            .into_iter()
            .filter(|(key, actions)| executed.get(key) != Some(actions))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        self.backend.execute_batch(&batch)?;
        executed.extend(batch);
        Ok(())
    }

    /// Publishes `records` to readers, persisting them first when `persist`.
    fn publish(&self, records: Records, persist: bool) -> Result<(), ControlError> {
        if persist {
            let persisted = PersistedRef {
                services: records.values().map(Arc::as_ref).collect(),
            };
            self.store.save(&persisted)?;
        }
        self.published.store(Arc::new(records));
        Ok(())
    }

    /// Reconciles a queued key; persists when the record changed.
    fn reconcile_queued(&self, key: &ServiceKey) -> Result<(), ControlError> {
        let _changing = self.changing.lock();
        let current = self.published.load();
        let Some(record) = current.get(key) else {
            return Ok(()); // deleted meanwhile
        };
        let reconciled = self.plan(key, record)?;
        self.carry_out(vec![(key.clone(), reconciled.actions)])?;
        let changed = reconciled.record.revisions != record.revisions
            || reconciled.record.rollout != record.rollout
            || reconciled.record.unschedulable != record.unschedulable;
        if changed {
            for revision in reconciled.record.revisions.iter().filter(|r| {
                r.ready_once && record.revision(&r.name).is_some_and(|old| !old.ready_once)
            }) {
                tracing::info!(service = %key, revision = %revision.name, "revision ready");
            }
            let mut records = Records::clone(&current);
            records.insert(key.clone(), Arc::new(reconciled.record));
            self.publish(records, true)?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ActionBatch;
    use crate::reconcile::Observed;
    use crate::revision::RevisionRecord;

    /// A backend that records each batch it is asked to carry out and observes nothing
    /// running.
    #[derive(Default)]
    struct Recording {
        batches: Mutex<Vec<Batch>>,
    }

    type Batch = Vec<(ServiceKey, Vec<Action>)>;

    impl Backend for Recording {
        fn execute(&self, service: &ServiceKey, actions: &[Action]) -> Result<(), BackendError> {
            self.execute_batch(&[(service.clone(), actions.to_vec())])
        }

        fn execute_batch(&self, batch: &ActionBatch) -> Result<(), BackendError> {
            self.batches.lock().push(batch.to_vec());
            Ok(())
        }

        fn observe(&self, _: &ServiceKey, _: &[RevisionRecord]) -> Observed {
            Observed::default()
        }

        fn logs(&self, _: &str, _: &str) -> Vec<String> {
            Vec::new()
        }
    }

    fn manifests(count: usize, storage: &str) -> String {
        (0..count)
            .map(|i| {
                format!(
                    "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  \
                     name: s{i}\nspec:\n  predictor:\n    model:\n      modelFormat: {{name: onnx}}\n      \
                     storageUri: {storage}\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn start(dir: &std::path::Path, backend: Arc<Recording>) -> Controller {
        Controller::start(Parts {
            context: Context {
                domain: "example.com".into(),
                address: "127.0.0.1:8080".parse().unwrap(),
                autoscaler: Default::default(),
            },
            backend,
            store: Store::open(dir, "services.json").unwrap(),
            queue: {
                let (queue, keys) = ReconcileQueue::new();
                (Arc::new(queue), keys)
            },
        })
        .unwrap()
    }

    #[tokio::test]
    async fn an_apply_of_many_services_is_one_batch_and_a_repeat_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(Recording::default());
        let controller = start(dir.path(), backend.clone());
        let report = controller.apply(&manifests(50, "file:///a")).unwrap();
        assert_eq!(report.applied.len(), 50);
        assert!(
            report
                .applied
                .iter()
                .all(|a| a.action == ApplyAction::Created)
        );
        assert_eq!(
            backend.batches.lock().len(),
            1,
            "one batch for the whole apply"
        );
        assert_eq!(backend.batches.lock()[0].len(), 50);

        let again = controller.apply(&manifests(50, "file:///a")).unwrap();
        assert!(
            again
                .applied
                .iter()
                .all(|a| a.action == ApplyAction::Unchanged)
        );
        assert_eq!(backend.batches.lock().len(), 1, "nothing new to carry out");

        let changed = controller.apply(&manifests(1, "file:///b")).unwrap();
        assert_eq!(changed.applied[0].action, ApplyAction::Created);
        assert_eq!(changed.applied[0].revision, "s0-predictor-00002");
        assert_eq!(backend.batches.lock().len(), 2);
        assert_eq!(controller.list(None).len(), 50);
    }

    #[tokio::test]
    async fn a_restart_brings_every_service_back_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let first = start(dir.path(), Arc::new(Recording::default()));
        first.apply(&manifests(20, "file:///a")).unwrap();
        drop(first);
        let backend = Arc::new(Recording::default());
        let restarted = start(dir.path(), backend.clone());
        assert_eq!(restarted.list(None).len(), 20);
        let batches = backend.batches.lock();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 20);
    }

    #[tokio::test]
    async fn reads_answer_from_the_snapshot_while_a_change_is_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let controller = start(dir.path(), Arc::new(Recording::default()));
        controller.apply(&manifests(3, "file:///a")).unwrap();
        let changing = controller.inner.changing.lock();
        let reader = controller.clone();
        let (answered, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let listed = reader.list(None).len();
            let got = reader.get("default", "s1").is_ok();
            let _ = answered.send((listed, got));
        });
        // A read that needed the change lock would never answer while it is held.
        let read = answer.recv_timeout(std::time::Duration::from_secs(20));
        drop(changing);
        assert_eq!(read.expect("the read waited for the change"), (3, true));
    }
}
