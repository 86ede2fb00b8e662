//! The activator: requests for a revision with no free slot wait here, in arrival order, in a
//! bounded queue. A request that starts waiting on a revision with no ready endpoint pokes
//! the autoscaler at once. Slots are handed to waiters as they free up or as endpoints are
//! published; a waiter that times out or whose client goes away leaves the queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::RequestError;
use crate::revision::{Lease, Revision};

/// A revision's waiting requests, keyed by arrival number.
pub(crate) struct Queue {
    waiters: Mutex<Waiters>,
    len: AtomicUsize,
}

struct Waiters {
    next_id: u64,
    entries: BTreeMap<u64, oneshot::Sender<Lease>>,
}

impl Queue {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self {
            waiters: Mutex::new(Waiters {
                next_id: 0,
                entries: BTreeMap::new(),
            }),
            len: AtomicUsize::new(0),
        }
    }

    /// Requests waiting now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

/// Removes a waiter from the queue when its request stops waiting for any reason (served,
/// timed out, client gone), and records the time it waited.
struct Waiting<'a> {
    revision: &'a Arc<Revision>,
    id: u64,
    since: Instant,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let waited = self.since.elapsed().as_secs_f64();
        self.revision.stats.metrics.queued.observe(waited);
        let queue = &self.revision.queue;
        let mut waiters = queue.waiters.lock();
        if waiters.entries.remove(&self.id).is_some() {
            queue.len.store(waiters.entries.len(), Ordering::Release);
        }
    }
}

impl Revision {
    /// A slot on an endpoint if one is free and nobody waits before us.
    pub(crate) fn acquire_now(self: &Arc<Self>) -> Option<Lease> {
        if self.queue.len() == 0 {
            self.try_lease()
        } else {
            None
        }
    }

    /// A slot on an endpoint: at once when one is free and nobody waits before us, otherwise
    /// after waiting in the queue (the caller bounds the wait with the request's deadline;
    /// dropping this future leaves the queue).
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Lease, RequestError> {
        if let Some(lease) = self.acquire_now() {
            return Ok(lease);
        }
        let (tx, rx) = oneshot::channel();
        let enqueued = Instant::now();
        let (id, cold) = {
            let mut waiters = self.queue.waiters.lock();
            if waiters.entries.len() >= self.shared.queue_depth {
                return Err(RequestError::QueueFull(self.key.revision.clone()));
            }
            let id = waiters.next_id;
            waiters.next_id += 1;
            waiters.entries.insert(id, tx);
            self.queue
                .len
                .store(waiters.entries.len(), Ordering::Release);
            let spare = self.dispatch_locked(&mut waiters);
            let cold = !self.has_ready_endpoint();
            drop(waiters);
            drop(spare);
            (id, cold)
        };
        let waiting = Waiting {
            revision: self,
            id,
            since: enqueued,
        };
        if cold {
            self.shared.activation.poke(&self.key);
        }
        let outcome = rx.await;
        drop(waiting);
        match outcome {
            Ok(lease) => {
                if cold {
                    let waited = enqueued.elapsed().as_secs_f64();
                    self.stats.metrics.cold_start.observe(waited);
                }
                Ok(lease)
            }
            Err(_) => Err(RequestError::Gone(self.key.revision.clone())),
        }
    }

    /// Hands free slots to waiting requests in arrival order.
    pub(crate) fn dispatch(self: &Arc<Self>) {
        let mut waiters = self.queue.waiters.lock();
        let spare = self.dispatch_locked(&mut waiters);
        drop(waiters);
        drop(spare);
    }

    /// Hands out slots while both slots and waiters remain. Returns a slot taken for a waiter
    /// that had gone: the caller drops it after unlocking (dropping it wakes the queue).
    fn dispatch_locked(self: &Arc<Self>, waiters: &mut Waiters) -> Option<Lease> {
        let mut spare: Option<Lease> = None;
        while let Some(entry) = waiters.entries.first_entry() {
            let lease = match spare.take() {
                Some(lease) => lease,
                None => match self.try_lease() {
                    Some(lease) => lease,
                    None => break,
                },
            };
            if let Err(lease) = entry.remove().send(lease) {
                spare = Some(lease);
            }
        }
        self.queue
            .len
            .store(waiters.entries.len(), Ordering::Release);
        spare
    }

    /// Fails every waiting request (the revision left the table).
    pub(crate) fn close(&self) {
        let mut waiters = self.queue.waiters.lock();
        waiters.entries.clear();
        self.queue.len.store(0, Ordering::Release);
    }
}
