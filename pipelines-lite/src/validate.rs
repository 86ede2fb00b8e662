//! Checks, before anything runs, that Kiln can honour the whole spec: references resolve,
//! conditions parse as the CEL subset, placeholders are known, every required input is given,
//! and the platform spec asks for nothing a local process cannot have. Each problem is reported
//! with its path; fields that only place work on a cluster come back as warnings.

use std::fmt;

use crate::cel::Program;
use crate::placeholder::{Reference, references};
use crate::retry::RetryPolicy;
use crate::spec::{ComponentSpec, KubernetesExecutorConfig, PipelineFile, PipelineSpec, TaskSpec};

/// One problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// For example `root.dag.tasks.train.inputs.parameters.lr`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline spec cannot run here:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct Invalid(pub Vec<Problem>);

/// Validates `file`; on success returns the warnings.
pub fn validate(file: &PipelineFile) -> Result<Vec<Problem>, Invalid> {
    let mut v = Validator {
        spec: &file.spec,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let spec = &file.spec;
    if spec.root.dag.is_none() {
        v.problem("root.dag", "the pipeline's root must be a DAG".to_owned());
    }
    v.component("root", &spec.root);
    for (name, c) in &spec.components {
        v.component(&format!("components.{name}"), c);
    }
    for (label, e) in &spec.deployment_spec.executors {
        let path = format!("deploymentSpec.executors.{label}");
        match (&e.container, &e.importer) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => v.problem(
                &path,
                "needs exactly one of `container` and `importer`".to_owned(),
            ),
        }
    }
    if let Some(platform) = &file.platform {
        for (name, p) in &platform.platforms {
            let path = format!("platforms.{name}");
            if name != "kubernetes" {
                v.problem(
                    &path,
                    format!("platform `{name}` is not one Kiln knows (only `kubernetes`)"),
                );
                continue;
            }
            if p.pipeline_config
                .as_ref()
                .is_some_and(|c| !c.as_object().is_some_and(|m| m.is_empty()))
            {
                v.problem(
                    &format!("{path}.pipelineConfig"),
                    "pipeline-wide platform settings cannot be honoured locally".to_owned(),
                );
            }
            for (label, config) in &p.deployment_spec.executors {
                let path = format!("{path}.deploymentSpec.executors.{label}");
                if !spec.deployment_spec.executors.contains_key(label) {
                    v.problem(&path, format!("no executor `{label}` in deploymentSpec"));
                }
                v.kubernetes(&path, config);
            }
        }
    }
    if v.problems.is_empty() {
        Ok(v.warnings)
    } else {
        Err(Invalid(v.problems))
    }
}

struct Validator<'a> {
    spec: &'a PipelineSpec,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: &str, message: String) {
        self.problems.push(Problem {
            path: path.to_owned(),
            message,
        });
    }

    fn component(&mut self, path: &str, c: &ComponentSpec) {
        match (&c.dag, &c.executor_label) {
            (Some(dag), None) => {
                for (name, task) in &dag.tasks {
                    self.task(
                        &format!("{path}.dag.tasks.{name}"),
                        c,
                        &dag.tasks,
                        name,
                        task,
                    );
                }
                for (name, out) in &dag.outputs.parameters {
                    let producers: Vec<&String> = out
                        .value_from_parameter
                        .iter()
                        .map(|s| &s.producer_subtask)
                        .chain(out.value_from_oneof.iter().flat_map(|o| {
                            o.parameter_selectors.iter().map(|s| &s.producer_subtask)
                        }))
                        .collect();
                    if producers.is_empty() {
                        self.problem(
                            &format!("{path}.dag.outputs.parameters.{name}"),
                            "takes its value from nothing".to_owned(),
                        );
                    }
                    for p in producers
                        .into_iter()
                        .filter(|p| !dag.tasks.contains_key(*p))
                    {
                        self.problem(
                            &format!("{path}.dag.outputs.parameters.{name}"),
                            format!("no task `{p}` in this DAG"),
                        );
                    }
                }
                for (name, out) in &dag.outputs.artifacts {
                    for s in out
                        .artifact_selectors
                        .iter()
                        .filter(|s| !dag.tasks.contains_key(&s.producer_subtask))
                    {
                        self.problem(
                            &format!("{path}.dag.outputs.artifacts.{name}"),
                            format!("no task `{}` in this DAG", s.producer_subtask),
                        );
                    }
                }
            }
            (None, Some(label)) => match self.spec.deployment_spec.executors.get(label) {
                None => self.problem(
                    &format!("{path}.executorLabel"),
                    format!("no executor `{label}` in deploymentSpec"),
                ),
                Some(e) => {
                    if let Some(container) = &e.container {
                        let epath = format!("deploymentSpec.executors.{label}.container");
                        let fields = container
                            .command
                            .iter()
                            .chain(&container.args)
                            .chain(container.env.iter().map(|e| &e.value));
                        for arg in fields {
                            match references(arg) {
                                Err(err) => self.problem(&epath, err.to_string()),
                                Ok(refs) => {
                                    for r in refs {
                                        if let Some(m) = self.unknown_name(c, &r) {
                                            self.problem(&epath, m);
                                        }
                                    }
                                }
                            }
                        }
                        if container.command.is_empty() && container.args.is_empty() {
                            self.problem(&epath, "has no command: a local process needs one (the image's entry point is not known here)".to_owned());
                        }
                    }
                }
            },
            _ => self.problem(
                path,
                "needs exactly one of `dag` and `executorLabel`".to_owned(),
            ),
        }
    }

    /// A placeholder naming an input or output the component does not declare.
    fn unknown_name(&self, c: &ComponentSpec, r: &Reference) -> Option<String> {
        let (kind, name, found) = match r {
            Reference::InputParameter(n) => (
                "input parameter",
                n,
                c.input_definitions.parameters.contains_key(n),
            ),
            Reference::InputArtifacts(n) | Reference::InputArtifact(n, _) => (
                "input artifact",
                n,
                c.input_definitions.artifacts.contains_key(n),
            ),
            Reference::OutputParameterFile(n) => (
                "output parameter",
                n,
                c.output_definitions.parameters.contains_key(n),
            ),
            Reference::OutputArtifacts(n) | Reference::OutputArtifact(n, _) => (
                "output artifact",
                n,
                c.output_definitions.artifacts.contains_key(n),
            ),
            _ => return None,
        };
        (!found).then(|| {
            format!("a placeholder names {kind} `{name}`, which the component does not declare")
        })
    }

    fn task(
        &mut self,
        path: &str,
        parent: &ComponentSpec,
        siblings: &std::collections::BTreeMap<String, TaskSpec>,
        _name: &str,
        task: &TaskSpec,
    ) {
        let Some(component) = self.spec.components.get(&task.component_ref.name) else {
            self.problem(
                &format!("{path}.componentRef.name"),
                format!("no component `{}`", task.component_ref.name),
            );
            return;
        };
        for dep in &task.dependent_tasks {
            if !siblings.contains_key(dep) {
                self.problem(
                    &format!("{path}.dependentTasks"),
                    format!("no task `{dep}` in this DAG"),
                );
            }
        }
        if let Some(condition) = task
            .trigger_policy
            .as_ref()
            .and_then(|t| t.condition.as_ref())
            && let Err(e) = Program::parse(condition)
        {
            self.problem(&format!("{path}.triggerPolicy.condition"), e.to_string());
        }
        if let Some(r) = &task.retry_policy
            && let Err(e) = RetryPolicy::from_spec(r)
        {
            self.problem(path, e.to_string());
        }
        let mut loop_inputs = Vec::new();
        if let Some(it) = &task.parameter_iterator {
            loop_inputs.push(it.item_input.clone());
            match (&it.items.raw, &it.items.input_parameter) {
                (Some(raw), None) => {
                    if !matches!(
                        serde_json::from_str::<serde_json::Value>(raw),
                        Ok(serde_json::Value::Array(_))
                    ) {
                        self.problem(
                            &format!("{path}.parameterIterator.items.raw"),
                            format!("{raw:?} is not a JSON list"),
                        );
                    }
                }
                (None, Some(p)) => {
                    if !task.inputs.parameters.contains_key(p) {
                        self.problem(
                            &format!("{path}.parameterIterator.items.inputParameter"),
                            format!("the task has no input `{p}`"),
                        );
                    }
                }
                _ => self.problem(
                    &format!("{path}.parameterIterator.items"),
                    "needs exactly one of `raw` and `inputParameter`".to_owned(),
                ),
            }
        }
        if let Some(it) = &task.artifact_iterator {
            loop_inputs.push(it.item_input.clone());
            if !task.inputs.artifacts.contains_key(&it.items.input_artifact) {
                self.problem(
                    &format!("{path}.artifactIterator.items.inputArtifact"),
                    format!(
                        "the task has no artifact input `{}`",
                        it.items.input_artifact
                    ),
                );
            }
        }
        for (input, source) in &task.inputs.parameters {
            let ipath = format!("{path}.inputs.parameters.{input}");
            let sources = [
                source.task_output_parameter.is_some(),
                source.runtime_value.is_some(),
                source.component_input_parameter.is_some(),
                source.task_final_status.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                self.problem(&ipath, "needs exactly one of taskOutputParameter, runtimeValue, componentInputParameter, taskFinalStatus".to_owned());
            }
            if let Some(p) = &source.component_input_parameter
                && !parent.input_definitions.parameters.contains_key(p)
            {
                self.problem(
                    &ipath,
                    format!("the enclosing component has no input parameter `{p}`"),
                );
            }
            for producer in source
                .task_output_parameter
                .iter()
                .map(|t| &t.producer_task)
                .chain(source.task_final_status.iter().map(|t| &t.producer_task))
            {
                if !siblings.contains_key(producer) {
                    self.problem(&ipath, format!("no task `{producer}` in this DAG"));
                }
            }
            if let Some(sel) = &source.parameter_expression_selector
                && let Err(e) = Program::parse(sel)
            {
                self.problem(
                    &format!("{ipath}.parameterExpressionSelector"),
                    e.to_string(),
                );
            }
        }
        for (input, source) in &task.inputs.artifacts {
            let ipath = format!("{path}.inputs.artifacts.{input}");
            match (
                &source.task_output_artifact,
                &source.component_input_artifact,
            ) {
                (Some(t), None) => {
                    if !siblings.contains_key(&t.producer_task) {
                        self.problem(&ipath, format!("no task `{}` in this DAG", t.producer_task));
                    }
                }
                (None, Some(a)) => {
                    if !parent.input_definitions.artifacts.contains_key(a) {
                        self.problem(
                            &ipath,
                            format!("the enclosing component has no input artifact `{a}`"),
                        );
                    }
                }
                _ => self.problem(
                    &ipath,
                    "needs exactly one of taskOutputArtifact and componentInputArtifact".to_owned(),
                ),
            }
        }
        // Every required input of the component is given.
        for (input, p) in &component.input_definitions.parameters {
            let given = task.inputs.parameters.contains_key(input) || loop_inputs.contains(input);
            if !given && p.default_value.is_none() && !p.is_optional {
                self.problem(
                    &format!("{path}.inputs.parameters"),
                    format!(
                        "required input parameter `{input}` of `{}` is not given",
                        task.component_ref.name
                    ),
                );
            }
        }
        for (input, a) in &component.input_definitions.artifacts {
            let given = task.inputs.artifacts.contains_key(input) || loop_inputs.contains(input);
            if !given && !a.is_optional {
                self.problem(
                    &format!("{path}.inputs.artifacts"),
                    format!(
                        "required input artifact `{input}` of `{}` is not given",
                        task.component_ref.name
                    ),
                );
            }
        }
        for input in task.inputs.parameters.keys() {
            if !component.input_definitions.parameters.contains_key(input) {
                self.problem(
                    &format!("{path}.inputs.parameters.{input}"),
                    format!("`{}` has no such input", task.component_ref.name),
                );
            }
        }
    }

    fn kubernetes(&mut self, path: &str, c: &KubernetesExecutorConfig) {
        let placement = [
            ("nodeSelector", c.node_selector.is_some()),
            ("tolerations", c.tolerations.is_some()),
            ("nodeAffinity", c.node_affinity.is_some()),
            ("podAffinity", c.pod_affinity.is_some()),
            ("imagePullSecret", c.image_pull_secret.is_some()),
            ("imagePullPolicy", c.image_pull_policy.is_some()),
            ("podMetadata", c.pod_metadata.is_some()),
        ];
        for (field, _) in placement.iter().filter(|(_, set)| *set) {
            self.warnings.push(Problem {
                path: format!("{path}.{field}"),
                message: "only places work on a cluster; ignored here".to_owned(),
            });
        }
        let refused = [
            ("secretAsVolume", c.secret_as_volume.is_some()),
            ("secretAsEnv", c.secret_as_env.is_some()),
            ("pvcMount", c.pvc_mount.is_some()),
            ("configMapAsVolume", c.config_map_as_volume.is_some()),
            ("configMapAsEnv", c.config_map_as_env.is_some()),
            ("fieldPathAsEnv", c.field_path_as_env.is_some()),
            (
                "genericEphemeralVolume",
                c.generic_ephemeral_volume.is_some(),
            ),
            ("emptyDirMounts", c.empty_dir_mounts.is_some()),
            ("enabledSharedMemory", c.enabled_shared_memory.is_some()),
        ];
        for (field, _) in refused.iter().filter(|(_, set)| *set) {
            self.problem(&format!("{path}.{field}"), "Kiln cannot provide this to a local process, and the step's results would depend on it".to_owned());
        }
        if c.active_deadline_seconds.is_some_and(|s| s <= 0) {
            self.problem(
                &format!("{path}.activeDeadlineSeconds"),
                "must be positive".to_owned(),
            );
        }
    }
}
