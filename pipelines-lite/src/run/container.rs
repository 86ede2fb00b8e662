//! Leaf tasks. A container executor runs as a local process with KFP's ExecutorInput (through
//! the cache, with retries and a deadline); an importer registers an existing URI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use super::dag::Outcome;
use super::{CacheOutcome, Engine, TaskKind, TaskRecord, TaskState, Values};
use crate::cache::KeyParts;
use crate::digest::{content_digest, sha256_hex};
use crate::executor_input::{
    ArtifactList, ExecutorInput, ExecutorOutput, OutputParameterFile, RuntimeArtifact,
};
use crate::placeholder::{Expander, RunContext};
use crate::process::{self, Exit, ProcessSpec};
use crate::python_env::{InstallLine, path_with};
use crate::retry::RetryPolicy;
use crate::spec::{ComponentSpec, ContainerSpec, ImporterSpec, TaskSpec};
use crate::value::{ParameterType, coerce, parse_text};

impl Engine {
    pub(super) async fn run_leaf(
        &self,
        path: String,
        task: &TaskSpec,
        component: &ComponentSpec,
        inputs: Values,
    ) -> Outcome {
        let label = component.executor_label.as_deref().unwrap_or_default();
        let Some(executor) = self.file.spec.deployment_spec.executors.get(label) else {
            return Outcome::Failed(format!("no executor `{label}`"));
        };
        if let Some(importer) = &executor.importer {
            return self.import(path, importer, component, inputs);
        }
        let Some(container) = &executor.container else {
            return Outcome::Failed(format!("executor `{label}` has nothing Kiln runs"));
        };
        self.observer.task_started(&self.run_id, &path);
        let started = Instant::now();
        let mut record = TaskRecord::not_run(path.clone(), TaskState::Failed, None);
        record.image = Some(container.image.clone());
        record.inputs = inputs.parameters.clone();
        record.input_artifacts = inputs.artifacts.clone();
        let result = self
            .run_container(
                &path,
                label,
                task,
                component,
                container,
                &inputs,
                &mut record,
            )
            .await;
        record.duration = started.elapsed();
        let outcome = match result {
            Ok((values, cached)) => {
                record.state = if cached {
                    TaskState::Cached
                } else {
                    TaskState::Succeeded
                };
                record.outputs = values.parameters.clone();
                record.artifacts = values.artifacts.clone();
                add_digests(&mut record.digests, &values.artifacts);
                Outcome::Succeeded(values)
            }
            Err(e) => {
                record.error = Some(e.clone());
                Outcome::Failed(e)
            }
        };
        self.record(record);
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_container(
        &self,
        path: &str,
        label: &str,
        task: &TaskSpec,
        component: &ComponentSpec,
        container: &ContainerSpec,
        inputs: &Values,
        record: &mut TaskRecord,
    ) -> Result<(Values, bool), String> {
        let pipeline = &self.file.spec.pipeline_info.name;
        let artifact_dir = self.root_dir.join(pipeline).join(&self.run_id).join(path);
        let scratch = self.work_dir.join(path);
        // The launcher makes the folder of every output file; a step only writes the file.
        std::fs::create_dir_all(scratch.join("outputs"))
            .map_err(|e| format!("could not create {}: {e}", scratch.display()))?;
        record.logs = Some(scratch.clone());

        // Output artifacts get their URIs now.
        let mut outputs_art: BTreeMap<String, Vec<RuntimeArtifact>> = BTreeMap::new();
        for (name, spec) in &component.output_definitions.artifacts {
            let uri = artifact_dir.join(name);
            outputs_art.insert(
                name.clone(),
                vec![RuntimeArtifact {
                    name: name.clone(),
                    type_schema: Some(spec.artifact_type.clone()),
                    uri: uri.to_string_lossy().into_owned(),
                    metadata: Default::default(),
                }],
            );
        }

        let use_cache = self.cache.as_ref().filter(|_| {
            task.caching_options
                .as_ref()
                .is_some_and(|c| c.enable_cache)
        });
        let parts = key_parts(container, component, inputs)?;
        for (name, list) in &inputs.artifacts {
            let digests = parts.artifacts.get(name).into_iter().flatten();
            for (a, d) in list.iter().zip(digests) {
                if d.starts_with("sha256:") {
                    record.digests.insert(a.uri.clone(), d.clone());
                }
            }
        }
        let identity = format!("{pipeline}/{path}");
        if let Some(cache) = use_cache {
            let targets = outputs_art
                .iter()
                .map(|(n, l)| (n.clone(), l.iter().map(|a| PathBuf::from(&a.uri)).collect()))
                .collect();
            let key = parts.key();
            match cache.lookup(&key, &targets) {
                Ok(Some(hit)) => {
                    record.cache = CacheOutcome::Hit;
                    tracing::debug!(key = %key, "cache hit");
                    return Ok((
                        Values {
                            parameters: hit.parameters,
                            artifacts: hit.artifacts,
                        },
                        true,
                    ));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("cache lookup failed: {e}"),
            }
            let reasons = match cache.last_parts(&identity) {
                None => vec!["no earlier run of this task".to_owned()],
                Some(before) => {
                    let changes = parts.changes_since(&before);
                    if changes.is_empty() {
                        vec!["the earlier result is no longer in the cache".to_owned()]
                    } else {
                        changes
                    }
                }
            };
            record.cache = CacheOutcome::Miss(reasons);
        }

        let mut input = ExecutorInput::default();
        input.inputs.parameter_values = inputs.parameters.clone();
        input.inputs.artifacts = artifact_lists(&inputs.artifacts);
        for name in component.output_definitions.parameters.keys() {
            let file = scratch.join("outputs").join(name);
            input.outputs.parameters.insert(
                name.clone(),
                OutputParameterFile {
                    output_file: file.to_string_lossy().into_owned(),
                },
            );
        }
        input.outputs.artifacts = artifact_lists(&outputs_art);
        let output_file = scratch.join("executor_output.json");
        input.outputs.output_file = output_file.to_string_lossy().into_owned();
        let run = RunContext {
            job_name: pipeline.clone(),
            job_resource_name: format!("{pipeline}-{}", self.run_id),
            job_uuid: self.run_id.clone(),
            task_name: path.rsplit('/').next().unwrap_or(path).to_owned(),
            task_uuid: sha256_hex(format!("{}/{path}", self.run_id).as_bytes())[..16].to_owned(),
            pipeline_root: self.root_dir.to_string_lossy().into_owned(),
            create_time_utc: self.create_time.clone(),
        };
        let mut command = container.command.clone();
        let mut env: Vec<(String, std::ffi::OsString)> =
            vec![("KILN_RUN_ID".into(), self.run_id.clone().into())];
        if command.len() >= 3
            && command[0] == "sh"
            && command[1] == "-c"
            && let Some(line) = InstallLine::find(&command[2])
        {
            let bin = self
                .envs
                .prepare(&line)
                .await
                .map_err(|e| format!("preparing the Python environment: {e}"))?;
            env.push(("PATH".into(), path_with(&bin)));
            env.push((
                "VIRTUAL_ENV".into(),
                bin.parent().unwrap_or(&bin).as_os_str().to_owned(),
            ));
            command[2] = command[2].replace(&line.text, "");
        }
        let expander = Expander::new(&input, &run);
        let mut argv = Vec::new();
        for arg in command.iter().chain(&container.args) {
            argv.extend(expander.expand_arg(arg).map_err(|e| e.to_string())?);
        }
        for var in &container.env {
            env.push((
                var.name.clone(),
                expander
                    .inline(&var.value)
                    .map_err(|e| e.to_string())?
                    .into(),
            ));
        }
        std::fs::create_dir_all(&artifact_dir)
            .map_err(|e| format!("could not create {}: {e}", artifact_dir.display()))?;
        std::fs::write(
            scratch.join("executor_input.json"),
            serde_json::to_vec_pretty(&input).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        let timeout = self
            .k8s(label)
            .and_then(|k| k.active_deadline_seconds)
            .map(|s| std::time::Duration::from_secs(s.unsigned_abs()))
            .or(self.task_timeout);
        let spec = ProcessSpec {
            argv,
            env,
            cwd: scratch.clone(),
            stdout: scratch.join("stdout.log"),
            stderr: scratch.join("stderr.log"),
            timeout,
        };
        let policy = task
            .retry_policy
            .as_ref()
            .map(RetryPolicy::from_spec)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();

        let mut attempt = 0;
        let values = loop {
            attempt += 1;
            record.attempts = attempt;
            let _ = std::fs::remove_file(&output_file);
            let exit = {
                let _permit = self.parallel.acquire().await.map_err(|e| e.to_string())?;
                process::run(&spec)
                    .await
                    .map_err(|e| format!("could not start {:?}: {e}", spec.argv.first()))?
            };
            let failure = match exit {
                Exit::Status(s) if s.success() => {
                    match read_outputs(component, &input, &outputs_art) {
                        Ok(v) => break v,
                        Err(e) => e,
                    }
                }
                Exit::Status(s) => {
                    record.exit_code = s.code();
                    let code = s.code().map_or_else(
                        || format!("killed by a signal ({s})"),
                        |c| format!("exit code {c}"),
                    );
                    format!(
                        "{code}; stderr: {}",
                        process::tail(&spec.stderr, 2000).trim_end()
                    )
                }
                Exit::TimedOut(limit) => {
                    format!("ran past its deadline of {limit:?} and was killed")
                }
            };
            if attempt > policy.max_retries {
                return Err(failure);
            }
            let delay = policy.delay_before(attempt);
            tracing::warn!(attempt, ?delay, "attempt failed, retrying: {failure}");
            self.clock.sleep(delay).await;
        };
        if let Some(cache) = &self.cache {
            if use_cache.is_some()
                && let Err(e) = cache.store(&parts.key(), &values.parameters, &values.artifacts)
            {
                tracing::warn!("could not store the result in the cache: {e}");
            }
            if let Err(e) = cache.remember_parts(&identity, &parts) {
                tracing::warn!("could not record the cache key: {e}");
            }
        }
        Ok((values, false))
    }

    fn import(
        &self,
        path: String,
        importer: &ImporterSpec,
        component: &ComponentSpec,
        inputs: Values,
    ) -> Outcome {
        let uri = match (
            &importer.artifact_uri.constant,
            &importer.artifact_uri.runtime_parameter,
        ) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(p)) => inputs
                .parameters
                .get(p)
                .and_then(Value::as_str)
                .map(str::to_owned),
            (None, None) => None,
        };
        let mut record = TaskRecord::not_run(path, TaskState::Succeeded, None);
        record.kind = TaskKind::Importer;
        record.attempts = 1;
        let Some(uri) = uri else {
            record.state = TaskState::Failed;
            record.error = Some("the importer has no URI".to_owned());
            self.record(record);
            return Outcome::Failed("the importer has no URI".to_owned());
        };
        let uri = uri
            .strip_prefix("file://")
            .map_or(uri.clone(), str::to_owned);
        let name = component
            .output_definitions
            .artifacts
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "artifact".to_owned());
        let artifact = RuntimeArtifact {
            name: name.clone(),
            type_schema: Some(importer.type_schema.clone()),
            uri,
            metadata: importer.metadata.clone().unwrap_or_default(),
        };
        let values = Values {
            parameters: BTreeMap::new(),
            artifacts: BTreeMap::from([(name, vec![artifact])]),
        };
        record.artifacts = values.artifacts.clone();
        add_digests(&mut record.digests, &values.artifacts);
        self.record(record);
        Outcome::Succeeded(values)
    }
}

/// Adds the content digest of every artifact whose content is here.
fn add_digests(
    digests: &mut BTreeMap<String, String>,
    artifacts: &BTreeMap<String, Vec<RuntimeArtifact>>,
) {
    for a in artifacts.values().flatten() {
        let path = Path::new(&a.uri);
        if path.exists() {
            match content_digest(path) {
                Ok(d) => {
                    digests.insert(a.uri.clone(), d);
                }
                Err(e) => tracing::warn!("could not read {} for its digest: {e}", a.uri),
            }
        }
    }
}

/// The cache key's parts: never a per-run path.
fn key_parts(
    container: &ContainerSpec,
    component: &ComponentSpec,
    inputs: &Values,
) -> Result<KeyParts, String> {
    let executor = json!({
        "image": container.image,
        "command": container.command,
        "args": container.args,
        "env": container.env,
    });
    let outputs = json!({
        "parameters": component.output_definitions.parameters.iter().map(|(n, p)| (n.clone(), p.parameter_type.as_str())).collect::<BTreeMap<_, _>>(),
        "artifacts": component.output_definitions.artifacts.iter().map(|(n, a)| (n.clone(), json!([a.artifact_type, a.is_artifact_list]))).collect::<BTreeMap<_, _>>(),
    });
    let mut parts = KeyParts {
        executor: sha256_hex(executor.to_string().as_bytes()),
        outputs: sha256_hex(outputs.to_string().as_bytes()),
        ..Default::default()
    };
    for (name, value) in &inputs.parameters {
        parts.parameters.insert(name.clone(), value.to_string());
    }
    for (name, list) in &inputs.artifacts {
        let digests = list
            .iter()
            .map(|a| {
                let p = Path::new(&a.uri);
                if p.exists() {
                    content_digest(p)
                        .map_err(|e| format!("reading input artifact `{name}` at {}: {e}", a.uri))
                } else {
                    Ok(format!("uri:{}", a.uri))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        parts.artifacts.insert(name.clone(), digests);
    }
    Ok(parts)
}

/// Output parameters from the executor output or the parameter files; artifacts with their
/// metadata.
fn read_outputs(
    component: &ComponentSpec,
    input: &ExecutorInput,
    artifacts: &BTreeMap<String, Vec<RuntimeArtifact>>,
) -> Result<Values, String> {
    let written: ExecutorOutput = match std::fs::read_to_string(&input.outputs.output_file) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "the executor output {} is not valid: {e}",
                input.outputs.output_file
            )
        })?,
        Err(_) => ExecutorOutput::default(),
    };
    let mut out = Values::default();
    for (name, def) in &component.output_definitions.parameters {
        let value = if let Some(v) = written.parameter_values.get(name) {
            match (def.parameter_type, v) {
                (ParameterType::String, Value::String(_)) => v.clone(),
                (ParameterType::String, v) => Value::String(v.to_string()),
                (ty, v) => coerce(ty, v.clone()).map_err(|e| format!("output `{name}`: {e}"))?,
            }
        } else {
            let file = &input.outputs.parameters[name].output_file;
            let text = std::fs::read_to_string(file).map_err(|_| format!("output parameter `{name}` was not written (neither in the executor output nor to {file})"))?;
            parse_text(def.parameter_type, &text).map_err(|e| format!("output `{name}`: {e}"))?
        };
        out.parameters.insert(name.clone(), value);
    }
    for (name, list) in artifacts {
        let mut list = list.clone();
        if let Some(first) = written
            .artifacts
            .get(name)
            .and_then(|l| l.artifacts.first())
            && let Some(a) = list.first_mut()
        {
            a.metadata = first.metadata.clone();
            if !first.uri.is_empty() {
                a.uri = first
                    .uri
                    .strip_prefix("file://")
                    .unwrap_or(&first.uri)
                    .to_owned();
            }
        }
        out.artifacts.insert(name.clone(), list);
    }
    Ok(out)
}

/// Artifacts by name in ExecutorInput's shape (`{"artifacts": [...]}` per name).
fn artifact_lists(
    by_name: &BTreeMap<String, Vec<RuntimeArtifact>>,
) -> BTreeMap<String, ArtifactList> {
    by_name
        .iter()
        .map(|(name, artifacts)| {
            let list = ArtifactList {
                artifacts: artifacts.clone(),
            };
            (name.clone(), list)
        })
        .collect()
}
