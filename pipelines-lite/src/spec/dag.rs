//! DAGs and their tasks: `dag.tasks`, inputs, triggers, loops, retries (KFP's `DagSpec` and
//! `PipelineTaskSpec`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The tasks of a DAG component and how its outputs are taken from them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DagSpec {
    /// Tasks by name.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskSpec>,
    /// The DAG's outputs.
    #[serde(default)]
    pub outputs: DagOutputsSpec,
}

/// One task of a DAG.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskSpec {
    /// Display name.
    pub task_info: TaskInfo,
    /// The component the task runs.
    pub component_ref: ComponentRef,
    /// Where each input comes from.
    #[serde(default)]
    pub inputs: TaskInputsSpec,
    /// Tasks that must finish first.
    #[serde(default)]
    pub dependent_tasks: Vec<String>,
    /// Caching; an absent `enableCache` is `false` (proto3 leaves false out).
    pub caching_options: Option<CachingOptions>,
    /// `dsl.If` conditions and the exit-handler strategy.
    pub trigger_policy: Option<TriggerPolicy>,
    /// `dsl.ParallelFor` over parameters.
    pub parameter_iterator: Option<ParameterIterator>,
    /// `dsl.ParallelFor` over artifacts.
    pub artifact_iterator: Option<ArtifactIterator>,
    /// `parallelism=` of a `dsl.ParallelFor`.
    pub iterator_policy: Option<IteratorPolicy>,
    /// `set_retry`.
    pub retry_policy: Option<RetryPolicySpec>,
}

/// `taskInfo`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
}

/// `componentRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentRef {
    /// A key of `components`.
    pub name: String,
}

/// `cachingOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CachingOptions {
    /// Whether a cached result may be reused.
    #[serde(default)]
    pub enable_cache: bool,
}

/// `triggerPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TriggerPolicy {
    /// A CEL expression over `inputs.parameter_values`.
    pub condition: Option<String>,
    /// When upstream tasks count as done.
    pub strategy: Option<TriggerStrategy>,
}

/// `triggerPolicy.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerStrategy {
    /// Unset.
    TriggerStrategyUnspecified,
    /// The default: every upstream task succeeded.
    AllUpstreamTasksSucceeded,
    /// Exit handlers and `ignore_upstream_failure`: every upstream task finished, however.
    AllUpstreamTasksCompleted,
}

/// `parameterIterator`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParameterIterator {
    /// The list to iterate.
    pub items: IteratorItems,
    /// The input of the loop's component that receives each item.
    pub item_input: String,
}

/// `parameterIterator.items`: a JSON list written in the spec, or an input parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IteratorItems {
    /// A JSON list as text.
    pub raw: Option<String>,
    /// The name of one of the loop task's inputs, holding a list.
    pub input_parameter: Option<String>,
}

/// `artifactIterator`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactIterator {
    /// The artifact list to iterate.
    pub items: ArtifactIteratorItems,
    /// The input of the loop's component that receives each artifact.
    pub item_input: String,
}

/// `artifactIterator.items`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactIteratorItems {
    /// The name of one of the loop task's artifact inputs.
    pub input_artifact: String,
}

/// `iteratorPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IteratorPolicy {
    /// The most iterations running at once (0: no limit).
    #[serde(default)]
    pub parallelism_limit: u32,
}

/// `retryPolicy`, as written (durations are Go duration strings).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicySpec {
    /// Retries after the first attempt.
    #[serde(default)]
    pub max_retry_count: u32,
    /// The first delay.
    pub backoff_duration: Option<String>,
    /// The factor between delays.
    pub backoff_factor: Option<f64>,
    /// The cap on each delay.
    pub backoff_max_duration: Option<String>,
}

/// `inputs` of a task.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskInputsSpec {
    /// Parameter inputs by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterInputSpec>,
    /// Artifact inputs by name.
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactInputSpec>,
}

/// Where one parameter input comes from (exactly one of the sources is set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParameterInputSpec {
    /// An output parameter of a sibling task.
    pub task_output_parameter: Option<TaskOutputParameter>,
    /// A constant.
    pub runtime_value: Option<RuntimeValue>,
    /// An input of the enclosing component.
    pub component_input_parameter: Option<String>,
    /// The final status of a task (exit handlers).
    pub task_final_status: Option<TaskFinalStatusRef>,
    /// A CEL expression applied to the value (`parseJson(string_value)["a"]` for loop items).
    pub parameter_expression_selector: Option<String>,
}

/// `taskOutputParameter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskOutputParameter {
    /// The sibling task.
    pub producer_task: String,
    /// Its output's name.
    pub output_parameter_key: String,
}

/// `runtimeValue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeValue {
    /// The value.
    pub constant: serde_json::Value,
}

/// `taskFinalStatus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskFinalStatusRef {
    /// The task whose status is passed.
    pub producer_task: String,
}

/// Where one artifact input comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactInputSpec {
    /// An output artifact of a sibling task.
    pub task_output_artifact: Option<TaskOutputArtifact>,
    /// An artifact input of the enclosing component.
    pub component_input_artifact: Option<String>,
}

/// `taskOutputArtifact`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskOutputArtifact {
    /// The sibling task.
    pub producer_task: String,
    /// Its output's name.
    pub output_artifact_key: String,
}

/// `dag.outputs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DagOutputsSpec {
    /// Parameter outputs by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, DagOutputParameterSpec>,
    /// Artifact outputs by name.
    #[serde(default)]
    pub artifacts: BTreeMap<String, DagOutputArtifactSpec>,
}

/// One parameter output of a DAG.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DagOutputParameterSpec {
    /// From one subtask (collected into a list when the DAG is a loop).
    pub value_from_parameter: Option<OutputParameterSelector>,
    /// `dsl.OneOf`: the first branch that ran.
    pub value_from_oneof: Option<OneOfSelectors>,
}

/// `valueFromParameter` and the entries of `parameterSelectors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutputParameterSelector {
    /// The subtask.
    pub producer_subtask: String,
    /// Its output's name.
    pub output_parameter_key: String,
}

/// `valueFromOneof`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OneOfSelectors {
    /// Candidates in order.
    pub parameter_selectors: Vec<OutputParameterSelector>,
}

/// One artifact output of a DAG.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DagOutputArtifactSpec {
    /// Candidates (one, or several for `dsl.OneOf`).
    pub artifact_selectors: Vec<OutputArtifactSelector>,
}

/// An entry of `artifactSelectors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutputArtifactSelector {
    /// The subtask.
    pub producer_subtask: String,
    /// Its output's name.
    pub output_artifact_key: String,
}
