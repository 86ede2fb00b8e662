//! Per-revision load: the time-weighted average concurrency (requests in flight plus those
//! held in the activator queue) and arrivals, cut into one [`LoadSample`] per second for the
//! autoscaler, as Knative's queue-proxy reports them.

use std::sync::Arc;
use std::time::Duration;

use kiln_api::load::{LoadSample, LoadSink};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::metrics::RevisionMetrics;
use crate::revision::Revision;
use crate::table::TableHandle;

/// Figures for one window of a [`LoadWindow`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowFigures {
    /// Time-weighted average number of requests present during the window.
    pub average_concurrency: f64,
    /// Arrivals during the window divided by its length in seconds.
    pub requests_per_second: f64,
}

/// Integrates the number of requests present over time. Time is passed in, so the figures
/// are exact functions of the calls made.
#[derive(Debug, Clone)]
pub struct LoadWindow {
    level: u64,
    last: Instant,
    area: f64,
    arrivals: u64,
    start: Instant,
}

impl LoadWindow {
    /// An empty window starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            level: 0,
            last: now,
            area: 0.0,
            arrivals: 0,
            start: now,
        }
    }

    fn advance(&mut self, now: Instant) {
        if now > self.last {
            self.area += self.level as f64 * (now - self.last).as_secs_f64();
            self.last = now;
        }
    }

    /// A request arrives at `now` (it counts until [`LoadWindow::depart`]).
    pub fn arrive(&mut self, now: Instant) {
        self.advance(now);
        self.level += 1;
        self.arrivals += 1;
    }

    /// A request leaves at `now`.
    pub fn depart(&mut self, now: Instant) {
        self.advance(now);
        self.level = self.level.saturating_sub(1);
    }

    /// Requests present now.
    pub fn level(&self) -> u64 {
        self.level
    }

    /// Closes the window at `now`, returns its figures and starts the next one.
    pub fn take(&mut self, now: Instant) -> WindowFigures {
        self.advance(now);
        let secs = (now.saturating_duration_since(self.start)).as_secs_f64();
        let figures = if secs > 0.0 {
            WindowFigures {
                average_concurrency: self.area / secs,
                requests_per_second: self.arrivals as f64 / secs,
            }
        } else {
            WindowFigures {
                average_concurrency: self.level as f64,
                requests_per_second: 0.0,
            }
        };
        self.area = 0.0;
        self.arrivals = 0;
        self.start = now;
        figures
    }
}

/// A revision's load window and Prometheus handles.
pub(crate) struct RevisionStats {
    window: Mutex<LoadWindow>,
    /// Prometheus series for the revision.
    pub(crate) metrics: RevisionMetrics,
}

impl RevisionStats {
    /// Empty figures from `now`.
    pub(crate) fn new(now: Instant, metrics: RevisionMetrics) -> Self {
        Self {
            window: Mutex::new(LoadWindow::new(now)),
            metrics,
        }
    }
}

/// Counts one request in its revision from arrival to the end of its response; records the
/// latency and the status class.
pub(crate) struct InRevision {
    revision: Arc<Revision>,
    arrived: Instant,
}

impl InRevision {
    /// A request arrives for `revision`.
    pub(crate) fn enter(revision: Arc<Revision>) -> Self {
        let arrived = Instant::now();
        revision.stats.window.lock().arrive(arrived);
        Self { revision, arrived }
    }

    /// The revision counted.
    pub(crate) fn revision(&self) -> &Arc<Revision> {
        &self.revision
    }

    /// Counts the response's status class.
    pub(crate) fn status(&self, status: http::StatusCode) {
        self.revision.stats.metrics.count_status(status.as_u16());
    }
}

impl Drop for InRevision {
    fn drop(&mut self) {
        let now = Instant::now();
        self.revision.stats.window.lock().depart(now);
        self.revision
            .stats
            .metrics
            .latency
            .observe((now - self.arrived).as_secs_f64());
    }
}

/// Every `interval`, cuts a sample for every revision in the table and hands it to `sink`.
pub(crate) async fn sample_loop(table: TableHandle, sink: Arc<dyn LoadSink>, interval: Duration) {
    let epoch = table.shared().epoch;
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let snapshot = table.snapshot();
        for revision in snapshot.revisions() {
            let figures = revision.stats.window.lock().take(now);
            let metrics = &revision.stats.metrics;
            metrics.concurrency.set(figures.average_concurrency);
            metrics.rps.set(figures.requests_per_second);
            metrics.queue_length.set(revision.queue.len() as i64);
            sink.record(LoadSample {
                revision: revision.key.clone(),
                at: now - epoch,
                average_concurrency: figures.average_concurrency,
                requests_per_second: figures.requests_per_second,
            });
        }
    }
}
