//! `kiln pipeline run|runs|get|logs` on pipelines compiled by the kfp SDK (2.17.3, from
//! `scripts/setup.sh`): exit codes, the run store, logs, and Ctrl-C leaving no process behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cache_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::env::var_os("KILN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".kiln-cache"))
}

/// The kfp SDK's Python from `scripts/setup.sh`; never skipped: a missing SDK fails.
fn kfp_python() -> PathBuf {
    let cache = cache_dir();
    let python = cache.join("venv-kfp/bin/python");
    assert!(
        cache.join("venv-kfp/.done").exists(),
        "{} is not installed: run scripts/setup.sh",
        python.display()
    );
    python
}

/// `to` as a path relative to the folder `from` (both absolute).
fn relative_to(from: &Path, to: &Path) -> PathBuf {
    let up = from.components().count() - 1;
    let mut path: PathBuf = std::iter::repeat_n("..", up).collect();
    path.push(to.strip_prefix("/").unwrap());
    path
}

struct Bench {
    dir: tempfile::TempDir,
    python: PathBuf,
}

impl Bench {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            python: kfp_python(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Compiles `pipelines-lite/tests/pipelines/<name>.py`; the YAML's path.
    fn compile(&self, name: &str) -> PathBuf {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../pipelines-lite/tests/pipelines")
            .join(format!("{name}.py"));
        let out = self.path(&format!("{name}.yaml"));
        let status = Command::new(&self.python)
            .args(["-W", "ignore"])
            .arg(&source)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "compiling {}", source.display());
        out
    }

    fn kiln(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("pipeline").arg("--state-dir").arg(self.path("state"));
        // The prepared Python environments are kept between test runs.
        c.env(
            "KILN_PIPELINE_PYTHON_ENVS",
            cache_dir().join("pipelines-python-envs"),
        );
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self
            .kiln()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "kiln pipeline {args:?}\n--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_run_succeeds_with_exit_0_and_runs_get_and_logs_read_it_back() {
    let b = Bench::new();
    let file = b.compile("typed");
    let out = b.run(&[
        "run",
        file.to_str().unwrap(),
        "--param",
        "i=4",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let run: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["state"], "SUCCEEDED");

    let runs = stdout(&b.run(&["runs"]));
    assert!(runs.contains(&id) && runs.contains("SUCCEEDED"), "{runs}");

    let got: serde_json::Value =
        serde_json::from_str(&stdout(&b.run(&["get", &id[..10], "-o", "json"]))).unwrap();
    let tasks = got["tasks"].as_array().unwrap();
    let double = tasks.iter().find(|t| t["path"] == "double").unwrap();
    assert_eq!(double["outputs"]["Output"], serde_json::json!(8));
    assert_eq!(double["state"], "SUCCEEDED");
    let yaml = stdout(&b.run(&["get", &id, "-o", "yaml"]));
    assert!(yaml.contains("path: double"), "{yaml}");

    // A relative state dir works too (steps run in folders of their own).
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(b.dir.path())
        .args([
            "pipeline",
            "--state-dir",
            "relative-state",
            "run",
            "typed.yaml",
            "--no-cache",
        ])
        .env(
            "KILN_PIPELINE_PYTHON_ENVS",
            relative_to(b.dir.path(), &cache_dir().join("pipelines-python-envs")),
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let logs = b.run(&["logs", &id, "describe"]);
    assert_eq!(logs.status.code(), Some(0));
    assert!(
        stdout(&logs).contains("describing a with 4"),
        "{}",
        stdout(&logs)
    );
    assert_eq!(b.run(&["logs", &id, "nope"]).status.code(), Some(2));

    // Again, verbose: every step is a cache hit.
    let out = b.run(&["run", file.to_str().unwrap(), "--param", "i=4", "-v"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).matches("cache: hit, nothing ran").count(),
        3,
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_failed_step_gives_exit_1_and_names_itself_its_exit_code_and_stderr() {
    let b = Bench::new();
    let file = b.compile("exit_retry");
    let counter = b.path("counter");
    let out = b.run(&[
        "run",
        file.to_str().unwrap(),
        "--param",
        &format!("counter={}", counter.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("FAILED    exit-handler-1/fail"), "{text}");
    assert!(text.contains("exit code 3"), "{text}");
    assert!(
        stderr(&out).contains("exit-handler-1/fail"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_input_gives_exit_2_and_records_no_run() {
    let b = Bench::new();
    let file = b.compile("artifacts");
    let bad = b.path("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&file).unwrap().replacen(
            "condition: int(inputs",
            "condition: size(inputs",
            1,
        ),
    )
    .unwrap();
    let out = b.run(&["run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("function `size`"), "{}", stderr(&out));
    assert_eq!(
        b.run(&["run", file.to_str().unwrap(), "--param", "rows=many"])
            .status
            .code(),
        Some(2)
    );
    let unknown = b.path("unknown.yaml");
    std::fs::write(
        &unknown,
        std::fs::read_to_string(&file).unwrap().replacen(
            "pipelineInfo:\n",
            "pipelineInfo:\n  owner: me\n",
            1,
        ),
    )
    .unwrap();
    let out = b.run(&["run", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("owner"), "{}", stderr(&out));
    let runs = stdout(&b.run(&["runs"]));
    assert_eq!(runs.lines().count(), 1, "only the header: {runs}");
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn ctrl_c_stops_every_running_step_and_marks_the_run_cancelled() {
    let b = Bench::new();
    let file = b.compile("sleeper");
    let pidfile = b.path("pid");
    let child = b
        .kiln()
        .args([
            "run",
            file.to_str().unwrap(),
            "--param",
            &format!("pidfile={}", pidfile.display()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .filter(|t| t.ends_with('\n'))
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(alive(pid));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the step's process {pid} outlived Ctrl-C");
    let runs = stdout(&b.run(&["runs"]));
    assert!(runs.contains("CANCELLED"), "{runs}");
}

#[test]
fn lineage_names_the_run_task_parameters_and_first_inputs_of_an_artifact() {
    let b = Bench::new();
    let file = b.compile("cached");
    let source = b.path("source.txt");
    std::fs::write(&source, "abc").unwrap();
    let marker = b.path("marker");
    let out = b.run(&[
        "run",
        file.to_str().unwrap(),
        "--param",
        &format!("source={}", source.display()),
        "--param",
        &format!("marker={}", marker.display()),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let run: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = run["id"].as_str().unwrap();
    let load = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"] == "load")
        .unwrap();
    let data = load["artifacts"]["data"][0]["uri"].as_str().unwrap();

    let mut lineage = Command::new(env!("CARGO_BIN_EXE_kiln"));
    lineage
        .arg("lineage")
        .arg(format!("file://{data}"))
        .arg("--state-dir")
        .arg(b.path("state"));
    let out = lineage.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "produced by task load of run {id} (pipeline cached)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("input raw: {}", source.display())),
        "{text}"
    );
    assert!(text.contains("produced by task importer"), "{text}");
    assert!(text.contains("parameters {\"marker\":"), "{text}");

    let mut missing = Command::new(env!("CARGO_BIN_EXE_kiln"));
    missing
        .args(["lineage", "/nowhere"])
        .arg("--state-dir")
        .arg(b.path("state"));
    assert_eq!(missing.output().unwrap().status.code(), Some(2));
}
