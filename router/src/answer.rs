//! A complete answer of the router's own (its health, metrics and model list, or an error),
//! before it is put on a wire.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::RespBody;
use crate::error::RequestError;

/// A status, a content type and a whole body.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: StatusCode,
    /// The `Content-Type`.
    pub(crate) content_type: &'static str,
    /// The whole body.
    pub(crate) body: Bytes,
    /// Whether to add `Retry-After: 1` (a full queue).
    pub(crate) retry_after: bool,
}

impl Answer {
    /// A JSON answer.
    pub(crate) fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.into(),
            retry_after: false,
        }
    }

    /// The answer to a failed request: its status and `{"error": "..."}`.
    pub(crate) fn error(error: &RequestError) -> Self {
        Self {
            retry_after: error.retry_after(),
            ..Self::json(error.status(), error.json_body())
        }
    }

    /// As a hyper response.
    pub(crate) fn into_response(self) -> Response<RespBody> {
        let mut response = Response::new(RespBody::full(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
