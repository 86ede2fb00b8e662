//! A closed-loop load generator: N workers, each with its own client, send one request,
//! wait for its answer, and send the next, for a warm-up and then a measured window.
//!
//! A request counts when it completes inside the measured window; its latency is the time
//! from just before it was sent to just after its whole answer was read, so it includes the
//! client's own scheduling delay, as any caller would see it.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::BenchError;

/// One client of the server under test, owned by one worker.
pub trait Caller: Send + 'static {
    /// Sends one inference request and reads its whole answer.
    fn call(&mut self) -> impl Future<Output = Result<(), BenchError>> + Send;
}

/// How long and how hard to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Time before measuring starts.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Requests that completed successfully in the measured window.
    pub completed: u64,
    /// Requests that completed successfully in the whole run, warm-up included.
    pub total_ok: u64,
    /// Requests that failed (warm-up included).
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// The measured window's length.
    pub window: Duration,
    /// Latencies of the completed requests, in nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
}

impl LoadResult {
    /// Completed requests per second in the measured window.
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies_ns, q)
    }
}

/// The value at quantile `q` (0..=1) of sorted nanoseconds, nearest rank; zero when empty.
pub fn quantile(sorted_ns: &[u64], q: f64) -> Duration {
    if sorted_ns.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted_ns.len() as f64).ceil() as usize;
    Duration::from_nanos(sorted_ns[rank.clamp(1, sorted_ns.len()) - 1])
}

struct WorkerTally {
    completed: u64,
    total_ok: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_ns: Vec<u64>,
}

/// Runs one worker per caller (so `callers.len()` is the concurrency) on the current tokio
/// runtime for `spec.warmup + spec.measure`, and gathers what they saw.
pub async fn run<C: Caller>(callers: Vec<C>, spec: LoadSpec) -> LoadResult {
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.measure;
    // Room for ~50k answers per second per worker's share, so recording never allocates.
    let per_worker = (spec.measure.as_secs_f64() * 50_000.0 / callers.len().max(1) as f64).ceil()
        as usize
        + 1024;
    let workers: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            tokio::spawn(async move {
                let mut tally = WorkerTally {
                    completed: 0,
                    total_ok: 0,
                    errors: 0,
                    first_error: None,
                    latencies_ns: Vec::with_capacity(per_worker),
                };
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let result = caller.call().await;
                    let done = Instant::now();
                    match result {
                        Ok(()) => {
                            tally.total_ok += 1;
                            if done >= measure_from && done <= end {
                                tally.completed += 1;
                                tally.latencies_ns.push((done - sent).as_nanos() as u64);
                            }
                        }
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(e.to_string());
                            // A dead connection would fail at once; don't spin on it.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut result = LoadResult {
        completed: 0,
        total_ok: 0,
        errors: 0,
        first_error: None,
        window: spec.measure,
        latencies_ns: Vec::new(),
    };
    for worker in workers {
        match worker.await {
            Ok(tally) => {
                result.completed += tally.completed;
                result.total_ok += tally.total_ok;
                result.errors += tally.errors;
                if result.first_error.is_none() {
                    result.first_error = tally.first_error;
                }
                result.latencies_ns.extend(tally.latencies_ns);
            }
            Err(e) => {
                result.errors += 1;
                result
                    .first_error
                    .get_or_insert(format!("a load worker panicked: {e}"));
            }
        }
    }
    result.latencies_ns.sort_unstable();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleeper(Duration);

    impl Caller for Sleeper {
        async fn call(&mut self) -> Result<(), BenchError> {
            tokio::time::sleep(self.0).await;
            Ok(())
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let ns: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&ns, 0.5), Duration::from_nanos(50));
        assert_eq!(quantile(&ns, 0.99), Duration::from_nanos(99));
        assert_eq!(quantile(&ns, 1.0), Duration::from_nanos(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_workers_multiply_the_rate_of_a_fixed_latency() {
        let spec = LoadSpec {
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(300),
        };
        let callers = (0..4).map(|_| Sleeper(Duration::from_millis(5))).collect();
        let r = run(callers, spec).await;
        assert_eq!(r.errors, 0);
        // 4 workers x 300 ms / ~5 ms each: about 240 (timer slack lowers it).
        assert!(r.completed > 100 && r.completed <= 240, "{}", r.completed);
        assert!(r.quantile(0.5) >= Duration::from_millis(5));
    }
}
