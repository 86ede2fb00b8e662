//! The HTTP server: HTTP/1.1 and h2c (told apart by peeking at the preface) on one listener, gRPC recognised by its content type
//! (so gRPC works on the HTTP port too). It finds the service from the path, the host or the
//! gRPC model name, answers server-scoped calls itself and forwards the rest.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::body::{ReqBody, RespBody};
use crate::error::RequestError;
use crate::grpc;
use crate::proxy::{self, Upstream};
use crate::stats::InRevision;
use crate::table::{Pin, Service, Snapshot, TableHandle};

/// Header pinning a revision by name.
pub const PIN_REVISION_HEADER: &str = "x-kiln-revision";
/// Header pinning a revision by tag.
pub const PIN_TAG_HEADER: &str = "x-kiln-tag";

const PIN_REVISION: http::HeaderName = http::HeaderName::from_static(PIN_REVISION_HEADER);
const PIN_TAG: http::HeaderName = http::HeaderName::from_static(PIN_TAG_HEADER);

/// Settings and state shared by every connection.
pub(crate) struct App {
    pub(crate) table: TableHandle,
    /// `.{domain}`: hosts are `{name}.{namespace}.{domain}`.
    pub(crate) domain_suffix: String,
    pub(crate) max_body: u64,
    pub(crate) body_read_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<RespBody> {
    let mut response = Response::new(RespBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &RequestError) -> Response<RespBody> {
    let mut response = json(error.status(), error.json_body());
    if let Some((name, value)) = error.retry_after() {
        response.headers_mut().insert(name, value);
    }
    response
}

/// The model named by a `/v2/models/{name}/...` or `/v1/models/{name}[:verb]` path.
fn model_in_path(path: &str) -> Result<Option<&str>, RequestError> {
    let name = if let Some(rest) = path.strip_prefix("/v2/models/") {
        rest.split('/').next()
    } else if let Some(rest) = path.strip_prefix("/v1/models/") {
        rest.split(['/', ':']).next()
    } else {
        return Ok(None);
    };
    match name {
        Some(name) if !name.is_empty() => Ok(Some(name)),
        _ => Err(RequestError::BadRequest(format!(
            "malformed path {path}: no model name"
        ))),
    }
}

fn header_str<'r>(req: &'r Request<Incoming>, name: &http::HeaderName) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl App {
    /// `(label, namespace)` of a host `{label}.{namespace}.{domain}[:port]`.
    fn host_target<'h>(&self, host: &'h str) -> Option<(&'h str, &'h str)> {
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let rest = host.strip_suffix(self.domain_suffix.as_str())?;
        let (label, namespace) = rest.split_once('.')?;
        (!label.is_empty() && !namespace.is_empty() && !namespace.contains('.'))
            .then_some((label, namespace))
    }

    /// The service and the tag pinned by the host, if any.
    fn resolve<'s>(
        &self,
        snapshot: &'s Snapshot,
        host: Option<&str>,
        model: Option<&str>,
    ) -> Result<(&'s Arc<Service>, Option<String>), RequestError> {
        let target = host.and_then(|h| self.host_target(h));
        let unknown = |name: &str| RequestError::NotFound(format!("unknown model {name}"));
        match (model, target) {
            (Some(name), Some((label, namespace))) => {
                let service = snapshot
                    .get(namespace, name)
                    .or_else(|| snapshot.by_name(name))
                    .ok_or_else(|| unknown(name))?;
                let tag = label
                    .strip_suffix(name)
                    .and_then(|t| t.strip_suffix('-'))
                    .filter(|t| !t.is_empty() && service.has_tag(t))
                    .map(str::to_owned);
                Ok((service, tag))
            }
            (Some(name), None) => Ok((snapshot.by_name(name).ok_or_else(|| unknown(name))?, None)),
            (None, Some((label, namespace))) => {
                if let Some(service) = snapshot.get(namespace, label) {
                    return Ok((service, None));
                }
                for (i, _) in label.match_indices('-') {
                    let (tag, name) = (&label[..i], &label[i + 1..]);
                    if let Some(service) = snapshot.get(namespace, name)
                        && service.has_tag(tag)
                    {
                        return Ok((service, Some(tag.to_owned())));
                    }
                }
                Err(RequestError::NotFound(format!(
                    "no model for host {label}.{namespace}"
                )))
            }
            (None, None) => Err(RequestError::NotFound(
                "the request names no model (path or host)".into(),
            )),
        }
    }

    fn host(req: &Request<Incoming>) -> Option<&str> {
        req.uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| header_str(req, &header::HOST))
    }

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
        let path = req.uri().path();
        match path {
            "/healthz" => return json(StatusCode::OK, r#"{"status":"ok"}"#),
            "/metrics" => {
                let mut response =
                    Response::new(RespBody::full(self.table.shared().metrics.encode()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return response;
            }
            "/v2" | "/v2/" => {
                let body = serde_json::json!({
                    "name": "kiln-router",
                    "version": env!("CARGO_PKG_VERSION"),
                    "extensions": [],
                });
                return json(StatusCode::OK, body.to_string());
            }
            "/v2/health/live" => return json(StatusCode::OK, r#"{"live":true}"#),
            "/v2/health/ready" => return json(StatusCode::OK, r#"{"ready":true}"#),
            "/v2/models" | "/v2/models/" if req.method() == Method::GET => {
                return self.list_models();
            }
            _ => {}
        }
        match self.route_http(req).await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        }
    }

    fn list_models(&self) -> Response<RespBody> {
        let snapshot = self.table.snapshot();
        let models: Vec<_> = snapshot
            .services()
            .iter()
            .map(|s| serde_json::json!({ "name": s.name, "namespace": s.namespace }))
            .collect();
        json(
            StatusCode::OK,
            serde_json::json!({ "models": models }).to_string(),
        )
    }

    fn choose(
        &self,
        req: &Request<Incoming>,
        model: Option<&str>,
    ) -> Result<(InRevision, Duration), RequestError> {
        let snapshot = self.table.snapshot();
        let result =
            self.resolve(&snapshot, Self::host(req), model)
                .and_then(|(service, host_tag)| {
                    let pin = if let Some(name) = header_str(req, &PIN_REVISION) {
                        Pin::Revision(name)
                    } else if let Some(tag) = header_str(req, &PIN_TAG) {
                        Pin::Tag(tag)
                    } else if let Some(tag) = host_tag.as_deref() {
                        Pin::Tag(tag)
                    } else {
                        Pin::None
                    };
                    let revision = service.choose(pin, &self.table.shared().rng)?;
                    Ok((InRevision::enter(revision.clone()), service.timeout))
                });
        if let Err(error) = &result {
            self.table
                .shared()
                .metrics
                .unrouted(error.status().as_u16());
        }
        result
    }

    async fn route_http(&self, req: Request<Incoming>) -> Result<Response<RespBody>, RequestError> {
        let model = model_in_path(req.uri().path())?;
        let (count, timeout) = self.choose(&req, model)?;
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
        let (count, timeout) = self.choose(&req, Some(&model))?;
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
        let app = app.clone();
        let builders = builders.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Some(http2) = sniff_http2(&stream, builders.header_read_timeout).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(req).await) }
            });
            let io = TokioIo::new(stream);
            let outcome = if http2 {
                watcher
                    .watch(builders.http2.serve_connection(io, service))
                    .await
            } else {
                watcher
                    .watch(builders.http1.serve_connection(io, service))
                    .await
            };
            if let Err(error) = outcome {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed with requests still in flight");
    }
}
