//! Start-up and shutdown of one predictor process.
//!
//! Order: when the format is given, listen first (health answers, inference gets 503
//! until the model is ready), then fetch and load. When the format must be detected, fetch
//! first, so that a model this binary cannot run is handed off before any port is bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_api::predictor_event::{PredictorEvent, ReadyFigures};
use kiln_storage::LocalModel;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::batcher::Worker;
use crate::config::PredictorArgs;
use crate::events;
use crate::layout::{LayoutError, ModelFormat, find_model};
use crate::runtime::{LoadError, Runtimes};
use crate::state::{LoadedModel, ServerState, SharedState};

/// Why the predictor could not start. Printed as one line before a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The model could not be fetched.
    #[error(transparent)]
    Storage(#[from] kiln_storage::StorageError),
    /// No servable model in what was fetched.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The runtime could not load the model.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Started by a supervisor that is already gone.
    #[error("{0}")]
    Orphaned(String),
    /// A server failed while running.
    #[error("server failed: {0}")]
    Serve(String),
}

/// How a predictor run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Served until asked to stop.
    Stopped,
    /// The model's format needs a runtime this binary does not carry; nothing was bound.
    HandOff(ModelFormat),
}

/// Runs the predictor until SIGINT or SIGTERM.
pub async fn run(args: PredictorArgs, runtimes: Runtimes) -> Result<Outcome, StartError> {
    crate::parent::follow_parent().map_err(StartError::Orphaned)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    run_until(args, runtimes, stop_rx).await
}

/// Runs the predictor until `stop` becomes true.
pub async fn run_until(
    args: PredictorArgs,
    runtimes: Runtimes,
    stop: watch::Receiver<bool>,
) -> Result<Outcome, StartError> {
    let cache_dir = args.cache_dir();
    let mut fetched: Option<(LocalModel, Duration)> = None;
    let format = match args.model_format {
        Some(format) => format,
        None => {
            let started = Instant::now();
            let local = kiln_storage::fetch(&args.storage_uri, &cache_dir).await?;
            let format = find_model(&local.dir, &args.model_name, None)?.format;
            fetched = Some((local, started.elapsed()));
            format
        }
    };
    if runtimes.get(format).is_none() {
        return Ok(Outcome::HandOff(format));
    }

    let state: SharedState = Arc::new(ServerState::new(
        args.model_name.clone(),
        args.max_body_bytes,
        args.batch_policy(),
    ));
    let http = bind(SocketAddr::new(args.bind, args.http_port)).await?;
    let grpc = bind(SocketAddr::new(args.bind, args.grpc_port)).await?;
    let http_port = http
        .local_addr()
        .map_err(|e| StartError::Serve(e.to_string()))?
        .port();
    let grpc_port = grpc
        .local_addr()
        .map_err(|e| StartError::Serve(e.to_string()))?
        .port();
    tracing::info!(http_port, grpc_port, model = %args.model_name, "listening");
    events::emit(&PredictorEvent::Listening {
        http_port,
        grpc_port,
    });

    let servers = tokio::spawn(serve(
        state.clone(),
        http,
        grpc,
        stop.clone(),
        args.drain_seconds,
    ));

    let (local, download) = match fetched {
        Some(done) => done,
        None => {
            let started = Instant::now();
            (
                kiln_storage::fetch(&args.storage_uri, &cache_dir).await?,
                started.elapsed(),
            )
        }
    };
    state.metrics.download_bytes.inc_by(local.downloaded_bytes);
    let layout = find_model(&local.dir, &args.model_name, Some(format))?;
    let load_started = Instant::now();
    let device = args.device;
    let loaded = tokio::task::spawn_blocking({
        let layout = layout.clone();
        move || {
            runtimes
                .get(format)
                .expect("checked above")
                .load(&layout, device)
        }
    })
    .await
    .map_err(|e| StartError::Serve(e.to_string()))??;
    let load = load_started.elapsed();
    state.metrics.load_seconds.set(load.as_secs_f64());
    let signature = loaded.signature().clone();
    let platform = loaded.platform();
    let worker = Worker::spawn(
        loaded,
        state.batch_policy,
        state.metrics.clone(),
        state.arrivals.clone(),
    );
    state.set_loaded(LoadedModel {
        worker,
        signature,
        platform,
        version: layout.version.clone().unwrap_or_else(|| "1".to_owned()),
    });
    tracing::info!(
        model = %args.model_name,
        file = %layout.model_file.display(),
        download_ms = download.as_millis() as u64,
        downloaded_bytes = local.downloaded_bytes,
        load_ms = load.as_millis() as u64,
        "ready"
    );
    events::emit(&PredictorEvent::Ready(ReadyFigures {
        load_ms: load.as_secs_f64() * 1000.0,
        download_ms: download.as_secs_f64() * 1000.0,
        downloaded_bytes: local.downloaded_bytes,
        cache_hit: local.cache_hit,
    }));

    servers
        .await
        .map_err(|e| StartError::Serve(e.to_string()))??;
    Ok(Outcome::Stopped)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

async fn serve(
    state: SharedState,
    http: TcpListener,
    grpc: TcpListener,
    stop: watch::Receiver<bool>,
    drain_seconds: u64,
) -> Result<(), StartError> {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    use axum::serve::ListenerExt;
    let http_server = axum::serve(
        http.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        // gRPC is also served on the HTTP port (recognised by its path and content type),
        // so that a router can reach both protocols through one endpoint.
        crate::http::router(state.clone()).route_service(
            "/inference.GRPCInferenceService/{*method}",
            crate::grpc::service(state.clone()),
        ),
    )
    .with_graceful_shutdown(stopped(stop.clone()));
    let grpc_server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(crate::grpc::service(state))
        // tonic ignores `tcp_nodelay` for a listener handed in: set it on the incoming stream,
        // or small gRPC answers wait out Nagle plus delayed ACKs (about 40 ms).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
            stopped(stop.clone()),
        );
    let both = async {
        let (h, g) = tokio::join!(async { http_server.await }, grpc_server);
        h.map_err(|e| StartError::Serve(e.to_string()))?;
        g.map_err(|e| StartError::Serve(e.to_string()))
    };
    // After the stop signal, in-flight requests get `drain_seconds` to finish.
    let deadline = async {
        stopped(stop).await;
        tokio::time::sleep(Duration::from_secs(drain_seconds)).await;
    };
    tokio::select! {
        result = both => result,
        _ = deadline => {
            tracing::warn!(drain_seconds, "in-flight requests did not finish in time; stopping");
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    if let Err(e) = kiln_api::shutdown::shutdown_signal().await {
        // Without handlers the process can only be killed; serve until then.
        tracing::error!(error = %e, "cannot install the SIGTERM handler");
        std::future::pending::<()>().await;
    }
    tracing::info!("stopping: finishing in-flight requests");
}
