//! A running `kiln up` for end-to-end tests: ports 0, a private state dir, Knative's
//! smallest windows (6 s stable window and grace period), killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Up {
    pub child: Child,
    pub http_port: u16,
    pub admin_port: u16,
    pub state_dir: PathBuf,
}

pub const CONFIG: &str = "domain: example.com\nautoscaler:\n  stable-window: 6s\n  scale-to-zero-grace-period: 6s\n  allow-zero-initial-scale: \"true\"\n  tick-interval: 1s\n";

impl Up {
    pub fn start(state_dir: &Path) -> Up {
        Self::start_with(state_dir, &[])
    }

    /// Like [`start`], with extra environment for `kiln up`.
    pub fn start_with(state_dir: &Path, env: &[(&str, &str)]) -> Up {
        Self::start_configured(state_dir, CONFIG, env)
    }

    /// Like [`start`], with `config` as `kiln up`'s config file.
    pub fn start_configured(state_dir: &Path, config_text: &str, env: &[(&str, &str)]) -> Up {
        std::fs::create_dir_all(state_dir).unwrap();
        let config = state_dir.join("kiln.yaml");
        std::fs::write(&config, config_text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "up",
                "--http-port",
                "0",
                "--admin-port",
                "0",
                "--drain-seconds",
                "5",
            ])
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(state_dir)
            .current_dir(super::repo())
            .env("RUST_LOG", "warn")
            .env("KILN_GPUS", "") // no GPUs, whatever the machine has
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning kiln up");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let event: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not an event: {line}"));
        Up {
            child,
            http_port: event["http_port"].as_u64().unwrap() as u16,
            admin_port: event["admin_port"].as_u64().unwrap() as u16,
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// Runs `kiln ARGS` against this platform.
    pub fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_with(args, &[])
    }

    /// Runs `kiln ARGS` with extra environment.
    pub fn kiln_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .envs(env.iter().copied())
            .env(
                "KILN_SERVER",
                format!("http://127.0.0.1:{}", self.admin_port),
            )
            .current_dir(super::repo())
            .output()
            .unwrap()
    }

    /// Applies a manifest given as text; panics unless it succeeds.
    pub fn apply(&self, manifest: &str) {
        let file = self
            .state_dir
            .join(format!("apply-{}.yaml", std::process::id()));
        std::fs::write(&file, manifest).unwrap();
        let out = self.kiln(&["apply", "-f", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The service with status.
    pub fn get(&self, name: &str) -> Value {
        let out = self.kiln(&["get", "isvc", name, "-o", "json"]);
        assert!(
            out.status.success(),
            "get failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until `check` holds for the service, or panics after `timeout`.
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let service = self.get(name);
            if check(&service) {
                return service;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {service}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The PIDs of this platform's predictor processes.
    pub fn replica_pids(&self) -> Vec<i32> {
        let parent = self.child.id().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| {
                        let after = s.rsplit_once(") ")?.1.to_owned();
                        let fields: Vec<&str> = after.split_whitespace().collect();
                        (fields.first() != Some(&"Z") && fields.get(1) == Some(&parent.as_str()))
                            .then_some(())
                    })
                    .is_some()
            })
            .collect()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = nix_kill(self.child.id() as i32, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal with the `kill` command.
pub fn nix_kill(pid: i32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A manifest for the fixture MLP; `extra_env` changes the revision template.
pub fn manifest(name: &str, predictor_fields: &str, extra_env: &str) -> String {
    let model = super::fixtures().join("mlp");
    format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\nspec:\n  predictor:\n{predictor_fields}    env:\n      - name: KILN_TEST_MARK\n        value: \"{extra_env}\"\n    model:\n      modelFormat:\n        name: onnx\n      storageUri: {}\n",
        model.display()
    )
}
