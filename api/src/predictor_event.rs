//! The predictor's life events on stdout, one JSON line each, for whoever supervises it
//! (`kiln up`'s local backend, the benchmarks):
//! `{"event":"listening","http_port":..,"grpc_port":..}` once its ports are bound, and
//! `{"event":"ready","load_ms":..,"download_ms":..,"downloaded_bytes":..,"cache_hit":..}`
//! once the model answers. Written by the predictor and read by the supervisors with this
//! one type, so the two sides cannot drift apart.

use serde::{Deserialize, Serialize};

/// One event line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum PredictorEvent {
    /// The HTTP and gRPC ports are bound (inference may still answer 503).
    Listening {
        /// The HTTP port.
        http_port: u16,
        /// The gRPC port.
        grpc_port: u16,
    },
    /// The model is loaded and answers.
    Ready(ReadyFigures),
}

/// What the `ready` event reports about the start. A reader takes a line with some of the
/// figures missing (a test's fake predictor, an older predictor) as ready all the same.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadyFigures {
    /// Milliseconds the runtime took to load the model.
    pub load_ms: f64,
    /// Milliseconds the fetch took (0 on a cache hit).
    pub download_ms: f64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Whether the model came from the cache.
    pub cache_hit: bool,
}

impl PredictorEvent {
    /// The event as one line of JSON (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }

    /// Reads a line of the predictor's stdout; `None` for anything that is not an event.
    pub fn parse_line(line: &str) -> Option<Self> {
        serde_json::from_str(line.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_documented_shape_and_read_back() {
        let listening = PredictorEvent::Listening {
            http_port: 8080,
            grpc_port: 8081,
        };
        assert_eq!(
            listening.to_line(),
            r#"{"event":"listening","http_port":8080,"grpc_port":8081}"#
        );
        let ready = PredictorEvent::Ready(ReadyFigures {
            load_ms: 1.5,
            download_ms: 0.0,
            downloaded_bytes: 7,
            cache_hit: true,
        });
        let line = ready.to_line();
        assert!(
            line.starts_with(r#"{"event":"ready","load_ms":1.5"#),
            "{line}"
        );
        for event in [listening, ready] {
            assert_eq!(PredictorEvent::parse_line(&event.to_line()), Some(event));
        }
        assert_eq!(
            PredictorEvent::parse_line(r#"{"event":"ready","load_ms":12}"#),
            Some(PredictorEvent::Ready(ReadyFigures {
                load_ms: 12.0,
                ..ReadyFigures::default()
            }))
        );
        assert_eq!(
            PredictorEvent::parse_line(r#"{"event":"listening","http_port":70000,"grpc_port":1}"#),
            None
        );
        assert_eq!(PredictorEvent::parse_line(r#"{"event":"ready"#), None);
        assert_eq!(PredictorEvent::parse_line("not json"), None);
        assert_eq!(PredictorEvent::parse_line(r#"{"event":"other"}"#), None);
    }
}
