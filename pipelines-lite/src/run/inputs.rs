//! A task's inputs: each from the enclosing DAG's inputs, a sibling's outputs, a constant or a
//! sibling's final status, then an optional selector, then the component's defaults, each
//! brought to the declared type.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Values;
use super::dag::Outcome;
use crate::cel::{Bindings, Program};
use crate::spec::{ComponentSpec, TaskSpec};
use crate::value::{ParameterType, coerce};

/// What an exit handler receives about a task (`dsl.PipelineTaskFinalStatus`).
#[derive(Debug, Clone)]
pub(crate) struct FinalStatus {
    state: &'static str,
    error: Option<String>,
}

impl FinalStatus {
    pub(crate) fn of(o: &Outcome) -> Self {
        match o {
            Outcome::Succeeded(_) => Self {
                state: "SUCCEEDED",
                error: None,
            },
            Outcome::Skipped => Self {
                state: "SKIPPED",
                error: None,
            },
            Outcome::Failed(e) => Self {
                state: "FAILED",
                error: Some(e.clone()),
            },
            Outcome::NotRun => Self {
                state: "NOT_TRIGGERED",
                error: None,
            },
        }
    }
}

/// What a task's inputs are resolved from.
pub(crate) struct Resolved<'a> {
    dag_inputs: &'a Values,
    done: &'a BTreeMap<String, Outcome>,
    statuses: BTreeMap<String, FinalStatus>,
}

impl<'a> Resolved<'a> {
    pub(crate) fn new(
        dag_inputs: &'a Values,
        done: &'a BTreeMap<String, Outcome>,
        statuses: BTreeMap<String, FinalStatus>,
    ) -> Self {
        Self {
            dag_inputs,
            done,
            statuses,
        }
    }

    fn produced(&self, task: &str) -> Option<&'a Values> {
        match self.done.get(task) {
            Some(Outcome::Succeeded(v)) => Some(v),
            _ => None,
        }
    }

    /// The task's inputs, typed by `component`'s input definitions.
    pub(crate) fn task_inputs(
        &self,
        task: &TaskSpec,
        component: &ComponentSpec,
        job: &str,
        run_id: &str,
    ) -> Result<Values, String> {
        let mut out = Values::default();
        for (name, source) in &task.inputs.parameters {
            let value = if let Some(p) = &source.component_input_parameter {
                self.dag_inputs.parameters.get(p).cloned()
            } else if let Some(t) = &source.task_output_parameter {
                self.produced(&t.producer_task)
                    .and_then(|v| v.parameters.get(&t.output_parameter_key).cloned())
            } else if let Some(c) = &source.runtime_value {
                Some(c.constant.clone())
            } else if let Some(t) = &source.task_final_status {
                self.statuses.get(&t.producer_task).map(|s| {
                    json!({
                        "state": s.state,
                        "pipelineJobResourceName": format!("{job}-{run_id}"),
                        "pipelineTaskName": t.producer_task,
                        "error": s.error.as_ref().map_or(json!({}), |m| json!({"code": 2, "message": m})),
                    })
                })
            } else {
                None
            };
            let Some(mut value) = value else { continue };
            if let Some(selector) = &source.parameter_expression_selector {
                value = select(selector, value)?;
            }
            let Some(def) = component.input_definitions.parameters.get(name) else {
                return Err(format!(
                    "input `{name}` is not an input of `{}`",
                    task.component_ref.name
                ));
            };
            out.parameters.insert(
                name.clone(),
                to_type(def.parameter_type, value).map_err(|e| format!("input `{name}`: {e}"))?,
            );
        }
        for (name, source) in &task.inputs.artifacts {
            let list = if let Some(a) = &source.component_input_artifact {
                self.dag_inputs.artifacts.get(a).cloned()
            } else if let Some(t) = &source.task_output_artifact {
                self.produced(&t.producer_task)
                    .and_then(|v| v.artifacts.get(&t.output_artifact_key).cloned())
            } else {
                None
            };
            if let Some(list) = list {
                out.artifacts.insert(name.clone(), list);
            }
        }
        for (name, def) in &component.input_definitions.parameters {
            if out.parameters.contains_key(name) || is_loop_input(task, name) {
                continue;
            }
            if let Some(d) = &def.default_value {
                out.parameters.insert(
                    name.clone(),
                    coerce(def.parameter_type, d.clone())
                        .map_err(|e| format!("default of `{name}`: {e}"))?,
                );
            } else if !def.is_optional {
                return Err(format!("required input parameter `{name}` has no value"));
            }
        }
        for (name, def) in &component.input_definitions.artifacts {
            if !out.artifacts.contains_key(name) && !def.is_optional && !is_loop_input(task, name) {
                return Err(format!("required input artifact `{name}` has no value"));
            }
        }
        Ok(out)
    }
}

fn is_loop_input(task: &TaskSpec, name: &str) -> bool {
    task.parameter_iterator
        .as_ref()
        .is_some_and(|i| i.item_input == name)
        || task
            .artifact_iterator
            .as_ref()
            .is_some_and(|i| i.item_input == name)
}

/// Brings a value to its declared type. A `STRING` input fed a non-string (a loop over dicts
/// declares its item `STRING`) receives the value's JSON text, as KFP's backend passes it.
fn to_type(ty: ParameterType, value: Value) -> Result<Value, crate::value::TypeError> {
    match (ty, value) {
        (ParameterType::String, v @ Value::String(_)) => Ok(v),
        (ParameterType::String, v) => Ok(Value::String(v.to_string())),
        (ty, v) => coerce(ty, v),
    }
}

/// `parameterExpressionSelector`, with the value bound as protobuf's `Value` fields.
fn select(selector: &str, value: Value) -> Result<Value, String> {
    let program = Program::parse(selector).map_err(|e| e.to_string())?;
    let text = match &value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut b = Bindings::default().with("string_value", Value::String(text));
    match &value {
        Value::Number(_) => b = b.with("number_value", value.clone()),
        Value::Bool(_) => b = b.with("bool_value", value.clone()),
        Value::Array(_) => b = b.with("list_value", value.clone()),
        Value::Object(_) => b = b.with("struct_value", value.clone()),
        _ => {}
    }
    program
        .eval(&b)
        .map_err(|e| format!("selector {selector:?}: {e}"))
}
