//! The run store, one SQLite file: runs (pipeline, state, parameters, times), their tasks
//! (state, attempts, duration, exit code, cache answer, outputs) and each task's logs, so
//! `kiln pipeline runs|get|logs` work after the run's scratch files are gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::Value;

use crate::run::{CacheOutcome, Observer, RunStart, TaskRecord};

/// Logs kept per stream and task (the tail when longer).
const MAX_LOG_BYTES: usize = 1 << 20;

/// A store that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("run store {path}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A run id that matches no run, or several.
    #[error("{0}")]
    NoSuchRun(String),
}

/// One row of `runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// The id.
    pub id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// RUNNING, SUCCEEDED, FAILED or CANCELLED.
    pub state: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// Wall time, when finished.
    pub duration_ms: Option<u64>,
    /// The local folder of the pipeline root.
    pub pipeline_root: String,
    /// The pipeline's inputs.
    pub parameters: Value,
}

/// One row of `tasks`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    /// Its path in the DAG.
    pub path: String,
    /// `container`, `importer` or `dag`.
    pub kind: String,
    /// SUCCEEDED, CACHED, FAILED, SKIPPED or NOT_RUN.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Wall time.
    pub duration_ms: u64,
    /// The last attempt's exit code.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// `hit`, `miss` or `disabled`.
    pub cache: String,
    /// Why it missed.
    pub cache_reasons: Vec<String>,
    /// Output parameters.
    pub outputs: Value,
    /// Output artifacts.
    pub artifacts: Value,
    /// The image the spec names.
    pub image: Option<String>,
}

/// A task's logs.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    /// The task's path.
    pub path: String,
    /// Its stdout (the tail, past 1 MiB).
    pub stdout: String,
    /// Its stderr (the tail, past 1 MiB).
    pub stderr: String,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER,
    pipeline_root TEXT NOT NULL,
    parameters TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    exit_code INTEGER,
    error TEXT,
    cache TEXT NOT NULL,
    cache_reasons TEXT NOT NULL,
    outputs TEXT NOT NULL,
    artifacts TEXT NOT NULL,
    image TEXT,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);
";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn state_name<T: Serialize>(state: &T) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn read_log(dir: Option<&Path>, name: &str) -> String {
    let Some(dir) = dir else { return String::new() };
    crate::process::tail(&dir.join(name), MAX_LOG_BYTES)
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(&path).map_err(wrap)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        conn.execute_batch(crate::lineage::SCHEMA).map_err(wrap)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn wrap(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records a run as RUNNING.
    pub fn run_started(&self, start: &RunStart) -> Result<(), StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.conn
            .lock()
            .execute(
                "INSERT INTO runs (id, pipeline, state, started_at, pipeline_root, parameters) VALUES (?1, ?2, 'RUNNING', ?3, ?4, ?5)",
                params![
                    start.id,
                    start.pipeline,
                    now as i64,
                    start.pipeline_root.to_string_lossy(),
                    serde_json::to_string(&start.parameters).unwrap_or_default()
                ],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// Records a finished task, with its logs.
    pub fn task_finished(&self, run_id: &str, t: &TaskRecord) -> Result<(), StoreError> {
        let (cache, reasons) = match &t.cache {
            CacheOutcome::Disabled => ("disabled", Vec::new()),
            CacheOutcome::Hit => ("hit", Vec::new()),
            CacheOutcome::Miss(r) => ("miss", r.clone()),
        };
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.wrap(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO tasks (run_id, seq, path, kind, state, attempts, duration_ms, exit_code, error, cache, cache_reasons, outputs, artifacts, image, stdout, stderr)
             VALUES (?1, (SELECT COUNT(*) FROM tasks WHERE run_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                run_id,
                t.path,
                state_name(&t.kind),
                state_name(&t.state),
                t.attempts,
                millis(t.duration),
                t.exit_code,
                t.error,
                cache,
                serde_json::to_string(&reasons).unwrap_or_default(),
                serde_json::to_string(&t.outputs).unwrap_or_default(),
                serde_json::to_string(&t.artifacts).unwrap_or_default(),
                t.image,
                read_log(t.logs.as_deref(), "stdout.log"),
                read_log(t.logs.as_deref(), "stderr.log"),
            ],
        )
        .map_err(|e| self.wrap(e))?;
        let pipeline: String = tx
            .query_row("SELECT pipeline FROM runs WHERE id = ?1", [run_id], |r| {
                r.get(0)
            })
            .unwrap_or_default();
        crate::lineage::record(&tx, run_id, &pipeline, t).map_err(|e| self.wrap(e))?;
        tx.commit().map_err(|e| self.wrap(e))
    }

    /// Records how a run ended (`SUCCEEDED`, `FAILED`, `CANCELLED`).
    pub fn run_finished(
        &self,
        run_id: &str,
        state: &str,
        duration: Duration,
    ) -> Result<(), StoreError> {
        self.conn
            .lock()
            .execute(
                "UPDATE runs SET state = ?2, duration_ms = ?3 WHERE id = ?1",
                params![run_id, state, millis(duration)],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT id, pipeline, state, started_at, duration_ms, pipeline_root, parameters FROM runs ORDER BY started_at DESC, id DESC")
            .map_err(|e| self.wrap(e))?;
        let rows = stmt.query_map([], run_row).map_err(|e| self.wrap(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.wrap(e))
    }

    /// The run whose id is `id` or starts with it.
    pub fn run(&self, id: &str) -> Result<(RunRow, Vec<TaskRow>), StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT id, pipeline, state, started_at, duration_ms, pipeline_root, parameters FROM runs WHERE id = ?1 OR id LIKE ?1 || '%' ORDER BY id = ?1 DESC LIMIT 2")
            .map_err(|e| self.wrap(e))?;
        let found: Vec<RunRow> = stmt
            .query_map([id], run_row)
            .map_err(|e| self.wrap(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.wrap(e))?;
        let run = match found.as_slice() {
            [] => return Err(StoreError::NoSuchRun(format!("no run {id:?}"))),
            [one, ..] if one.id == id => one.clone(),
            [one] => one.clone(),
            _ => {
                return Err(StoreError::NoSuchRun(format!(
                    "{id:?} matches more than one run; give more of the id"
                )));
            }
        };
        let mut stmt = conn
            .prepare("SELECT path, kind, state, attempts, duration_ms, exit_code, error, cache, cache_reasons, outputs, artifacts, image FROM tasks WHERE run_id = ?1 ORDER BY seq")
            .map_err(|e| self.wrap(e))?;
        let tasks = stmt
            .query_map([&run.id], |r| {
                let json = |i: usize| -> rusqlite::Result<Value> {
                    Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or(Value::Null))
                };
                Ok(TaskRow {
                    path: r.get(0)?,
                    kind: r.get(1)?,
                    state: r.get(2)?,
                    attempts: r.get(3)?,
                    duration_ms: r.get::<_, i64>(4)?.max(0) as u64,
                    exit_code: r.get(5)?,
                    error: r.get(6)?,
                    cache: r.get(7)?,
                    cache_reasons: serde_json::from_str(&r.get::<_, String>(8)?)
                        .unwrap_or_default(),
                    outputs: json(9)?,
                    artifacts: json(10)?,
                    image: r.get(11)?,
                })
            })
            .map_err(|e| self.wrap(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.wrap(e))?;
        Ok((run, tasks))
    }

    /// Where the artifact at `uri` (a path or `file://` URI) came from: the run, task,
    /// parameters and inputs that produced it, back to the first inputs.
    pub fn lineage(&self, uri: &str) -> Result<Option<crate::lineage::Lineage>, StoreError> {
        let uri = uri.strip_prefix("file://").unwrap_or(uri);
        let uri = std::path::absolute(uri)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| uri.to_owned());
        crate::lineage::trace(&self.conn.lock(), &uri).map_err(|e| self.wrap(e))
    }

    /// The logs of a run's tasks (one task when `task` is given).
    pub fn logs(&self, run_id: &str, task: Option<&str>) -> Result<Vec<LogRow>, StoreError> {
        let (run, _) = self.run(run_id)?;
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT path, stdout, stderr FROM tasks WHERE run_id = ?1 AND (?2 IS NULL OR path = ?2) AND kind = 'container' ORDER BY seq")
            .map_err(|e| self.wrap(e))?;
        let rows: Vec<LogRow> = stmt
            .query_map(params![run.id, task], |r| {
                Ok(LogRow {
                    path: r.get(0)?,
                    stdout: r.get(1)?,
                    stderr: r.get(2)?,
                })
            })
            .map_err(|e| self.wrap(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.wrap(e))?;
        if let (Some(task), true) = (task, rows.is_empty()) {
            return Err(StoreError::NoSuchRun(format!(
                "run {} has no step {task:?}",
                run.id
            )));
        }
        Ok(rows)
    }
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        state: r.get(2)?,
        started_at: r.get::<_, i64>(3)?.max(0) as u64,
        duration_ms: r.get::<_, Option<i64>>(4)?.map(|d| d.max(0) as u64),
        pipeline_root: r.get(5)?,
        parameters: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or(Value::Null),
    })
}

/// Records a run in the store as it goes (failures to write are logged, not fatal).
impl Observer for Store {
    fn run_started(&self, start: &RunStart) {
        if let Err(e) = Store::run_started(self, start) {
            tracing::warn!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
        }
    }

    fn task_finished(&self, run_id: &str, task: &TaskRecord) {
        if let Err(e) = Store::task_finished(self, run_id, task) {
            tracing::warn!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::TaskState;
    use std::collections::BTreeMap;

    fn record(path: &str, state: TaskState, logs: Option<PathBuf>) -> TaskRecord {
        let mut t = TaskRecord::not_run(path.into(), state, None);
        t.attempts = 2;
        t.duration = Duration::from_millis(1500);
        t.exit_code = Some(0);
        t.cache = CacheOutcome::Miss(vec!["input parameter `n` changed".into()]);
        t.outputs = BTreeMap::from([("Output".to_owned(), serde_json::json!(3))]);
        t.logs = logs;
        t
    }

    #[test]
    fn runs_tasks_and_logs_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("stdout.log"), "out\n").unwrap();
        std::fs::write(logs.join("stderr.log"), "err\n").unwrap();
        let db = dir.path().join("runs.db");
        {
            let store = Store::open(&db).unwrap();
            let start = RunStart {
                id: "00aa01".into(),
                pipeline: "p".into(),
                pipeline_root: dir.path().into(),
                parameters: BTreeMap::from([("n".to_owned(), serde_json::json!(3))]),
            };
            Store::run_started(&store, &start).unwrap();
            Store::task_finished(
                &store,
                "00aa01",
                &record("make", TaskState::Succeeded, Some(logs)),
            )
            .unwrap();
            Store::task_finished(
                &store,
                "00aa01",
                &record("loop[0]/sq", TaskState::Cached, None),
            )
            .unwrap();
            store
                .run_finished("00aa01", "SUCCEEDED", Duration::from_secs(2))
                .unwrap();
        }
        let store = Store::open(&db).unwrap();
        let runs = store.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].state.as_str(), runs[0].duration_ms),
            ("SUCCEEDED", Some(2000))
        );
        assert_eq!(runs[0].parameters, serde_json::json!({"n": 3}));
        let (run, tasks) = store.run("00aa").unwrap();
        assert_eq!(run.id, "00aa01");
        assert_eq!(
            tasks
                .iter()
                .map(|t| (t.path.as_str(), t.state.as_str()))
                .collect::<Vec<_>>(),
            [("make", "SUCCEEDED"), ("loop[0]/sq", "CACHED")]
        );
        assert_eq!(tasks[0].cache_reasons, ["input parameter `n` changed"]);
        assert_eq!(tasks[0].outputs, serde_json::json!({"Output": 3}));
        assert_eq!(tasks[0].duration_ms, 1500);
        let logs = store.logs("00aa01", Some("make")).unwrap();
        assert_eq!(
            (logs[0].stdout.as_str(), logs[0].stderr.as_str()),
            ("out\n", "err\n")
        );
        assert!(matches!(store.run("zz"), Err(StoreError::NoSuchRun(_))));
        assert!(matches!(
            store.logs("00aa01", Some("nope")),
            Err(StoreError::NoSuchRun(_))
        ));
    }

    #[test]
    fn lineage_follows_outputs_back_through_their_producers() {
        use crate::executor_input::RuntimeArtifact;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("runs.db")).unwrap();
        let start = RunStart {
            id: "r1".into(),
            pipeline: "p".into(),
            pipeline_root: dir.path().into(),
            parameters: BTreeMap::new(),
        };
        Store::run_started(&store, &start).unwrap();
        let artifact = |uri: &str| RuntimeArtifact {
            name: uri.into(),
            type_schema: None,
            uri: uri.into(),
            metadata: Default::default(),
        };
        let mut make = record("make", TaskState::Succeeded, None);
        make.artifacts = BTreeMap::from([("data".to_owned(), vec![artifact("/root/data")])]);
        make.digests.insert("/root/data".into(), "sha256:d".into());
        make.inputs = BTreeMap::from([("rows".to_owned(), serde_json::json!(5))]);
        let mut train = record("train", TaskState::Succeeded, None);
        train.input_artifacts = make.artifacts.clone();
        train.artifacts = BTreeMap::from([("model".to_owned(), vec![artifact("/root/model")])]);
        train.digests = BTreeMap::from([
            ("/root/data".into(), "sha256:d".into()),
            ("/root/model".into(), "sha256:m".into()),
        ]);
        Store::task_finished(&store, "r1", &make).unwrap();
        Store::task_finished(&store, "r1", &train).unwrap();

        let model = store.lineage("file:///root/model").unwrap().unwrap();
        assert_eq!(model.digest, "sha256:m");
        let by = model.produced_by.unwrap();
        assert_eq!(
            (by.task.as_str(), by.run_id.as_str(), by.pipeline.as_str()),
            ("train", "r1", "p")
        );
        let (name, data) = &by.inputs[0];
        assert_eq!((name.as_str(), data.digest.as_str()), ("data", "sha256:d"));
        let make = data.produced_by.as_ref().unwrap();
        assert_eq!(make.parameters, serde_json::json!({"rows": 5}));
        assert!(make.inputs.is_empty());
    }
}
