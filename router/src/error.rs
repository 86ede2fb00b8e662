//! Errors: [`RouterError`] for embedders and the CLI, and the per-request failures the router
//! answers itself, each with one HTTP status, one gRPC code and a JSON body `{"error": "..."}`.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http::StatusCode;

/// Failures of the router as a whole: binding, configuration, signals.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        source: std::io::Error,
    },
    /// The routes file could not be read.
    #[error("cannot read routes file {path}: {source}")]
    RoutesRead {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The routes file is not valid YAML or does not describe a valid table.
    #[error("invalid routes file {path}: {message}")]
    RoutesParse {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A table update was rejected (the table is left unchanged).
    #[error("invalid routing table: {0}")]
    InvalidTable(String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
    /// The metrics registry rejected a metric.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A request the router answers itself instead of the model.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RequestError {
    /// No such model, revision or tag.
    #[error("{0}")]
    NotFound(String),
    /// The path or gRPC frame cannot be understood.
    #[error("{0}")]
    BadRequest(String),
    /// The request body exceeds the limit.
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The client stalled while sending its body.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The revision's activator queue is full.
    #[error("too many requests waiting for revision {0}")]
    QueueFull(String),
    /// The revision went away while the request waited.
    #[error("revision {0} was removed while the request waited")]
    Gone(String),
    /// The request waited and ran past the service's timeout.
    #[error("no response within the timeout of {0:?}")]
    Timeout(std::time::Duration),
    /// The upstream failed after the request may have reached it, or no endpoint accepted it.
    #[error("upstream failure: {0}")]
    Upstream(String),
    /// The gRPC method is not one the router knows.
    #[error("unknown method {0}")]
    Unimplemented(String),
}

impl RequestError {
    /// The HTTP status of the answer.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::QueueFull(_) | Self::Gone(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The gRPC status code of the answer (see grpc/doc/statuscodes.md).
    pub(crate) fn grpc_code(&self) -> u8 {
        match self {
            Self::NotFound(_) => 5,
            Self::BadRequest(_) => 3,
            Self::TooLarge(_) => 8,
            Self::BodyTimeout | Self::Timeout(_) => 4,
            Self::QueueFull(_) | Self::Gone(_) | Self::Upstream(_) => 14,
            Self::Unimplemented(_) => 12,
        }
    }

    /// The JSON body `{"error": "..."}`.
    pub(crate) fn json_body(&self) -> Bytes {
        json_error(&self.to_string())
    }

    /// Whether the answer says `Retry-After` (the queue was full or the revision left).
    pub(crate) fn retry_after(&self) -> bool {
        matches!(self, Self::QueueFull(_) | Self::Gone(_))
    }
}

/// Serialises `{"error": message}`.
pub(crate) fn json_error(message: &str) -> Bytes {
    Bytes::from(kiln_api::error_body::ErrorBody::json(message))
}
