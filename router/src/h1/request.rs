//! A client's request head: parsed once, it decides what happens to the request (answered by
//! the router, forwarded to a revision, or handed to the general HTTP/1.1 server for the
//! rare forms this path leaves to it), and yields the head to send upstream.

use std::time::Duration;

use crate::answer::Answer;
use crate::app::{App, PIN_REVISION_HEADER, PIN_TAG_HEADER, RouteHints, model_in_path};
use crate::error::RequestError;
use crate::h1::date;
use crate::h1::framing::Framing;
use crate::h1::headers::{HeaderList, has_token, is_hop_by_hop};
use crate::stats::InRevision;

/// Most header fields in one request head (as hyper's server allows).
pub(crate) const MAX_HEADERS: usize = 100;

/// How the request's message ends on the client connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message {
    /// Bytes of the head.
    pub(crate) head_len: usize,
    /// How its body is delimited.
    pub(crate) framing: Framing,
    /// Whether the client keeps the connection open after the answer.
    pub(crate) keep_alive: bool,
    /// Whether the method is HEAD (the answer has no body whatever its headers say).
    pub(crate) is_head: bool,
}

/// A request going to a revision.
pub(crate) struct Forward {
    /// Its message on the client connection.
    pub(crate) message: Message,
    /// The load count in the chosen revision (the revision is inside).
    pub(crate) count: InRevision,
    /// How long it may wait and run.
    pub(crate) timeout: Duration,
    /// The head to send upstream: the client's, without hop-by-hop fields.
    pub(crate) upstream_head: Vec<u8>,
}

/// What to do with a request head.
pub(crate) enum Decision {
    /// The head is not complete yet.
    Partial,
    /// A form this path leaves to the general HTTP/1.1 server (HTTP/1.0, `Expect`,
    /// `Upgrade`, gRPC, CONNECT, absolute or asterisk targets).
    Handover,
    /// The head cannot be parsed: answered with 400, then the connection closes.
    Malformed(String),
    /// The router answers (its own calls and refusals); the count, if the request was
    /// already counted in a revision.
    Answer {
        /// The answer.
        answer: Answer,
        /// The request's message.
        message: Message,
        /// The revision count to record the status in.
        count: Option<InRevision>,
    },
    /// Forward to the chosen revision.
    Forward(Forward),
}

/// The framing of a request body, from its `Transfer-Encoding` and `Content-Length` fields.
fn request_framing(headers: &HeaderList<'_, '_>) -> Result<Framing, String> {
    let mut chunked = false;
    for value in headers.values("transfer-encoding") {
        let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
        chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        if !chunked {
            return Err("unsupported transfer-encoding (only chunked is accepted)".into());
        }
    }
    let length = headers.content_length()?;
    Ok(match (chunked, length) {
        (true, Some(_)) => return Err("both content-length and transfer-encoding".into()),
        (true, None) => Framing::Chunked,
        (false, Some(length)) if length > 0 => Framing::Length(length),
        (false, _) => Framing::Empty,
    })
}

/// Reads the head at the start of `bytes` and decides what happens to the request.
pub(crate) fn decide(app: &App, bytes: &[u8]) -> Decision {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let head_len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Decision::Partial,
        Err(error) => return Decision::Malformed(format!("malformed request head: {error}")),
    };
    let (Some(method), Some(target), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Decision::Handover;
    };
    let headers = HeaderList(parsed.headers);
    let handover = method == "CONNECT"
        || !target.starts_with('/')
        || headers.get("expect").is_some()
        || headers.get("upgrade").is_some()
        || headers
            .get("content-type")
            .is_some_and(|v| v.starts_with(b"application/grpc"));
    if handover {
        return Decision::Handover;
    }
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host.
    match headers.values("host").count() {
        1 => {}
        0 => return Decision::Malformed("missing Host header".into()),
        _ => return Decision::Malformed("more than one Host header".into()),
    }
    let framing = match request_framing(&headers) {
        Ok(framing) => framing,
        Err(message) => return Decision::Malformed(message),
    };
    let connection = headers.joined("connection");
    let is_head = method == "HEAD";
    let message = Message {
        head_len,
        framing,
        keep_alive: !has_token(&connection, b"close"),
        is_head,
    };
    let answer = |answer: Answer, count: Option<InRevision>| Decision::Answer {
        answer,
        message,
        count,
    };
    let path = target.split('?').next().unwrap_or(target);
    if let Some(own) = app.own_answer(method == "GET", path) {
        return answer(own, None);
    }
    let text = |name: &str| headers.get(name).and_then(|v| std::str::from_utf8(v).ok());
    let hints = RouteHints {
        host: text("host"),
        pin_revision: text(PIN_REVISION_HEADER),
        pin_tag: text(PIN_TAG_HEADER),
    };
    let chosen = model_in_path(path).and_then(|model| app.choose(&hints, model));
    let (count, timeout) = match chosen {
        Ok(chosen) => chosen,
        Err(error) => return answer(Answer::error(&error), None),
    };
    if let Framing::Length(length) = framing
        && length > app.max_body
    {
        let error = RequestError::TooLarge(app.max_body);
        return answer(Answer::error(&error), Some(count));
    }
    Decision::Forward(Forward {
        message,
        count,
        timeout,
        upstream_head: upstream_head(method, target, &headers, &connection, head_len),
    })
}

/// The request line and the end-to-end fields, for the upstream.
fn upstream_head(
    method: &str,
    target: &str,
    headers: &HeaderList<'_, '_>,
    connection: &[u8],
    head_len: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(head_len + 8);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for field in headers.0.iter() {
        if is_hop_by_hop(field.name, connection) {
            continue;
        }
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The bytes of an answer of the router's own, closing the connection after it or not; to a
/// HEAD request, the head alone.
pub(crate) fn answer_bytes(answer: &Answer, close: bool, is_head: bool) -> Vec<u8> {
    let status = answer.status;
    let mut out = Vec::with_capacity(160 + answer.body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(answer.content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(answer.body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    date::append_header(&mut out);
    if answer.retry_after {
        out.extend_from_slice(b"retry-after: 1\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !is_head {
        out.extend_from_slice(&answer.body);
    }
    out
}
