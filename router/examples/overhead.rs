//! Router overhead benchmark: the pieces that `benches/router/run.sh` pins to cores.
//!
//! - `overhead upstream --http-port P --grpc-port Q`: trivial upstreams that answer at once
//!   (HTTP/1.1 `ok`, gRPC ModelInfer echo).
//! - `overhead router --routes FILE ...`: the router, exactly as `kiln router` runs it.
//! - `overhead load --url URL --concurrency C --seconds S [--pids P,Q]`: a closed-loop
//!   HTTP/1.1 keep-alive load generator; prints one JSON line with p50/p99, throughput and
//!   the CPU time the processes in `--pids` spent per request during the measurement.
//! - `overhead load-grpc --addr HOST:PORT --model M ...`: the same over gRPC ModelInfer.
//! - `overhead hold --url URL --count N --metrics URL`: holds N requests waiting on a cold
//!   revision and prints once the router reports them all queued.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use kiln_api::protocol::grpc as pb;
use tokio::time::Instant;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trivial upstreams.
    Upstream {
        /// HTTP/1.1 port.
        #[arg(long)]
        http_port: u16,
        /// gRPC port.
        #[arg(long)]
        grpc_port: u16,
    },
    /// The router.
    Router(kiln_router::cli::RouterArgs),
    /// HTTP/1.1 closed-loop load.
    Load(LoadArgs),
    /// gRPC closed-loop load.
    LoadGrpc(LoadArgs),
    /// Hold requests waiting on a cold revision.
    Hold {
        /// The URL to request (HTTP/1.1).
        #[arg(long)]
        url: String,
        /// Requests to hold.
        #[arg(long)]
        count: usize,
        /// The router's /metrics URL, polled until the queue holds them all.
        #[arg(long)]
        metrics: String,
        /// Send them as HTTP/2 streams over this many connections (0: one HTTP/1.1
        /// connection per request).
        #[arg(long, default_value_t = 0)]
        http2_connections: usize,
    },
}

#[derive(clap::Args)]
struct LoadArgs {
    /// `http://host:port/path` for HTTP; `host:port` for gRPC.
    #[arg(long)]
    url: String,
    /// Model name (gRPC).
    #[arg(long, default_value = "echo")]
    model: String,
    /// Requests in flight at once (one connection each for HTTP).
    #[arg(long)]
    concurrency: usize,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Processes whose CPU time is measured (comma-separated pids).
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Label printed with the figures.
    #[arg(long, default_value = "")]
    label: String,
    /// POST this file's contents (as JSON) instead of an empty GET (HTTP only).
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    match cli.command {
        Command::Router(args) => {
            // As `kiln router` runs it: a multi-thread runtime, one worker per allowed CPU;
            // OVERHEAD_RUNTIME=current-thread compares a single-threaded runtime.
            let runtime = if std::env::var("OVERHEAD_RUNTIME").as_deref() == Ok("current-thread") {
                current_thread()?
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
            };
            runtime.block_on(kiln_router::cli::run(args))?;
        }
        Command::Upstream {
            http_port,
            grpc_port,
        } => current_thread()?.block_on(upstream(http_port, grpc_port))?,
        Command::Load(args) => current_thread()?.block_on(load(args, false))?,
        Command::LoadGrpc(args) => current_thread()?.block_on(load(args, true))?,
        Command::Hold {
            url,
            count,
            metrics,
            http2_connections,
        } => current_thread()?.block_on(hold(url, count, metrics, http2_connections))?,
    }
    Ok(())
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

struct Echo;

#[tonic::async_trait]
impl pb::grpc_inference_service_server::GrpcInferenceService for Echo {
    async fn server_live(
        &self,
        _: tonic::Request<pb::ServerLiveRequest>,
    ) -> Result<tonic::Response<pb::ServerLiveResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::ServerLiveResponse { live: true }))
    }
    async fn server_ready(
        &self,
        _: tonic::Request<pb::ServerReadyRequest>,
    ) -> Result<tonic::Response<pb::ServerReadyResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::ServerReadyResponse {
            ready: true,
        }))
    }
    async fn model_ready(
        &self,
        _: tonic::Request<pb::ModelReadyRequest>,
    ) -> Result<tonic::Response<pb::ModelReadyResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::ModelReadyResponse { ready: true }))
    }
    async fn server_metadata(
        &self,
        _: tonic::Request<pb::ServerMetadataRequest>,
    ) -> Result<tonic::Response<pb::ServerMetadataResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn model_metadata(
        &self,
        _: tonic::Request<pb::ModelMetadataRequest>,
    ) -> Result<tonic::Response<pb::ModelMetadataResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn model_infer(
        &self,
        request: tonic::Request<pb::ModelInferRequest>,
    ) -> Result<tonic::Response<pb::ModelInferResponse>, tonic::Status> {
        let request = request.into_inner();
        Ok(tonic::Response::new(pb::ModelInferResponse {
            model_name: request.model_name,
            id: request.id,
            raw_output_contents: request.raw_input_contents,
            ..Default::default()
        }))
    }
    async fn model_config(
        &self,
        _: tonic::Request<pb::ModelConfigRequest>,
    ) -> Result<tonic::Response<pb::ModelConfigResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
}

async fn upstream(http_port: u16, grpc_port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let http = tokio::net::TcpListener::bind(("127.0.0.1", http_port)).await?;
    let grpc = tokio::net::TcpListener::bind(("127.0.0.1", grpc_port)).await?;
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(Echo))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc))
            .await;
    });
    loop {
        let (stream, _) = http.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"ok"),
                )))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// CPU seconds (user + system) used so far by the processes.
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .sum()
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

async fn load(args: LoadArgs, grpc: bool) -> Result<(), Box<dyn std::error::Error>> {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let failed = Arc::new(AtomicBool::new(false));
    let body = match &args.body_file {
        Some(path) => Some(Bytes::from(std::fs::read(path)?)),
        None => None,
    };
    let mut workers = Vec::new();
    let channel = if grpc {
        Some(
            tonic::transport::Endpoint::from_shared(format!("http://{}", args.url))?
                .tcp_nodelay(true)
                .connect()
                .await?,
        )
    } else {
        None
    };
    for _ in 0..args.concurrency {
        let phase = phase.clone();
        let failed = failed.clone();
        let url: hyper::Uri = if grpc {
            "http://unused/".parse()?
        } else {
            args.url.parse()?
        };
        let channel = channel.clone();
        let model = args.model.clone();
        let body = body.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            if let Some(channel) = channel {
                let mut client =
                    pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
                loop {
                    let p = phase.load(Ordering::Relaxed);
                    if p == STOP {
                        break;
                    }
                    let request = pb::ModelInferRequest {
                        model_name: model.clone(),
                        id: "1".into(),
                        raw_input_contents: vec![Bytes::from_static(&[0u8; 16])],
                        ..Default::default()
                    };
                    let start = Instant::now();
                    if client.model_infer(request).await.is_err() {
                        failed.store(true, Ordering::Relaxed);
                        break;
                    }
                    if p == MEASURE {
                        latencies.push(start.elapsed().as_nanos() as u32);
                    }
                }
                return latencies;
            }
            let authority = url.authority().map(|a| a.to_string()).unwrap_or_default();
            let addr: SocketAddr = match authority.parse() {
                Ok(addr) => addr,
                Err(_) => {
                    failed.store(true, Ordering::Relaxed);
                    return latencies;
                }
            };
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                failed.store(true, Ordering::Relaxed);
                return latencies;
            };
            let _ = stream.set_nodelay(true);
            let Ok((mut sender, connection)) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
            else {
                failed.store(true, Ordering::Relaxed);
                return latencies;
            };
            tokio::spawn(connection);
            loop {
                let p = phase.load(Ordering::Relaxed);
                if p == STOP {
                    break;
                }
                // HTTP/1.1 requires Host (nginx answers 400 without it).
                let request = match &body {
                    Some(body) => hyper::Request::post(url.path())
                        .header("host", authority.as_str())
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone())),
                    None => hyper::Request::get(url.path())
                        .header("host", authority.as_str())
                        .body(Full::new(Bytes::new())),
                }
                .unwrap_or_default();
                let start = Instant::now();
                if sender.ready().await.is_err() {
                    failed.store(true, Ordering::Relaxed);
                    break;
                }
                let ok = match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        response.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if !ok {
                    failed.store(true, Ordering::Relaxed);
                    break;
                }
                if p == MEASURE {
                    latencies.push(start.elapsed().as_nanos() as u32);
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let cpu_before = cpu_seconds(&args.pids);
    let started = Instant::now();
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&args.pids) - cpu_before;
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await?);
    }
    all.sort_unstable();
    let quantile = |q: f64| {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 - 1.0) * q).round() as usize;
        all[i] as f64 / 1000.0
    };
    let requests = all.len() as f64;
    let report = serde_json::json!({
        "label": args.label,
        "concurrency": args.concurrency,
        "requests": all.len(),
        "rps": (requests / elapsed).round(),
        "p50_us": (quantile(0.5) * 10.0).round() / 10.0,
        "p99_us": (quantile(0.99) * 10.0).round() / 10.0,
        "cpu_us_per_request": if args.pids.is_empty() || requests == 0.0 {
            serde_json::Value::Null
        } else {
            serde_json::json!((cpu / requests * 1e6 * 100.0).round() / 100.0)
        },
        "failed": failed.load(Ordering::Relaxed),
    });
    println!("{report}");
    Ok(())
}

async fn hold(
    url: String,
    count: usize,
    metrics: String,
    http2_connections: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let uri: hyper::Uri = url.parse()?;
    let addr: SocketAddr = uri.authority().ok_or("no authority")?.as_str().parse()?;
    let path = uri.path().to_owned();
    let mut streams = Vec::with_capacity(count);
    let mut pending = Vec::new();
    if http2_connections == 0 {
        for _ in 0..count {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            let request = format!("GET {path} HTTP/1.1\r\nhost: hold\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await?;
            streams.push(stream);
        }
    } else {
        for c in 0..http2_connections {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (sender, connection) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(stream),
            )
            .await?;
            tokio::spawn(connection);
            let share = count / http2_connections + usize::from(c < count % http2_connections);
            for _ in 0..share {
                let mut sender = sender.clone();
                let request =
                    hyper::Request::get(format!("http://hold{path}")).body(Empty::new())?;
                pending.push(tokio::spawn(
                    async move { sender.send_request(request).await },
                ));
            }
        }
    }
    let metrics_uri: hyper::Uri = metrics.parse()?;
    let metrics_addr: SocketAddr = metrics_uri
        .authority()
        .ok_or("no authority")?
        .as_str()
        .parse()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stream = tokio::net::TcpStream::connect(metrics_addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender
            .send_request(
                // HTTP/1.1 requires Host (the router answers 400 without it).
                hyper::Request::get(metrics_uri.path())
                    .header(hyper::header::HOST, metrics_addr.to_string())
                    .body(Empty::new())?,
            )
            .await?;
        let body = response.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        let queued: f64 = text
            .lines()
            .filter(|l| l.starts_with("kiln_router_activator_queue_length{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if queued as usize >= count {
            println!("{{\"held\": {queued}}}");
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {queued} of {count} queued").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Keep the connections open until the caller has read the router's RSS.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(streams);
    drop(pending);
    Ok(())
}
