//! The server: HTTP/1.1 and h2c (told apart by peeking at the preface) on one listener. HTTP/1.1
//! connections go to the router's own HTTP/1.1 path (`h1`); h2c connections, and the HTTP/1.1
//! forms that path hands over, are served by hyper here, gRPC recognised by its content type
//! (so gRPC works on the HTTP port too). Either way the service comes from the path, the host
//! or the gRPC model name; server-scoped calls are answered by the router itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::answer::Answer;
use crate::app::{App, PIN_REVISION_HEADER, PIN_TAG_HEADER, RouteHints, model_in_path};
use crate::body::{ReqBody, RespBody};
use crate::coalesce::Coalesce;
use crate::error::RequestError;
use crate::grpc;
use crate::h1;
use crate::proxy::{self, Upstream};

const PIN_REVISION: http::HeaderName = http::HeaderName::from_static(PIN_REVISION_HEADER);
const PIN_TAG: http::HeaderName = http::HeaderName::from_static(PIN_TAG_HEADER);

fn header_str<'r>(req: &'r Request<Incoming>, name: &http::HeaderName) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Where a hyper request says it goes.
fn hints(req: &Request<Incoming>) -> RouteHints<'_> {
    RouteHints {
        host: req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| header_str(req, &header::HOST)),
        pin_revision: header_str(req, &PIN_REVISION),
        pin_tag: header_str(req, &PIN_TAG),
    }
}

impl App {
    /// Answers one request.
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<RespBody> {
        let is_grpc = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if is_grpc {
            // Boxed: the gRPC path's states would otherwise widen every HTTP request's future.
            return Box::pin(self.handle_grpc(req)).await;
        }
        if let Some(answer) = self.own_answer(req.method() == Method::GET, req.uri().path()) {
            return answer.into_response();
        }
        match self.route_http(req).await {
            Ok(response) => response,
            Err(error) => Answer::error(&error).into_response(),
        }
    }

    async fn route_http(&self, req: Request<Incoming>) -> Result<Response<RespBody>, RequestError> {
        let model = model_in_path(req.uri().path())?;
        let (count, timeout) = self.choose(&hints(&req), model)?;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body) {
            let error = RequestError::TooLarge(self.max_body);
            count.status(error.status());
            return Err(error);
        }
        let (parts, body) = req.into_parts();
        let body = ReqBody::new(None, body, self.max_body, self.body_read_timeout);
        let req = Request::from_parts(parts, body);
        proxy::forward(count, timeout, req, Upstream::Http1)
            .await
            .map_err(|(count, error)| {
                count.status(error.status());
                error
            })
    }

    async fn handle_grpc(&self, req: Request<Incoming>) -> Response<RespBody> {
        match self.route_grpc(req).await {
            Ok(response) => response,
            Err(error) => grpc::error_response(&error),
        }
    }

    async fn route_grpc(&self, req: Request<Incoming>) -> Result<Response<RespBody>, RequestError> {
        let method = grpc::method(req.uri().path())?;
        if method != grpc::Method::ModelScoped {
            return Ok(grpc::answer(method));
        }
        let (parts, mut body) = req.into_parts();
        let (model, head) =
            grpc::read_model_name(&mut body, self.max_body, self.body_read_timeout).await?;
        let req = Request::from_parts(parts, body);
        let (count, timeout) = self.choose(&hints(&req), Some(&model))?;
        let (parts, body) = req.into_parts();
        let body = ReqBody::new(
            Some(head),
            body,
            self.max_body.saturating_add(5),
            self.body_read_timeout,
        );
        let req = Request::from_parts(parts, body);
        proxy::forward(count, timeout, req, Upstream::Http2)
            .await
            .map_err(|(count, error)| {
                count.status(error.status());
                error
            })
    }
}

/// Connection settings for both protocols.
struct Builders {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
}

impl Builders {
    fn new(header_read_timeout: Duration) -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(10_000);
        Self {
            http1,
            http2,
            header_read_timeout,
        }
    }
}

/// The HTTP/2 connection preface starts with these bytes; no HTTP/1.1 request does.
const H2_PREFACE: &[u8; 4] = b"PRI ";

/// Whether the client speaks HTTP/2 with prior knowledge, by peeking at its first bytes
/// without consuming them (so HTTP/1.1 parsing starts from a fresh, right-sized buffer).
/// `None`: the client closed or sent nothing in time.
async fn sniff_http2(stream: &TcpStream, timeout: Duration) -> Option<bool> {
    let peek = async {
        let mut first = [0u8; 4];
        loop {
            let n = stream.peek(&mut first).await.ok()?;
            if n == 0 {
                return None;
            }
            if first[..n] != H2_PREFACE[..n] {
                return Some(false);
            }
            if n == H2_PREFACE.len() {
                return Some(true);
            }
            // A few bytes of what may be the preface: wait for the rest.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(timeout, peek).await.ok().flatten()
}

/// Accepts connections until `stop` turns true, then lets in-flight requests finish for at
/// most `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let builders = Arc::new(Builders::new(app.header_read_timeout));
    let graceful = GracefulShutdown::new();
    // Every connection task holds a sender; all of them gone = all connections closed.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                // Out of file descriptors and the like: let the system breathe.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            builders.clone(),
            graceful.watcher(),
            stop.clone(),
            alive.clone(),
        ));
    }
    drop(listener);
    drop(alive);
    let drained = async {
        graceful.shutdown().await;
        let _ = all_closed.recv().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("drain deadline passed with requests still in flight");
    }
}

/// Serves one accepted connection: HTTP/1.1 on the router's own path, h2c (and what that
/// path hands over) with hyper.
async fn serve_connection(
    stream: TcpStream,
    app: Arc<App>,
    builders: Arc<Builders>,
    watcher: Watcher,
    stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let Some(http2) = sniff_http2(&stream, builders.header_read_timeout).await else {
        return;
    };
    let service = {
        let app = app.clone();
        hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(req).await) }
        })
    };
    // Boxed: hyper's connection states are large, and most connections never need them.
    let outcome = if http2 {
        let io = TokioIo::new(Coalesce::new(stream));
        Box::pin(watcher.watch(builders.http2.serve_connection(io, service))).await
    } else {
        match h1::serve(stream, app, stop).await {
            h1::Ended::Closed => return,
            h1::Ended::Handover(io) => {
                let io = TokioIo::new(io);
                Box::pin(watcher.watch(builders.http1.serve_connection(io, service))).await
            }
        }
    };
    if let Err(error) = outcome {
        tracing::debug!(%error, "connection ended with an error");
    }
}
