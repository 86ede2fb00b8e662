//! One revision's live state: its endpoints with their outstanding requests, its activator
//! queue and its load statistics. It outlives table updates: a new snapshot reuses it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use kiln_api::load::{Activation, RevisionKey};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::activator::Queue;
use crate::balance::{self, Rng};
use crate::h1::UpstreamPool;
use crate::metrics::Metrics;
use crate::proxy::Pool;
use crate::stats::RevisionStats;

/// Attempts per request when endpoints refuse connections, on both forwarding paths.
pub(crate) const CONNECT_ATTEMPTS: usize = 3;

/// Most idle connections kept per endpoint, in each of its pools.
pub(crate) const MAX_IDLE_CONNECTIONS: usize = 1024;

/// What all revisions of one router share.
pub(crate) struct Shared {
    /// Random source for weights and power of two choices.
    pub(crate) rng: Rng,
    /// Told when a request starts waiting for a revision with no ready endpoint.
    pub(crate) activation: Arc<dyn Activation>,
    /// Most requests one revision may hold waiting.
    pub(crate) queue_depth: usize,
    /// How long an endpoint is skipped after a connect error.
    pub(crate) backoff: std::time::Duration,
    /// The router's start, the epoch of samples and back-off deadlines.
    pub(crate) epoch: Instant,
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
}

impl Shared {
    /// Milliseconds since the router started (never 0, which means "no back-off").
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// One upstream address of a revision.
pub(crate) struct Endpoint {
    addr: SocketAddr,
    outstanding: AtomicUsize,
    draining: AtomicBool,
    backoff_until: AtomicU64,
    drained: Notify,
    /// Pooled connections to this address for the general path (h2c, hyper's HTTP/1.1).
    pub(crate) pool: Pool,
    /// Pooled HTTP/1.1 connections for the HTTP/1.1 path.
    pub(crate) h1: UpstreamPool,
}

impl Endpoint {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            outstanding: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            backoff_until: AtomicU64::new(0),
            drained: Notify::new(),
            pool: Pool::new(addr),
            h1: UpstreamPool::default(),
        }
    }

    /// The endpoint's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests sent to it and not yet finished.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Whether it takes no new requests.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// End of its connect-error back-off in router milliseconds, 0 when none was ever set.
    pub(crate) fn backoff_until(&self) -> u64 {
        self.backoff_until.load(Ordering::Relaxed)
    }

    /// Whether its back-off (if any) has passed at `now_ms`.
    pub(crate) fn is_healthy(&self, now_ms: u64) -> bool {
        self.backoff_until() <= now_ms
    }

    /// After a connect error: skips it for new requests for the router's back-off, while
    /// healthy endpoints exist.
    pub(crate) fn back_off(&self, shared: &Shared) {
        let until_ms = shared.now_ms() + shared.backoff.as_millis() as u64;
        self.backoff_until.store(until_ms, Ordering::Relaxed);
    }

    /// Takes one slot if fewer than `limit` are taken (`limit` 0 = unlimited).
    pub(crate) fn try_take(&self, limit: u32) -> bool {
        if limit == 0 {
            self.outstanding.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        let limit = limit as usize;
        self.outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        let left = self.outstanding.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.is_draining() {
            self.drained.notify_waiters();
        }
    }

    /// Waits until no request is outstanding on it.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.outstanding() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The live state of one revision.
pub(crate) struct Revision {
    /// `{namespace}/{revision}`.
    pub(crate) key: RevisionKey,
    /// The service it belongs to (a metrics label).
    pub(crate) service: String,
    /// The value of `x-kiln-revision` on its responses.
    pub(crate) header_value: http::HeaderValue,
    container_concurrency: AtomicU32,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Requests waiting for a slot.
    pub(crate) queue: Queue,
    /// Load figures.
    pub(crate) stats: RevisionStats,
    /// Router-wide parts.
    pub(crate) shared: Arc<Shared>,
}

impl Revision {
    /// A revision with no endpoints.
    pub(crate) fn new(key: RevisionKey, service: String, shared: Arc<Shared>) -> Self {
        let metrics = shared
            .metrics
            .for_revision(&service, &key.namespace, &key.revision);
        let header_value = http::HeaderValue::from_str(&key.revision)
            .unwrap_or_else(|_| http::HeaderValue::from_static("invalid"));
        Self {
            stats: RevisionStats::new(Instant::now(), metrics),
            header_value,
            key,
            service,
            container_concurrency: AtomicU32::new(0),
            endpoints: ArcSwap::from_pointee(Vec::new()),
            queue: Queue::new(),
            shared,
        }
    }

    /// Most requests in flight per endpoint (0 = unlimited).
    pub(crate) fn container_concurrency(&self) -> u32 {
        self.container_concurrency.load(Ordering::Relaxed)
    }

    /// Changes the container concurrency; waiting requests may now fit.
    pub(crate) fn set_container_concurrency(self: &Arc<Self>, limit: u32) {
        if self.container_concurrency.swap(limit, Ordering::Relaxed) != limit {
            self.dispatch();
        }
    }

    /// The current endpoints (draining ones included until they are removed).
    pub(crate) fn endpoints(&self) -> arc_swap::Guard<Arc<Vec<Arc<Endpoint>>>> {
        self.endpoints.load()
    }

    /// Whether some endpoint takes new requests.
    pub(crate) fn has_ready_endpoint(&self) -> bool {
        self.endpoints().iter().any(|e| !e.is_draining())
    }

    /// Publishes the ready endpoints: listed ones take requests (existing ones keep their
    /// counters and connections), others leave rotation while their requests finish.
    pub(crate) fn set_endpoints(self: &Arc<Self>, addrs: &[SocketAddr]) {
        let current = self.endpoints.load_full();
        let same = current.len() == addrs.len()
            && current
                .iter()
                .zip(addrs)
                .all(|(e, a)| e.addr == *a && !e.is_draining());
        if same {
            return;
        }
        let next: Vec<Arc<Endpoint>> = addrs
            .iter()
            .map(|addr| match current.iter().find(|e| e.addr == *addr) {
                Some(e) => {
                    e.draining.store(false, Ordering::Release);
                    e.clone()
                }
                None => Arc::new(Endpoint::new(*addr)),
            })
            .collect();
        self.endpoints.store(Arc::new(next));
        self.dispatch();
    }

    /// Takes `addr` out of rotation (its requests finish) and returns it to wait on.
    pub(crate) fn drain_endpoint(self: &Arc<Self>, addr: SocketAddr) -> Option<Arc<Endpoint>> {
        let current = self.endpoints.load_full();
        let endpoint = current.iter().find(|e| e.addr == addr)?.clone();
        endpoint.draining.store(true, Ordering::Release);
        let next: Vec<Arc<Endpoint>> = current.iter().filter(|e| e.addr != addr).cloned().collect();
        self.endpoints.store(Arc::new(next));
        Some(endpoint)
    }

    /// Requests in flight on its endpoints.
    pub(crate) fn in_flight(&self) -> usize {
        self.endpoints().iter().map(|e| e.outstanding()).sum()
    }

    /// Takes a slot on some endpoint now, if one is free.
    pub(crate) fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let endpoints = self.endpoints.load();
        let shared = &self.shared;
        let endpoint = balance::pick(
            &endpoints,
            self.container_concurrency(),
            &shared.rng,
            || shared.now_ms(),
        )?;
        Some(Lease {
            revision: self.clone(),
            endpoint: endpoint.clone(),
        })
    }
}

/// One slot on one endpoint, released on drop (waking the next waiting request).
pub(crate) struct Lease {
    revision: Arc<Revision>,
    endpoint: Arc<Endpoint>,
}

impl Lease {
    /// The endpoint holding the slot.
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.release();
        if self.revision.queue.len() > 0 {
            self.revision.dispatch();
        }
    }
}
