//! Forwarding: pooled keep-alive connections per endpoint (HTTP/1.1 for REST, h2c for gRPC),
//! one retry path for connect errors (the request is handed back unsent, so it goes to
//! another endpoint), and the response streamed back with `x-kiln-revision`.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::{BodyError, ReqBody, RespBody};
use crate::error::RequestError;
use crate::revision::{CONNECT_ATTEMPTS, Lease, MAX_IDLE_CONNECTIONS};
use crate::stats::InRevision;

/// The response header naming the revision that answered.
pub const REVISION_HEADER: &str = "x-kiln-revision";

const REVISION: HeaderName = HeaderName::from_static(REVISION_HEADER);

/// Which upstream protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// HTTP/1.1 keep-alive (REST).
    Http1,
    /// HTTP/2 with prior knowledge (gRPC).
    Http2,
}

/// Why a send failed.
enum SendError {
    /// Nothing was written: the request comes back for another endpoint.
    Connect(String, Box<Request<ReqBody>>),
    /// The request may have reached the upstream.
    Failed(hyper::Error),
}

/// Connections to one endpoint.
pub(crate) struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<http1::SendRequest<ReqBody>>>,
    h2: Mutex<Option<http2::SendRequest<ReqBody>>>,
}

impl Pool {
    /// An empty pool for `addr`.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<TokioIo<TcpStream>, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect to {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        Ok(TokioIo::new(stream))
    }

    async fn send_h1(
        &self,
        mut req: Request<ReqBody>,
    ) -> Result<(Response<Incoming>, http1::SendRequest<ReqBody>), SendError> {
        loop {
            let pooled = self.idle.lock().pop();
            let Some(mut sender) = pooled else { break };
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(SendError::Failed(e.into_error())),
                },
            }
        }
        let io = match self.connect().await {
            Ok(io) => io,
            Err(e) => return Err(SendError::Connect(e, Box::new(req))),
        };
        let (mut sender, connection) = match http1::handshake(io).await {
            Ok(pair) => pair,
            Err(e) => return Err(SendError::Connect(e.to_string(), Box::new(req))),
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        match sender.try_send_request(req).await {
            Ok(response) => Ok((response, sender)),
            Err(mut e) => match e.take_message() {
                Some(back) => Err(SendError::Connect(
                    format!("{} closed before the request was written", self.addr),
                    Box::new(back),
                )),
                None => Err(SendError::Failed(e.into_error())),
            },
        }
    }

    fn check_in(&self, sender: http1::SendRequest<ReqBody>) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(sender);
        }
    }

    async fn send_h2(&self, req: Request<ReqBody>) -> Result<Response<Incoming>, SendError> {
        let existing = self.h2.lock().clone().filter(|s| !s.is_closed());
        let mut sender = match existing {
            Some(sender) => sender,
            None => {
                let io = match self.connect().await {
                    Ok(io) => io,
                    Err(e) => return Err(SendError::Connect(e, Box::new(req))),
                };
                let (sender, connection) = match http2::handshake(TokioExecutor::new(), io).await {
                    Ok(pair) => pair,
                    Err(e) => return Err(SendError::Connect(e.to_string(), Box::new(req))),
                };
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                *self.h2.lock() = Some(sender.clone());
                sender
            }
        };
        match sender.try_send_request(req).await {
            Ok(response) => Ok(response),
            Err(mut e) => match e.take_message() {
                Some(back) => {
                    *self.h2.lock() = None;
                    Err(SendError::Connect(
                        format!("{} closed before the request was written", self.addr),
                        Box::new(back),
                    ))
                }
                None => Err(SendError::Failed(e.into_error())),
            },
        }
    }
}

/// What a response body releases when it ends: the slot, the load count and, for a complete
/// HTTP/1.1 exchange, the connection back into the pool.
pub(crate) struct Done {
    _lease: Lease,
    _count: InRevision,
    connection: Option<http1::SendRequest<ReqBody>>,
}

impl Done {
    /// Releases everything; `complete` returns the connection to the pool.
    pub(crate) fn finish(mut self, complete: bool) {
        if let Some(sender) = self.connection.take()
            && complete
        {
            self._lease.endpoint().pool.check_in(sender);
        }
    }
}

const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the (few) headers first: most messages carry none of these.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if let Some(connection) = headers.get(header::CONNECTION).cloned()
        && let Ok(names) = connection.to_str()
    {
        for name in names.split(',') {
            headers.remove(name.trim());
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Gives the request's URI and header values their own memory before it waits in the
/// activator. As hyper parses them (h2c, and HTTP/1.1 connections `h1` handed over), they
/// are slices of the connection's read buffer and keep that whole buffer (8 KiB) alive while
/// the server allocates another one to keep reading.
fn detach_head(req: &mut Request<ReqBody>) {
    if let Ok(uri) = Uri::try_from(req.uri().to_string()) {
        *req.uri_mut() = uri;
    }
    for value in req.headers_mut().values_mut() {
        if let Ok(owned) = HeaderValue::from_bytes(value.as_bytes()) {
            let sensitive = value.is_sensitive();
            *value = owned;
            value.set_sensitive(sensitive);
        }
    }
}

/// Rewrites a client's request for the upstream protocol.
fn prepare(req: &mut Request<ReqBody>, upstream: Upstream, addr: SocketAddr) {
    strip_hop_by_hop(req.headers_mut());
    match upstream {
        Upstream::Http1 => {
            if req.version() != Version::HTTP_11 {
                if !req.headers().contains_key(header::HOST)
                    && let Some(authority) = req.uri().authority()
                    && let Ok(host) = HeaderValue::from_str(authority.as_str())
                {
                    req.headers_mut().insert(header::HOST, host);
                }
                *req.version_mut() = Version::HTTP_11;
            }
            if req.uri().scheme().is_some() {
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                if let Ok(uri) = Uri::try_from(path) {
                    *req.uri_mut() = uri;
                }
            }
        }
        Upstream::Http2 => {
            *req.version_mut() = Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
            if req.uri().scheme().is_none() {
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                if let Ok(uri) = Uri::try_from(format!("http://{addr}{path}")) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
}

fn classify(error: &hyper::Error) -> RequestError {
    match kiln_api::error_chain::find_cause::<BodyError>(error) {
        Some(BodyError::TooLarge(limit)) => RequestError::TooLarge(*limit),
        Some(BodyError::Timeout) => RequestError::BodyTimeout,
        Some(BodyError::Incoming(e)) => {
            RequestError::BadRequest(format!("reading the request body: {e}"))
        }
        None => RequestError::Upstream(error.to_string()),
    }
}

/// Sends `req` to an endpoint of the counted revision (waiting in its activator queue if
/// needed) within `timeout`, and streams the answer back with `x-kiln-revision`.
pub(crate) async fn forward(
    count: InRevision,
    timeout: Duration,
    mut req: Request<ReqBody>,
    upstream: Upstream,
) -> Result<Response<RespBody>, (InRevision, RequestError)> {
    let revision = count.revision().clone();
    let deadline = Instant::now() + timeout;
    let attempt = async {
        let mut last = String::new();
        for _ in 0..CONNECT_ATTEMPTS {
            let lease = match revision.acquire_now() {
                Some(lease) => lease,
                None => {
                    detach_head(&mut req);
                    revision.acquire().await?
                }
            };
            let endpoint = lease.endpoint().clone();
            prepare(&mut req, upstream, endpoint.addr());
            let sent = match upstream {
                // Boxed: the connect and handshake states are large, and a request held in
                // the activator should not carry their space.
                Upstream::Http1 => Box::pin(endpoint.pool.send_h1(req))
                    .await
                    .map(|(r, s)| (r, Some(s))),
                Upstream::Http2 => Box::pin(endpoint.pool.send_h2(req))
                    .await
                    .map(|r| (r, None)),
            };
            match sent {
                Ok((response, connection)) => return Ok((response, lease, connection)),
                Err(SendError::Connect(error, back)) => {
                    tracing::debug!(%error, "connect error, trying another endpoint");
                    endpoint.back_off(&revision.shared);
                    req = *back;
                    last = error;
                }
                Err(SendError::Failed(error)) => return Err(classify(&error)),
            }
        }
        Err(RequestError::Upstream(last))
    };
    let outcome = match tokio::time::timeout_at(deadline, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(RequestError::Timeout(timeout)),
    };
    match outcome {
        Ok((response, lease, connection)) => {
            count.status(response.status());
            let (mut parts, inner) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .insert(REVISION, revision.header_value.clone());
            let done = Done {
                _lease: lease,
                _count: count,
                connection,
            };
            let done = if inner.is_end_stream() {
                done.finish(true);
                None
            } else {
                Some(done)
            };
            Ok(Response::from_parts(
                parts,
                RespBody::Proxied { inner, done },
            ))
        }
        Err(error) => Err((count, error)),
    }
}
