//! Walking one DAG: a task starts when the tasks it depends on have finished (all succeeded,
//! or all completed for `ALL_UPSTREAM_TASKS_COMPLETED`); a false condition skips it; a loop
//! runs its body once per item under `parallelismLimit` and collects the body's outputs in item
//! order (`dsl.Collected`); sub-DAGs recurse. The DAG fails when any task in it failed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::inputs::{FinalStatus, Resolved};
use super::{CacheOutcome, Engine, TaskKind, TaskRecord, TaskState, Values};
use crate::cel::{Bindings, Program};
use crate::spec::{ComponentSpec, DagSpec, TaskSpec, TriggerStrategy};

/// How a task ended, as its DAG sees it.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Succeeded(Values),
    Skipped,
    Failed(String),
    NotRun,
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Self::Succeeded(_) | Self::Skipped)
    }
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}/{name}")
    }
}

impl Engine {
    /// Runs a DAG component with `inputs`; its outputs, or why it failed.
    pub(crate) fn run_dag<'a>(
        &'a self,
        scope: String,
        component: &'a ComponentSpec,
        inputs: Values,
    ) -> BoxFuture<'a, Result<Values, String>> {
        Box::pin(async move {
            let Some(dag) = &component.dag else {
                return Err(format!("{scope}: not a DAG"));
            };
            let outcomes = self.run_tasks(&scope, dag, &inputs).await;
            let failed: Vec<&String> = outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                .map(|(n, _)| n)
                .collect();
            if !failed.is_empty() {
                return Err(format!(
                    "failed: {}",
                    failed
                        .iter()
                        .map(|n| join(&scope, n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(dag_outputs(dag, &outcomes))
        })
    }

    async fn run_tasks(
        &self,
        scope: &str,
        dag: &DagSpec,
        inputs: &Values,
    ) -> BTreeMap<String, Outcome> {
        let mut done: BTreeMap<String, Outcome> = BTreeMap::new();
        let mut started: BTreeSet<&str> = BTreeSet::new();
        let mut running = FuturesUnordered::new();
        loop {
            for (name, task) in &dag.tasks {
                if started.contains(name.as_str()) {
                    continue;
                }
                let upstream = upstream(task);
                if !upstream
                    .iter()
                    .all(|u| done.contains_key(*u) || !dag.tasks.contains_key(*u))
                {
                    continue;
                }
                started.insert(name);
                let all_completed = task.trigger_policy.as_ref().and_then(|t| t.strategy)
                    == Some(TriggerStrategy::AllUpstreamTasksCompleted);
                let upstream_failed = upstream
                    .iter()
                    .any(|u| done.get(*u).is_some_and(|o| !o.ok()));
                if upstream_failed && !all_completed {
                    let path = join(scope, name);
                    self.record(TaskRecord::not_run(path, TaskState::NotRun, None));
                    done.insert(name.clone(), Outcome::NotRun);
                    continue;
                }
                let statuses: BTreeMap<String, FinalStatus> = upstream
                    .iter()
                    .filter_map(|u| done.get(*u).map(|o| (u.to_string(), FinalStatus::of(o))))
                    .collect();
                let resolved = match self.file.spec.components.get(&task.component_ref.name) {
                    Some(component) => Resolved::new(inputs, &done, statuses).task_inputs(
                        task,
                        component,
                        &self.file.spec.pipeline_info.name,
                        &self.run_id,
                    ),
                    None => Err(format!("no component `{}`", task.component_ref.name)),
                };
                let path = join(scope, name);
                let fut = self
                    .run_task(path.clone(), task, resolved)
                    .instrument(tracing::info_span!("task", path = %path));
                running.push(async move { (name.clone(), fut.await) });
            }
            match running.next().await {
                Some((name, outcome)) => {
                    done.insert(name, outcome);
                }
                None => break,
            }
        }
        done
    }

    /// One task: inputs, condition, then a loop, a sub-DAG or a leaf.
    async fn run_task(
        &self,
        path: String,
        task: &TaskSpec,
        resolved: Result<Values, String>,
    ) -> Outcome {
        let Some(component) = self.file.spec.components.get(&task.component_ref.name) else {
            return Outcome::Failed(format!("no component `{}`", task.component_ref.name));
        };
        let started = Instant::now();
        let inputs = match resolved {
            Ok(v) => v,
            Err(e) => return self.failed_before_running(path, e),
        };
        if let Some(condition) = task
            .trigger_policy
            .as_ref()
            .and_then(|t| t.condition.as_ref())
        {
            let bindings = Bindings::default().with(
                "inputs",
                serde_json::json!({ "parameter_values": inputs.parameters }),
            );
            match Program::parse(condition)
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    p.eval_bool(&bindings)
                        .map_err(|e| format!("condition {condition:?}: {e}"))
                }) {
                Ok(true) => {}
                Ok(false) => {
                    self.record(TaskRecord::not_run(path, TaskState::Skipped, None));
                    return Outcome::Skipped;
                }
                Err(e) => return self.failed_before_running(path, e),
            }
        }
        if component.dag.is_some() {
            let result = if task.parameter_iterator.is_some() || task.artifact_iterator.is_some() {
                self.run_loop(&path, task, component, inputs).await
            } else {
                self.run_dag(path.clone(), component, inputs).await
            };
            let (state, error, outputs) = match result {
                Ok(v) => (TaskState::Succeeded, None, v),
                Err(e) => (TaskState::Failed, Some(e), Values::default()),
            };
            let mut record = TaskRecord::not_run(path, state, error.clone());
            record.kind = TaskKind::Dag;
            record.duration = started.elapsed();
            record.outputs = outputs.parameters.clone();
            self.record(record);
            return match error {
                None => Outcome::Succeeded(outputs),
                Some(e) => Outcome::Failed(e),
            };
        }
        self.run_leaf(path, task, component, inputs).await
    }

    /// A `dsl.ParallelFor`: the body once per item, at most `parallelismLimit` at once.
    async fn run_loop(
        &self,
        path: &str,
        task: &TaskSpec,
        component: &ComponentSpec,
        inputs: Values,
    ) -> Result<Values, String> {
        let iterations: Vec<Values> = if let Some(it) = &task.parameter_iterator {
            let items = match (&it.items.raw, &it.items.input_parameter) {
                (Some(raw), _) => serde_json::from_str::<Value>(raw)
                    .map_err(|e| format!("loop items {raw:?}: {e}"))?,
                (None, Some(p)) => inputs
                    .parameters
                    .get(p)
                    .cloned()
                    .ok_or_else(|| format!("the loop's input `{p}` has no value"))?,
                (None, None) => return Err("the loop has no items".to_owned()),
            };
            let Value::Array(items) = crate::value::normalize(items) else {
                return Err("the loop's items are not a list".to_owned());
            };
            items
                .into_iter()
                .map(|item| {
                    let mut v = inputs.clone();
                    v.parameters.insert(it.item_input.clone(), item);
                    v
                })
                .collect()
        } else if let Some(it) = &task.artifact_iterator {
            let list = inputs
                .artifacts
                .get(&it.items.input_artifact)
                .cloned()
                .unwrap_or_default();
            list.into_iter()
                .map(|a| {
                    let mut v = inputs.clone();
                    v.artifacts.insert(it.item_input.clone(), vec![a]);
                    v
                })
                .collect()
        } else {
            return Err("not a loop".to_owned());
        };
        let limit = task
            .iterator_policy
            .as_ref()
            .map_or(0, |p| p.parallelism_limit) as usize;
        let gate = Semaphore::new(if limit == 0 {
            iterations.len().max(1)
        } else {
            limit
        });
        let gate = &gate;
        let runs = iterations.into_iter().enumerate().map(|(i, v)| async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            self.run_dag(format!("{path}[{i}]"), component, v).await
        });
        let results = futures::future::join_all(runs).await;
        let mut collected = Values::default();
        let mut failures = Vec::new();
        for name in component.output_definitions.parameters.keys() {
            collected
                .parameters
                .insert(name.clone(), Value::Array(Vec::new()));
        }
        for result in results {
            match result {
                Ok(v) => {
                    for (name, value) in v.parameters {
                        if let Some(Value::Array(list)) = collected.parameters.get_mut(&name) {
                            list.push(value);
                        }
                    }
                    for (name, list) in v.artifacts {
                        collected.artifacts.entry(name).or_default().extend(list);
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        if failures.is_empty() {
            Ok(collected)
        } else {
            Err(failures.join("; "))
        }
    }
}

/// Tasks this one waits for: `dependentTasks` and every producer it reads from.
fn upstream(task: &TaskSpec) -> BTreeSet<&str> {
    let mut out: BTreeSet<&str> = task.dependent_tasks.iter().map(String::as_str).collect();
    for p in task.inputs.parameters.values() {
        out.extend(
            p.task_output_parameter
                .iter()
                .map(|t| t.producer_task.as_str()),
        );
        out.extend(p.task_final_status.iter().map(|t| t.producer_task.as_str()));
    }
    for a in task.inputs.artifacts.values() {
        out.extend(
            a.task_output_artifact
                .iter()
                .map(|t| t.producer_task.as_str()),
        );
    }
    out
}

/// The DAG's outputs from its tasks' outcomes (`dsl.OneOf`: the first branch that produced one).
fn dag_outputs(dag: &DagSpec, outcomes: &BTreeMap<String, Outcome>) -> Values {
    let produced = |task: &str| match outcomes.get(task) {
        Some(Outcome::Succeeded(v)) => Some(v),
        _ => None,
    };
    let mut out = Values::default();
    for (name, spec) in &dag.outputs.parameters {
        let selectors = spec.value_from_parameter.iter().chain(
            spec.value_from_oneof
                .iter()
                .flat_map(|o| &o.parameter_selectors),
        );
        if let Some(v) = selectors.into_iter().find_map(|s| {
            produced(&s.producer_subtask)?
                .parameters
                .get(&s.output_parameter_key)
                .cloned()
        }) {
            out.parameters.insert(name.clone(), v);
        }
    }
    for (name, spec) in &dag.outputs.artifacts {
        if let Some(list) = spec.artifact_selectors.iter().find_map(|s| {
            produced(&s.producer_subtask)?
                .artifacts
                .get(&s.output_artifact_key)
                .cloned()
        }) {
            out.artifacts.insert(name.clone(), list);
        }
    }
    out
}

impl TaskRecord {
    pub(crate) fn not_run(path: String, state: TaskState, error: Option<String>) -> Self {
        Self {
            path,
            kind: TaskKind::Container,
            state,
            attempts: 0,
            duration: std::time::Duration::ZERO,
            exit_code: None,
            error,
            cache: CacheOutcome::Disabled,
            outputs: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            image: None,
            logs: None,
            inputs: BTreeMap::new(),
            input_artifacts: BTreeMap::new(),
            digests: BTreeMap::new(),
        }
    }
}
