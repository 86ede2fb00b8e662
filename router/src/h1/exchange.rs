//! One forwarded request, driven entirely by the client connection's task: a slot on an
//! endpoint (waiting in the activator if none is free), a pooled upstream connection, the
//! request out and the response back with their framing unchanged. A connection refused
//! goes to another endpoint; a reused connection that the upstream had closed is replaced
//! by a fresh one when the request can be sent again (its body is still in the buffer) and
//! the upstream cannot have read it (its system refused or reset it unread).

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::answer::Answer;
use crate::app::App;
use crate::error::RequestError;
use crate::h1::framing::{BodyCursor, Framing, MalformedChunks};
use crate::h1::io::{Client, write_all};
use crate::h1::request::{Forward, answer_bytes};
use crate::h1::response::{self, ClientSide, Parsed, ResponseHead};
use crate::h1::upstream::{MAX_BUFFER_BYTES, UpstreamConn};
use crate::revision::{CONNECT_ATTEMPTS, Lease, Revision};

/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;

/// Whether the client connection goes on after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Read the next request.
    Continue,
    /// Close it.
    Close,
}

/// Why an exchange stopped before a response reached the client.
enum Failure {
    /// Answer the client with this error.
    Answer(RequestError),
    /// The client went away, or the connection cannot go on: close without answering.
    Abort,
}

/// Why sending on one upstream connection failed.
enum SendFailure {
    /// A reused connection turned out to be closed by the upstream, which refused or
    /// discarded the request unread, and the request can be sent again.
    Stale,
    /// Anything else.
    Failed(Failure),
}

/// Where the request body stands.
struct Body {
    /// Follows the body from its first byte; it is fed when the body goes out, since more
    /// of it may arrive while the request waits.
    cursor: BodyCursor,
    /// Bytes of the body in the client buffer, when they are the whole body (then a failed
    /// send can be repeated).
    buffered: Option<usize>,
}

impl Body {
    /// Looks at the body bytes received with the head.
    fn new(framing: Framing, received: &[u8], limit: u64) -> Result<Self, RequestError> {
        let cursor = BodyCursor::new(framing);
        let mut look = cursor.clone();
        let used = look.take(received).map_err(malformed_body)?;
        if look.chunked_data_bytes() > limit {
            return Err(RequestError::TooLarge(limit));
        }
        let buffered = look.is_done().then_some(used);
        Ok(Self { cursor, buffered })
    }
}

fn malformed_body(error: MalformedChunks) -> RequestError {
    RequestError::BadRequest(format!("reading the request body: {error}"))
}

/// Forwards the request whose head was just read, and answers the client.
pub(crate) async fn forward(client: &mut Client, app: &App, request: Forward) -> After {
    let Forward {
        message,
        count,
        timeout,
        upstream_head,
    } = request;
    client.buf.consume(message.head_len);
    let revision = count.revision().clone();
    let deadline = Instant::now() + timeout;
    let body = Body::new(message.framing, client.buf.filled(), app.max_body);
    let buffered = body.as_ref().ok().and_then(|b| b.buffered);
    let outcome = match body {
        Ok(mut body) => {
            let side = ClientSide {
                is_head: message.is_head,
                keep_alive: message.keep_alive,
                revision: revision.header_value.as_bytes(),
            };
            let sent = tokio::time::timeout_at(
                deadline,
                send(client, app, &revision, &upstream_head, &mut body, &side),
            )
            .await
            .unwrap_or(Err(Failure::Answer(RequestError::Timeout(timeout))));
            sent.map(|(lease, up, head)| (lease, up, head, body))
        }
        Err(error) => Err(Failure::Answer(error)),
    };
    let (lease, mut up, head, body) = match outcome {
        Ok(sent) => sent,
        Err(Failure::Abort) => return After::Close,
        Err(Failure::Answer(error)) => {
            count.status(error.status());
            // With the whole body received the connection goes on; otherwise the rest of
            // the body is still coming and it cannot.
            let after = match buffered {
                Some(len) if message.keep_alive => {
                    client.buf.consume(len);
                    After::Continue
                }
                _ => After::Close,
            };
            let close = after == After::Close;
            let bytes = answer_bytes(&Answer::error(&error), close, message.is_head);
            if client.stream.write_all(&bytes).await.is_err() {
                return After::Close;
            }
            return after;
        }
    };
    if let Some(len) = body.buffered {
        client.buf.consume(len);
    }
    count.status(head.status);
    let framing = head.framing;
    let copied = copy_response(client, &mut up, head).await;
    match copied {
        Ok(true) => lease.endpoint().h1.put(up),
        Ok(false) => {}
        Err(()) => return After::Close,
    }
    drop(lease);
    drop(count);
    if message.keep_alive && framing != Framing::UntilClose {
        After::Continue
    } else {
        After::Close
    }
}

/// A slot on an endpoint of `revision`: at once if one is free, otherwise after waiting in its
/// queue, as long as the client stays.
async fn lease(revision: &Arc<Revision>, client: &mut Client) -> Result<Lease, Failure> {
    if let Some(lease) = revision.acquire_now() {
        return Ok(lease);
    }
    tokio::select! {
        lease = revision.acquire() => lease.map_err(Failure::Answer),
        () = client.closed() => Err(Failure::Abort),
    }
}

/// Sends the request to an endpoint and reads the response head, trying other endpoints
/// when one refuses the connection.
async fn send(
    client: &mut Client,
    app: &App,
    revision: &Arc<Revision>,
    head: &[u8],
    body: &mut Body,
    side: &ClientSide<'_>,
) -> Result<(Lease, UpstreamConn, ResponseHead), Failure> {
    let mut last_error = String::new();
    for _ in 0..CONNECT_ATTEMPTS {
        let lease = lease(revision, client).await?;
        let endpoint = lease.endpoint().clone();
        let mut up = match endpoint.h1.take() {
            Some(up) => up,
            None => match UpstreamConn::connect(endpoint.addr()).await {
                Ok(up) => up,
                Err(error) => {
                    last_error = format!("connect to {}: {error}", endpoint.addr());
                    tracing::debug!(%last_error, "connect error, trying another endpoint");
                    endpoint.back_off(&revision.shared);
                    continue;
                }
            },
        };
        match send_on(&mut up, client, app, head, body, side).await {
            Ok(response) => return Ok((lease, up, response)),
            Err(SendFailure::Failed(failure)) => return Err(failure),
            Err(SendFailure::Stale) => {}
        }
        // The pooled connection had been closed by the upstream, the request unread: once more
        // on a new one.
        let mut fresh = UpstreamConn::connect(endpoint.addr()).await.map_err(|e| {
            Failure::Answer(RequestError::Upstream(format!(
                "connect to {}: {e}",
                endpoint.addr()
            )))
        })?;
        return match send_on(&mut fresh, client, app, head, body, side).await {
            Ok(response) => Ok((lease, fresh, response)),
            Err(SendFailure::Failed(failure)) => Err(failure),
            Err(SendFailure::Stale) => Err(Failure::Answer(RequestError::Upstream(format!(
                "{} closed the connection before answering",
                endpoint.addr()
            )))),
        };
    }
    Err(Failure::Answer(RequestError::Upstream(last_error)))
}

/// Writes the request on `up` and reads the response head from it.
async fn send_on(
    up: &mut UpstreamConn,
    client: &mut Client,
    app: &App,
    head: &[u8],
    body: &mut Body,
    side: &ClientSide<'_>,
) -> Result<ResponseHead, SendFailure> {
    // On a reused connection with a replayable request, a failed write or a reset before any
    // answer byte is the upstream having closed the connection while idle: its system
    // refused or discarded the request unread. A clean end of stream instead may follow a
    // request the model has read (an upstream that crashed mid-inference), so that one is
    // not sent again (502), as the issue asks of anything that may have reached the model.
    let may_be_stale = up.reused && body.buffered.is_some();
    let stale_or = |failure: Failure| {
        if may_be_stale {
            SendFailure::Stale
        } else {
            SendFailure::Failed(failure)
        }
    };
    let upstream_error = |what: &str, e: std::io::Error| {
        Failure::Answer(RequestError::Upstream(format!("{what}: {e}")))
    };
    match body.buffered {
        Some(len) => {
            let written = write_all(&mut up.stream, [head, &client.buf.filled()[..len]]).await;
            if let Err(e) = written {
                return Err(stale_or(upstream_error("writing the request", e)));
            }
        }
        None => {
            // Whatever arrived so far, including what came while the request waited: the
            // part that belongs to the body goes out with the head, the rest (a pipelined
            // request, after a body that ended meanwhile) stays for later.
            let received = client.buf.take_filled();
            let used = body
                .cursor
                .take(&received)
                .map_err(|e| SendFailure::Failed(Failure::Answer(malformed_body(e))))?;
            client.buf.unread(&received[used..]);
            stream_body(up, client, app, body, head, &received[..used])
                .await
                .map_err(SendFailure::Failed)?;
        }
    }
    loop {
        match response::parse(up.buf.filled(), side) {
            Parsed::Head(head) => {
                up.buf.consume(head.len);
                return Ok(head);
            }
            Parsed::Interim(len) => {
                up.buf.consume(len);
                continue;
            }
            Parsed::Malformed(message) => {
                return Err(SendFailure::Failed(Failure::Answer(
                    RequestError::Upstream(message),
                )));
            }
            Parsed::Partial => {}
        }
        let nothing_yet = up.buf.is_empty();
        let read = tokio::select! {
            read = up.buf.read_from(&mut up.stream, MAX_RESPONSE_HEAD_BYTES) => read,
            () = client.closed() => return Err(SendFailure::Failed(Failure::Abort)),
        };
        match read {
            Ok(0) if nothing_yet => {
                return Err(SendFailure::Failed(Failure::Answer(
                    RequestError::Upstream(
                        "the upstream closed the connection before answering".into(),
                    ),
                )));
            }
            Ok(0) => {
                return Err(SendFailure::Failed(Failure::Answer(
                    RequestError::Upstream(
                        "the upstream closed the connection in the middle of its answer".into(),
                    ),
                )));
            }
            Ok(_) => {}
            Err(e) if nothing_yet && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(stale_or(upstream_error("reading the answer", e)));
            }
            Err(e) => return Err(SendFailure::Failed(upstream_error("reading the answer", e))),
        }
    }
}

/// Sends the request head, the part of the body already received (`prefix`, taken by the
/// cursor) and the rest of the body as it comes from the client (the first piece in the
/// same write as the head), with the body read timeout and size limit.
async fn stream_body(
    up: &mut UpstreamConn,
    client: &mut Client,
    app: &App,
    body: &mut Body,
    head: &[u8],
    prefix: &[u8],
) -> Result<(), Failure> {
    let cursor = &mut body.cursor;
    if cursor.chunked_data_bytes() > app.max_body {
        return Err(Failure::Answer(RequestError::TooLarge(app.max_body)));
    }
    let mut unsent = [head, prefix];
    while !cursor.is_done() {
        let read = tokio::time::timeout(
            app.body_read_timeout,
            up.buf
                .read_fresh(&mut client.stream, cursor.most_left(), MAX_BUFFER_BYTES),
        )
        .await;
        let n = match read {
            Err(_) => return Err(Failure::Answer(RequestError::BodyTimeout)),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Failure::Abort),
            Ok(Ok(n)) => n,
        };
        let used = cursor
            .take(up.buf.filled())
            .map_err(|e| Failure::Answer(malformed_body(e)))?;
        if cursor.chunked_data_bytes() > app.max_body {
            return Err(Failure::Answer(RequestError::TooLarge(app.max_body)));
        }
        // What follows the body is the client's next request.
        client.buf.unread(&up.buf.filled()[used..]);
        let [head, prefix] = std::mem::take(&mut unsent);
        let written = write_all(&mut up.stream, [head, prefix, &up.buf.filled()[..used]]).await;
        up.buf.consume(n);
        if let Err(e) = written {
            return Err(Failure::Answer(RequestError::Upstream(format!(
                "writing the request body: {e}"
            ))));
        }
    }
    // The body ended within what had already arrived.
    if let Err(e) = write_all(&mut up.stream, unsent).await {
        return Err(Failure::Answer(RequestError::Upstream(format!(
            "writing the request: {e}"
        ))));
    }
    Ok(())
}

/// Sends the response head and copies the body to the client. `Ok(true)`: the upstream
/// connection can serve another request; `Err`: the client connection must close.
async fn copy_response(
    client: &mut Client,
    up: &mut UpstreamConn,
    head: ResponseHead,
) -> Result<bool, ()> {
    let mut cursor = BodyCursor::new(head.framing);
    let first = cursor.take(up.buf.filled()).map_err(|_| ())?;
    write_all(
        &mut client.stream,
        [&head.client_head, &up.buf.filled()[..first]],
    )
    .await
    .map_err(|_| ())?;
    up.buf.consume(first);
    loop {
        if cursor.is_done() {
            // Bytes after the end of the response make the connection unusable.
            return Ok(head.reusable && up.buf.is_empty());
        }
        let n = up
            .buf
            .read_fresh(&mut up.stream, cursor.most_left(), MAX_BUFFER_BYTES)
            .await
            .map_err(|_| ())?;
        if n == 0 {
            // The end of a body until close; anything else was cut short.
            return if head.framing == Framing::UntilClose {
                Ok(false)
            } else {
                Err(())
            };
        }
        let used = cursor.take(up.buf.filled()).map_err(|_| ())?;
        client
            .stream
            .write_all(&up.buf.filled()[..used])
            .await
            .map_err(|_| ())?;
        if used < n {
            return Ok(false);
        }
        up.buf.consume(n);
    }
}
