//! `kiln-bench`: Kiln's benchmarks. `kiln-bench predictor` runs the predictor matrix of
//! issue 2 (see `benches/predictor.sh`); `bare` and `bare-hold` are its baselines alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use kiln_benches::bare::{self, BareModel};
use kiln_benches::grpc_client::{self, GrpcCaller};
use kiln_benches::http_client::{self, Encoding, HttpCaller};
use kiln_benches::loadgen::{self, Caller, LoadResult, LoadSpec};
use kiln_benches::predictor_proc::{PredictorProcess, PredictorSpec};
use kiln_benches::procfs::{self, Memory};
use kiln_benches::report::{BareRow, MemoryRow, Protocol, Report, Row};
use kiln_benches::{input_row, outputs_match};

/// Kiln's benchmarks.
#[derive(Parser)]
#[command(name = "kiln-bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The MLP served by `kiln predictor` over gRPC and REST, beside bare ONNX Runtime.
    Predictor(PredictorCmd),
    /// Only the bare in-process ONNX Runtime caller.
    Bare(BareCmd),
    /// Load the model on bare ONNX Runtime, run it once, print this process's memory (JSON).
    BareHold(ModelArgs),
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// The ONNX model (input "input" [-1,784] FP32, output "output" [-1,10]).
    #[arg(long, default_value_os_t = default_model())]
    model: PathBuf,
    /// ONNX Runtime intra-op threads (the predictor's `--threads`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// libonnxruntime.so (default: where `kiln predictor` finds it).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    onnxruntime: Option<PathBuf>,
}

#[derive(Args)]
struct BareCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// Seconds measured.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

#[derive(Args)]
struct PredictorCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// The `kiln` binary (default: `kiln` beside this binary).
    #[arg(long)]
    kiln: Option<PathBuf>,
    /// The CPU the predictor is pinned to (`taskset -c`); pin this process elsewhere.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// Seconds measured per cell.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Seconds of warm-up per cell.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrencies.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Protocols: grpc, rest-json, rest-binary.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "grpc,rest-json,rest-binary"
    )]
    protocols: Vec<Protocol>,
    /// Predictor runs: off (no batching), on (batching, once per --batch-delay-ms), or both.
    #[arg(long, value_delimiter = ',', default_value = "off,on", value_parser = parse_on_off)]
    batching: Vec<bool>,
    /// `--max-batch-size` of the batching predictor.
    #[arg(long, default_value_t = 32)]
    batch_size: u32,
    /// `--max-batch-delay-ms` of the batching predictor; one batching run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,0.2")]
    batch_delay_ms: Vec<f64>,
}

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.kiln-cache/fixtures/mlp/model.onnx")
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s}: expected on or off")),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Predictor(cmd) => predictor(cmd),
        Cmd::Bare(cmd) => {
            let env = bare::environment(cmd.model.onnxruntime.clone())?;
            let mut model = BareModel::load(&env, &cmd.model.model, cmd.model.threads)?;
            let r = model.run(&input_row(), secs(cmd.warmup), secs(cmd.seconds))?;
            println!(
                "bare ONNX Runtime: {:.0} infer/s, p50 {:.3} ms, p99 {:.3} ms",
                r.rate(),
                r.quantile(0.5).as_secs_f64() * 1e3,
                r.quantile(0.99).as_secs_f64() * 1e3
            );
            Ok(())
        }
        Cmd::BareHold(model) => {
            let m = bare::hold(model.onnxruntime, &model.model, model.threads)?;
            println!(
                "{}",
                serde_json::json!({ "rss_kib": m.rss_kib, "hwm_kib": m.hwm_kib })
            );
            Ok(())
        }
    }
}

/// Runs `kiln-bench bare-hold` as its own process and reads the memory it reports.
fn bare_hold(model: &ModelArgs) -> Result<Memory> {
    let exe = std::env::current_exe().context("finding kiln-bench")?;
    let mut command = Command::new(exe);
    command
        .arg("bare-hold")
        .arg("--model")
        .arg(&model.model)
        .arg("--threads")
        .arg(model.threads.to_string())
        .stderr(Stdio::inherit());
    if let Some(lib) = &model.onnxruntime {
        command.arg("--onnxruntime").arg(lib);
    }
    let out = command.output().context("running kiln-bench bare-hold")?;
    if !out.status.success() {
        bail!("kiln-bench bare-hold failed ({})", out.status);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading bare-hold's answer")?;
    Ok(Memory {
        rss_kib: v["rss_kib"].as_u64().context("no rss_kib")?,
        hwm_kib: v["hwm_kib"].as_u64().context("no hwm_kib")?,
    })
}

fn predictor(cmd: PredictorCmd) -> Result<()> {
    let model_file = cmd.model.model.canonicalize().with_context(|| {
        format!(
            "{} (run scripts/make_fixtures.sh)",
            cmd.model.model.display()
        )
    })?;
    let model_dir = model_file
        .parent()
        .context("the model file has no folder")?
        .to_path_buf();
    let kiln = match &cmd.kiln {
        Some(k) => k.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("kiln-bench has no folder")?
            .join("kiln"),
    };
    if !kiln.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p kiln) or pass --kiln",
            kiln.display()
        );
    }
    let (warmup, measure) = (secs(cmd.warmup), secs(cmd.seconds));
    let input = input_row();

    let env = bare::environment(cmd.model.onnxruntime.clone())?;
    let mut bare_model = BareModel::load(&env, &model_file, cmd.model.threads)?;
    let expected = bare_model.infer(&input)?;
    let mut report = Report {
        bare: Vec::new(),
        rows: Vec::new(),
        bare_hold: bare_hold(&cmd.model)?,
        memory: Vec::new(),
        batch_size: cmd.batch_size,
    };
    eprintln!("bare ONNX Runtime (before) ...");
    report.bare.push(bare_row(
        &mut bare_model,
        "before",
        &input,
        warmup,
        measure,
    )?);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut configs: Vec<Option<f64>> = Vec::new();
    if cmd.batching.contains(&false) {
        configs.push(None);
    }
    if cmd.batching.contains(&true) {
        configs.extend(cmd.batch_delay_ms.iter().map(|&d| Some(d)));
    }
    for batching in configs {
        let spec = PredictorSpec {
            kiln: kiln.clone(),
            model_dir: model_dir.clone(),
            model_name: "mlp".into(),
            cpu: Some(cmd.server_cpu),
            threads: cmd.model.threads,
            max_batch_size: if batching.is_some() {
                cmd.batch_size
            } else {
                1
            },
            max_batch_delay_ms: batching.unwrap_or(0.0),
        };
        eprintln!("starting: {}", spec.command_line().join(" "));
        let server = PredictorProcess::start(&spec)?;
        let tag = match batching {
            Some(delay) => format!("batching (max {} rows, {delay} ms)", cmd.batch_size),
            None => "no batching".to_string(),
        };
        report.memory.push(MemoryRow {
            label: format!("kiln predictor, {tag}, ready, before load"),
            memory: server.memory()?,
        });
        for &protocol in &cmd.protocols {
            for &concurrency in &cmd.concurrency {
                let row = runtime
                    .block_on(cell(
                        &server,
                        protocol,
                        concurrency,
                        &input,
                        &expected,
                        LoadSpec { warmup, measure },
                    ))
                    .with_context(|| {
                        format!(
                            "{} at concurrency {concurrency}, {tag} (predictor log: {})",
                            protocol.label(),
                            server.log().display()
                        )
                    })?;
                eprintln!(
                    "{:<11} {:<6} c={:<3} {:>7.0} infer/s  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  server CPU {:.0}%  client CPU {:.0}%  other CPU {:.0}%  errors {}",
                    protocol.label(),
                    batching.map_or("off".to_string(), |d| format!("{d} ms")),
                    concurrency,
                    row.result.rate(),
                    row.result.quantile(0.5).as_secs_f64() * 1e3,
                    row.result.quantile(0.99).as_secs_f64() * 1e3,
                    row.result.quantile(0.999).as_secs_f64() * 1e3,
                    row.result.quantile(1.0).as_secs_f64() * 1e3,
                    row.server_cpu * 100.0,
                    row.client_cpu * 100.0,
                    row.other_cpu * 100.0,
                    row.result.errors,
                );
                if let Some(e) = &row.result.first_error {
                    eprintln!("  first error: {e}");
                }
                report.rows.push(Row { batching, ..row });
            }
        }
        report.memory.push(MemoryRow {
            label: format!("kiln predictor, {tag}, after load"),
            memory: server.memory()?,
        });
    }
    drop(runtime);

    eprintln!("bare ONNX Runtime (after) ...");
    report
        .bare
        .push(bare_row(&mut bare_model, "after", &input, warmup, measure)?);
    println!("{}", report.markdown());
    Ok(())
}

/// One run of the bare caller on this thread, with this process's CPU time meanwhile.
fn bare_row(
    model: &mut BareModel,
    when: &str,
    input: &[f32],
    warmup: Duration,
    measure: Duration,
) -> Result<BareRow> {
    let wall = std::time::Instant::now();
    let (before, machine_before) = (procfs::cpu_time("self")?, procfs::machine_busy_time()?);
    let result = model.run(input, warmup, measure)?;
    let cpu = (procfs::cpu_time("self")? - before).as_secs_f64();
    let machine = (procfs::machine_busy_time()? - machine_before).as_secs_f64();
    let wall = wall.elapsed().as_secs_f64();
    Ok(BareRow {
        when: when.into(),
        cpu: cpu / wall,
        other_cpu: (machine - cpu).max(0.0) / wall,
        cpu_us_per_request: cpu * 1e6 / result.total_ok.max(1) as f64,
        result,
    })
}

/// Connects `concurrency` clients, checks each one's first answer against the bare run,
/// then loads the server and measures both processes' CPU time meanwhile.
async fn cell(
    server: &PredictorProcess,
    protocol: Protocol,
    concurrency: usize,
    input: &[f32],
    expected: &[f32],
    spec: LoadSpec,
) -> Result<Row> {
    let check = |got: Vec<f32>| -> Result<()> {
        if !outputs_match(&got, expected) {
            bail!("the predictor answered {got:?}, bare ONNX Runtime {expected:?}");
        }
        Ok(())
    };
    match protocol {
        Protocol::GrpcRaw => {
            let request = grpc_client::raw_request("mlp", input);
            let mut callers = Vec::with_capacity(concurrency);
            for _ in 0..concurrency {
                let mut c = GrpcCaller::connect(server.grpc_port, request.clone()).await?;
                check(c.check().await?)?;
                callers.push(c);
            }
            measure(server, protocol, callers, spec).await
        }
        Protocol::RestJson | Protocol::RestBinary => {
            let encoding = if protocol == Protocol::RestJson {
                Encoding::Json
            } else {
                Encoding::Binary
            };
            let body = http_client::Body::new(encoding, "mlp", input);
            let mut callers = Vec::with_capacity(concurrency);
            for _ in 0..concurrency {
                let mut c = HttpCaller::connect(server.http_port, body.clone()).await?;
                check(c.check().await?)?;
                callers.push(c);
            }
            measure(server, protocol, callers, spec).await
        }
    }
}

async fn measure<C: Caller>(
    server: &PredictorProcess,
    protocol: Protocol,
    callers: Vec<C>,
    spec: LoadSpec,
) -> Result<Row> {
    let concurrency = callers.len();
    let wall = std::time::Instant::now();
    let pid = server.pid().to_string();
    let (rows_before, runs_before) = http_client::batch_totals(server.http_port).await?;
    let model_before = procfs::thread_cpu_time(&pid, "kiln-model")?;
    let machine_before = procfs::machine_busy_time()?;
    let (server_before, client_before) = (server.cpu_time()?, procfs::cpu_time("self")?);
    let result: LoadResult = loadgen::run(callers, spec).await;
    let (server_after, client_after) = (server.cpu_time()?, procfs::cpu_time("self")?);
    let machine = (procfs::machine_busy_time()? - machine_before).as_secs_f64();
    let model_thread = procfs::thread_cpu_time(&pid, "kiln-model")? - model_before;
    let (rows_after, runs_after) = http_client::batch_totals(server.http_port).await?;
    let wall = wall.elapsed().as_secs_f64();
    if result.completed == 0 {
        bail!(
            "no request completed: {}",
            result.first_error.as_deref().unwrap_or("(no error)")
        );
    }
    let server_cpu = (server_after - server_before).as_secs_f64();
    let client_cpu = (client_after - client_before).as_secs_f64();
    Ok(Row {
        protocol,
        batching: None,
        concurrency,
        server_cpu: server_cpu / wall,
        client_cpu: client_cpu / wall,
        other_cpu: (machine - server_cpu - client_cpu).max(0.0) / wall,
        server_us_per_request: server_cpu * 1e6 / result.total_ok.max(1) as f64,
        model_thread_us_per_request: model_thread.as_secs_f64() * 1e6
            / result.total_ok.max(1) as f64,
        rows_per_run: (rows_after - rows_before) / (runs_after - runs_before).max(1.0),
        result,
    })
}
