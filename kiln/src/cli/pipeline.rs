//! `kiln pipeline`: run Kubeflow Pipelines v2 pipelines (YAML compiled by the `kfp` SDK) on this
//! machine, in the foreground, and look at past runs in the run store. Exit codes: 0 succeeded,
//! 1 failed (or cancelled), 2 invalid input (nothing ran).

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_pipelines::{
    Observer, PipelineFile, RunOptions, RunStart, RunState, Store, TaskKind, TaskRecord, TaskState,
    TokioClock,
};
use parking_lot::Mutex;

use super::CliError;

/// Run pipelines and look at their runs.
#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArgs {
    #[command(subcommand)]
    command: PipelineCommand,
    /// Where runs, the step cache and prepared Python environments persist.
    #[arg(long, env = "KILN_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum PipelineCommand {
    /// Run a compiled pipeline (kfp's YAML) in the foreground.
    Run(RunArgs),
    /// List past runs, newest first.
    Runs(ListArgs),
    /// Show one run: its tasks, states, durations, cache answers and outputs.
    Get(GetArgs),
    /// Print the logs of a run's steps.
    Logs(LogsArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The pipeline file `kfp.compiler.Compiler` wrote.
    file: PathBuf,
    /// A pipeline input, typed by the spec (repeatable): `--param n=3`, `--param l='[1,2]'`.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = name_value)]
    params: Vec<(String, String)>,
    /// Where artifacts go (`file://` URI or a path); default: the spec's, then the state dir.
    #[arg(long)]
    pipeline_root: Option<String>,
    /// The most steps running at once (default: the number of CPUs).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Run every step, ignoring and not filling the cache.
    #[arg(long)]
    no_cache: bool,
    /// A deadline for every step (e.g. 90s, 10m).
    #[arg(long, value_parser = duration)]
    task_timeout: Option<Duration>,
    /// Where the steps' prepared Python environments are kept (default: under the state dir).
    #[arg(long, env = "KILN_PIPELINE_PYTHON_ENVS")]
    python_envs: Option<PathBuf>,
    /// The Python that creates the steps' prepared environments.
    #[arg(long, env = "KILN_PIPELINE_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Say for every task why the cache hit or missed.
    #[arg(short, long)]
    verbose: bool,
    /// Print the finished run as JSON (progress goes to stderr).
    #[arg(short = 'o', long, value_parser = ["json"])]
    output: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(short = 'o', long)]
    output: Option<Format>,
}

#[derive(Debug, clap::Args)]
struct GetArgs {
    /// The run's id (or a unique prefix of it).
    run: String,
    /// Print the whole run instead of a table.
    #[arg(short = 'o', long)]
    output: Option<Format>,
}

#[derive(Debug, clap::Args)]
struct LogsArgs {
    /// The run's id (or a unique prefix of it).
    run: String,
    /// One step (its path, as `kiln pipeline get` shows it).
    task: Option<String>,
}

fn name_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

fn duration(s: &str) -> Result<Duration, String> {
    kiln_api::duration::parse_duration(s).map_err(|e| e.to_string())
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

/// An error with its whole chain of sources, on one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The pipelines' folder under the state dir, and the run store in it.
pub(super) fn open_store(state_dir: Option<PathBuf>) -> Result<(PathBuf, Store), CliError> {
    let state = state_dir
        .unwrap_or_else(crate::up::default_state_dir)
        .join("pipelines");
    let store = Store::open(state.join("runs.db")).map_err(|e| failed(chain(&e)))?;
    Ok((state, store))
}

impl PipelineArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let (state, store) = open_store(self.state_dir)?;
        match self.command {
            PipelineCommand::Run(args) => args.run(state, Arc::new(store)).await,
            PipelineCommand::Runs(args) => list(&store, args),
            PipelineCommand::Get(args) => get(&store, args),
            PipelineCommand::Logs(args) => logs(&store, args),
        }
    }
}

/// Prints each task as it ends and records it in the store. On a terminal, every running step
/// also has a live spinner until it ends.
struct Progress {
    store: Arc<Store>,
    verbose: bool,
    to_stderr: bool,
    run_id: Mutex<Option<String>>,
    live: Option<Live>,
}

/// The spinners of the running steps.
struct Live {
    multi: indicatif::MultiProgress,
    bars: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

impl Progress {
    fn new(store: Arc<Store>, verbose: bool, to_stderr: bool) -> Self {
        let terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let live = terminal.then(|| {
            let target = if to_stderr {
                indicatif::ProgressDrawTarget::stderr()
            } else {
                indicatif::ProgressDrawTarget::stdout()
            };
            Live {
                multi: indicatif::MultiProgress::with_draw_target(target),
                bars: Mutex::new(HashMap::new()),
            }
        });
        Self {
            store,
            verbose,
            to_stderr,
            run_id: Mutex::new(None),
            live,
        }
    }

    fn line(&self, text: &str) {
        if let Some(live) = &self.live
            && live.multi.println(text).is_ok()
        {
            return;
        }
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

impl Observer for Progress {
    fn run_started(&self, start: &RunStart) {
        *self.run_id.lock() = Some(start.id.clone());
        Observer::run_started(self.store.as_ref(), start);
        self.line(&format!(
            "run {} of pipeline {} (artifacts under {})",
            start.id,
            start.pipeline,
            start.pipeline_root.display()
        ));
    }

    fn task_started(&self, _run_id: &str, path: &str) {
        if let Some(live) = &self.live {
            let bar = live.multi.add(indicatif::ProgressBar::new_spinner());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(format!("running {path}"));
            live.bars.lock().insert(path.to_owned(), bar);
        }
    }

    fn task_finished(&self, run_id: &str, t: &TaskRecord) {
        if let Some(bar) = self
            .live
            .as_ref()
            .and_then(|l| l.bars.lock().remove(&t.path))
        {
            bar.finish_and_clear();
            if let Some(live) = &self.live {
                live.multi.remove(&bar);
            }
        }
        self.store
            .task_finished(run_id, t)
            .unwrap_or_else(|e| tracing::warn!("{}", chain(&e)));
        if t.kind == TaskKind::Dag && t.state == TaskState::Succeeded && !self.verbose {
            return;
        }
        let state = match t.state {
            TaskState::Succeeded => "succeeded",
            TaskState::Cached => "cached",
            TaskState::Failed => "FAILED",
            TaskState::Skipped => "skipped",
            TaskState::NotRun => "not run",
        };
        let attempts = if t.attempts > 1 {
            format!(" after {} attempts", t.attempts)
        } else {
            String::new()
        };
        self.line(&format!(
            "  {state:<9} {} ({:.2}s{attempts})",
            t.path,
            t.duration.as_secs_f64()
        ));
        if let Some(error) = &t.error {
            for l in error.lines() {
                self.line(&format!("            {l}"));
            }
        }
        if self.verbose {
            match &t.cache {
                kiln_pipelines::CacheOutcome::Hit => {
                    self.line("            cache: hit, nothing ran")
                }
                kiln_pipelines::CacheOutcome::Miss(reasons) => {
                    self.line(&format!("            cache: miss: {}", reasons.join("; ")))
                }
                kiln_pipelines::CacheOutcome::Disabled if t.kind == TaskKind::Container => {
                    self.line("            cache: off for this task")
                }
                kiln_pipelines::CacheOutcome::Disabled => {}
            }
        }
    }
}

impl RunArgs {
    async fn run(self, state: PathBuf, store: Arc<Store>) -> Result<(), CliError> {
        let text = std::fs::read_to_string(&self.file)
            .map_err(|e| CliError::Invalid(format!("{}: {e}", self.file.display())))?;
        let file = PipelineFile::parse(&text)
            .map_err(|e| CliError::Invalid(format!("{}: {}", self.file.display(), chain(&e))))?;
        let options = RunOptions {
            pipeline_root: self.pipeline_root,
            parameters: self.params.into_iter().collect::<BTreeMap<_, _>>(),
            parallelism: self
                .parallelism
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            use_cache: !self.no_cache,
            python_envs_dir: self
                .python_envs
                .unwrap_or_else(|| state.join("python-envs")),
            state_dir: state,
            python: self.python,
            task_timeout: self.task_timeout,
        };
        let json = self.output.is_some();
        let progress = Arc::new(Progress::new(store.clone(), self.verbose, json));
        let started = Instant::now();
        let running = kiln_pipelines::run_pipeline_observed(
            file,
            options,
            Arc::new(TokioClock),
            progress.clone(),
        );
        let run = tokio::select! {
            run = running => run,
            _ = tokio::signal::ctrl_c() => {
                // Dropping the run killed every step's process group.
                let id = progress.run_id.lock().clone();
                if let Some(id) = &id {
                    store.run_finished(id, "CANCELLED", started.elapsed()).map_err(|e| failed(chain(&e)))?;
                }
                return Err(CliError::Failed(format!("run {} cancelled; its steps were stopped", id.unwrap_or_default())));
            }
        };
        let run = run.map_err(|e| CliError::Invalid(chain(&e)))?;
        let state = match run.state {
            RunState::Succeeded => "SUCCEEDED",
            RunState::Failed => "FAILED",
        };
        store
            .run_finished(&run.id, state, started.elapsed())
            .map_err(|e| failed(chain(&e)))?;
        let leaves: Vec<&TaskRecord> = run
            .tasks
            .iter()
            .filter(|t| t.kind != TaskKind::Dag)
            .collect();
        let count = |s: TaskState| leaves.iter().filter(|t| t.state == s).count();
        progress.line(&format!(
            "run {} {state} in {:.2}s: {} ran, {} cached, {} failed, {} skipped",
            run.id,
            started.elapsed().as_secs_f64(),
            count(TaskState::Succeeded),
            count(TaskState::Cached),
            count(TaskState::Failed),
            count(TaskState::Skipped),
        ));
        if json {
            println!("{}", serde_json::to_string_pretty(&run).map_err(failed)?);
        }
        match run.state {
            RunState::Succeeded => Ok(()),
            RunState::Failed => {
                let failures: Vec<&str> = leaves
                    .iter()
                    .filter(|t| t.state == TaskState::Failed)
                    .map(|t| t.path.as_str())
                    .collect();
                Err(CliError::Failed(format!(
                    "run {} failed: {}",
                    run.id,
                    failures.join(", ")
                )))
            }
        }
    }
}

fn list(store: &Store, args: ListArgs) -> Result<(), CliError> {
    let runs = store.runs().map_err(|e| failed(chain(&e)))?;
    if let Some(format) = args.output {
        return print(&runs, format);
    }
    println!(
        "{:<18} {:<24} {:<10} {:>10}",
        "RUN", "PIPELINE", "STATE", "DURATION"
    );
    for r in runs {
        let duration = r
            .duration_ms
            .map_or_else(|| "-".to_owned(), |d| format!("{:.2}s", d as f64 / 1000.0));
        println!(
            "{:<18} {:<24} {:<10} {:>10}",
            r.id, r.pipeline, r.state, duration
        );
    }
    Ok(())
}

fn get(store: &Store, args: GetArgs) -> Result<(), CliError> {
    let (run, tasks) = store.run(&args.run).map_err(|e| match e {
        kiln_pipelines::store::StoreError::NoSuchRun(m) => CliError::Invalid(m),
        e => failed(chain(&e)),
    })?;
    if let Some(format) = args.output {
        return print(&serde_json::json!({ "run": run, "tasks": tasks }), format);
    }
    let duration = run
        .duration_ms
        .map_or_else(|| "-".to_owned(), |d| format!("{:.2}s", d as f64 / 1000.0));
    println!(
        "run {} of {}: {} in {duration}",
        run.id, run.pipeline, run.state
    );
    println!(
        "{:<40} {:<10} {:>8} {:>9} {:<9} OUTPUTS",
        "TASK", "STATE", "ATTEMPTS", "DURATION", "CACHE"
    );
    for t in tasks {
        let outputs = if t.outputs.as_object().is_some_and(|m| !m.is_empty()) {
            t.outputs.to_string()
        } else {
            String::new()
        };
        println!(
            "{:<40} {:<10} {:>8} {:>8.2}s {:<9} {outputs}",
            t.path,
            t.state,
            t.attempts,
            t.duration_ms as f64 / 1000.0,
            t.cache
        );
    }
    Ok(())
}

fn logs(store: &Store, args: LogsArgs) -> Result<(), CliError> {
    let logs = store
        .logs(&args.run, args.task.as_deref())
        .map_err(|e| match e {
            kiln_pipelines::store::StoreError::NoSuchRun(m) => CliError::Invalid(m),
            e => failed(chain(&e)),
        })?;
    let one = logs.len() == 1;
    for l in logs {
        if !one {
            println!("==> {} <==", l.path);
        }
        print!("{}", l.stdout);
        eprint!("{}", l.stderr);
    }
    Ok(())
}

pub(super) fn print<T: serde::Serialize>(value: &T, format: Format) -> Result<(), CliError> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value).map_err(failed)?,
        Format::Yaml => serde_saphyr::to_string(value).map_err(failed)?,
    };
    println!("{}", text.trim_end());
    Ok(())
}
