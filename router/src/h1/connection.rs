//! One client's HTTP/1.1 connection: reads request heads, answers the router's own calls and
//! refusals, forwards the rest (one at a time, in order: pipelined requests wait in the
//! buffer), and hands the connection to the general server for forms it leaves to it.

use std::sync::Arc;

use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::answer::Answer;
use crate::app::App;
use crate::error::json_error;
use crate::h1::exchange::{self, After};
use crate::h1::framing::BodyCursor;
use crate::h1::io::{Client, MAX_HEAD_BYTES, Rewind};
use crate::h1::request::{self, Decision, Message, answer_bytes};

/// How a connection ended.
pub(crate) enum Ended {
    /// Closed, by either side or by shutdown.
    Closed,
    /// To be served by the general HTTP/1.1 server from here on.
    Handover(Rewind),
}

/// Serves `stream` until it closes, the router stops (between requests), or a request needs
/// the general server.
pub(crate) async fn serve(
    stream: TcpStream,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let mut client = Client::new(stream);
    loop {
        let decision = match next_request(&mut client, &app, &mut stop).await {
            Some(decision) => decision,
            None => return Ended::Closed,
        };
        let after = match decision {
            // `next_request` only returns whole heads.
            Decision::Partial => After::Close,
            Decision::Handover => {
                let buffered = client.buf.take_filled();
                return Ended::Handover(Rewind::new(buffered, client.stream));
            }
            Decision::Malformed(message) => {
                refuse(&mut client, StatusCode::BAD_REQUEST, &message).await;
                After::Close
            }
            Decision::Answer {
                answer,
                message,
                count,
            } => {
                if let Some(count) = &count {
                    count.status(answer.status);
                }
                let after = skip_request(&mut client, message);
                let close = after == After::Close;
                let bytes = answer_bytes(&answer, close, message.is_head);
                match client.stream.write_all(&bytes).await {
                    Ok(()) => after,
                    Err(_) => After::Close,
                }
            }
            Decision::Forward(forward) => exchange::forward(&mut client, &app, forward).await,
        };
        if after == After::Close {
            return Ended::Closed;
        }
        client.buf.shrink_when_empty();
    }
}

/// Drops a request the router answered itself from the buffer: `Continue` when its whole
/// body was already received (and the client keeps the connection), otherwise `Close`.
fn skip_request(client: &mut Client, message: Message) -> After {
    let received = &client.buf.filled()[message.head_len..];
    let mut cursor = BodyCursor::new(message.framing);
    match cursor.take(received) {
        Ok(used) if cursor.is_done() && message.keep_alive => {
            client.buf.consume(message.head_len + used);
            After::Continue
        }
        _ => After::Close,
    }
}

/// Reads until a whole request head is in the buffer and decides on it. `None`: the client
/// closed, stalled in the middle of a head (answered 408), sent a head too large (431), sent
/// nothing for the header read timeout (closed quietly), or the router is stopping and the
/// connection is idle.
async fn next_request(
    client: &mut Client,
    app: &App,
    stop: &mut watch::Receiver<bool>,
) -> Option<Decision> {
    let mut deadline: Option<Instant> = None;
    loop {
        if !client.buf.is_empty() {
            match request::decide(app, client.buf.filled()) {
                Decision::Partial => {}
                decision => return Some(decision),
            }
        }
        let read = if client.buf.is_empty() {
            if *stop.borrow() {
                return None;
            }
            // An idle keep-alive connection is closed after the same time, as hyper's server
            // does: idle connections must not pile up for ever.
            let read = client.buf.read_from(&mut client.stream, MAX_HEAD_BYTES);
            tokio::select! {
                read = tokio::time::timeout(app.header_read_timeout, read) => match read {
                    Ok(read) => read,
                    Err(_) => return None,
                },
                _ = stop.wait_for(|stopping| *stopping) => return None,
            }
        } else {
            let deadline =
                *deadline.get_or_insert_with(|| Instant::now() + app.header_read_timeout);
            let read = client.buf.read_from(&mut client.stream, MAX_HEAD_BYTES);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(read) => read,
                Err(_) => {
                    refuse(
                        client,
                        StatusCode::REQUEST_TIMEOUT,
                        "request head not received in time",
                    )
                    .await;
                    return None;
                }
            }
        };
        match read {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory => {
                let message = format!("request head larger than {MAX_HEAD_BYTES} bytes");
                refuse(
                    client,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    &message,
                )
                .await;
                return None;
            }
            Err(_) => return None,
        }
    }
}

/// Answers `status` with `{"error": message}` before closing.
async fn refuse(client: &mut Client, status: StatusCode, message: &str) {
    let answer = Answer::json(status, json_error(message));
    let _ = client
        .stream
        .write_all(&answer_bytes(&answer, true, false))
        .await;
}
