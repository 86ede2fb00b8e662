//! The controller: applied InferenceServices into revisions, replicas, routes and status.
//!
//! Every change (apply, delete, rollout action, a replica becoming ready or going away)
//! updates the service records under one lock, pushes the result to the router's table, the
//! autoscaler and the local backend, and persists the records, so that a restart brings back
//! the same services, revisions and traffic.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use kiln_api::inference_service::{InferenceService, ReplicaCounts, load_str};
use kiln_api::load::RevisionKey;
use kiln_autoscaler::{AutoscalerConfig, PredictorScaling, RevisionScaling, SharedAutoscaler};
use kiln_router::{RevisionSpec, ServiceSpec, TableHandle};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::local::{Endpoint, EndpointEvents, LocalBackend};
use crate::revision::RevisionRecord;
use crate::service::ServiceRecord;
use crate::store::{Store, StoreError};

/// The autoscaler as the controller runs it: deciding for the local backend, on the router's
/// clock.
pub type Scaling =
    SharedAutoscaler<LocalBackend, Box<dyn Fn() -> std::time::Duration + Send + Sync>>;

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
    /// The router refused the table.
    #[error("router: {0}")]
    Router(String),
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
pub(crate) struct Inner {
    domain: String,
    router_addr: SocketAddr,
    autoscaler_config: AutoscalerConfig,
    table: TableHandle,
    backend: LocalBackend,
    autoscaler: Arc<Scaling>,
    services: Mutex<BTreeMap<(String, String), ServiceRecord>>,
    endpoints: Mutex<HashMap<RevisionKey, Vec<Endpoint>>>,
    store: Store,
}

/// Applies InferenceServices and reports their status. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

/// The parts a controller drives.
pub struct Parts {
    /// The domain of service hosts (`{name}.{namespace}.{domain}`).
    pub domain: String,
    /// Where the router listens (for `status.address`).
    pub router_addr: SocketAddr,
    /// Global autoscaler defaults (validated annotations override them per service).
    pub autoscaler_config: AutoscalerConfig,
    /// The router's table.
    pub table: TableHandle,
    /// The replica backend.
    pub backend: LocalBackend,
    /// The autoscaler.
    pub autoscaler: Arc<Scaling>,
    /// Where the records persist.
    pub store: Store,
}

impl Controller {
    /// A controller over `parts`, with the records found in its store brought back.
    pub fn start(parts: Parts) -> Result<Controller, ControlError> {
        let persisted: Persisted = parts.store.load()?.unwrap_or_default();
        let controller = Controller {
            inner: Arc::new(Inner {
                domain: parts.domain,
                router_addr: parts.router_addr,
                autoscaler_config: parts.autoscaler_config,
                table: parts.table,
                backend: parts.backend,
                autoscaler: parts.autoscaler,
                services: Mutex::new(BTreeMap::new()),
                endpoints: Mutex::new(HashMap::new()),
                store: parts.store,
            }),
        };
        let mut services = controller.inner.services.lock();
        for record in persisted.services {
            let key = (record.namespace().to_owned(), record.name().to_owned());
            controller.inner.sync(&record)?;
            tracing::info!(service = %format!("{}/{}", key.0, key.1), revisions = record.revisions.len(), "restored");
            services.insert(key, record);
        }
        drop(services);
        Ok(controller)
    }

    /// A weak handle for the backend's events.
    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// Validates every service in `manifests` (YAML, one or more documents) and applies
    /// them all, or none when any is invalid.
    pub fn apply(&self, manifests: &str) -> Result<ApplyReport, ControlError> {
        let loaded = load_str(manifests, None).map_err(|e| ControlError::Invalid(e.to_string()))?;
        // Autoscaling settings are checked before anything changes, as the rest is.
        let mut problems = Vec::new();
        for service in &loaded.services {
            if let Err(e) = scaling(
                &service.servable.annotations,
                &to_predictor_scaling(&service.servable, true),
            )
            .and_then(|s| s.resolve(&self.inner.autoscaler_config).map(|_| ()))
            {
                problems.push(format!("{}/{}: {e}", service.namespace, service.name));
            }
        }
        if !problems.is_empty() {
            return Err(ControlError::Invalid(problems.join("\n")));
        }
        let mut report = ApplyReport {
            warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
            ..Default::default()
        };
        let mut services = self.inner.services.lock();
        for service in loaded.services {
            let key = (service.namespace.clone(), service.name.clone());
            let hash = service.servable.spec_hash();
            let mut object = service.object.clone();
            object.status = None;
            let record = services
                .entry(key.clone())
                .or_insert_with(|| ServiceRecord {
                    object: object.clone(),
                    revisions: Vec::new(),
                    rollout: Default::default(),
                    unschedulable: None,
                });
            let same_revision = record.revisions.last().is_some_and(|r| r.spec_hash == hash);
            let action = if same_revision {
                if record.object == object {
                    ApplyAction::Unchanged
                } else {
                    ApplyAction::Configured
                }
            } else {
                let generation = record.revisions.last().map_or(1, |r| r.generation + 1);
                let revision = RevisionRecord::new(&service.name, generation, &service.servable);
                record.rollout.latest_created = Some(revision.name.clone());
                record.unschedulable = None;
                record.revisions.push(revision);
                ApplyAction::Created
            };
            record.object = object;
            for gone in record.collect_garbage() {
                self.inner.forget_revision(&gone.key(&key.0));
            }
            let record = record.clone();
            self.inner.sync(&record)?;
            report.applied.push(Applied {
                namespace: key.0,
                name: key.1,
                revision: record
                    .revisions
                    .last()
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                action,
            });
        }
        self.inner.persist(&services)?;
        Ok(report)
    }

    /// Deletes a service, its revisions and their replicas.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<(), ControlError> {
        let mut services = self.inner.services.lock();
        let record = services
            .remove(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| ControlError::NotFound(format!("{namespace}/{name}")))?;
        let _ = self.inner.table.remove_service(namespace, name);
        for revision in &record.revisions {
            self.inner.forget_revision(&revision.key(namespace));
        }
        self.inner.persist(&services)?;
        Ok(())
    }

    /// One service with its status.
    pub fn get(&self, namespace: &str, name: &str) -> Result<InferenceService, ControlError> {
        let services = self.inner.services.lock();
        let record = services
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| ControlError::NotFound(format!("{namespace}/{name}")))?;
        Ok(self.inner.status_of(record))
    }

    /// Every service in `namespace` (all namespaces when `None`), with status.
    pub fn list(&self, namespace: Option<&str>) -> Vec<InferenceService> {
        let services = self.inner.services.lock();
        services
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, record)| self.inner.status_of(record))
            .collect()
    }

    /// Recent log lines of a service's replicas (its latest revision unless one is named).
    pub fn logs(
        &self,
        namespace: &str,
        name: &str,
        revision: Option<&str>,
    ) -> Result<Vec<String>, ControlError> {
        let services = self.inner.services.lock();
        let record = services
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| ControlError::NotFound(format!("{namespace}/{name}")))?;
        let revision = match revision {
            Some(r) => record.revision(r).ok_or_else(|| {
                ControlError::NotFound(format!("revision {r} of {namespace}/{name}"))
            })?,
            None => record.revisions.last().ok_or_else(|| {
                ControlError::NotFound(format!("a revision of {namespace}/{name}"))
            })?,
        };
        Ok(self.inner.backend.logs(&revision.key(namespace)))
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
        let mut services = self.inner.services.lock();
        let record = services
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| ControlError::NotFound(format!("{namespace}/{name}")))?;
        change(record)?;
        let record = record.clone();
        self.inner.sync(&record)?;
        self.inner.persist(&services)
    }
}

fn to_predictor_scaling(
    servable: &kiln_api::inference_service::ServableSpec,
    routed: bool,
) -> PredictorScaling {
    PredictorScaling {
        min_replicas: Some(if routed { servable.min_replicas } else { 0 }),
        max_replicas: servable.max_replicas,
        scale_target: servable.scale_target,
        scale_metric: servable.scale_metric.map(|m| m.to_string()),
        container_concurrency: Some(servable.container_concurrency),
    }
}

fn scaling(
    annotations: &BTreeMap<String, String>,
    predictor: &PredictorScaling,
) -> Result<RevisionScaling, kiln_autoscaler::ConfigError> {
    RevisionScaling::from_annotations(annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())))?
        .with_predictor(predictor)
}

impl Inner {
    /// Pushes one record to the backend, the autoscaler and the router.
    fn sync(&self, record: &ServiceRecord) -> Result<(), ControlError> {
        let namespace = record.namespace();
        let servable = kiln_api::inference_service::validate(&record.object).map_err(|e| {
            ControlError::Invalid(
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let traffic = record.traffic();
        let endpoints = self.endpoints.lock();
        let mut spec = ServiceSpec::new(record.name()).namespace(namespace);
        if let Some(timeout) = servable.timeout {
            spec = spec.timeout(timeout);
        }
        for revision in &record.revisions {
            let key = revision.key(namespace);
            let target = traffic.iter().find(|t| t.revision_name == revision.name);
            let percent = target.map_or(0, |t| t.percent);
            let mut route = RevisionSpec::new(&revision.name, percent)
                .container_concurrency(revision.container_concurrency)
                .endpoints(endpoints.get(&key).into_iter().flatten().map(|e| e.http));
            if let Some(tag) = target.and_then(|t| t.tag.clone()) {
                route = route.tag(tag);
            }
            spec = spec.revision(route);
            self.backend.define(revision.template(namespace));
            let scaling = scaling(
                &servable.annotations,
                &to_predictor_scaling(&servable, percent > 0),
            )
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
            self.autoscaler
                .upsert_revision(key, &scaling)
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
        }
        drop(endpoints);
        self.table
            .upsert_service(spec)
            .map_err(|e| ControlError::Router(e.to_string()))
    }

    fn forget_revision(&self, key: &RevisionKey) {
        self.backend.remove(key);
        self.autoscaler.remove_revision(key);
        self.endpoints.lock().remove(key);
    }

    fn persist(
        &self,
        services: &BTreeMap<(String, String), ServiceRecord>,
    ) -> Result<(), ControlError> {
        let persisted = Persisted {
            services: services.values().cloned().collect(),
        };
        Ok(self.store.save(&persisted)?)
    }

    fn status_of(&self, record: &ServiceRecord) -> InferenceService {
        let endpoints = self.endpoints.lock();
        let replicas = record
            .revisions
            .iter()
            .map(|r| {
                let key = r.key(record.namespace());
                let desired = self.backend.status(&key).map_or(0, |s| s.desired);
                let ready = endpoints.get(&key).map_or(0, |e| e.len() as u32);
                (r.name.clone(), ReplicaCounts { desired, ready })
            })
            .collect();
        record.with_status(&self.domain, self.router_addr, &replicas)
    }

    fn record_for(&self, key: &RevisionKey) -> Option<(String, String)> {
        let services = self.services.lock();
        services
            .iter()
            .find(|((ns, _), r)| *ns == key.namespace && r.revision(&key.revision).is_some())
            .map(|(k, _)| k.clone())
    }

    fn ready_count_changed(&self, key: &RevisionKey) {
        let count = self.endpoints.lock().get(key).map_or(0, |e| e.len() as u32);
        self.autoscaler.set_ready(key, count);
    }
}

/// Receives the local backend's events and turns them into routes and rollout progress.
pub(crate) struct BackendEvents {
    pub(crate) inner: std::sync::OnceLock<Weak<Inner>>,
}

impl BackendEvents {
    fn inner(&self) -> Option<Arc<Inner>> {
        self.inner.get().and_then(Weak::upgrade)
    }
}

impl EndpointEvents for BackendEvents {
    fn endpoint_ready(&self, revision: &RevisionKey, endpoint: Endpoint) {
        let Some(inner) = self.inner() else { return };
        inner
            .endpoints
            .lock()
            .entry(revision.clone())
            .or_default()
            .push(endpoint);
        if let Err(e) = inner.table.add_endpoint(revision, endpoint.http) {
            tracing::warn!(%revision, error = %e, "router refused an endpoint");
        }
        inner.ready_count_changed(revision);
        let Some(key) = inner.record_for(revision) else {
            return;
        };
        let mut services = inner.services.lock();
        let Some(record) = services.get_mut(&key) else {
            return;
        };
        let first_time = record
            .revisions
            .iter_mut()
            .find(|r| r.name == revision.revision)
            .is_some_and(|r| !std::mem::replace(&mut r.ready_once, true));
        if first_time {
            let canary = record.canary_percent();
            record.rollout.revision_ready(&revision.revision, canary);
            if record.rollout.latest_created.as_deref() == Some(revision.revision.as_str()) {
                record.unschedulable = None;
            }
            tracing::info!(%revision, "revision ready");
            // A rollout may have left older revisions without traffic: collect beyond retention.
            for gone in record.collect_garbage() {
                inner.forget_revision(&gone.key(&key.0));
            }
            let snapshot = record.clone();
            if let Err(e) = inner
                .sync(&snapshot)
                .and_then(|()| inner.persist(&services))
            {
                tracing::warn!(%revision, error = %e, "cannot publish a ready revision");
            }
        }
    }

    fn endpoint_draining(&self, revision: &RevisionKey, endpoint: &Endpoint) {
        let Some(inner) = self.inner() else { return };
        if let Some(list) = inner.endpoints.lock().get_mut(revision) {
            list.retain(|e| e != endpoint);
        }
        match inner.table.drain_endpoint(revision, endpoint.http) {
            Ok(drained) => drop(drained),
            Err(e) => {
                tracing::debug!(%revision, error = %e, "draining an endpoint the router does not know")
            }
        }
        inner.ready_count_changed(revision);
    }

    fn endpoint_removed(&self, revision: &RevisionKey, endpoint: &Endpoint) {
        let Some(inner) = self.inner() else { return };
        let remaining: Vec<SocketAddr> = {
            let mut endpoints = inner.endpoints.lock();
            let list = endpoints.entry(revision.clone()).or_default();
            list.retain(|e| e != endpoint);
            list.iter().map(|e| e.http).collect()
        };
        let _ = inner.table.set_endpoints(revision, remaining);
        inner.ready_count_changed(revision);
    }

    fn revision_unschedulable(&self, revision: &RevisionKey, reason: String) {
        let Some(inner) = self.inner() else { return };
        let Some(key) = inner.record_for(revision) else {
            return;
        };
        let mut services = inner.services.lock();
        if let Some(record) = services.get_mut(&key) {
            tracing::warn!(%revision, %reason, "revision cannot run");
            if record.rollout.latest_created.as_deref() == Some(revision.revision.as_str()) {
                record.unschedulable = Some(reason);
            }
        }
    }
}
