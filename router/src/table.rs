//! The routing table: services, their weighted and tagged revisions and the revisions'
//! endpoints. Readers on the request path take one atomic load of an immutable [`Snapshot`];
//! writers (the routes file, the controller) go through a [`TableHandle`], which rebuilds the
//! snapshot and swaps it in. Revision state (queues, counters, connections) survives updates.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use kiln_api::load::RevisionKey;
use parking_lot::Mutex;

use crate::balance::{self, Rng};
use crate::error::{RequestError, RouterError};
use crate::revision::{Revision, Shared};

/// How long a request may wait and run when a service names no timeout (KServe's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The namespace of a service that names none (the manifests' own constant).
pub use kiln_api::DEFAULT_NAMESPACE;

/// One service: a model name and its revisions.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The model name, as in `/v2/models/{name}` and the gRPC `model_name`.
    pub name: String,
    /// Namespace; hosts are `{name}.{namespace}.{domain}`.
    pub namespace: String,
    /// How long a request may wait in the activator and run.
    pub timeout: Duration,
    /// Revisions with their traffic weights.
    pub revisions: Vec<RevisionSpec>,
}

impl ServiceSpec {
    /// A service in the default namespace with the default timeout and no revisions.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            revisions: Vec::new(),
        }
    }

    /// Adds a revision (builder style).
    pub fn revision(mut self, revision: RevisionSpec) -> Self {
        self.revisions.push(revision);
        self
    }

    /// Sets the timeout (builder style).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the namespace (builder style).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }
}

/// One revision of a service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RevisionSpec {
    /// Revision name, unique in its namespace, e.g. `mlp-predictor-00001`.
    pub name: String,
    /// Traffic weight (canary percent). Weights are relative; when all are 0 the last
    /// revision gets the traffic.
    pub percent: u32,
    /// Tags that pin it (`x-kiln-tag: TAG` or the host `TAG-{name}.{namespace}.{domain}`).
    pub tags: Vec<String>,
    /// Most requests in flight per endpoint; 0 = unlimited.
    pub container_concurrency: u32,
    /// Ready endpoints. Empty: requests wait in the activator.
    pub endpoints: Vec<SocketAddr>,
}

impl RevisionSpec {
    /// A revision with a weight and nothing else.
    pub fn new(name: impl Into<String>, percent: u32) -> Self {
        Self {
            name: name.into(),
            percent,
            ..Self::default()
        }
    }

    /// Adds a tag (builder style).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets the container concurrency (builder style).
    pub fn container_concurrency(mut self, limit: u32) -> Self {
        self.container_concurrency = limit;
        self
    }

    /// Sets the ready endpoints (builder style).
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.endpoints = endpoints.into_iter().collect();
        self
    }
}

/// Pinning asked for by a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pin<'a> {
    /// Draw by weight.
    None,
    /// `x-kiln-revision`.
    Revision(&'a str),
    /// `x-kiln-tag` or a tag host.
    Tag(&'a str),
}

/// A service as the request path sees it.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) timeout: Duration,
    revisions: Vec<Arc<Revision>>,
    cumulative: Vec<u32>,
    tags: Vec<(String, usize)>,
}

impl Service {
    /// The revision for a request: pinned, or drawn by weight.
    pub(crate) fn choose(&self, pin: Pin<'_>, rng: &Rng) -> Result<&Arc<Revision>, RequestError> {
        match pin {
            Pin::None => balance::weighted(&self.cumulative, rng)
                .map(|i| &self.revisions[i])
                .ok_or_else(|| {
                    RequestError::NotFound(format!("model {} has no revision", self.name))
                }),
            Pin::Revision(name) => self
                .revisions
                .iter()
                .find(|r| r.key.revision == name)
                .ok_or_else(|| {
                    RequestError::NotFound(format!("model {} has no revision {name}", self.name))
                }),
            Pin::Tag(tag) => self
                .tags
                .iter()
                .find(|(t, _)| t == tag)
                .map(|(_, i)| &self.revisions[*i])
                .ok_or_else(|| {
                    RequestError::NotFound(format!(
                        "model {} has no revision tagged {tag}",
                        self.name
                    ))
                }),
        }
    }

    /// Whether some revision carries `tag`.
    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|(t, _)| t == tag)
    }
}

/// An immutable view of the table.
#[derive(Default)]
pub(crate) struct Snapshot {
    by_namespace: HashMap<String, HashMap<String, Arc<Service>>>,
    by_name: HashMap<String, Arc<Service>>,
    services: Vec<Arc<Service>>,
    revisions: Vec<Arc<Revision>>,
}

impl Snapshot {
    /// The service `name` in `namespace`.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&Arc<Service>> {
        self.by_namespace.get(namespace)?.get(name)
    }

    /// The service `name` in the default namespace, or the only (first) one of that name.
    pub(crate) fn by_name(&self, name: &str) -> Option<&Arc<Service>> {
        self.by_name.get(name)
    }

    /// Every service, ordered by namespace then name.
    pub(crate) fn services(&self) -> &[Arc<Service>] {
        &self.services
    }

    /// Every revision in the table.
    pub(crate) fn revisions(&self) -> &[Arc<Revision>] {
        &self.revisions
    }
}

struct State {
    specs: BTreeMap<(String, String), ServiceSpec>,
    revisions: HashMap<RevisionKey, Arc<Revision>>,
}

struct Inner {
    current: ArcSwap<Snapshot>,
    state: Mutex<State>,
    shared: Arc<Shared>,
}

/// A handle on a router's routing table: clone it freely; every update takes effect for the
/// next request.
#[derive(Clone)]
pub struct TableHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableHandle").finish_non_exhaustive()
    }
}

impl TableHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(Snapshot::default()),
                state: Mutex::new(State {
                    specs: BTreeMap::new(),
                    revisions: HashMap::new(),
                }),
                shared,
            }),
        }
    }

    /// The current snapshot (one atomic load).
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.inner.current.load()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Replaces every service. Revisions that remain keep their queues and counters;
    /// requests waiting for a removed revision are answered 503.
    pub fn set_services(&self, services: Vec<ServiceSpec>) -> Result<(), RouterError> {
        let mut specs = BTreeMap::new();
        for spec in services {
            let key = (spec.namespace.clone(), spec.name.clone());
            if specs.insert(key, spec).is_some() {
                return Err(RouterError::InvalidTable(
                    "a service appears twice in one namespace".into(),
                ));
            }
        }
        self.update(|current| {
            *current = specs;
            Ok(())
        })
    }

    /// Adds a service or replaces the one with the same namespace and name.
    pub fn upsert_service(&self, service: ServiceSpec) -> Result<(), RouterError> {
        self.update(|specs| {
            specs.insert((service.namespace.clone(), service.name.clone()), service);
            Ok(())
        })
    }

    /// Adds or replaces every service of `upserts` and removes those of `removals`, in one
    /// new snapshot: a change to many services costs one rebuild, not one each.
    pub fn update_services(
        &self,
        upserts: Vec<ServiceSpec>,
        removals: &[(String, String)],
    ) -> Result<(), RouterError> {
        if upserts.is_empty() && removals.is_empty() {
            return Ok(());
        }
        self.update(|specs| {
            for key in removals {
                specs.remove(key);
            }
            for service in upserts {
                specs.insert((service.namespace.clone(), service.name.clone()), service);
            }
            Ok(())
        })
    }

    /// Removes a service; returns whether it existed.
    pub fn remove_service(&self, namespace: &str, name: &str) -> Result<bool, RouterError> {
        let mut existed = false;
        self.update(|specs| {
            existed = specs
                .remove(&(namespace.to_owned(), name.to_owned()))
                .is_some();
            Ok(())
        })?;
        Ok(existed)
    }

    /// Sets the traffic weights of a service's revisions; revisions not named get 0.
    pub fn set_traffic(
        &self,
        namespace: &str,
        service: &str,
        percents: &[(&str, u32)],
    ) -> Result<(), RouterError> {
        self.update(|specs| {
            let spec = find_service(specs, namespace, service)?;
            for (name, _) in percents {
                if !spec.revisions.iter().any(|r| r.name == *name) {
                    return Err(RouterError::InvalidTable(format!(
                        "service {namespace}/{service} has no revision {name}"
                    )));
                }
            }
            for revision in &mut spec.revisions {
                revision.percent = percents
                    .iter()
                    .find(|(n, _)| *n == revision.name)
                    .map_or(0, |(_, p)| *p);
            }
            Ok(())
        })
    }

    /// Publishes the ready endpoints of a revision (waiting requests drain to them).
    /// Endpoints left out stop taking requests; their in-flight requests finish.
    pub fn set_endpoints(
        &self,
        revision: &RevisionKey,
        endpoints: Vec<SocketAddr>,
    ) -> Result<(), RouterError> {
        self.update(|specs| {
            find_revision(specs, revision)?.endpoints = endpoints;
            Ok(())
        })
    }

    /// Adds one ready endpoint to a revision.
    pub fn add_endpoint(
        &self,
        revision: &RevisionKey,
        addr: SocketAddr,
    ) -> Result<(), RouterError> {
        self.update(|specs| {
            let spec = find_revision(specs, revision)?;
            if !spec.endpoints.contains(&addr) {
                spec.endpoints.push(addr);
            }
            Ok(())
        })
    }

    /// Marks an endpoint draining: new requests stop going to it at once, in-flight ones
    /// finish. The returned future resolves when none is left, so the caller can then stop
    /// the replica. Errors when the revision or the endpoint is unknown.
    pub fn drain_endpoint(
        &self,
        revision: &RevisionKey,
        addr: SocketAddr,
    ) -> Result<impl Future<Output = ()> + Send + 'static, RouterError> {
        let endpoint = {
            let state = self.inner.state.lock();
            state
                .revisions
                .get(revision)
                .and_then(|r| r.drain_endpoint(addr))
        }
        .ok_or_else(|| {
            RouterError::InvalidTable(format!("revision {revision} has no endpoint {addr}"))
        })?;
        self.update(|specs| {
            find_revision(specs, revision)?
                .endpoints
                .retain(|a| *a != addr);
            Ok(())
        })?;
        Ok(async move { endpoint.wait_idle().await })
    }

    /// The services as last set.
    pub fn services(&self) -> Vec<ServiceSpec> {
        self.inner.state.lock().specs.values().cloned().collect()
    }

    /// Requests of a revision waiting in the activator queue (None: unknown revision).
    pub fn queued(&self, revision: &RevisionKey) -> Option<usize> {
        let state = self.inner.state.lock();
        state.revisions.get(revision).map(|r| r.queue.len())
    }

    /// Requests of a revision in flight on its endpoints (None: unknown revision).
    pub fn in_flight(&self, revision: &RevisionKey) -> Option<usize> {
        let state = self.inner.state.lock();
        state.revisions.get(revision).map(|r| r.in_flight())
    }

    fn update(
        &self,
        change: impl FnOnce(&mut BTreeMap<(String, String), ServiceSpec>) -> Result<(), RouterError>,
    ) -> Result<(), RouterError> {
        let mut state = self.inner.state.lock();
        let mut specs = state.specs.clone();
        change(&mut specs)?;
        validate(&specs)?;
        let shared = &self.inner.shared;
        let mut revisions = HashMap::new();
        let mut snapshot = Snapshot::default();
        for spec in specs.values() {
            let mut service = Service {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                timeout: spec.timeout,
                revisions: Vec::with_capacity(spec.revisions.len()),
                cumulative: Vec::with_capacity(spec.revisions.len()),
                tags: Vec::new(),
            };
            let mut total = 0u32;
            for (i, rs) in spec.revisions.iter().enumerate() {
                let key = RevisionKey::new(spec.namespace.clone(), rs.name.clone());
                let revision = match state.revisions.get(&key) {
                    Some(r) if r.service == spec.name => r.clone(),
                    _ => Arc::new(Revision::new(
                        key.clone(),
                        spec.name.clone(),
                        shared.clone(),
                    )),
                };
                revision.set_container_concurrency(rs.container_concurrency);
                revision.set_endpoints(&rs.endpoints);
                total = total.saturating_add(rs.percent);
                service.cumulative.push(total);
                service.tags.extend(rs.tags.iter().map(|t| (t.clone(), i)));
                service.revisions.push(revision.clone());
                snapshot.revisions.push(revision.clone());
                revisions.insert(key, revision);
            }
            let service = Arc::new(service);
            snapshot
                .by_namespace
                .entry(spec.namespace.clone())
                .or_default()
                .insert(spec.name.clone(), service.clone());
            let by_name = snapshot
                .by_name
                .entry(spec.name.clone())
                .or_insert_with(|| service.clone());
            if spec.namespace == DEFAULT_NAMESPACE {
                *by_name = service.clone();
            }
            snapshot.services.push(service);
        }
        for (key, old) in &state.revisions {
            let kept = revisions.get(key).is_some_and(|r| Arc::ptr_eq(r, old));
            if !kept {
                old.close();
                shared
                    .metrics
                    .remove_revision(&old.service, &key.namespace, &key.revision);
            }
        }
        state.specs = specs;
        state.revisions = revisions;
        self.inner.current.store(Arc::new(snapshot));
        Ok(())
    }
}

fn find_service<'a>(
    specs: &'a mut BTreeMap<(String, String), ServiceSpec>,
    namespace: &str,
    name: &str,
) -> Result<&'a mut ServiceSpec, RouterError> {
    specs
        .get_mut(&(namespace.to_owned(), name.to_owned()))
        .ok_or_else(|| RouterError::InvalidTable(format!("no service {namespace}/{name}")))
}

fn find_revision<'a>(
    specs: &'a mut BTreeMap<(String, String), ServiceSpec>,
    key: &RevisionKey,
) -> Result<&'a mut RevisionSpec, RouterError> {
    specs
        .values_mut()
        .filter(|s| s.namespace == key.namespace)
        .flat_map(|s| s.revisions.iter_mut())
        .find(|r| r.name == key.revision)
        .ok_or_else(|| RouterError::InvalidTable(format!("no revision {key}")))
}

fn validate(specs: &BTreeMap<(String, String), ServiceSpec>) -> Result<(), RouterError> {
    let mut seen = std::collections::HashSet::new();
    for spec in specs.values() {
        let bad = |what: String| Err(RouterError::InvalidTable(what));
        if spec.name.is_empty() || spec.name.contains(['/', '.', ' ']) {
            return bad(format!("invalid service name {:?}", spec.name));
        }
        if spec.namespace.is_empty() || spec.namespace.contains(['/', '.', ' ']) {
            return bad(format!("invalid namespace {:?}", spec.namespace));
        }
        if spec.timeout.is_zero() {
            return bad(format!("service {}: timeout must be positive", spec.name));
        }
        let mut tags = std::collections::HashSet::new();
        for revision in &spec.revisions {
            if revision.name.is_empty() {
                return bad(format!("service {}: a revision has no name", spec.name));
            }
            if !seen.insert((spec.namespace.as_str(), revision.name.as_str())) {
                return bad(format!(
                    "revision {}/{} appears twice",
                    spec.namespace, revision.name
                ));
            }
            for tag in &revision.tags {
                if !tags.insert(tag.as_str()) {
                    return bad(format!("service {}: tag {tag} used twice", spec.name));
                }
            }
        }
    }
    Ok(())
}
