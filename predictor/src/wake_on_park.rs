//! Waking the model thread when the async runtime runs out of work, instead of on every
//! request.
//!
//! When a front end queues a request and wakes the model thread at once, on a predictor with
//! few cores that thread preempts the runtime thread in the middle of reading the other
//! requests that have already arrived: the batch holds one row, and every request costs two
//! context switches. With [`park_hook`] installed (`on_thread_park` of the Tokio runtime that
//! serves the predictor, by [`crate::one_cpu::configure_runtime`]), an idle model thread is
//! woken when a runtime thread is about to park, i.e. once everything that had arrived has
//! been read and queued. Queues still wake it at once when a full batch waits, or when the
//! oldest queued request has waited [`DEFER_LIMIT`], so a runtime that never parks cannot
//! starve the model.
//!
//! This holds only where the process has one CPU (affinity or cgroup quota, as in a
//! predictor pod that asks for one core), where the model thread can only run by taking the
//! CPU from the runtime anyway. With more, it runs beside the runtime instead of preempting
//! it, and a runtime thread busy with one long request (a large JSON body) must not hold back
//! the batch of the others. Without the hook (a predictor embedded in a runtime built
//! elsewhere), or with more than one CPU, queues wake the model thread at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

/// Longest a queued request waits for a runtime thread to park before the queue wakes the
/// model thread itself.
pub(crate) const DEFER_LIMIT: Duration = Duration::from_micros(200);

static PENDING: AtomicBool = AtomicBool::new(false);
static QUEUES: Mutex<Vec<Weak<dyn Deferred>>> = Mutex::new(Vec::new());

/// A queue that may hold back a wake-up until [`flush`].
pub(crate) trait Deferred: Send + Sync {
    /// Gives the wake-up held back, if any.
    fn flush(&self);
}

/// The hook for `tokio::runtime::Builder::on_thread_park`, installed by
/// [`crate::one_cpu::configure_runtime`]: gives the wake-ups held back.
pub(crate) fn park_hook() {
    if PENDING.swap(false, Ordering::AcqRel) {
        flush_all();
    }
}

/// Registers a queue for the hook's flushes.
pub(crate) fn register(queue: Weak<dyn Deferred>) {
    let mut queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    queues.retain(|q| q.strong_count() > 0);
    queues.push(queue);
}

/// Notes that a queue holds back a wake-up.
pub(crate) fn mark_pending() {
    PENDING.store(true, Ordering::Release);
}

fn flush_all() {
    let queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    for queue in queues.iter().filter_map(Weak::upgrade) {
        queue.flush();
    }
}
