//! gRPC: the model name is field 1 of every model-scoped request of
//! `inference.GRPCInferenceService`. The router reads just that field from the first
//! length-prefixed message and forwards the original bytes untouched; server-scoped calls
//! (ServerLive, ServerReady, ServerMetadata) it answers itself.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use hyper::body::{Body, Incoming};
use kiln_api::protocol::grpc as pb;
use prost::Message;

use crate::body::RespBody;
use crate::error::RequestError;

/// The service's path prefix.
pub(crate) const SERVICE_PREFIX: &str = "/inference.GRPCInferenceService/";

/// What a gRPC method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// Answered by the router.
    ServerLive,
    /// Answered by the router.
    ServerReady,
    /// Answered by the router.
    ServerMetadata,
    /// Forwarded to the model named in field 1.
    ModelScoped,
}

/// Classifies a request path.
pub(crate) fn method(path: &str) -> Result<Method, RequestError> {
    let name = path
        .strip_prefix(SERVICE_PREFIX)
        .ok_or_else(|| RequestError::Unimplemented(path.to_owned()))?;
    match name {
        "ServerLive" => Ok(Method::ServerLive),
        "ServerReady" => Ok(Method::ServerReady),
        "ServerMetadata" => Ok(Method::ServerMetadata),
        "ModelInfer" | "ModelReady" | "ModelMetadata" | "ModelConfig" => Ok(Method::ModelScoped),
        _ => Err(RequestError::Unimplemented(path.to_owned())),
    }
}

/// The outcome of reading field 1 from the start of a protobuf message.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek<'a> {
    /// Field 1 as a string.
    Found(&'a str),
    /// More bytes are needed to find it.
    NeedMore,
    /// The message ends without field 1.
    Missing,
    /// The bytes are not a valid protobuf message (or field 1 is not a UTF-8 string).
    Malformed,
}

fn varint(buf: &[u8]) -> Option<Result<(u64, usize), ()>> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(Ok((value, i + 1)));
        }
    }
    if buf.len() >= 10 { Some(Err(())) } else { None }
}

/// Reads field 1 (a length-delimited string) of a protobuf message of `message_len` bytes
/// whose first `buf.len()` bytes are given. Other fields are skipped.
pub fn peek_field_one(buf: &[u8], message_len: usize) -> Peek<'_> {
    let mut at = 0usize;
    loop {
        if at >= message_len {
            return Peek::Missing;
        }
        let (key, n) = match varint(&buf[at.min(buf.len())..]) {
            None => return Peek::NeedMore,
            Some(Err(())) => return Peek::Malformed,
            Some(Ok(v)) => v,
        };
        at += n;
        let (field, wire) = (key >> 3, key & 7);
        let skip = match wire {
            0 => match varint(&buf[at.min(buf.len())..]) {
                None => return Peek::NeedMore,
                Some(Err(())) => return Peek::Malformed,
                Some(Ok((_, n))) => n as u64,
            },
            1 => 8,
            5 => 4,
            2 => {
                let (len, n) = match varint(&buf[at.min(buf.len())..]) {
                    None => return Peek::NeedMore,
                    Some(Err(())) => return Peek::Malformed,
                    Some(Ok(v)) => v,
                };
                at += n;
                if field == 1 {
                    let Ok(len) = usize::try_from(len) else {
                        return Peek::Malformed;
                    };
                    let end = at.saturating_add(len);
                    if end > message_len {
                        return Peek::Malformed;
                    }
                    if end > buf.len() {
                        return Peek::NeedMore;
                    }
                    return match std::str::from_utf8(&buf[at..end]) {
                        Ok(name) => Peek::Found(name),
                        Err(_) => Peek::Malformed,
                    };
                }
                len
            }
            _ => return Peek::Malformed,
        };
        if field == 0 || (field == 1 && wire != 2) {
            return Peek::Malformed;
        }
        let Ok(skip) = usize::try_from(skip) else {
            return Peek::Malformed;
        };
        at = at.saturating_add(skip);
        if at > message_len {
            return Peek::Malformed;
        }
    }
}

/// Reads the request body until field 1 of the first message is known. Returns the model
/// name and the bytes read (to be forwarded first, untouched).
pub(crate) async fn read_model_name(
    body: &mut Incoming,
    limit: u64,
    read_timeout: std::time::Duration,
) -> Result<(String, Bytes), RequestError> {
    let mut buf = BytesMut::new();
    loop {
        if buf.len() >= 5 {
            if buf[0] != 0 {
                return Err(RequestError::BadRequest(
                    "compressed first message: the router cannot read the model name".into(),
                ));
            }
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len as u64 > limit {
                return Err(RequestError::TooLarge(limit));
            }
            match peek_field_one(&buf[5..], len) {
                Peek::Found(name) => {
                    let name = name.to_owned();
                    return Ok((name, buf.freeze()));
                }
                Peek::Missing => {
                    return Err(RequestError::BadRequest(
                        "the request names no model (field 1 is empty)".into(),
                    ));
                }
                Peek::Malformed => {
                    return Err(RequestError::BadRequest("malformed gRPC message".into()));
                }
                Peek::NeedMore => {}
            }
        }
        if buf.len() as u64 > limit.saturating_add(5) {
            return Err(RequestError::TooLarge(limit));
        }
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx));
        let frame = tokio::time::timeout(read_timeout, frame)
            .await
            .map_err(|_| RequestError::BodyTimeout)?;
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(RequestError::BadRequest(format!(
                    "reading the request: {e}"
                )));
            }
            None => return Err(RequestError::BadRequest("truncated gRPC frame".into())),
        }
    }
}

fn grpc_headers(response: &mut http::response::Builder) {
    if let Some(headers) = response.headers_mut() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
    }
}

/// A trailers-only gRPC answer carrying `error`'s status.
pub(crate) fn error_response(error: &RequestError) -> Response<RespBody> {
    let mut builder = Response::builder().status(StatusCode::OK);
    grpc_headers(&mut builder);
    let message = error.to_string();
    let builder = builder
        .header("grpc-status", error.grpc_code().to_string())
        .header(
            "grpc-message",
            HeaderValue::from_str(&percent_encode(&message))
                .unwrap_or_else(|_| HeaderValue::from_static("error")),
        );
    builder
        .body(RespBody::Full(None))
        .unwrap_or_else(|_| Response::new(RespBody::Full(None)))
}

fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn ok_response(message: &impl Message) -> Response<RespBody> {
    let len = message.encoded_len();
    let mut data = BytesMut::with_capacity(len + 5);
    data.put_u8(0);
    data.put_u32(len as u32);
    let _ = message.encode(&mut data);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut builder = Response::builder().status(StatusCode::OK);
    grpc_headers(&mut builder);
    builder
        .body(RespBody::Grpc {
            data: Some(data.freeze()),
            trailers: Some(trailers),
        })
        .unwrap_or_else(|_| Response::new(RespBody::Full(None)))
}

/// The router's own answer to a server-scoped call.
pub(crate) fn answer(method: Method) -> Response<RespBody> {
    match method {
        Method::ServerLive => ok_response(&pb::ServerLiveResponse { live: true }),
        Method::ServerReady => ok_response(&pb::ServerReadyResponse { ready: true }),
        Method::ServerMetadata | Method::ModelScoped => ok_response(&pb::ServerMetadataResponse {
            name: "kiln-router".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: Vec::new(),
        }),
    }
}
