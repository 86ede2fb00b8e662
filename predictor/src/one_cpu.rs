//! Sharing one CPU between the async runtime and the model thread.
//!
//! A predictor given one CPU (affinity, or a cgroup quota as in a pod that asks for one
//! core) runs its protocol front ends (the Tokio runtime) and its model thread on that CPU
//! in turns. Three rules make the turns long and put them where they help:
//!
//! - An idle model thread is woken when a runtime thread parks, once everything that had
//!   arrived is read and queued, not on every request ([`crate::wake_on_park`]).
//! - Runtime threads run under `SCHED_BATCH`, so a request that arrives, or an answer handed
//!   to the runtime, does not preempt the model thread in the middle of its run: the runtime
//!   runs when the model thread waits, yields, or has used its time slice, and then reads and
//!   writes everything pending in one turn.
//! - The model thread yields once its queue runs low ([`RUNNING_LOW`] jobs or fewer): the
//!   runtime writes the answers so far and reads what has arrived, so callers turn around
//!   while the model still has work. Without it, callers in step (a closed loop, or any burst)
//!   got their answers together only once the queue ran dry, and the model idled until their
//!   next requests came back: 13-15 % of the time behind a proxy hop (benches/router/mlp.sh).
//!
//! With more CPUs none of this applies: the runtime and the model thread run side by side.

use std::sync::atomic::{AtomicBool, Ordering};

use preempt_rt::sched::{self, Pid, Scheduler, SchedulerParams};

/// Queued jobs at or below which the model thread, after a run, lets the runtime answer.
pub(crate) const RUNNING_LOW: usize = 2;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Installs the one-CPU rules on the runtime that will serve the predictor, when this process
/// has one CPU; with more it changes nothing. Call before creating the model worker.
pub fn configure_runtime(builder: &mut tokio::runtime::Builder) {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    ENABLED.store(one_cpu, Ordering::SeqCst);
    if one_cpu {
        builder
            .on_thread_start(run_as_batch)
            .on_thread_park(crate::wake_on_park::park_hook);
    }
}

/// Whether [`configure_runtime`] found one CPU.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// After a run: on one CPU, yields to the runtime when `queued_jobs()` has run low, so the
/// answers go out while the model still has work. `queued_jobs` is asked only on one CPU.
pub(crate) fn hand_over_when_running_low(queued_jobs: impl FnOnce() -> usize) {
    if enabled() && (1..=RUNNING_LOW).contains(&queued_jobs()) {
        std::thread::yield_now();
    }
}

/// Puts the calling thread under `SCHED_BATCH` (its niceness stays). A thread that cannot (a
/// platform without it) keeps the default policy: slower on one CPU, not wrong.
fn run_as_batch() {
    let no_priority = SchedulerParams { priority: 0 };
    if let Err(e) = sched::set_scheduler(Pid::current_thread(), Scheduler::SCHED_BATCH, no_priority)
    {
        tracing::debug!(error = %e, "runtime thread keeps the default scheduling policy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_thread_runs_as_batch() {
        let policy = std::thread::spawn(|| {
            run_as_batch();
            sched::get_scheduler(Pid::current_thread()).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(policy, Scheduler::SCHED_BATCH);
        let this_thread = sched::get_scheduler(Pid::current_thread()).unwrap();
        assert_eq!(
            this_thread,
            Scheduler::SCHED_NORMAL,
            "only the calling thread changes"
        );
    }
}
