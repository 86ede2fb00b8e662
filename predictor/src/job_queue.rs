//! The queue between the protocol front ends and the model thread, which wakes that thread
//! only when it has a reason to act.
//!
//! A plain channel wakes the receiver on every send. While a batch is being gathered that
//! means one wake-up (two context switches) per request, which on a one-core predictor costs
//! as much as the protocol work. Here the model thread says what it waits for — any job when
//! idle, enough rows or the last request on its way while gathering, nothing while it runs
//! the model — and senders wake it only then. It still wakes by itself at its own deadline,
//! so a request that never arrives (it failed before being queued) only delays a batch.
//! With a runtime park hook installed ([`wake_on_park`]), the wake-up of an idle model
//! thread is held back until the runtime has read everything that arrived.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::wake_on_park::{self, DEFER_LIMIT, Deferred};

/// What the model thread is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Running a batch: no wake-up needed, it looks at the queue when done.
    Nothing,
    /// Idle: the first job.
    AnyJob,
    /// Gathering a batch: `rows` more rows, or the moment no request is on its way.
    Rows(usize),
}

struct State<J> {
    jobs: VecDeque<(J, usize)>,
    queued_rows: usize,
    waiting: Waiting,
    closed: bool,
    /// When the wake-up held back for the runtime's park was first due.
    deferred_since: Option<Instant>,
}

/// A multi-producer, single-consumer queue of jobs that each carry a row count.
pub(crate) struct JobQueue<J> {
    state: Mutex<State<J>>,
    wake: Condvar,
    /// Hold back wake-ups until a runtime thread parks (or [`DEFER_LIMIT`]); up to this many
    /// rows (a full batch is never held back).
    defer_below_rows: usize,
}

/// Why [`JobQueue::push`] refused a job.
#[derive(Debug)]
pub(crate) struct Closed<J>(pub(crate) J);

impl<J: Send + 'static> JobQueue<J> {
    /// A queue whose wake-ups wait for the runtime's park (when a park hook is installed)
    /// while fewer than `batch_rows` rows (a full batch) are queued.
    pub(crate) fn new(batch_rows: usize) -> Arc<Self> {
        // Held-back wake-ups need the park hook, installed on one CPU only.
        if !crate::one_cpu::enabled() {
            return Arc::new(Self::immediate());
        }
        let queue = Arc::new(JobQueue {
            // Without batching a "full batch" is one job; hold back up to a few.
            defer_below_rows: if batch_rows > 1 { batch_rows } else { 16 },
            ..Self::immediate()
        });
        let weak: Weak<dyn Deferred> = Arc::downgrade(&queue) as Weak<Self>;
        wake_on_park::register(weak);
        queue
    }

    /// A queue that wakes the model thread as soon as it has a reason.
    pub(crate) fn immediate() -> Self {
        JobQueue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                queued_rows: 0,
                waiting: Waiting::Nothing,
                closed: false,
                deferred_since: None,
            }),
            wake: Condvar::new(),
            defer_below_rows: 0,
        }
    }
}

impl<J> Deferred for JobQueue<J>
where
    J: Send,
{
    fn flush(&self) {
        let mut state = self.lock();
        if state.deferred_since.take().is_some() && state.waiting != Waiting::Nothing {
            state.waiting = Waiting::Nothing;
            drop(state);
            self.wake.notify_one();
        }
    }
}

impl<J> JobQueue<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // A panic while holding this lock leaves the queue itself consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job` of `rows` rows. `last_on_its_way` is called after queueing (under the
    /// lock) and says whether no other request is on its way to the queue now.
    pub(crate) fn push(
        &self,
        job: J,
        rows: usize,
        last_on_its_way: impl FnOnce() -> bool,
    ) -> Result<(), Closed<J>> {
        let mut state = self.lock();
        if state.closed {
            return Err(Closed(job));
        }
        state.jobs.push_back((job, rows));
        state.queued_rows += rows;
        let due = match state.waiting {
            Waiting::Nothing => return Ok(()),
            Waiting::AnyJob => true,
            Waiting::Rows(needed) => {
                if state.queued_rows >= needed {
                    self.wake_now(state);
                    return Ok(());
                }
                last_on_its_way()
            }
        };
        if !due {
            return Ok(());
        }
        if state.queued_rows < self.defer_below_rows {
            let now = Instant::now();
            let since = *state.deferred_since.get_or_insert(now);
            if now.duration_since(since) < DEFER_LIMIT {
                wake_on_park::mark_pending();
                return Ok(());
            }
        }
        self.wake_now(state);
        Ok(())
    }

    fn wake_now(&self, mut state: MutexGuard<'_, State<J>>) {
        state.waiting = Waiting::Nothing;
        state.deferred_since = None;
        drop(state);
        self.wake.notify_one();
    }

    /// Refuses further jobs and wakes the model thread, which drains what is queued.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Refuses further jobs and hands back those still queued (for a consumer that stops).
    pub(crate) fn close_and_take_all(&self) -> Vec<J> {
        let mut state = self.lock();
        state.closed = true;
        state.queued_rows = 0;
        state.jobs.drain(..).map(|(job, _)| job).collect()
    }

    /// Waits for the first job of a batch; `None` once closed and drained.
    pub(crate) fn first(&self) -> Option<(J, usize)> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                state.queued_rows -= job.1;
                state.waiting = Waiting::Nothing;
                state.deferred_since = None;
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.waiting = Waiting::AnyJob;
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes queued jobs in order while `fits` accepts them; stops at the first it refuses
    /// (that one stays first in line for the next batch). Returns whether one was refused.
    pub(crate) fn take_while(
        &self,
        mut fits: impl FnMut(&J, usize) -> bool,
        into: &mut Vec<J>,
    ) -> bool {
        let mut state = self.lock();
        while let Some((job, rows)) = state.jobs.front() {
            if !fits(job, *rows) {
                return true;
            }
            let rows = *rows;
            let (job, _) = state.jobs.pop_front().expect("a front job");
            state.queued_rows -= rows;
            into.push(job);
        }
        false
    }

    /// Jobs queued now.
    pub(crate) fn queued_jobs(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Sleeps until `rows` more rows are queued, a sender sees that nobody else is on the way,
    /// the queue closes, or `until`. Returns at once when that already holds
    /// (`nobody_on_the_way` is asked under the lock, so a sender cannot slip in between).
    pub(crate) fn wait_for_rows(
        &self,
        rows: usize,
        until: Instant,
        nobody_on_the_way: impl FnOnce() -> bool,
    ) {
        let mut state = self.lock();
        if state.queued_rows >= rows || state.closed || nobody_on_the_way() {
            return;
        }
        let Some(timeout) = until.checked_duration_since(Instant::now()) else {
            return;
        };
        state.waiting = Waiting::Rows(rows);
        let (mut state, _) = self
            .wake
            .wait_timeout(state, timeout)
            .unwrap_or_else(|e| e.into_inner());
        state.waiting = Waiting::Nothing;
        state.deferred_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn jobs_come_out_in_order_and_a_refused_one_stays_first() {
        let q = JobQueue::immediate();
        for (job, rows) in [("a", 1), ("b", 2), ("c", 8), ("d", 1)] {
            q.push(job, rows, || false).unwrap();
        }
        assert_eq!(q.first(), Some(("a", 1)));
        let mut batch = vec![];
        let mut total = 1;
        let refused = q.take_while(
            |_, rows| {
                let fits = total + rows <= 4;
                if fits {
                    total += rows;
                }
                fits
            },
            &mut batch,
        );
        assert!(refused);
        assert_eq!(batch, vec!["b"]);
        assert_eq!(q.first(), Some(("c", 8)));
    }

    #[test]
    fn a_gathering_thread_is_woken_by_the_last_request_on_its_way_not_before() {
        let q = Arc::new(JobQueue::immediate());
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                q.wait_for_rows(10, Instant::now() + Duration::from_secs(30), || false);
                started.elapsed()
            })
        };
        while q.lock().waiting != Waiting::Rows(10) {
            std::thread::yield_now();
        }
        q.push(1, 1, || false).unwrap();
        assert_eq!(
            q.lock().waiting,
            Waiting::Rows(10),
            "woken although others were on the way"
        );
        q.push(2, 1, || true).unwrap();
        assert!(waiter.join().unwrap() < Duration::from_secs(15));
    }

    fn deferring(rows: usize) -> Arc<JobQueue<u32>> {
        Arc::new(JobQueue {
            defer_below_rows: rows,
            ..JobQueue::immediate()
        })
    }

    /// Starts a model thread stand-in that waits for its first job.
    fn idle_consumer(q: &Arc<JobQueue<u32>>) -> std::thread::JoinHandle<Option<(u32, usize)>> {
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || q.first())
        };
        while q.lock().waiting != Waiting::AnyJob {
            std::thread::yield_now();
        }
        consumer
    }

    #[test]
    fn a_held_back_wake_up_comes_with_the_runtime_park() {
        let q = deferring(8);
        let consumer = idle_consumer(&q);
        q.push(1, 1, || true).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!consumer.is_finished(), "woken before the runtime parked");
        q.flush();
        assert_eq!(consumer.join().unwrap(), Some((1, 1)));
    }

    #[test]
    fn a_wake_up_is_not_held_back_past_the_limit_or_a_full_batch() {
        let q = deferring(8);
        let consumer = idle_consumer(&q);
        q.push(1, 1, || true).unwrap();
        std::thread::sleep(DEFER_LIMIT * 2);
        q.push(2, 1, || true).unwrap();
        assert_eq!(consumer.join().unwrap(), Some((1, 1)));

        let q = deferring(8);
        let consumer = idle_consumer(&q);
        q.push(3, 8, || true).unwrap();
        assert_eq!(consumer.join().unwrap(), Some((3, 8)));
    }

    #[test]
    fn a_stopping_consumer_takes_every_queued_job_back() {
        let q = JobQueue::immediate();
        q.push(1, 1, || true).unwrap();
        q.push(2, 3, || true).unwrap();
        assert_eq!(q.close_and_take_all(), vec![1, 2]);
        assert!(matches!(q.push(3, 1, || true), Err(Closed(3))));
        assert_eq!(q.first(), None);
    }

    #[test]
    fn a_closed_queue_refuses_jobs_and_drains() {
        let q = JobQueue::immediate();
        q.push(1, 1, || true).unwrap();
        q.close();
        assert!(matches!(q.push(2, 1, || true), Err(Closed(2))));
        assert_eq!(q.first(), Some((1, 1)));
        assert_eq!(q.first(), None);
    }
}
