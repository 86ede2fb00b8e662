//! Shared by the tests: the kfp SDK from `scripts/setup.sh` (`$KILN_CACHE/venv-kfp`), compiling
//! the pipelines under `tests/pipelines/`, and run options in a temporary folder.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kiln_pipelines::{PipelineFile, Run, RunOptions, StartError, TokioClock};

/// The cache folder `scripts/setup.sh` fills.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KILN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join(".kiln-cache")
        })
}

/// The Python with `kfp==2.17.3` that `scripts/setup.sh` makes; a test without it fails
/// (it is never skipped: a missing SDK is a broken set-up, not a pass).
pub fn kfp_python() -> PathBuf {
    let python = cache_dir().join("venv-kfp/bin/python");
    assert!(
        cache_dir().join("venv-kfp/.done").exists() && python.exists(),
        "{} is not installed: run scripts/setup.sh",
        python.display()
    );
    python
}

/// Compiles `tests/pipelines/<name>.py` with the kfp SDK; the YAML text.
pub fn compile(python: &Path, name: &str, dir: &Path) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pipelines")
        .join(format!("{name}.py"));
    let out = dir.join(format!("{name}.yaml"));
    let status = Command::new(python)
        .arg("-W")
        .arg("ignore")
        .arg(&source)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "compiling {} failed", source.display());
    std::fs::read_to_string(out).unwrap()
}

/// A test's folders: state in a temporary folder, Python environments kept in the cache
/// between test runs (the first run installs `kfp` into one from PyPI).
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub python: PathBuf,
}

impl Bench {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            python: kfp_python(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn compile(&self, name: &str) -> String {
        compile(&self.python, name, self.dir.path())
    }

    pub fn options(&self, params: &[(&str, &str)]) -> RunOptions {
        RunOptions {
            pipeline_root: None,
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            parallelism: 4,
            use_cache: true,
            state_dir: self.path("state"),
            python_envs_dir: cache_dir().join("pipelines-python-envs"),
            python: PathBuf::from("python3"),
            task_timeout: Some(std::time::Duration::from_secs(120)),
        }
    }

    pub async fn run(&self, yaml: &str, options: RunOptions) -> Result<Run, StartError> {
        let file = PipelineFile::parse(yaml).expect("the compiled pipeline parses");
        kiln_pipelines::run_pipeline(file, options, Arc::new(TokioClock)).await
    }
}

/// A task's output parameter.
pub fn output(run: &Run, task: &str, name: &str) -> serde_json::Value {
    let t = run.task(task).unwrap_or_else(|| {
        panic!(
            "no task {task} in {:#?}",
            run.tasks.iter().map(|t| &t.path).collect::<Vec<_>>()
        )
    });
    t.outputs
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("{task} has no output {name}: {t:#?}"))
}
