//! Running a pipeline: [`run_pipeline`] checks the spec and the run's inputs, then walks the
//! DAG ([`dag`]), resolving each task's inputs ([`inputs`]) and running leaf tasks as local
//! processes or importers ([`container`]).

mod container;
mod dag;
mod inputs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::executor_input::RuntimeArtifact;
use crate::python_env::PythonEnvs;
use crate::spec::{KubernetesExecutorConfig, PipelineFile};
use crate::validate::{Invalid, Problem, validate};
use crate::value::{TypeError, coerce, parse_text};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The pipeline root (`file://` URI or path); the spec's `defaultPipelineRoot`, then
    /// `<state_dir>/pipeline-root` when absent.
    pub pipeline_root: Option<String>,
    /// `--param name=value`, typed by the spec.
    pub parameters: BTreeMap<String, String>,
    /// The most steps running at once.
    pub parallelism: usize,
    /// `false` for `--no-cache`.
    pub use_cache: bool,
    /// Cache, step logs and scratch files.
    pub state_dir: PathBuf,
    /// Prepared Python environments (kept between runs).
    pub python_envs_dir: PathBuf,
    /// The interpreter that creates those environments.
    pub python: PathBuf,
    /// A deadline for every task (the platform spec's `activeDeadlineSeconds` wins).
    pub task_timeout: Option<Duration>,
}

/// A run that could not start: invalid input (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The spec asks for something Kiln cannot honour.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// `--param` names no pipeline input.
    #[error("--param {0}: the pipeline has no such input")]
    UnknownParameter(String),
    /// `--param` of the wrong type.
    #[error("--param {name}")]
    ParameterType {
        /// The input.
        name: String,
        /// What was wrong.
        #[source]
        source: TypeError,
    },
    /// A required pipeline input without a value.
    #[error("the pipeline input `{0}` is required: pass --param {0}=VALUE")]
    MissingParameter(String),
    /// A pipeline root Kiln cannot write to yet.
    #[error("pipeline root {0:?}: only file:// URIs and local paths are supported")]
    PipelineRoot(String),
    /// The state folder could not be prepared.
    #[error("could not prepare {path}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    /// Every task succeeded, was cached or skipped.
    Succeeded,
    /// A task failed.
    Failed,
}

/// How one task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Ran and succeeded.
    Succeeded,
    /// Its cached result was used; nothing ran.
    Cached,
    /// Ran and failed (after its retries).
    Failed,
    /// Its condition was false.
    Skipped,
    /// An upstream task failed.
    NotRun,
}

/// The cache's answer for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "cache", content = "reasons")]
pub enum CacheOutcome {
    /// Not a leaf task, or caching off for it or for the run.
    Disabled,
    /// Reused.
    Hit,
    /// Ran; why the cache did not answer.
    Miss(Vec<String>),
}

/// What a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A container executor, run as a local process.
    Container,
    /// An importer executor.
    Importer,
    /// A sub-DAG: a condition, a loop, an exit handler or a pipeline used as a component.
    Dag,
}

/// What happened to one task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    /// Its path in the DAG (`for-loop-2[1]/train`).
    pub path: String,
    /// What ran it.
    pub kind: TaskKind,
    /// How it ended.
    pub state: TaskState,
    /// Attempts made (0 when nothing ran).
    pub attempts: u32,
    /// Wall time.
    pub duration: Duration,
    /// The last attempt's exit code.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// The cache's answer.
    pub cache: CacheOutcome,
    /// Output parameters.
    pub outputs: BTreeMap<String, Value>,
    /// Output artifacts.
    pub artifacts: BTreeMap<String, Vec<RuntimeArtifact>>,
    /// The image the spec names (recorded; the step ran here).
    pub image: Option<String>,
    /// Where its stdout and stderr went.
    pub logs: Option<PathBuf>,
    /// Input parameters of a leaf task.
    pub inputs: BTreeMap<String, Value>,
    /// Input artifacts of a leaf task.
    pub input_artifacts: BTreeMap<String, Vec<RuntimeArtifact>>,
    /// Content digest (`sha256:...`) of each input and output artifact, by URI, where the
    /// content is a local file or folder.
    pub digests: BTreeMap<String, String>,
}

/// A finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The run's id.
    pub id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// How it ended.
    pub state: RunState,
    /// Every task, in the order they finished.
    pub tasks: Vec<TaskRecord>,
    /// The local folder of the pipeline root.
    pub pipeline_root: PathBuf,
    /// Warnings from validation.
    pub warnings: Vec<String>,
}

impl Run {
    /// The record of the task at `path`.
    pub fn task(&self, path: &str) -> Option<&TaskRecord> {
        self.tasks.iter().find(|t| t.path == path)
    }
}

/// What a run reports as it goes: the store records it, the CLI prints it.
pub trait Observer: Send + Sync {
    /// The run is checked and about to start its first task.
    fn run_started(&self, _start: &RunStart) {}
    /// A leaf task is about to run (or be looked up in the cache).
    fn task_started(&self, _run_id: &str, _path: &str) {}
    /// A task ended.
    fn task_finished(&self, _run_id: &str, _task: &TaskRecord) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// A run about to start.
#[derive(Debug, Clone, Serialize)]
pub struct RunStart {
    /// The run's id.
    pub id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The local folder of the pipeline root.
    pub pipeline_root: PathBuf,
    /// The pipeline's inputs, typed.
    pub parameters: BTreeMap<String, Value>,
}

/// Parameters and artifacts flowing between tasks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Values {
    pub(crate) parameters: BTreeMap<String, Value>,
    pub(crate) artifacts: BTreeMap<String, Vec<RuntimeArtifact>>,
}

pub(crate) struct Engine {
    file: PipelineFile,
    run_id: String,
    root_dir: PathBuf,
    work_dir: PathBuf,
    create_time: String,
    parallel: Arc<Semaphore>,
    cache: Option<Cache>,
    envs: PythonEnvs,
    clock: Arc<dyn Clock>,
    task_timeout: Option<Duration>,
    records: Mutex<Vec<TaskRecord>>,
    observer: Arc<dyn Observer>,
}

impl Engine {
    fn record(&self, record: TaskRecord) {
        tracing::debug!(task = %record.path, state = ?record.state, attempts = record.attempts, "task finished");
        self.observer.task_finished(&self.run_id, &record);
        self.records.lock().push(record);
    }

    /// Records a task that failed before anything ran (its inputs or its condition), and
    /// the outcome that says so.
    fn failed_before_running(&self, path: String, error: String) -> dag::Outcome {
        self.record(TaskRecord::not_run(
            path,
            TaskState::Failed,
            Some(error.clone()),
        ));
        dag::Outcome::Failed(error)
    }

    fn k8s(&self, label: &str) -> Option<&KubernetesExecutorConfig> {
        self.file
            .platform
            .as_ref()?
            .platforms
            .get("kubernetes")?
            .deployment_spec
            .executors
            .get(label)
    }
}

/// A new run id: time-ordered, 16 hex digits.
fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:010x}{:06x}",
        now.as_secs(),
        rand::random::<u32>() & 0xff_ffff
    )
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The local folder of a pipeline root URI.
fn local_root(uri: &str) -> Result<PathBuf, StartError> {
    if let Some(path) = uri.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if uri.contains("://") {
        return Err(StartError::PipelineRoot(uri.to_owned()));
    }
    std::path::absolute(uri).map_err(|source| StartError::Io {
        path: uri.into(),
        source,
    })
}

/// Validates `file` and the run's inputs, then runs the pipeline to its end.
pub async fn run_pipeline(
    file: PipelineFile,
    options: RunOptions,
    clock: Arc<dyn Clock>,
) -> Result<Run, StartError> {
    run_pipeline_observed(file, options, clock, Arc::new(NoObserver)).await
}

/// [`run_pipeline`], reporting to `observer` as it goes. Dropping the future cancels the run
/// and kills every step still running.
pub async fn run_pipeline_observed(
    file: PipelineFile,
    options: RunOptions,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
) -> Result<Run, StartError> {
    let warnings = validate(&file)?;
    // Steps run in their own folders: every path handed to them must be absolute.
    let mut options = options;
    for dir in [&mut options.state_dir, &mut options.python_envs_dir] {
        *dir = std::path::absolute(&*dir).map_err(|source| StartError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let inputs = pipeline_inputs(&file, &options.parameters)?;
    let root_uri = options
        .pipeline_root
        .clone()
        .or_else(|| file.spec.default_pipeline_root.clone())
        .unwrap_or_else(|| {
            options
                .state_dir
                .join("pipeline-root")
                .to_string_lossy()
                .into_owned()
        });
    let root_dir = local_root(&root_uri)?;
    let run_id = new_run_id();
    let work_dir = options.state_dir.join("runs").join(&run_id);
    for dir in [&root_dir, &work_dir] {
        std::fs::create_dir_all(dir).map_err(|source| StartError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let engine = Engine {
        run_id: run_id.clone(),
        root_dir: root_dir.clone(),
        work_dir,
        create_time: rfc3339(std::time::SystemTime::now()),
        parallel: Arc::new(Semaphore::new(options.parallelism.max(1))),
        cache: options
            .use_cache
            .then(|| Cache::new(options.state_dir.join("cache"))),
        envs: PythonEnvs::new(&options.python_envs_dir, &options.python),
        clock,
        task_timeout: options.task_timeout,
        records: Mutex::new(Vec::new()),
        observer,
        file,
    };
    engine.observer.run_started(&RunStart {
        id: run_id.clone(),
        pipeline: engine.file.spec.pipeline_info.name.clone(),
        pipeline_root: root_dir.clone(),
        parameters: inputs.parameters.clone(),
    });
    let span =
        tracing::info_span!("run", id = %run_id, pipeline = %engine.file.spec.pipeline_info.name);
    let root = engine.file.spec.root.clone();
    let result =
        tracing::Instrument::instrument(engine.run_dag(String::new(), &root, inputs), span).await;
    let state = if result.is_ok() {
        RunState::Succeeded
    } else {
        RunState::Failed
    };
    Ok(Run {
        id: run_id,
        pipeline: engine.file.spec.pipeline_info.name.clone(),
        state,
        tasks: engine.records.into_inner(),
        pipeline_root: root_dir,
        warnings: warnings.iter().map(Problem::to_string).collect(),
    })
}

/// The root's inputs: `--param` values typed by the spec, then defaults.
fn pipeline_inputs(
    file: &PipelineFile,
    given: &BTreeMap<String, String>,
) -> Result<Values, StartError> {
    let defs = &file.spec.root.input_definitions.parameters;
    if let Some(unknown) = given.keys().find(|k| !defs.contains_key(*k)) {
        return Err(StartError::UnknownParameter(unknown.clone()));
    }
    let mut values = Values::default();
    for (name, def) in defs {
        let value = match (given.get(name), &def.default_value) {
            (Some(text), _) => parse_text(def.parameter_type, text).map_err(|source| {
                StartError::ParameterType {
                    name: name.clone(),
                    source,
                }
            })?,
            (None, Some(d)) => coerce(def.parameter_type, d.clone()).map_err(|source| {
                StartError::ParameterType {
                    name: name.clone(),
                    source,
                }
            })?,
            (None, None) if def.is_optional => continue,
            (None, None) => return Err(StartError::MissingParameter(name.clone())),
        };
        values.parameters.insert(name.clone(), value);
    }
    Ok(values)
}
