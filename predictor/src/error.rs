//! Every way a request can fail, with its HTTP status, gRPC code and metric label.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_api::protocol::ProtocolError;

/// A failed request. The message is sent to the client as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Malformed body, framing, or tensors that do not match the model (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such model on this server (404).
    #[error("model '{0}' is not served here")]
    ModelNotFound(String),
    /// The body is larger than the configured limit (413).
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The model is still loading, or the server is shutting down (503).
    #[error("{0}")]
    Unavailable(String),
    /// The runtime failed on a valid request (500).
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            ServeError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status for this error.
    pub fn grpc_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            ServeError::BadRequest(_) => tonic::Status::invalid_argument(message),
            ServeError::ModelNotFound(_) => tonic::Status::not_found(message),
            ServeError::PayloadTooLarge { .. } => tonic::Status::resource_exhausted(message),
            ServeError::Unavailable(_) => tonic::Status::unavailable(message),
            ServeError::Internal(_) => tonic::Status::internal(message),
        }
    }
}

impl From<ProtocolError> for ServeError {
    fn from(e: ProtocolError) -> Self {
        ServeError::BadRequest(e.to_string())
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.status();
        (
            status,
            Json(kiln_api::error_body::ErrorBody::new(self.to_string())),
        )
            .into_response()
    }
}
