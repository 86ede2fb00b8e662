//! Assembling a router: [`RouterBuilder`] → [`Router`] (table ready to fill) →
//! [`RunningRouter`] (bound, serving; reports its addresses; drains on shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kiln_api::load::{Activation, LoadSample, LoadSink, RevisionKey};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::app::App;
use crate::balance::Rng;
use crate::error::RouterError;
use crate::http;
use crate::metrics::Metrics;
use crate::revision::Shared;
use crate::stats;
use crate::table::TableHandle;

/// Default depth of each revision's activator queue.
pub const DEFAULT_QUEUE_DEPTH: usize = 10_000;
/// Default request body limit (64 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 << 20;

/// Discards samples and pokes (a router with no autoscaler).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl LoadSink for Discard {
    fn record(&self, _sample: LoadSample) {}
}

impl Activation for Discard {
    fn poke(&self, _revision: &RevisionKey) {}
}

/// Configures a router.
pub struct RouterBuilder {
    http_addr: SocketAddr,
    grpc_addr: Option<SocketAddr>,
    domain: String,
    queue_depth: usize,
    max_body_bytes: u64,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    sample_interval: Duration,
    backoff: Duration,
    drain_timeout: Duration,
    seed: Option<u64>,
    load_sink: Arc<dyn LoadSink>,
    activation: Arc<dyn Activation>,
}

impl std::fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("http_addr", &self.http_addr)
            .field("grpc_addr", &self.grpc_addr)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Default for RouterBuilder {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_addr: None,
            domain: "example.com".into(),
            queue_depth: DEFAULT_QUEUE_DEPTH,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            sample_interval: Duration::from_secs(1),
            backoff: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            seed: None,
            load_sink: Arc::new(Discard),
            activation: Arc::new(Discard),
        }
    }
}

impl RouterBuilder {
    /// Address of the HTTP listener (HTTP/1.1, h2c and gRPC); port 0 picks one.
    /// Default `127.0.0.1:0`.
    pub fn http_addr(mut self, addr: SocketAddr) -> Self {
        self.http_addr = addr;
        self
    }

    /// Address of a separate gRPC listener (gRPC is also served on the HTTP listener).
    pub fn grpc_addr(mut self, addr: SocketAddr) -> Self {
        self.grpc_addr = Some(addr);
        self
    }

    /// The domain of hosts `{name}.{namespace}.{domain}`. Default `example.com`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = domain.into();
        self
    }

    /// Most requests each revision holds waiting. Default 10,000.
    pub fn queue_depth(mut self, depth: usize) -> Self {
        self.queue_depth = depth;
        self
    }

    /// Largest request body accepted (413 beyond). Default 64 MiB.
    pub fn max_body_bytes(mut self, limit: u64) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// How long a client may take to send its request head. Default 30 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a request body may stall between chunks. Default 30 s.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// How often load samples are cut. Default 1 s.
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval;
        self
    }

    /// How long an endpoint that refused a connection is skipped. Default 1 s.
    pub fn connect_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long shutdown waits for in-flight requests. Default 30 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Seeds the random source of weights and balancing (for reproducible tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Where load samples go (one per revision per sample interval).
    pub fn load_sink(mut self, sink: Arc<dyn LoadSink>) -> Self {
        self.load_sink = sink;
        self
    }

    /// Who is poked when a request starts waiting for a revision with no ready endpoint.
    pub fn activation(mut self, activation: Arc<dyn Activation>) -> Self {
        self.activation = activation;
        self
    }

    /// Builds the router with an empty table. Needs a Tokio runtime only to start.
    pub fn build(self) -> Result<Router, RouterError> {
        let shared = Arc::new(Shared {
            rng: self.seed.map_or_else(Rng::from_entropy, Rng::seeded),
            activation: self.activation.clone(),
            queue_depth: self.queue_depth,
            backoff: self.backoff,
            epoch: Instant::now(),
            metrics: Metrics::new()?,
        });
        let table = TableHandle::new(shared);
        Ok(Router {
            table,
            builder: self,
        })
    }
}

/// A router that is configured but not yet listening.
#[derive(Debug)]
pub struct Router {
    table: TableHandle,
    builder: RouterBuilder,
}

impl Router {
    /// Starts configuring a router.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// The routing table, to fill before or after starting.
    pub fn table(&self) -> TableHandle {
        self.table.clone()
    }

    /// Binds the listeners and starts serving and sampling.
    pub async fn start(self) -> Result<RunningRouter, RouterError> {
        let b = self.builder;
        let bind =
            |addr: SocketAddr| listen(addr).map_err(|source| RouterError::Bind { addr, source });
        let http_listener = bind(b.http_addr)?;
        let grpc_listener = match b.grpc_addr {
            Some(addr) => Some(bind(addr)?),
            None => None,
        };
        let local = |l: &TcpListener, addr| {
            l.local_addr()
                .map_err(|source| RouterError::Bind { addr, source })
        };
        let http_addr = local(&http_listener, b.http_addr)?;
        let grpc_addr = match (&grpc_listener, b.grpc_addr) {
            (Some(l), Some(addr)) => Some(local(l, addr)?),
            _ => None,
        };
        let app = Arc::new(App {
            table: self.table.clone(),
            domain_suffix: format!(".{}", b.domain.trim_start_matches('.')),
            max_body: b.max_body_bytes,
            body_read_timeout: b.body_read_timeout,
            header_read_timeout: b.header_read_timeout,
        });
        let (stop, stopped) = watch::channel(false);
        let mut servers = vec![tokio::spawn(http::serve(
            http_listener,
            app.clone(),
            stopped.clone(),
            b.drain_timeout,
        ))];
        if let Some(listener) = grpc_listener {
            servers.push(tokio::spawn(http::serve(
                listener,
                app,
                stopped,
                b.drain_timeout,
            )));
        }
        let sampler = tokio::spawn(stats::sample_loop(
            self.table.clone(),
            b.load_sink,
            b.sample_interval,
        ));
        Ok(RunningRouter {
            http_addr,
            grpc_addr,
            table: self.table,
            stop,
            servers,
            sampler,
        })
    }
}

/// A router that is serving.
#[derive(Debug)]
pub struct RunningRouter {
    http_addr: SocketAddr,
    grpc_addr: Option<SocketAddr>,
    table: TableHandle,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    sampler: JoinHandle<()>,
}

impl RunningRouter {
    /// The bound HTTP address (HTTP/1.1, h2c, and gRPC too).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound gRPC address, when a separate one was asked for.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// The routing table.
    pub fn table(&self) -> TableHandle {
        self.table.clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), stops
    /// sampling.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        self.sampler.abort();
    }
}

/// Connections the kernel completes and queues for each listener before the router accepts
/// them (capped by `net.core.somaxconn`). A cold start brings a burst of new connections that
/// the activator holds; with the usual 128 the rest of the burst had its handshakes dropped and
/// retried a second later.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
