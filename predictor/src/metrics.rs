//! Prometheus metrics of one predictor, served as text at `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder, exponential_buckets,
};

/// The predictor's metrics, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by protocol (`rest`, `grpc`, `v1`) and status (HTTP status code).
    pub requests: IntCounterVec,
    /// Request latency in seconds, by protocol.
    pub latency: HistogramVec,
    /// Time a request waited for the model worker, in seconds.
    pub queue_time: Histogram,
    /// Rows per model run.
    pub batch_size: Histogram,
    /// Seconds to load the model (download excluded).
    pub load_seconds: prometheus::Gauge,
    /// Bytes downloaded from model storage.
    pub download_bytes: IntCounter,
}

impl Metrics {
    /// Creates the metrics, labelled with the model's name.
    pub fn new(model: &str) -> Self {
        let registry =
            Registry::new_custom(Some("kiln_predictor".into()), None).expect("valid prefix");
        let label = |opts: Opts| opts.const_label("model", model);
        let hlabel = |opts: HistogramOpts| opts.const_label("model", model);
        let latency_buckets = exponential_buckets(0.000_05, 2.0, 18).expect("valid buckets");
        let requests = IntCounterVec::new(
            label(Opts::new(
                "requests_total",
                "Inference requests by protocol and status",
            )),
            &["protocol", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            hlabel(
                HistogramOpts::new("request_duration_seconds", "Inference request latency")
                    .buckets(latency_buckets.clone()),
            ),
            &["protocol"],
        )
        .expect("valid metric");
        let queue_time = Histogram::with_opts(hlabel(
            HistogramOpts::new(
                "queue_duration_seconds",
                "Time waiting for the model worker",
            )
            .buckets(latency_buckets),
        ))
        .expect("valid metric");
        let batch_size = Histogram::with_opts(hlabel(
            HistogramOpts::new("batch_size", "Rows per model run")
                .buckets(exponential_buckets(1.0, 2.0, 10).expect("valid buckets")),
        ))
        .expect("valid metric");
        let load_seconds = prometheus::Gauge::with_opts(label(Opts::new(
            "model_load_seconds",
            "Seconds taken to load the model",
        )))
        .expect("valid metric");
        let download_bytes = IntCounter::with_opts(label(Opts::new(
            "download_bytes_total",
            "Bytes downloaded from model storage",
        )))
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(queue_time.clone()),
            Box::new(batch_size.clone()),
            Box::new(load_seconds.clone()),
            Box::new(download_bytes.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            latency,
            queue_time,
            batch_size,
            load_seconds,
            download_bytes,
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to memory cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
