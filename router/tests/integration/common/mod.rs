//! Test helpers: small upstream servers, a client, recording sinks.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kiln_api::load::{Activation, LoadSample, LoadSink, RevisionKey};
use parking_lot::Mutex;
use tokio::net::TcpListener;

pub mod wire;

/// What an upstream saw.
#[derive(Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    pub current: AtomicUsize,
    pub max_concurrent: AtomicUsize,
    pub bodies: Mutex<Vec<String>>,
    /// Each request's path and query, and its `x-trace` header.
    pub heads: Mutex<Vec<(String, Option<String>)>>,
}

/// A small HTTP/1.1 upstream that answers `{name}` (plus the request body, echoed) after
/// `delay`, counting requests and the most it ever held at once.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start(name: &'static str) -> Self {
        Self::with_delay(name, Duration::ZERO).await
    }

    pub async fn with_delay(name: &'static str, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, name, delay)
    }

    pub fn serve(listener: TcpListener, name: &'static str, delay: Duration) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let counters = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = counters.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            seen.requests.fetch_add(1, Ordering::SeqCst);
                            seen.heads.lock().push((
                                req.uri()
                                    .path_and_query()
                                    .map_or("", |p| p.as_str())
                                    .to_owned(),
                                req.headers()
                                    .get("x-trace")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                            ));
                            let now = seen.current.fetch_add(1, Ordering::SeqCst) + 1;
                            seen.max_concurrent.fetch_max(now, Ordering::SeqCst);
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            if let Ok(body) = &body {
                                seen.bodies
                                    .lock()
                                    .push(String::from_utf8_lossy(body).into_owned());
                            }
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            seen.current.fetch_sub(1, Ordering::SeqCst);
                            let mut out = name.as_bytes().to_vec();
                            if let Ok(body) = body
                                && !body.is_empty()
                            {
                                out.push(b':');
                                out.extend_from_slice(&body);
                            }
                            let response = Response::builder()
                                .header("x-upstream", name)
                                .body(Full::new(Bytes::from(out)))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
}

/// An address where nothing listens (bound, then closed).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A reply as the client sees it.
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn revision(&self) -> &str {
        self.headers
            .get("x-kiln-revision")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn send(
    client: &HttpClient,
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.expect("request failed");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send(client, "GET", format!("http://{addr}{path}"), headers, "").await
}

pub async fn post(client: &HttpClient, addr: SocketAddr, path: &str, body: &str) -> Reply {
    send(client, "POST", format!("http://{addr}{path}"), &[], body).await
}

/// Polls `condition` every millisecond for up to 10 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Records samples and pokes, and signals each poke.
#[derive(Default)]
pub struct Recorder {
    pub samples: Mutex<Vec<LoadSample>>,
    pub pokes: Mutex<HashMap<RevisionKey, usize>>,
    pub poked: tokio::sync::Notify,
}

impl Recorder {
    pub fn pokes_for(&self, key: &RevisionKey) -> usize {
        self.pokes.lock().get(key).copied().unwrap_or(0)
    }
}

impl LoadSink for Recorder {
    fn record(&self, sample: LoadSample) {
        self.samples.lock().push(sample);
    }
}

impl Activation for Recorder {
    fn poke(&self, revision: &RevisionKey) {
        *self.pokes.lock().entry(revision.clone()).or_default() += 1;
        self.poked.notify_waiters();
    }
}

pub fn key(revision: &str) -> RevisionKey {
    RevisionKey::new("default", revision)
}
