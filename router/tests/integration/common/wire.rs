//! HTTP/1.1 on the wire, for the tests that drive raw bytes through the router: a hand-driven
//! client, a raw upstream that records what it receives and answers byte for byte, and a
//! router serving model `mlp` from such an upstream.

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
pub const STEP: Duration = Duration::from_secs(2);

/// Awaits `future`, failing the test if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

// ---------------------------------------------------------------------------------------------
// Reading HTTP/1.1 messages by hand
// ---------------------------------------------------------------------------------------------

/// A message head: the start line and the header fields (names lowercased, values trimmed).
#[derive(Debug, Clone)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn parse(bytes: &[u8]) -> io::Result<Self> {
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
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// Every value of header `name`, in order.
    pub fn all<'h>(&'h self, name: &str) -> impl Iterator<Item = &'h str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether a comma-separated header such as `Connection` lists `token`.
    pub fn lists(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The status code of a response head.
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {:?}", self.start))
    }

    /// The method of a request head.
    pub fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or_default()
    }

    /// The request target (path and query) of a request head.
    pub fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or_default()
    }

    /// Strictly `1*DIGIT`, as RFC 9112 has it.
    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length").map(|v| {
            assert!(
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
                "bad content-length {v:?}"
            );
            v.parse().expect("content-length")
        })
    }

    pub fn is_chunked(&self) -> bool {
        self.lists("transfer-encoding", "chunked")
    }
}

/// How a body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304).
    None,
    Length,
    Chunked,
    /// Read until the peer closed.
    Close,
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A TCP stream with a read buffer; it can log every byte it reads.
pub struct Wire {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    pub log: Option<Arc<Mutex<Vec<u8>>>>,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            log: None,
        }
    }

    /// Reads more bytes into the buffer; `0` at the end of the stream. Cancel-safe.
    pub async fn fill(&mut self) -> io::Result<usize> {
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
    pub async fn head(&mut self) -> io::Result<Option<Head>> {
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

    pub async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            self.fill_or_eof().await?;
        }
    }

    pub async fn exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            self.fill_or_eof().await?;
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// A chunked body, decoded strictly (trailers are read and dropped).
    pub async fn chunked(&mut self) -> io::Result<Vec<u8>> {
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
                return Err(invalid(format!(
                    "chunk of {size} bytes not followed by CRLF: {end:?}"
                )));
            }
        }
    }

    pub async fn until_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// The body of a request with `head`.
    pub async fn request_body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        if head.is_chunked() {
            self.chunked().await
        } else {
            self.exact(head.content_length().unwrap_or(0)).await
        }
    }

    /// The body of a response with `head` to a request with `method`.
    pub async fn response_body(
        &mut self,
        head: &Head,
        method: &str,
    ) -> io::Result<(Vec<u8>, Framing)> {
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

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }
}

// ---------------------------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------------------------

/// A response as it came off the wire.
pub struct Reply {
    pub head: Head,
    pub body: Vec<u8>,
    pub framing: Framing,
}

impl Reply {
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn revision(&self) -> Option<&str> {
        self.head.header("x-kiln-revision")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// One client connection to the router, driven by hand.
pub struct Client {
    pub wire: Wire,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within("connecting", TcpStream::connect(addr))
            .await
            .expect("connect");
        Self {
            wire: Wire::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        within("writing", self.wire.write(bytes.as_ref()))
            .await
            .expect("write");
    }

    /// The next response head, checked to start with an HTTP/1.1 status line.
    async fn checked_head(&mut self) -> Head {
        let head = self
            .wire
            .head()
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

    /// The next response head, checked to start with an HTTP/1.1 status line.
    pub async fn response_head(&mut self) -> Head {
        within("a response head", self.checked_head()).await
    }

    /// Reads the next response to a request with `method`, its head checked to start with an
    /// HTTP/1.1 status line.
    pub async fn response(&mut self, method: &str) -> Reply {
        let read = async {
            let head = self.checked_head().await;
            let (body, framing) = self
                .wire
                .response_body(&head, method)
                .await
                .expect("read a response body");
            Reply {
                head,
                body,
                framing,
            }
        };
        within("a response", read).await
    }

    /// Reads the next final response to a request with `method`, skipping `100 Continue` and
    /// taking any start line (an HTTP/1.0 request may get an HTTP/1.0 answer).
    pub async fn final_response(&mut self, method: &str) -> Reply {
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
    pub async fn get(&mut self, method: &str, target: &str) -> Reply {
        self.send(format!(
            "{method} {target} HTTP/1.1\r\nhost: router\r\n\r\n"
        ))
        .await;
        self.response(method).await
    }

    /// Whether the router closes the connection (a clean end or a reset) within [`STEP`].
    pub async fn closed(&mut self) -> bool {
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
pub struct Received {
    pub head: Head,
    pub body: Vec<u8>,
}

/// What the upstream writes back, and what it does with the connection afterwards.
pub struct Answer {
    /// Written one after another, with `pause` between them.
    pub pieces: Vec<Vec<u8>>,
    pub pause: Duration,
    /// Close the connection this long after answering (`None`: keep it open).
    pub close_after: Option<Duration>,
}

impl Answer {
    /// Exactly these bytes.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            pieces: vec![bytes.into()],
            pause: Duration::ZERO,
            close_after: None,
        }
    }

    /// `200 OK` with a Content-Length body and `x-up: 1`.
    pub fn ok(body: impl AsRef<[u8]>) -> Self {
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
    pub fn pieces(pieces: &[&[u8]], pause: Duration) -> Self {
        Self {
            pieces: pieces.iter().map(|p| p.to_vec()).collect(),
            pause,
            close_after: None,
        }
    }

    /// Closes the connection right after answering.
    pub fn then_close(self) -> Self {
        self.close_after(Duration::ZERO)
    }

    /// Closes the connection `delay` after answering.
    pub fn close_after(mut self, delay: Duration) -> Self {
        self.close_after = Some(delay);
        self
    }
}

/// The default answer: `200` echoing the request body, or the request target when it has none.
pub fn echo(request: &Received) -> Answer {
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

/// A raw HTTP/1.1 upstream: it frames each request strictly, records it, and writes back
/// whatever its handler says, byte for byte.
pub struct RawUpstream {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    pub async fn start(handler: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Self {
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

    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.seen.requests.lock().clone()
    }

    /// The only request received so far.
    pub fn only_request(&self) -> Received {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "{requests:#?}");
        requests.into_iter().next().expect("one request")
    }

    /// Everything received on connection `index`, raw.
    pub fn raw(&self, index: usize) -> Vec<u8> {
        self.seen.raw.lock()[index].lock().clone()
    }

    /// Everything received, raw, on all connections.
    pub fn raw_all(&self) -> Vec<u8> {
        let raw = self.seen.raw.lock();
        raw.iter().flat_map(|log| log.lock().clone()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The router
// ---------------------------------------------------------------------------------------------

/// A router serving model `mlp` (revision `mlp-1`) from `upstream`.
pub async fn router_with(builder: RouterBuilder, upstream: SocketAddr) -> RunningRouter {
    let router = builder.build().expect("build the router");
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([upstream])),
        )
        .expect("add the service");
    router.start().await.expect("start the router")
}

/// A default router serving model `mlp` (revision `mlp-1`) from `upstream`.
pub async fn router_to(upstream: &RawUpstream) -> RunningRouter {
    router_with(Router::builder(), upstream.addr).await
}

/// Asserts a proxied `200` with exactly `body`.
#[track_caller]
pub fn assert_ok(reply: &Reply, body: impl AsRef<[u8]>) {
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

/// Asserts an answer of the router's own: `status` with a JSON `{"error": ...}` body.
#[track_caller]
pub fn assert_json_error(reply: &Reply, status: u16, what: &str) {
    assert_eq!(
        reply.status(),
        status,
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

/// `len` bytes of a pattern that makes shifted or dropped bytes visible.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 23) as u8).collect()
}
