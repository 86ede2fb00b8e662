//! The reconcile queue: events only queue a service's key, and one worker reconciles each
//! queued key once, however many events queued it meanwhile (as kube-runtime's scheduler
//! does).

use std::collections::HashSet;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::backend::ServiceKey;

/// Keys waiting to be reconciled, each at most once.
#[derive(Debug)]
pub struct ReconcileQueue {
    pending: Mutex<HashSet<ServiceKey>>,
    sender: mpsc::UnboundedSender<ServiceKey>,
}

/// The worker's end of a [`ReconcileQueue`].
#[derive(Debug)]
pub struct QueuedKeys {
    receiver: mpsc::UnboundedReceiver<ServiceKey>,
}

impl ReconcileQueue {
    /// An empty queue and the end its worker takes keys from.
    pub fn new() -> (Self, QueuedKeys) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queue = Self {
            pending: Mutex::new(HashSet::new()),
            sender,
        };
        (queue, QueuedKeys { receiver })
    }

    /// Queues `key` unless it is already waiting.
    pub fn push(&self, key: ServiceKey) {
        if self.pending.lock().insert(key.clone()) {
            let _ = self.sender.send(key);
        }
    }

    /// Marks `key` as taken by the worker: events from now on queue it again.
    pub fn taken(&self, key: &ServiceKey) {
        self.pending.lock().remove(key);
    }
}

impl QueuedKeys {
    /// The next key; `None` once the queue is gone.
    pub async fn next(&mut self) -> Option<ServiceKey> {
        self.receiver.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_queued_many_times_before_it_is_taken_is_reconciled_once() {
        let (queue, mut keys) = ReconcileQueue::new();
        let a = ServiceKey::new("default", "a");
        let b = ServiceKey::new("default", "b");
        for _ in 0..3 {
            queue.push(a.clone());
        }
        queue.push(b.clone());
        assert_eq!(keys.next().await, Some(a.clone()));
        queue.taken(&a);
        queue.push(a.clone());
        assert_eq!(keys.next().await, Some(b));
        assert_eq!(keys.next().await, Some(a));
        assert!(keys.receiver.try_recv().is_err());
    }
}
