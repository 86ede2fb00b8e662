//! Edge cases of the router's own HTTP/1.1 path, on the wire: raw bytes from a hand-driven
//! client through the router to a raw upstream. Each test here comes from a defect found in a
//! review of `router/src/h1` (framing smuggled through `Connection`, bodies on answers to
//! HEAD, loose `Content-Length` and chunk parsing, a repeated `Connection` field, a status
//! counted twice), and keeps it fixed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kiln_router::{RevisionSpec, Router, RouterBuilder, RunningRouter, ServiceSpec};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The longest any one step (a connect, a response, a close) may take.
const STEP: Duration = Duration::from_secs(2);

/// Awaits `future`, failing the test if it takes longer than [`STEP`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

// ---------------------------------------------------------------------------------------------
// Reading HTTP/1.1 messages by hand
// ---------------------------------------------------------------------------------------------

/// A message head: the start line and the header fields (names lowercased, values trimmed).
#[derive(Debug, Clone)]
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> io::Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut lines = text.split("\r\n");
        let start = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (name, value) = line.split_once(':').ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("bad header {line:?}"))
                })?;
                Ok((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { start, headers })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    fn all<'h>(&'h self, name: &str) -> impl Iterator<Item = &'h str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether a comma-separated header such as `Connection` lists `token`.
    fn lists(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The status code of a response head.
    fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {:?}", self.start))
    }

    /// The request target of a request head.
    fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or_default()
    }

    /// Strictly `1*DIGIT`, as RFC 9112 has it.
    fn content_length(&self) -> Option<usize> {
        self.header("content-length").map(|v| {
            assert!(
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
                "bad content-length {v:?}"
            );
            v.parse().expect("content-length")
        })
    }

    fn is_chunked(&self) -> bool {
        self.lists("transfer-encoding", "chunked")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A TCP stream with a read buffer; it can log every byte it reads.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    log: Option<Arc<Mutex<Vec<u8>>>>,
}

impl Wire {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            log: None,
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        if let Some(log) = &self.log {
            log.lock().extend_from_slice(&chunk[..n]);
        }
        Ok(n)
    }

    async fn fill_or_eof(&mut self) -> io::Result<()> {
        match self.fill().await? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }

    /// The next message head; `None` when the peer closed cleanly between messages.
    async fn head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = Head::parse(&self.buf[..end])?;
                self.buf.drain(..end + 4);
                return Ok(Some(head));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            self.fill_or_eof().await?;
        }
    }

    async fn exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            self.fill_or_eof().await?;
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// A chunked body, decoded strictly (trailers are read and dropped).
    async fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .map_err(|e| invalid(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exact(size).await?);
            let end = self.line().await?;
            if !end.is_empty() {
                return Err(invalid(format!("chunk not followed by CRLF: {end:?}")));
            }
        }
    }

    async fn until_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    async fn request_body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        if head.is_chunked() {
            self.chunked().await
        } else {
            self.exact(head.content_length().unwrap_or(0)).await
        }
    }

    /// The body of a response with `head` to a request with `method`.
    async fn response_body(&mut self, head: &Head, method: &str) -> io::Result<Vec<u8>> {
        let status = head.status();
        if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
            Ok(Vec::new())
        } else if head.is_chunked() {
            self.chunked().await
        } else if let Some(len) = head.content_length() {
            self.exact(len).await
        } else {
            self.until_close().await
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }
}

// ---------------------------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------------------------

/// A response as it came off the wire.
struct Reply {
    head: Head,
    body: Vec<u8>,
}

impl Reply {
    fn status(&self) -> u16 {
        self.head.status()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// One client connection to the router, driven by hand.
struct Client {
    wire: Wire,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = within("connecting", TcpStream::connect(addr))
            .await
            .expect("connect");
        Self {
            wire: Wire::new(stream),
        }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        within("writing", self.wire.write(bytes.as_ref()))
            .await
            .expect("write");
    }

    /// The next response head, checked to start with a status line.
    async fn response_head(&mut self) -> Head {
        let head = within("a response head", self.wire.head())
            .await
            .expect("read a response head")
            .expect("the router closed the connection");
        assert!(
            head.start.starts_with("HTTP/1.1 "),
            "not a status line (the previous message left bytes behind): {:?}",
            head.start
        );
        head
    }

    /// Reads the next response to a request with `method`.
    async fn response(&mut self, method: &str) -> Reply {
        let head = self.response_head().await;
        let body = within("a response body", self.wire.response_body(&head, method))
            .await
            .expect("read a response body");
        Reply { head, body }
    }

    /// Sends a request with no body and reads its response.
    async fn get(&mut self, method: &str, target: &str) -> Reply {
        self.send(format!(
            "{method} {target} HTTP/1.1\r\nhost: router\r\n\r\n"
        ))
        .await;
        self.response(method).await
    }

    /// Whether the router closes the connection (a clean end or a reset) within [`STEP`].
    async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(STEP, self.wire.stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => self.wire.buf.is_empty(),
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream side
// ---------------------------------------------------------------------------------------------

/// A request as the upstream received it (body decoded from its framing).
#[derive(Debug, Clone)]
struct Received {
    head: Head,
    body: Vec<u8>,
}

/// `200 OK` with a Content-Length body.
fn ok(body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut bytes =
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The default answer: `200` echoing the request body, or the request target when it has none.
fn echo(request: &Received) -> Vec<u8> {
    if request.body.is_empty() {
        ok(request.head.target())
    } else {
        ok(&request.body)
    }
}

type Handler = Arc<dyn Fn(&Received) -> Vec<u8> + Send + Sync>;

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// The raw bytes received, one entry per connection.
    raw: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
    requests: Mutex<Vec<Received>>,
}

/// A raw HTTP/1.1 upstream that frames requests strictly, records them, and writes back
/// whatever its handler says, byte for byte.
struct RawUpstream {
    addr: SocketAddr,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    async fn start(handler: impl Fn(&Received) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let seen = Arc::new(Seen::default());
        let handler: Handler = Arc::new(handler);
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    seen.connections.fetch_add(1, Ordering::SeqCst);
                    let log = Arc::new(Mutex::new(Vec::new()));
                    seen.raw.lock().push(log.clone());
                    let mut wire = Wire::new(stream);
                    wire.log = Some(log);
                    let (seen, handler) = (seen.clone(), handler.clone());
                    tokio::spawn(async move {
                        let _ = Self::serve(wire, &seen, &*handler).await;
                    });
                }
            }
        });
        Self { addr, seen, task }
    }

    async fn serve(
        mut wire: Wire,
        seen: &Seen,
        handler: &(dyn Fn(&Received) -> Vec<u8> + Send + Sync),
    ) -> io::Result<()> {
        while let Some(head) = wire.head().await? {
            let body = wire.request_body(&head).await?;
            let request = Received { head, body };
            let answer = handler(&request);
            seen.requests.lock().push(request);
            wire.write(&answer).await?;
        }
        Ok(())
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.requests.lock().clone()
    }

    /// Everything received, raw, on all connections.
    fn raw(&self) -> Vec<u8> {
        let raw = self.seen.raw.lock();
        raw.iter().flat_map(|log| log.lock().clone()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The router
// ---------------------------------------------------------------------------------------------

/// A router serving model `mlp` (revision `mlp-1`) from `upstream`.
async fn router_with(builder: RouterBuilder, upstream: SocketAddr) -> RunningRouter {
    let router = builder.build().expect("build the router");
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([upstream])),
        )
        .expect("add the service");
    router.start().await.expect("start the router")
}

async fn router_to(upstream: &RawUpstream) -> RunningRouter {
    router_with(Router::builder(), upstream.addr).await
}

/// Asserts a proxied `200` with `body`.
#[track_caller]
fn assert_ok(reply: &Reply, body: impl AsRef<[u8]>) {
    assert_eq!(reply.status(), 200, "{:?} {}", reply.head, reply.text());
    assert_eq!(reply.head.header("x-kiln-revision"), Some("mlp-1"));
    assert_eq!(reply.text(), String::from_utf8_lossy(body.as_ref()));
}

/// Asserts the router's own JSON `400`.
#[track_caller]
fn assert_bad_request(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status(),
        400,
        "{what}: {:?} {}",
        reply.head,
        reply.text()
    );
    assert!(
        reply.json()["error"].is_string(),
        "{what}: {}",
        reply.text()
    );
}

// ---------------------------------------------------------------------------------------------
// Framing fields named in `Connection`
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_connection_listed_content_length_cannot_smuggle_a_request_upstream() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let smuggled = "GET /v2/models/mlp/smuggled HTTP/1.1\r\nhost: router\r\n\r\n";
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(format!(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             connection: content-length\r\ncontent-length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        ))
        .await;
    // Refusing the request or forwarding it with its length are both fine; what the upstream
    // must never see is the body read as a request of its own.
    let reply = client.response("POST").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = upstream.requests();
    assert!(
        requests
            .iter()
            .all(|r| !r.head.target().ends_with("/smuggled")),
        "the body reached the upstream as a request: {requests:#?}"
    );
    if reply.status() == 200 {
        assert_eq!(requests.len(), 1, "{requests:#?}");
        assert_eq!(requests[0].body, smuggled.as_bytes());
    }
}

#[tokio::test]
async fn a_connection_listed_content_length_in_a_response_keeps_the_client_framed() {
    let upstream = RawUpstream::start(|_| {
        b"HTTP/1.1 200 OK\r\nconnection: content-length\r\ncontent-length: 5\r\n\r\nhello".to_vec()
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("GET /v2/models/mlp/x HTTP/1.1\r\nhost: router\r\n\r\n")
        .await;
    let head = client.response_head().await;
    // The router passes the 5 bytes on and keeps the connection: the client can only find the
    // end of the body from a length (or chunks, or a close announced in the head).
    assert!(
        head.has("content-length") || head.is_chunked() || head.lists("connection", "close"),
        "a keep-alive response with a body but no framing: {head:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// HEAD
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn answers_of_the_routers_own_to_head_have_no_body() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let health = client.get("HEAD", "/healthz").await;
    assert_eq!(health.status(), 200, "{:?}", health.head);
    // An error answer (unknown model) to HEAD.
    let unknown = client.get("HEAD", "/v2/models/nope/ready").await;
    assert_eq!(unknown.status(), 404, "{:?}", unknown.head);
    // Any body bytes after those heads are read as the start of this response.
    let next = client.get("GET", "/v2/models/mlp/after").await;
    assert_ok(&next, "/v2/models/mlp/after");
}

// ---------------------------------------------------------------------------------------------
// Request framing the router must refuse (RFC 9112 §6.3, §7.1)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_content_length_that_is_not_digits_gets_400() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    for value in ["+5", "\u{a0}5"] {
        let mut client = Client::connect(router.http_addr()).await;
        client
            .send(format!(
                "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
                 content-length: {value}\r\n\r\nhello"
            ))
            .await;
        let reply = client.response("POST").await;
        assert_bad_request(&reply, &format!("content-length {value:?}"));
    }
    assert!(
        upstream.raw().is_empty(),
        "forwarded: {:?}",
        String::from_utf8_lossy(&upstream.raw())
    );
}

#[tokio::test]
async fn chunked_bodies_with_malformed_lines_get_400_and_are_not_forwarded() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    for body in [
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5;ext\nhello\r\n0\r\n\r\n",
        "5 junk\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut client = Client::connect(router.http_addr()).await;
        client
            .send(format!(
                "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
                 transfer-encoding: chunked\r\n\r\n{body}"
            ))
            .await;
        let reply = client.response("POST").await;
        assert_bad_request(&reply, &format!("chunked body {body:?}"));
    }
    let raw = upstream.raw();
    assert!(
        find(&raw, b"hello").is_none(),
        "forwarded: {:?}",
        String::from_utf8_lossy(&raw)
    );
}

// ---------------------------------------------------------------------------------------------
// Keep-alive
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_close_in_a_second_field_line_closes_the_connection() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "GET /v2/models/mlp/bye HTTP/1.1\r\nhost: router\r\n\
             connection: keep-alive\r\nconnection: close, x-hop\r\nx-hop: 1\r\n\r\n",
        )
        .await;
    let reply = client.response("GET").await;
    assert_ok(&reply, "/v2/models/mlp/bye");
    let seen = upstream.requests();
    assert!(
        !seen[0].head.has("x-hop"),
        "a field named in Connection was forwarded: {:?}",
        seen[0].head
    );
    assert!(
        reply.head.lists("connection", "close"),
        "no close announced: {:?}",
        reply.head
    );
    assert!(client.closed().await, "the router closes the connection");
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_declared_body_over_the_limit_is_counted_once() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_with(Router::builder().max_body_bytes(1024), upstream.addr).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: 4096\r\n\r\n")
        .await;
    assert_eq!(client.response("POST").await.status(), 413);
    let mut client = Client::connect(router.http_addr()).await;
    let metrics = client.get("GET", "/metrics").await.text();
    let series = r#"kiln_router_responses_total{class="4xx",namespace="default",revision="mlp-1",service="mlp"}"#;
    let line = metrics
        .lines()
        .find(|line| line.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
    assert_eq!(line, format!("{series} 1"), "one request, one response");
}
