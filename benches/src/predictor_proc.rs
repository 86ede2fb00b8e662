//! A `kiln predictor` child process on loopback, optionally pinned to one CPU with
//! `taskset`, started and awaited through its JSON event lines on stdout.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kiln_api::predictor_event::{PredictorEvent, ReadyFigures};

use crate::BenchError;
use crate::procfs::{self, Memory};

/// How to start the predictor.
#[derive(Debug, Clone)]
pub struct PredictorSpec {
    /// The `kiln` binary.
    pub kiln: PathBuf,
    /// The folder holding `model.onnx` (`--storage-uri`).
    pub model_dir: PathBuf,
    /// The name clients use (`--model-name`).
    pub model_name: String,
    /// The CPU to pin the process to (`taskset -c`); `None` leaves it free.
    pub cpu: Option<usize>,
    /// `--threads`.
    pub threads: usize,
    /// `--max-batch-size` (1: no batching).
    pub max_batch_size: u32,
    /// `--max-batch-delay-ms`.
    pub max_batch_delay_ms: f64,
}

impl PredictorSpec {
    /// The command line, as it is run (for the report).
    pub fn command_line(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(cpu) = self.cpu {
            args.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
        }
        args.push(self.kiln.display().to_string());
        args.extend(
            [
                "predictor",
                "--model-name",
                &self.model_name,
                "--storage-uri",
                &self.model_dir.display().to_string(),
                "--bind",
                "127.0.0.1",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
                "--threads",
                &self.threads.to_string(),
                "--max-batch-size",
                &self.max_batch_size.to_string(),
                "--max-batch-delay-ms",
                &self.max_batch_delay_ms.to_string(),
            ]
            .map(String::from),
        );
        args
    }
}

/// A running predictor, killed on drop.
pub struct PredictorProcess {
    child: Child,
    /// REST port.
    pub http_port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// What the `ready` event line reported.
    pub ready: ReadyFigures,
    log: PathBuf,
    cache: PathBuf,
}

impl PredictorProcess {
    /// Starts the predictor (logs at `warn` into a file under the temp folder, a private
    /// model cache) and waits up to a minute for its `listening` and `ready` lines.
    pub fn start(spec: &PredictorSpec) -> Result<Self, BenchError> {
        let tag = format!("kiln-bench-{}-{}", std::process::id(), spec.max_batch_size);
        let log = std::env::temp_dir().join(format!("{tag}.log"));
        let cache = std::env::temp_dir().join(format!("{tag}-cache"));
        let log_file =
            std::fs::File::create(&log).map_err(|e| BenchError::context(log.display(), e))?;
        let line = spec.command_line();
        let mut command = Command::new(&line[0]);
        command
            .args(&line[1..])
            .arg("--model-cache-dir")
            .arg(&cache)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = command
            .spawn()
            .map_err(|e| BenchError::context(format!("starting {}", line[0]), e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(event) = PredictorEvent::parse_line(&line) {
                    let _ = tx.send(event);
                }
            }
        });
        let mut ports = None;
        let mut process = |child: &mut Child| -> Result<(u16, u16, ReadyFigures), BenchError> {
            loop {
                let event = rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
                    let _ = child.kill();
                    let _ = child.wait();
                    BenchError::msg(format!(
                        "kiln predictor did not become ready; its log ({}):\n{}",
                        log.display(),
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ))
                })?;
                match event {
                    PredictorEvent::Listening {
                        http_port,
                        grpc_port,
                    } => ports = Some((http_port, grpc_port)),
                    PredictorEvent::Ready(figures) => {
                        let (http, grpc) = ports
                            .ok_or_else(|| BenchError::msg("'ready' came before 'listening'"))?;
                        return Ok((http, grpc, figures));
                    }
                }
            }
        };
        let (http_port, grpc_port, ready) = process(&mut child)?;
        Ok(PredictorProcess {
            child,
            http_port,
            grpc_port,
            ready,
            log,
            cache,
        })
    }

    /// The process id (the predictor's own: `taskset` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `VmRSS` and `VmHWM` now.
    pub fn memory(&self) -> Result<Memory, BenchError> {
        procfs::memory(&self.pid().to_string())
    }

    /// Its CPU time so far, all threads.
    pub fn cpu_time(&self) -> Result<Duration, BenchError> {
        procfs::cpu_time(&self.pid().to_string())
    }

    /// Its log file (stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for PredictorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.cache);
    }
}
