//! `kiln router`: the router on its own, fed by a watched routes file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::builder::{DEFAULT_MAX_BODY_BYTES, DEFAULT_QUEUE_DEPTH, Router};
use crate::error::RouterError;
use crate::routes_file::{self, parse_duration};

/// Flags of `kiln router`.
#[derive(Debug, Clone, clap::Args)]
pub struct RouterArgs {
    /// The routes file (YAML); watched, changes apply without dropping requests.
    #[arg(long, env = "KILN_ROUTER_ROUTES")]
    pub routes: PathBuf,
    /// Port of the HTTP listener (HTTP/1.1, h2c, and gRPC too).
    #[arg(long, env = "KILN_ROUTER_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// Port of the gRPC listener (0 picks one; gRPC is served on the HTTP port as well).
    #[arg(long, env = "KILN_ROUTER_GRPC_PORT", default_value_t = 8081)]
    pub grpc_port: u16,
    /// Address to listen on.
    #[arg(long, env = "KILN_ROUTER_ADDRESS", default_value = "0.0.0.0")]
    pub address: IpAddr,
    /// Domain of service hosts `{name}.{namespace}.{domain}` (and `{tag}-{name}...`).
    #[arg(long, env = "KILN_ROUTER_DOMAIN", default_value = "example.com")]
    pub domain: String,
    /// Most requests each revision holds in its activator queue (503 beyond).
    #[arg(long, env = "KILN_ROUTER_QUEUE_DEPTH", default_value_t = DEFAULT_QUEUE_DEPTH)]
    pub queue_depth: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "KILN_ROUTER_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: u64,
    /// Timeout of services that name none (e.g. 300s, 5m).
    #[arg(long, env = "KILN_ROUTER_DEFAULT_TIMEOUT", value_parser = parse_duration, default_value = "300s")]
    pub default_timeout: Duration,
    /// How long a client may take to send its request head.
    #[arg(long, env = "KILN_ROUTER_HEADER_READ_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub header_read_timeout: Duration,
    /// How long a request body may stall between chunks.
    #[arg(long, env = "KILN_ROUTER_BODY_READ_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub body_read_timeout: Duration,
    /// How often the routes file is checked for changes.
    #[arg(long, env = "KILN_ROUTER_RELOAD_INTERVAL", value_parser = parse_duration, default_value = "1s")]
    pub reload_interval: Duration,
    /// How long shutdown waits for in-flight requests.
    #[arg(long, env = "KILN_ROUTER_DRAIN_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
}

/// Raises the open-file soft limit to the hard limit (held requests need sockets).
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            None
        }
    }
}

/// Runs the router until SIGINT or SIGTERM, then drains.
pub async fn run(args: RouterArgs) -> Result<(), RouterError> {
    if let Some(limit) = raise_open_file_limit() {
        tracing::info!(limit, "open-file limit");
    }
    let router = Router::builder()
        .http_addr(SocketAddr::new(args.address, args.http_port))
        .grpc_addr(SocketAddr::new(args.address, args.grpc_port))
        .domain(args.domain.clone())
        .queue_depth(args.queue_depth)
        .max_body_bytes(args.max_body_bytes)
        .header_read_timeout(args.header_read_timeout)
        .body_read_timeout(args.body_read_timeout)
        .drain_timeout(args.drain_timeout)
        .build()?;
    let table = router.table();
    routes_file::apply(&args.routes, &table, args.default_timeout)?;
    let running = router.start().await?;
    tracing::info!(
        http = %running.http_addr(),
        grpc = ?running.grpc_addr(),
        routes = %args.routes.display(),
        "router listening"
    );
    let watcher = tokio::spawn(routes_file::watch(
        args.routes.clone(),
        table,
        args.reload_interval,
        args.default_timeout,
    ));
    wait_for_signal().await?;
    tracing::info!("draining");
    watcher.abort();
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> Result<(), RouterError> {
    kiln_api::shutdown::shutdown_signal()
        .await
        .map_err(RouterError::Signal)
}
