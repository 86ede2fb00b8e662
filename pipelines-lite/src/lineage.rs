//! Lineage in ML Metadata's model, in the run store's SQLite file: artifacts (URI, content
//! digest, type), executions (one per leaf task run, with its input parameters), events linking
//! them (INPUT, OUTPUT), and contexts (one per run, one per pipeline) associated with the
//! executions. [`trace`] walks from an artifact back through the executions that produced it
//! to the first inputs.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::run::{TaskKind, TaskRecord, TaskState};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY,
    uri TEXT NOT NULL,
    digest TEXT NOT NULL,
    type TEXT NOT NULL,
    UNIQUE (uri, digest)
);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    parameters TEXT NOT NULL,
    image TEXT
);
CREATE TABLE IF NOT EXISTS events (
    execution_id INTEGER NOT NULL REFERENCES executions(id),
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
    type TEXT NOT NULL CHECK (type IN ('INPUT', 'OUTPUT')),
    name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_artifact ON events (artifact_id, type);
CREATE TABLE IF NOT EXISTS contexts (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (type, name)
);
CREATE TABLE IF NOT EXISTS associations (
    context_id INTEGER NOT NULL REFERENCES contexts(id),
    execution_id INTEGER NOT NULL REFERENCES executions(id)
);
";

/// Records one finished leaf task (nothing for DAGs and tasks that did not produce).
pub(crate) fn record(
    conn: &Connection,
    run_id: &str,
    pipeline: &str,
    t: &TaskRecord,
) -> rusqlite::Result<()> {
    if t.kind == TaskKind::Dag || !matches!(t.state, TaskState::Succeeded | TaskState::Cached) {
        return Ok(());
    }
    let state = if t.state == TaskState::Cached {
        "CACHED"
    } else {
        "COMPLETE"
    };
    let kind = if t.kind == TaskKind::Importer {
        "system.ImporterExecution"
    } else {
        "system.ContainerExecution"
    };
    conn.execute(
        "INSERT INTO executions (run_id, task, kind, state, parameters, image) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![run_id, t.path, kind, state, serde_json::to_string(&t.inputs).unwrap_or_default(), t.image],
    )?;
    let execution = conn.last_insert_rowid();
    for (ty, name) in [
        ("system.PipelineRun", run_id),
        ("system.Pipeline", pipeline),
    ] {
        conn.execute(
            "INSERT OR IGNORE INTO contexts (type, name) VALUES (?1, ?2)",
            params![ty, name],
        )?;
        conn.execute(
            "INSERT INTO associations (context_id, execution_id) SELECT id, ?3 FROM contexts WHERE type = ?1 AND name = ?2",
            params![ty, name, execution],
        )?;
    }
    let sides = [("INPUT", &t.input_artifacts), ("OUTPUT", &t.artifacts)];
    for (event, artifacts) in sides {
        for (name, list) in artifacts {
            for a in list {
                let digest = t.digests.get(&a.uri).cloned().unwrap_or_default();
                let ty = a
                    .type_schema
                    .as_ref()
                    .and_then(|s| s.schema_title.clone())
                    .unwrap_or_else(|| "system.Artifact".to_owned());
                conn.execute(
                    "INSERT OR IGNORE INTO artifacts (uri, digest, type) VALUES (?1, ?2, ?3)",
                    params![a.uri, digest, ty],
                )?;
                conn.execute(
                    "INSERT INTO events (execution_id, artifact_id, type, name)
                     SELECT ?1, id, ?2, ?3 FROM artifacts WHERE uri = ?4 AND digest = ?5",
                    params![execution, event, name, a.uri, digest],
                )?;
            }
        }
    }
    Ok(())
}

/// An artifact and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lineage {
    /// Where it lives.
    pub uri: String,
    /// `sha256:...` of its content (empty when it was not readable here).
    pub digest: String,
    /// Its type, for example `system.Model`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The execution that produced it; `None` for a first input.
    pub produced_by: Option<Box<Producer>>,
}

/// An execution that produced an artifact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Producer {
    /// The run.
    pub run_id: String,
    /// The pipeline.
    pub pipeline: String,
    /// The task's path in the run.
    pub task: String,
    /// `system.ContainerExecution` or `system.ImporterExecution`.
    pub kind: String,
    /// `COMPLETE`, or `CACHED` when the run reused an earlier result.
    pub state: String,
    /// The image the spec names.
    pub image: Option<String>,
    /// Input parameters.
    pub parameters: Value,
    /// Input artifacts by input name, each with its own lineage.
    pub inputs: Vec<(String, Lineage)>,
}

/// The lineage of the newest artifact recorded at `uri`, or `None` when none is.
pub(crate) fn trace(conn: &Connection, uri: &str) -> rusqlite::Result<Option<Lineage>> {
    let newest: Option<(i64, String, String, String)> = conn
        .query_row(
            "SELECT a.id, a.uri, a.digest, a.type FROM artifacts a
             LEFT JOIN events e ON e.artifact_id = a.id AND e.type = 'OUTPUT'
             WHERE a.uri = ?1 ORDER BY e.execution_id DESC, a.id DESC LIMIT 1",
            [uri],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((id, uri, digest, type_name)) = newest else {
        return Ok(None);
    };
    let mut seen = BTreeSet::new();
    artifact(conn, id, uri, digest, type_name, &mut seen).map(Some)
}

fn artifact(
    conn: &Connection,
    id: i64,
    uri: String,
    digest: String,
    type_name: String,
    seen: &mut BTreeSet<i64>,
) -> rusqlite::Result<Lineage> {
    let mut node = Lineage {
        uri,
        digest,
        type_name,
        produced_by: None,
    };
    if !seen.insert(id) {
        return Ok(node);
    }
    // The execution that wrote it; for an imported artifact, the importer.
    let producer: Option<(i64, Producer)> = conn
        .query_row(
            "SELECT x.id, x.run_id, COALESCE(r.pipeline, ''), x.task, x.kind, x.state, x.image, x.parameters
             FROM events e JOIN executions x ON x.id = e.execution_id LEFT JOIN runs r ON r.id = x.run_id
             WHERE e.artifact_id = ?1 AND e.type = 'OUTPUT'
             ORDER BY (x.state = 'COMPLETE') DESC, x.id ASC LIMIT 1",
            [id],
            |r| {
                let parameters: String = r.get(7)?;
                Ok((
                    r.get(0)?,
                    Producer {
                        run_id: r.get(1)?,
                        pipeline: r.get(2)?,
                        task: r.get(3)?,
                        kind: r.get(4)?,
                        state: r.get(5)?,
                        image: r.get(6)?,
                        parameters: serde_json::from_str(&parameters).unwrap_or(Value::Null),
                        inputs: Vec::new(),
                    },
                ))
            },
        )
        .optional()?;
    let Some((execution, mut producer)) = producer else {
        return Ok(node);
    };
    let mut stmt = conn.prepare(
        "SELECT e.name, a.id, a.uri, a.digest, a.type FROM events e JOIN artifacts a ON a.id = e.artifact_id
         WHERE e.execution_id = ?1 AND e.type = 'INPUT' ORDER BY e.name, e.rowid",
    )?;
    let rows: Vec<(String, i64, String, String, String)> = stmt
        .query_map([execution], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    for (name, aid, uri, digest, ty) in rows {
        producer
            .inputs
            .push((name, artifact(conn, aid, uri, digest, ty, seen)?));
    }
    node.produced_by = Some(Box::new(producer));
    Ok(node)
}
