//! Shared harness for the end-to-end tests: real `kiln predictor` processes on loopback,
//! the fixtures made by `scripts/make_fixtures.py`, and a reference MLP.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The folder of generated fixtures (`scripts/test.sh` makes them).
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("KILN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".kiln-cache/fixtures"));
    assert!(
        dir.join("mlp/model.onnx").is_file(),
        "fixtures missing in {}: run scripts/test.sh (or scripts/make_fixtures.sh)",
        dir.display()
    );
    dir
}

/// The Python of the project's environment (made by scripts/setup.sh).
pub fn python() -> PathBuf {
    repo().join(".kiln-cache/venv/bin/python")
}

/// A running predictor process, killed on drop.
pub struct Predictor {
    pub child: Child,
    pub http_port: u16,
    pub grpc_port: u16,
    pub ready: serde_json::Value,
}

impl Predictor {
    /// Starts `kiln predictor` with `args` (plus loopback ports 0 and a private cache) and
    /// waits for its ready line.
    pub fn start(args: &[&str]) -> Predictor {
        Self::try_start(args).unwrap_or_else(|e| panic!("predictor did not start: {e}"))
    }

    /// Like [`start`], returning the stderr text when the process exits before ready.
    pub fn try_start(args: &[&str]) -> Result<Predictor, String> {
        Self::try_start_with(args, &[])
    }

    /// Like [`try_start`], with extra environment variables.
    pub fn try_start_with(args: &[&str], env: &[(&str, &str)]) -> Result<Predictor, String> {
        Self::try_start_in(&tempfile::tempdir().unwrap().keep(), args, env)
    }

    /// Like [`start`], pinned to one CPU (`taskset -c 0`), as in a one-core pod: the model
    /// runtime and the model thread then take turns (kiln_predictor::one_cpu).
    pub fn start_on_one_cpu(args: &[&str]) -> Predictor {
        let mut command = Command::new("taskset");
        command.args(["-c", "0", env!("CARGO_BIN_EXE_kiln")]);
        Self::try_start_command(command, &tempfile::tempdir().unwrap().keep(), args, &[])
            .unwrap_or_else(|e| panic!("predictor did not start: {e}"))
    }

    /// Like [`try_start_with`], with the model cache in `cache`.
    pub fn try_start_in(
        cache: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Predictor, String> {
        Self::try_start_command(Command::new(env!("CARGO_BIN_EXE_kiln")), cache, args, env)
    }

    fn try_start_command(
        mut command: Command,
        cache: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Predictor, String> {
        command
            .arg("predictor")
            .args([
                "--bind",
                "127.0.0.1",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
            ])
            .arg("--model-cache-dir")
            .arg(cache)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawning kiln predictor");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut ports = None;
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(event) if event["event"] == "listening" => {
                    ports = Some((
                        event["http_port"].as_u64().unwrap() as u16,
                        event["grpc_port"].as_u64().unwrap() as u16,
                    ));
                }
                Ok(event) if event["event"] == "ready" => {
                    let (http_port, grpc_port) = ports.expect("listening comes before ready");
                    return Ok(Predictor {
                        child,
                        http_port,
                        grpc_port,
                        ready: event,
                    });
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let output = child.wait_with_output().unwrap();
                    return Err(String::from_utf8_lossy(&output.stderr).into_owned());
                }
            }
        }
    }

    /// Starts a predictor that must fail; returns what it printed on stderr.
    pub fn start_error(args: &[&str]) -> String {
        match Self::try_start(args) {
            Ok(_) => panic!("start-up must fail: kiln predictor {args:?}"),
            Err(stderr) => stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, path)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }
}

impl Drop for Predictor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixture MLP's weights and biases (see scripts/make_fixtures.py).
fn weight(layer: i64, i: i64, j: i64) -> f32 {
    ((i * 31 + j * 17 + layer * 7) % 97 - 48) as f32 / 970.0
}

fn bias(layer: i64, j: i64) -> f32 {
    ((j * 13 + layer) % 11 - 5) as f32 / 100.0
}

/// The fixture MLP computed in plain Rust, for one row of 784 inputs.
pub fn reference_mlp(x: &[f32]) -> Vec<f32> {
    let layers = [(784i64, 512i64), (512, 512), (512, 10)];
    let mut h: Vec<f32> = x.to_vec();
    for (n, &(n_in, n_out)) in layers.iter().enumerate() {
        let l = n as i64 + 1;
        let mut out = vec![0f32; n_out as usize];
        for (j, o) in out.iter_mut().enumerate() {
            let mut acc = 0f64;
            for i in 0..n_in {
                acc += f64::from(h[i as usize]) * f64::from(weight(l, i, j as i64));
            }
            let mut v = acc as f32 + bias(l, j as i64);
            if n + 1 < layers.len() {
                v = v.max(0.0);
            }
            *o = v;
        }
        h = out;
    }
    h
}

/// A deterministic input row, different per `seed`.
pub fn input_row(seed: usize) -> Vec<f32> {
    (0..784)
        .map(|i| (((i * 7 + seed * 13) % 23) as f32 - 11.0) / 23.0)
        .collect()
}

/// Asserts two vectors agree to a relative tolerance.
pub fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-3 * w.abs().max(1.0);
        assert!((g - w).abs() <= tol, "element {k}: got {g}, want {w}");
    }
}

pub mod up;

/// A v2 inference body for the fixture MLP (one row).
pub fn mlp_body(seed: usize) -> serde_json::Value {
    serde_json::json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": input_row(seed)}]})
}

/// Whether process `pid` runs (exists and is not a zombie waiting to be reaped).
pub fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}
