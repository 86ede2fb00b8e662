//! `kiln up`'s [`Backend`]: revisions as `kiln predictor` processes of the [`LocalBackend`],
//! routes in the router's table, scaling by the in-process autoscaler.
//!
//! The data-plane half of the backend's events is handled here at once, without waiting for
//! a reconcile: a ready replica is routed to and counted by the autoscaler, a draining one
//! leaves the table first. What changes a service's rollout (a revision's first ready
//! replica, a revision that cannot run) only queues the service's key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

use kiln_api::load::RevisionKey;
use kiln_autoscaler::SharedAutoscaler;
use kiln_router::{RevisionSpec, ServiceSpec, TableHandle};
use parking_lot::Mutex;

use crate::backend::{ActionBatch, Backend, BackendError, ServiceKey};
use crate::local::{
    Capacity, Drained, Endpoint, EndpointEvents, LocalBackend, Share, Unschedulable, never_fits,
};
use crate::queue::ReconcileQueue;
use crate::reconcile::{Action, Observed, ObservedRevision, Route, Waiting};
use crate::revision::{RevisionRecord, requested};
use kiln_api::inference_service::ServableSpec;

/// The autoscaler as `kiln up` runs it: deciding for the local backend, on the router's
/// clock.
pub type Scaling =
    SharedAutoscaler<LocalBackend, Box<dyn Fn() -> std::time::Duration + Send + Sync>>;

/// The local backend, the router's table and the autoscaler, as one [`Backend`].
pub struct LocalServing {
    backend: LocalBackend,
    table: TableHandle,
    autoscaler: Arc<Scaling>,
    queue: Arc<ReconcileQueue>,
    capacity: Capacity,
    live: Mutex<Live>,
}

/// What the backend's events report, by revision.
#[derive(Default)]
struct Live {
    endpoints: HashMap<RevisionKey, Vec<Endpoint>>,
    unschedulable: HashMap<RevisionKey, Waiting>,
    owners: HashMap<RevisionKey, ServiceKey>,
}

impl LocalServing {
    /// The backend over these parts; its events queue keys on `queue`.
    pub fn new(
        backend: LocalBackend,
        table: TableHandle,
        autoscaler: Arc<Scaling>,
        queue: Arc<ReconcileQueue>,
        capacity: Capacity,
    ) -> Self {
        Self {
            backend,
            table,
            autoscaler,
            queue,
            capacity,
            live: Mutex::new(Live::default()),
        }
    }

    fn ensure_revision(
        &self,
        service: &ServiceKey,
        revision: &RevisionRecord,
        scaling: &kiln_autoscaler::RevisionScaling,
    ) -> Result<(), BackendError> {
        let key = revision.key(&service.namespace);
        self.live.lock().owners.insert(key.clone(), service.clone());
        self.backend.define(revision.template(&service.namespace));
        self.autoscaler
            .upsert_revision(key, scaling)
            .map(drop)
            .map_err(BackendError::Autoscaler)
    }

    fn publish(&self, service: &ServiceKey, route: &Route) -> Result<(), BackendError> {
        let spec = self.service_spec(service, route);
        self.table
            .upsert_service(spec)
            .map_err(BackendError::Router)
    }

    /// The router's spec of a service's routes, with the endpoints ready now.
    fn service_spec(&self, service: &ServiceKey, route: &Route) -> ServiceSpec {
        let live = self.live.lock();
        let mut spec = ServiceSpec::new(&service.name).namespace(&service.namespace);
        if let Some(timeout) = route.timeout {
            spec = spec.timeout(timeout);
        }
        for target in &route.revisions {
            let key = RevisionKey::new(&service.namespace, &target.revision);
            let endpoints = live.endpoints.get(&key).into_iter().flatten();
            let mut revision = RevisionSpec::new(&target.revision, target.percent)
                .container_concurrency(target.container_concurrency)
                .endpoints(endpoints.map(|e| e.http));
            if let Some(tag) = &target.tag {
                revision = revision.tag(tag.clone());
            }
            spec = spec.revision(revision);
        }
        spec
    }

    fn remove_revision(&self, key: &RevisionKey) {
        self.backend.remove(key);
        self.autoscaler.remove_revision(key);
        let mut live = self.live.lock();
        live.endpoints.remove(key);
        live.unschedulable.remove(key);
        live.owners.remove(key);
    }

    fn ready_count_changed(&self, revision: &RevisionKey) {
        let count = self
            .live
            .lock()
            .endpoints
            .get(revision)
            .map_or(0, |e| e.len() as u32);
        self.autoscaler.set_ready(revision, count);
    }

    fn queue_owner(&self, revision: &RevisionKey) {
        let owner = self.live.lock().owners.get(revision).cloned();
        if let Some(service) = owner {
            self.queue.push(service);
        }
    }
}

impl Backend for LocalServing {
    fn execute(&self, service: &ServiceKey, actions: &[Action]) -> Result<(), BackendError> {
        for action in actions {
            match action {
                Action::EnsureRevision { revision, scaling } => {
                    self.ensure_revision(service, revision, scaling)?;
                }
                Action::Publish(route) => self.publish(service, route)?,
                Action::RemoveRevision { revision } => {
                    self.remove_revision(&RevisionKey::new(&service.namespace, revision));
                }
                Action::Unpublish => {
                    let _ = self.table.remove_service(&service.namespace, &service.name);
                }
            }
        }
        Ok(())
    }

    /// Revisions first, then every service's routes in one table update, then removals:
    /// an apply or a restart of many services rebuilds the router's table once.
    fn execute_batch(&self, batch: &ActionBatch) -> Result<(), BackendError> {
        let mut upserts = Vec::new();
        let mut unpublished = Vec::new();
        for (service, actions) in batch {
            for action in actions {
                match action {
                    Action::EnsureRevision { revision, scaling } => {
                        self.ensure_revision(service, revision, scaling)?;
                    }
                    Action::Publish(route) => upserts.push(self.service_spec(service, route)),
                    Action::Unpublish => {
                        unpublished.push((service.namespace.clone(), service.name.clone()));
                    }
                    Action::RemoveRevision { .. } => {}
                }
            }
        }
        self.table
            .update_services(upserts, &unpublished)
            .map_err(BackendError::Router)?;
        for (service, actions) in batch {
            for action in actions {
                if let Action::RemoveRevision { revision } = action {
                    self.remove_revision(&RevisionKey::new(&service.namespace, revision));
                }
            }
        }
        Ok(())
    }

    fn observe(&self, service: &ServiceKey, revisions: &[RevisionRecord]) -> Observed {
        let live = self.live.lock();
        let revisions = revisions
            .iter()
            .map(|r| {
                let key = r.key(&service.namespace);
                let observed = ObservedRevision {
                    desired: self.backend.status(&key).map_or(0, |s| s.desired),
                    ready: live.endpoints.get(&key).map_or(0, |e| e.len() as u32),
                    unschedulable: live.unschedulable.get(&key).cloned(),
                };
                (r.name.clone(), observed)
            })
            .collect();
        Observed { revisions }
    }

    fn logs(&self, namespace: &str, revision: &str) -> Vec<String> {
        self.backend.logs(&RevisionKey::new(namespace, revision))
    }

    /// A service whose `minReplicas` replicas cannot fit `kiln up`'s capacity even on an
    /// empty machine is refused at apply.
    fn check_fits(&self, servable: &ServableSpec) -> Result<(), String> {
        let share = Share {
            cpu_millis: requested(servable, "cpu", kiln_api::quantity::cpu_millis),
            memory_bytes: requested(servable, "memory", kiln_api::quantity::bytes),
        };
        match never_fits(&self.capacity, servable.min_replicas, share) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// The local backend's events, handed to [`LocalServing`] once it exists (the backend is
/// made first, and the serving over it).
#[derive(Default)]
pub struct LocalEvents {
    serving: OnceLock<Weak<LocalServing>>,
}

impl LocalEvents {
    /// Sends the events from now on to `serving`.
    pub fn connect(&self, serving: &Arc<LocalServing>) {
        let _ = self.serving.set(Arc::downgrade(serving));
    }

    fn serving(&self) -> Option<Arc<LocalServing>> {
        self.serving.get().and_then(Weak::upgrade)
    }
}

impl EndpointEvents for LocalEvents {
    fn endpoint_ready(&self, revision: &RevisionKey, endpoint: Endpoint) {
        let Some(serving) = self.serving() else {
            return;
        };
        {
            let mut live = serving.live.lock();
            live.endpoints
                .entry(revision.clone())
                .or_default()
                .push(endpoint);
            live.unschedulable.remove(revision);
        }
        if let Err(e) = serving.table.add_endpoint(revision, endpoint.http) {
            tracing::warn!(%revision, error = %e, "router refused an endpoint");
        }
        serving.ready_count_changed(revision);
        serving.queue_owner(revision);
    }

    /// The router stops picking the endpoint now; the answer completes once its in-flight
    /// requests have finished, and only then does the backend send SIGTERM.
    fn endpoint_draining(&self, revision: &RevisionKey, endpoint: &Endpoint) -> Drained {
        let Some(serving) = self.serving() else {
            return Box::pin(std::future::ready(()));
        };
        if let Some(list) = serving.live.lock().endpoints.get_mut(revision) {
            list.retain(|e| e != endpoint);
        }
        let drained: Drained = match serving.table.drain_endpoint(revision, endpoint.http) {
            Ok(drained) => Box::pin(drained),
            Err(e) => {
                tracing::debug!(%revision, error = %e, "draining an endpoint the router does not know");
                Box::pin(std::future::ready(()))
            }
        };
        serving.ready_count_changed(revision);
        drained
    }

    fn endpoint_removed(&self, revision: &RevisionKey, endpoint: &Endpoint) {
        let Some(serving) = self.serving() else {
            return;
        };
        let remaining: Vec<SocketAddr> = {
            let mut live = serving.live.lock();
            // A revision already removed stays removed.
            let Some(list) = live.endpoints.get_mut(revision) else {
                return;
            };
            list.retain(|e| e != endpoint);
            list.iter().map(|e| e.http).collect()
        };
        let _ = serving.table.set_endpoints(revision, remaining);
        serving.ready_count_changed(revision);
    }

    fn revision_unschedulable(&self, revision: &RevisionKey, why: Unschedulable) {
        let Some(serving) = self.serving() else {
            return;
        };
        let waiting = Waiting {
            reason: why.reason.to_owned(),
            message: why.message,
        };
        serving
            .live
            .lock()
            .unschedulable
            .insert(revision.clone(), waiting);
        serving.queue_owner(revision);
    }
}
