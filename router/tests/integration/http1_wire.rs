//! HTTP/1.1 on the wire: raw bytes over loopback TCP, from a hand-driven client through the
//! router to a raw upstream, so that framing is under the test's control on both sides.
//!
//! What a correct HTTP/1.1 reverse proxy must do, checked byte for byte: keep-alive and
//! pipelining towards the client, pooled connections towards the upstream (and recovery when
//! the upstream closes an idle one), request and response bodies framed by Content-Length,
//! by chunks or by the end of the connection, bodiless answers (HEAD, 204), hop-by-hop headers
//! dropped and end-to-end ones kept, `Connection: close`, HTTP/1.0 clients,
//! `Expect: 100-continue`, and the router's own error answers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kiln_api::load::RevisionKey;
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

    /// The first value of header `name`.
    fn header(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// Every value of header `name`, in order.
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

    /// The method of a request head.
    fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or_default()
    }

    /// The request target (path and query) of a request head.
    fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or_default()
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad content-length {v:?}"))
        })
    }

    fn is_chunked(&self) -> bool {
        self.lists("transfer-encoding", "chunked")
    }
}

/// How a body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304).
    None,
    Length,
    Chunked,
    /// Read until the peer closed.
    Close,
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

    /// Reads more bytes into the buffer; `0` at the end of the stream. Cancel-safe.
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

    /// A chunked body, decoded (trailers are read and dropped).
    async fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunk size {line:?}: {e}"),
                )
            })?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exact(size).await?);
            let end = self.line().await?;
            if !end.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunk of {size} bytes not followed by CRLF: {end:?}"),
                ));
            }
        }
    }

    async fn until_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// The body of a request with `head`.
    async fn request_body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        if head.is_chunked() {
            self.chunked().await
        } else {
            self.exact(head.content_length().unwrap_or(0)).await
        }
    }

    /// The body of a response with `head` to a request with `method`.
    async fn response_body(&mut self, head: &Head, method: &str) -> io::Result<(Vec<u8>, Framing)> {
        let status = head.status();
        if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
            Ok((Vec::new(), Framing::None))
        } else if head.is_chunked() {
            Ok((self.chunked().await?, Framing::Chunked))
        } else if let Some(len) = head.content_length() {
            Ok((self.exact(len).await?, Framing::Length))
        } else {
            Ok((self.until_close().await?, Framing::Close))
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
    framing: Framing,
}

impl Reply {
    fn status(&self) -> u16 {
        self.head.status()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn revision(&self) -> Option<&str> {
        self.head.header("x-kiln-revision")
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

    /// Reads the next final response to a request with `method` (skipping `100 Continue`).
    async fn response(&mut self, method: &str) -> Reply {
        let read = async {
            loop {
                let head = self
                    .wire
                    .head()
                    .await?
                    .ok_or(io::ErrorKind::UnexpectedEof)?;
                if head.status() == 100 {
                    continue;
                }
                let (body, framing) = self.wire.response_body(&head, method).await?;
                return io::Result::Ok(Reply {
                    head,
                    body,
                    framing,
                });
            }
        };
        within("a response", read).await.expect("read a response")
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

/// What the upstream writes back, and what it does with the connection afterwards.
struct Answer {
    /// Written one after another, with `pause` between them.
    pieces: Vec<Vec<u8>>,
    pause: Duration,
    /// Close the connection this long after answering (`None`: keep it open).
    close_after: Option<Duration>,
}

impl Answer {
    /// Exactly these bytes.
    fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            pieces: vec![bytes.into()],
            pause: Duration::ZERO,
            close_after: None,
        }
    }

    /// `200 OK` with a Content-Length body and `x-up: 1`.
    fn ok(body: impl AsRef<[u8]>) -> Self {
        let body = body.as_ref();
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\nx-up: 1\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        Self::raw(bytes)
    }

    /// These bytes in pieces, `pause` apart.
    fn pieces(pieces: &[&[u8]], pause: Duration) -> Self {
        Self {
            pieces: pieces.iter().map(|p| p.to_vec()).collect(),
            pause,
            close_after: None,
        }
    }

    /// Closes the connection right after answering.
    fn then_close(self) -> Self {
        self.close_after(Duration::ZERO)
    }

    /// Closes the connection `delay` after answering.
    fn close_after(mut self, delay: Duration) -> Self {
        self.close_after = Some(delay);
        self
    }
}

/// The default answer: `200` echoing the request body, or the request target when it has none.
fn echo(request: &Received) -> Answer {
    if request.body.is_empty() {
        Answer::ok(request.head.target())
    } else {
        Answer::ok(&request.body)
    }
}

type Handler = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// The raw bytes received, one entry per connection.
    raw: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
    requests: Mutex<Vec<Received>>,
}

/// A raw HTTP/1.1 upstream: it parses each request's framing, records it, and writes back
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
    async fn start(handler: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Self {
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
        handler: &(dyn Fn(&Received) -> Answer + Send + Sync),
    ) -> io::Result<()> {
        while let Some(head) = wire.head().await? {
            if head.lists("expect", "100-continue") {
                wire.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            let body = wire.request_body(&head).await?;
            let request = Received { head, body };
            let answer = handler(&request);
            seen.requests.lock().push(request);
            for (i, piece) in answer.pieces.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(answer.pause).await;
                }
                wire.write(piece).await?;
            }
            if let Some(delay) = answer.close_after {
                tokio::time::sleep(delay).await;
                return Ok(());
            }
        }
        Ok(())
    }

    fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.requests.lock().clone()
    }

    /// The only request received so far.
    fn only_request(&self) -> Received {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "{requests:#?}");
        requests.into_iter().next().expect("one request")
    }

    /// Everything received on connection `index`, raw.
    fn raw(&self, index: usize) -> Vec<u8> {
        self.seen.raw.lock()[index].lock().clone()
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
    assert_eq!(reply.revision(), Some("mlp-1"), "{:?}", reply.head);
    assert!(
        reply.body == body.as_ref(),
        "body of {} bytes, expected {} bytes; starts {:?}",
        reply.body.len(),
        body.as_ref().len(),
        String::from_utf8_lossy(&reply.body[..reply.body.len().min(80)])
    );
}

/// `len` bytes of a pattern that makes shifted or dropped bytes visible.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 23) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn keep_alive_serves_several_requests_over_one_pooled_upstream_connection() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    for step in ["a", "b", "c"] {
        let target = format!("/v2/models/mlp/{step}");
        let reply = client.get("GET", &target).await;
        assert_ok(&reply, &target);
    }
    assert_eq!(upstream.requests().len(), 3);
    assert_eq!(
        upstream.connections(),
        1,
        "the upstream connection is reused"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "GET /v2/models/mlp/first HTTP/1.1\r\nhost: router\r\n\r\n\
             POST /v2/models/mlp/second HTTP/1.1\r\nhost: router\r\ncontent-length: 6\r\n\r\nsecond",
        )
        .await;
    assert_ok(&client.response("GET").await, "/v2/models/mlp/first");
    assert_ok(&client.response("POST").await, "second");
}

#[tokio::test]
async fn upstream_closing_an_idle_pooled_connection_does_not_fail_the_next_request() {
    let upstream =
        RawUpstream::start(|request| echo(request).close_after(Duration::from_millis(50))).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/1").await,
        "/v2/models/mlp/1",
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/2").await,
        "/v2/models/mlp/2",
    );
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn connection_close_from_the_client_closes_after_the_answer() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("GET /v2/models/mlp/bye HTTP/1.1\r\nhost: router\r\nconnection: close\r\n\r\n")
        .await;
    assert_ok(&client.response("GET").await, "/v2/models/mlp/bye");
    assert!(client.closed().await, "the router closes the connection");
    assert_eq!(upstream.only_request().head.target(), "/v2/models/mlp/bye");
}

#[tokio::test]
async fn http10_clients_get_an_http1_answer_and_a_close() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("GET /v2/models/mlp/ready HTTP/1.0\r\n\r\n")
        .await;
    let reply = client.response("GET").await;
    assert!(reply.head.start.starts_with("HTTP/1."), "{:?}", reply.head);
    assert!(
        reply.framing != Framing::Chunked,
        "no chunked answer to HTTP/1.0"
    );
    assert_ok(&reply, "/v2/models/mlp/ready");
    assert!(client.closed().await, "the router closes the connection");
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn content_length_request_bodies_arrive_byte_exact() {
    let upstream = RawUpstream::start(|request| Answer::ok(request.body.len().to_string())).await;
    let router = router_to(&upstream).await;
    let body = pattern(100 * 1024);
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(format!(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ))
        .await;
    client.send(&body).await;
    assert_ok(&client.response("POST").await, body.len().to_string());
    assert!(upstream.only_request().body == body, "the body is intact");
}

#[tokio::test]
async fn chunked_request_bodies_arrive_complete() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             transfer-encoding: chunked\r\n\r\n",
        )
        .await;
    // Chunks sent in pieces, one of them split inside its data and one inside its size line.
    let pieces: [&[u8]; 6] = [
        b"5\r\nhello\r\n",
        b"6\r\n world\r\n",
        b"a\r\n0123",
        b"456789\r\n1",
        b"0\r\n-0123456789abcde\r\n",
        b"0\r\n\r\n",
    ];
    for piece in pieces {
        client.send(piece).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected = "hello world0123456789-0123456789abcde";
    assert_ok(&client.response("POST").await, expected);
    assert_eq!(upstream.only_request().body, expected.as_bytes());
}

#[tokio::test]
async fn expect_100_continue_gets_the_body_through() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             expect: 100-continue\r\ncontent-length: 9\r\n\r\n",
        )
        .await;
    // Like curl: wait up to a second for `100 Continue`, then send the body anyway.
    let interim = tokio::time::timeout(Duration::from_secs(1), client.wire.head()).await;
    if let Ok(head) = interim {
        let head = head
            .expect("read an interim response")
            .expect("the router closed the connection");
        assert_eq!(
            head.status(),
            100,
            "no final answer before the body: {head:?}"
        );
    }
    client.send("continued").await;
    assert_ok(&client.response("POST").await, "continued");
    assert_eq!(upstream.only_request().body, b"continued");
}

// ---------------------------------------------------------------------------------------------
// Response bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn chunked_response_bodies_come_back_decoded_and_keep_the_connection() {
    let upstream = RawUpstream::start(|_| {
        Answer::pieces(
            &[
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nalpha-\r\n",
                b"5\r\nbeta-\r\n",
                b"5\r\ngamma\r\n",
                b"0\r\n\r\n",
            ],
            Duration::from_millis(10),
        )
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    for _ in 0..2 {
        let reply = client.get("GET", "/v2/models/mlp/stream").await;
        assert_ok(&reply, "alpha-beta-gamma");
    }
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn close_delimited_response_bodies_come_back_complete() {
    let body = pattern(20 * 1024);
    let upstream = RawUpstream::start({
        let body = body.clone();
        move |_| {
            let mut bytes = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n".to_vec();
            bytes.extend_from_slice(&body);
            Answer::raw(bytes).then_close()
        }
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("GET", "/v2/models/mlp/all").await;
    assert_ok(&reply, &body);
    // The closed upstream connection is not handed out again.
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(&client.get("GET", "/v2/models/mlp/again").await, &body);
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn head_answers_have_no_body_and_keep_the_connection() {
    let upstream = RawUpstream::start(|request| {
        if request.head.method() == "HEAD" {
            Answer::raw("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        } else {
            Answer::ok("hello")
        }
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let head = client.get("HEAD", "/v2/models/mlp/ready").await;
    assert_ok(&head, "");
    if let Some(length) = head.head.header("content-length") {
        assert_eq!(
            length, "5",
            "a HEAD answer keeps the length of the GET answer"
        );
    }
    // Any body bytes after the HEAD answer would garble this one.
    assert_ok(&client.get("GET", "/v2/models/mlp/ready").await, "hello");
}

#[tokio::test]
async fn no_content_answers_pass_through_and_keep_the_connection() {
    let upstream = RawUpstream::start(|request| {
        if request.head.method() == "DELETE" {
            Answer::raw("HTTP/1.1 204 No Content\r\nx-up: 1\r\n\r\n")
        } else {
            echo(request)
        }
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("DELETE", "/v2/models/mlp/state").await;
    assert_eq!(reply.status(), 204, "{:?}", reply.head);
    assert_eq!(reply.head.header("x-up"), Some("1"));
    assert!(
        !reply.head.has("transfer-encoding"),
        "no transfer-encoding on 204: {:?}",
        reply.head
    );
    let next = client.get("GET", "/v2/models/mlp/after").await;
    assert_ok(&next, "/v2/models/mlp/after");
}

#[tokio::test]
async fn large_responses_stream_back_complete() {
    let body = pattern(1024 * 1024);
    let upstream = RawUpstream::start({
        let body = body.clone();
        move |_| Answer::ok(&body)
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("GET", "/v2/models/mlp/big").await;
    assert_ok(&reply, &body);
}

// ---------------------------------------------------------------------------------------------
// Heads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn method_target_and_end_to_end_headers_arrive_unchanged() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "POST /v2/models/mlp/infer?x=1&y=2 HTTP/1.1\r\nhost: router\r\n\
             content-type: application/json\r\nauthorization: Bearer s3cr3t\r\n\
             X-Custom-Thing: Mixed Case, commas; and=signs\r\nx-multi: a\r\nx-multi: b\r\n\
             content-length: 2\r\n\r\n{}",
        )
        .await;
    assert_ok(&client.response("POST").await, "{}");
    let request = upstream.only_request();
    assert_eq!(
        request.head.start,
        "POST /v2/models/mlp/infer?x=1&y=2 HTTP/1.1"
    );
    let head = &request.head;
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(head.header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(
        head.header("x-custom-thing"),
        Some("Mixed Case, commas; and=signs")
    );
    assert_eq!(head.all("x-multi").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(head.header("content-length"), Some("2"));
    assert_eq!(request.body, b"{}");
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let upstream = RawUpstream::start(|request| {
        let mut answer = echo(request);
        // `echo` already sends `x-up: 1`; add a hop-by-hop header the client must not see.
        let bytes = &mut answer.pieces[0];
        let at = find(bytes, b"\r\n").expect("status line") + 2;
        bytes.splice(
            at..at,
            b"connection: x-up-hop\r\nx-up-hop: 1\r\n".iter().copied(),
        );
        answer
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "GET /v2/models/mlp/hops HTTP/1.1\r\nhost: router\r\n\
             connection: keep-alive, x-drop-me\r\nx-drop-me: 1\r\nkeep-alive: timeout=5\r\n\
             x-keep-me: 1\r\n\r\n",
        )
        .await;
    let reply = client.response("GET").await;
    assert_ok(&reply, "/v2/models/mlp/hops");
    assert_eq!(reply.head.header("x-up"), Some("1"));
    assert!(!reply.head.has("x-up-hop"), "{:?}", reply.head);

    let seen = upstream.only_request().head;
    assert_eq!(seen.header("x-keep-me"), Some("1"));
    assert!(!seen.has("x-drop-me"), "{seen:?}");
    assert!(!seen.has("keep-alive"), "{seen:?}");
    assert!(!seen.lists("connection", "x-drop-me"), "{seen:?}");
    let raw = String::from_utf8_lossy(&upstream.raw(0)).to_ascii_lowercase();
    assert!(!raw.contains("x-drop-me"), "{raw}");

    // The client connection is still good.
    let again = client.get("GET", "/v2/models/mlp/again").await;
    assert_ok(&again, "/v2/models/mlp/again");
}

// ---------------------------------------------------------------------------------------------
// The router's own answers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_models_get_a_json_404_and_keep_the_connection() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("GET", "/v2/models/nope/ready").await;
    assert_eq!(reply.status(), 404, "{:?}", reply.head);
    assert!(reply.json()["error"].is_string(), "{}", reply.text());
    // An answer of the router's own carries a Date, as an origin server's must.
    assert!(reply.head.header("date").is_some(), "{:?}", reply.head);
    assert_ok(
        &client.get("GET", "/v2/models/mlp/ready").await,
        "/v2/models/mlp/ready",
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn garbage_request_lines_get_400_and_the_router_keeps_serving() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client.send("HELLO\r\n\r\n").await;
    let answer = within("an answer to garbage", client.wire.head()).await;
    if let Ok(Some(head)) = answer {
        assert_eq!(head.status(), 400, "{head:?}");
    }
    // Otherwise the router just closed (or reset) the connection, which is fine too.
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/ready").await,
        "/v2/models/mlp/ready",
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "the garbage was not forwarded"
    );
}

#[tokio::test]
async fn declared_bodies_over_the_limit_get_a_json_413() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_with(Router::builder().max_body_bytes(1024), upstream.addr).await;
    let mut client = Client::connect(router.http_addr()).await;
    // The head alone: the router refuses on the declared length without reading a byte.
    client
        .send("POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: 4096\r\n\r\n")
        .await;
    let reply = client.response("POST").await;
    assert_eq!(reply.status(), 413, "{:?}", reply.head);
    assert!(reply.json()["error"].is_string(), "{}", reply.text());
    assert!(
        upstream.requests().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_get_a_json_413() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_with(Router::builder().max_body_bytes(1024), upstream.addr).await;
    let mut client = Client::connect(router.http_addr()).await;
    // No declared length: the router counts the chunks as they pass and stops at the limit.
    client
        .send(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             transfer-encoding: chunked\r\n\r\n",
        )
        .await;
    let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
    client.send(&chunk).await;
    client.send(&chunk).await;
    let reply = client.response("POST").await;
    assert_eq!(reply.status(), 413, "{:?}", reply.head);
    assert!(reply.json()["error"].is_string(), "{}", reply.text());
}

#[tokio::test]
async fn forwarded_answers_without_a_date_get_one() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    // `echo` answers with `Answer::ok`, which has no Date field.
    let reply = client.get("GET", "/v2/models/mlp/ready").await;
    assert_ok(&reply, "/v2/models/mlp/ready");
    assert!(reply.head.header("date").is_some(), "{:?}", reply.head);
}

#[tokio::test]
async fn a_body_that_arrives_while_its_request_waits_reaches_the_upstream_whole() {
    let upstream = RawUpstream::start(echo).await;
    let router = Router::builder().build().expect("build the router");
    let table = router.table();
    table
        .upsert_service(ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100)))
        .expect("add the service");
    let router = router.start().await.expect("start the router");
    let body = pattern(3000);
    let mut client = Client::connect(router.http_addr()).await;
    // No endpoint yet: the request waits in the activator while its body keeps coming, more
    // of it than the connection's small buffer holds.
    let head = format!(
        "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    client.send(head).await;
    client.send(&body[..500]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send(&body[500..]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    table
        .set_endpoints(&RevisionKey::new("default", "mlp-1"), vec![upstream.addr])
        .expect("publish the endpoint");
    assert_ok(&client.response("POST").await, &body);
    assert_eq!(upstream.only_request().body, body);
    // The connection goes on with the next request.
    assert_ok(
        &client.get("GET", "/v2/models/mlp/ready").await,
        "/v2/models/mlp/ready",
    );
}
