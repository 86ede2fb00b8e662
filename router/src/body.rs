//! Bodies: the request body sent upstream (a peeked prefix, then the client's stream, with a
//! size limit and a read timeout) and the response body sent back (the upstream's stream, or
//! an answer of the router's own), which releases the request's slot when it ends.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::proxy::Done;

/// Why the router stopped reading a request body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// More bytes than allowed.
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// No bytes for longer than the read timeout.
    #[error("request body not received in time")]
    Timeout,
    /// The client's stream failed.
    #[error("reading the request body: {0}")]
    Incoming(#[from] hyper::Error),
}

/// The body forwarded upstream.
pub(crate) struct ReqBody {
    head: Option<Bytes>,
    rest: Option<Incoming>,
    remaining: u64,
    limit: u64,
    read_timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl ReqBody {
    /// `head` (already read) followed by what remains of `rest`, at most `limit` bytes in all.
    pub(crate) fn new(
        head: Option<Bytes>,
        rest: Incoming,
        limit: u64,
        read_timeout: Duration,
    ) -> Self {
        let used = head.as_ref().map_or(0, |h| h.len() as u64);
        Self {
            head: head.filter(|h| !h.is_empty()),
            rest: Some(rest),
            remaining: limit.saturating_sub(used),
            limit,
            read_timeout,
            timer: None,
            armed: false,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.rest = None;
                        return Poll::Ready(Some(Err(BodyError::TooLarge(this.limit))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.rest = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.read_timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    timer.as_mut().reset(deadline);
                    this.armed = true;
                }
                ready!(timer.as_mut().poll(cx));
                this.rest = None;
                Poll::Ready(Some(Err(BodyError::Timeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let head = self.head.as_ref().map_or(0, |h| h.len() as u64);
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
        let lower = hint.lower() + head;
        let upper = hint.upper().map(|u| u + head);
        hint.set_lower(lower);
        if let Some(upper) = upper {
            hint.set_upper(upper);
        }
        hint
    }
}

/// The body sent back to the client.
pub(crate) enum RespBody {
    /// A complete answer of the router's own.
    Full(Option<Bytes>),
    /// A gRPC answer of the router's own: one message, then trailers.
    Grpc {
        /// The framed message.
        data: Option<Bytes>,
        /// `grpc-status` and friends.
        trailers: Option<HeaderMap>,
    },
    /// The upstream's body; `done` is released at its end.
    Proxied {
        /// The upstream's stream.
        inner: Incoming,
        /// The slot, the load count and the pooled connection to return.
        done: Option<Done>,
    },
}

impl RespBody {
    /// An answer with `bytes` as its whole body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Grpc { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            Self::Proxied { inner, done } => {
                let frame = ready!(Pin::new(&mut *inner).poll_frame(cx));
                match &frame {
                    None => {
                        if let Some(done) = done.take() {
                            done.finish(true);
                        }
                    }
                    Some(Ok(_)) if inner.is_end_stream() => {
                        if let Some(done) = done.take() {
                            done.finish(true);
                        }
                    }
                    Some(Err(_)) => {
                        if let Some(done) = done.take() {
                            done.finish(false);
                        }
                    }
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(data) => data.is_none(),
            Self::Grpc { data, trailers } => data.is_none() && trailers.is_none(),
            Self::Proxied { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Self::Grpc { .. } => SizeHint::default(),
            Self::Proxied { inner, .. } => inner.size_hint(),
        }
    }
}
