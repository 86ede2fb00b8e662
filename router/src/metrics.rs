//! Prometheus metrics, labelled by service, namespace and revision, in a registry owned by
//! one router (so several routers can live in one process).

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

const LABELS: [&str; 3] = ["service", "namespace", "revision"];

/// The router's metric families.
pub(crate) struct Metrics {
    registry: Registry,
    responses: IntCounterVec,
    latency: HistogramVec,
    queued: HistogramVec,
    cold_start: HistogramVec,
    concurrency: GaugeVec,
    rps: GaugeVec,
    queue_length: IntGaugeVec,
    unrouted: IntCounterVec,
}

/// One revision's series, resolved once so the request path does no label look-ups.
pub(crate) struct RevisionMetrics {
    responses: [IntCounter; 5],
    /// Time from arrival to the end of the response, seconds.
    pub(crate) latency: Histogram,
    /// Time spent in the activator queue, seconds (requests that waited).
    pub(crate) queued: Histogram,
    /// Time waited by requests that arrived with no ready endpoint, seconds.
    pub(crate) cold_start: Histogram,
    /// Average concurrency over the last sample.
    pub(crate) concurrency: Gauge,
    /// Requests per second over the last sample.
    pub(crate) rps: Gauge,
    /// Requests in the activator queue at the last sample.
    pub(crate) queue_length: IntGauge,
}

impl RevisionMetrics {
    /// Counts one response by status class.
    pub(crate) fn count_status(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.responses[class].inc();
    }
}

fn buckets() -> Vec<f64> {
    vec![
        0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ]
}

impl Metrics {
    /// Registers every family in a new registry.
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let responses = IntCounterVec::new(
            Opts::new(
                "kiln_router_responses_total",
                "Responses by status class, per revision",
            ),
            &["service", "namespace", "revision", "class"],
        )?;
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets()), &LABELS)
        };
        let latency = histogram(
            "kiln_router_request_duration_seconds",
            "Time from arrival at the router to the end of the response",
        )?;
        let queued = histogram(
            "kiln_router_activator_queue_seconds",
            "Time requests spent waiting in the activator queue",
        )?;
        let cold_start = histogram(
            "kiln_router_cold_start_wait_seconds",
            "Time requests that arrived with no ready endpoint waited for one",
        )?;
        let concurrency = GaugeVec::new(
            Opts::new(
                "kiln_router_average_concurrency",
                "Average requests in flight plus queued over the last second",
            ),
            &LABELS,
        )?;
        let rps = GaugeVec::new(
            Opts::new(
                "kiln_router_requests_per_second",
                "Arrivals per second over the last second",
            ),
            &LABELS,
        )?;
        let queue_length = IntGaugeVec::new(
            Opts::new(
                "kiln_router_activator_queue_length",
                "Requests waiting in the activator queue",
            ),
            &LABELS,
        )?;
        let unrouted = IntCounterVec::new(
            Opts::new(
                "kiln_router_unrouted_total",
                "Requests answered with an error before a revision was chosen",
            ),
            &["code"],
        )?;
        registry.register(Box::new(responses.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(cold_start.clone()))?;
        registry.register(Box::new(concurrency.clone()))?;
        registry.register(Box::new(rps.clone()))?;
        registry.register(Box::new(queue_length.clone()))?;
        registry.register(Box::new(unrouted.clone()))?;
        Ok(Self {
            registry,
            responses,
            latency,
            queued,
            cold_start,
            concurrency,
            rps,
            queue_length,
            unrouted,
        })
    }

    /// The series of one revision.
    pub(crate) fn for_revision(
        &self,
        service: &str,
        namespace: &str,
        revision: &str,
    ) -> RevisionMetrics {
        let labels = [service, namespace, revision];
        let class = |c: &str| {
            self.responses
                .with_label_values(&[service, namespace, revision, c])
        };
        RevisionMetrics {
            responses: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
            latency: self.latency.with_label_values(&labels),
            queued: self.queued.with_label_values(&labels),
            cold_start: self.cold_start.with_label_values(&labels),
            concurrency: self.concurrency.with_label_values(&labels),
            rps: self.rps.with_label_values(&labels),
            queue_length: self.queue_length.with_label_values(&labels),
        }
    }

    /// Drops a removed revision's series.
    pub(crate) fn remove_revision(&self, service: &str, namespace: &str, revision: &str) {
        let labels = [service, namespace, revision];
        for c in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            let _ = self
                .responses
                .remove_label_values(&[service, namespace, revision, c]);
        }
        let _ = self.latency.remove_label_values(&labels);
        let _ = self.queued.remove_label_values(&labels);
        let _ = self.cold_start.remove_label_values(&labels);
        let _ = self.concurrency.remove_label_values(&labels);
        let _ = self.rps.remove_label_values(&labels);
        let _ = self.queue_length.remove_label_values(&labels);
    }

    /// Counts a request answered before a revision was chosen.
    pub(crate) fn unrouted(&self, status: u16) {
        self.unrouted
            .with_label_values(&[&status.to_string()])
            .inc();
    }

    /// The Prometheus text exposition of every series.
    pub(crate) fn encode(&self) -> String {
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
