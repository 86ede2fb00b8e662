//! The pipeline spec `kfp.compiler.Compiler` writes (kfp 2.17), as serde types with KFP's field
//! names. Every struct denies unknown fields: a field Kiln does not know is one it cannot
//! honour, and [`PipelineFile::parse`] names it with its path before anything runs.

mod component;
mod dag;
mod executor;
mod platform;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use component::{
    ArtifactSpec, ArtifactTypeSchema, ComponentSpec, InterfaceSpec, ParameterSpec,
};
pub use dag::{
    ArtifactInputSpec, ArtifactIterator, ArtifactIteratorItems, CachingOptions, ComponentRef,
    DagOutputArtifactSpec, DagOutputParameterSpec, DagOutputsSpec, DagSpec, IteratorItems,
    IteratorPolicy, OneOfSelectors, OutputArtifactSelector, OutputParameterSelector,
    ParameterInputSpec, ParameterIterator, RetryPolicySpec, RuntimeValue, TaskFinalStatusRef,
    TaskInfo, TaskInputsSpec, TaskOutputArtifact, TaskOutputParameter, TaskSpec, TriggerPolicy,
    TriggerStrategy,
};
pub use executor::{
    ContainerSpec, DeploymentSpec, EnvVar, ExecutorSpec, ImporterSpec, ImporterUri,
};
pub use platform::{KubernetesExecutorConfig, PlatformSpec, SinglePlatformSpec};

/// The first document: `PipelineSpec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineSpec {
    /// The pipeline's name.
    pub pipeline_info: PipelineInfo,
    /// Executors by label.
    #[serde(default)]
    pub deployment_spec: DeploymentSpec,
    /// For example `kfp-2.17.3`.
    pub sdk_version: Option<String>,
    /// For example `2.1.0`.
    pub schema_version: Option<String>,
    /// Components by name.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
    /// The pipeline itself: a DAG component.
    pub root: ComponentSpec,
    /// Where artifacts go when the run names no root.
    pub default_pipeline_root: Option<String>,
}

/// `pipelineInfo`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineInfo {
    /// The pipeline's name.
    pub name: String,
    /// A display name.
    pub display_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// A compiled pipeline file: the spec and, when present, the platform-spec document.
#[derive(Debug, Clone)]
pub struct PipelineFile {
    /// The pipeline.
    pub spec: PipelineSpec,
    /// `platforms:`, from the second document.
    pub platform: Option<PlatformSpec>,
}

/// Why a pipeline file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not YAML.
    #[error("not a YAML pipeline file: {0}")]
    Yaml(#[source] kiln_api::yaml::Error),
    /// No document at all.
    #[error("the file holds no YAML document")]
    Empty,
    /// More documents than the spec and its platform spec.
    #[error(
        "the file holds {0} YAML documents; a compiled pipeline has one, or two with its platform spec"
    )]
    TooManyDocuments(usize),
    /// A field Kiln does not know, a wrong type, a missing field.
    #[error("{document}: {path}: {source}")]
    Field {
        /// `PipelineSpec` or `PlatformSpec`.
        document: &'static str,
        /// The field's path, for example `root.dag.tasks.train.retryPolicy`.
        path: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

impl PipelineFile {
    /// Reads the YAML `kfp.compiler.Compiler` writes.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        // YAML 1.2 booleans only: PyYAML (which the SDK writes with) leaves `n`, `y` unquoted
        // as strings, and an output named `n` must not read as `false`.
        let docs: Vec<serde_json::Value> =
            kiln_api::yaml::from_multiple(text).map_err(ParseError::Yaml)?;
        let mut docs = docs.into_iter().filter(|d| !d.is_null());
        let first = docs.next().ok_or(ParseError::Empty)?;
        let second = docs.next();
        let rest = docs.count();
        if rest > 0 {
            return Err(ParseError::TooManyDocuments(rest + 2));
        }
        let spec = typed("PipelineSpec", first)?;
        let platform = second.map(|d| typed("PlatformSpec", d)).transpose()?;
        Ok(Self { spec, platform })
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    document: &'static str,
    value: serde_json::Value,
) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(|e| ParseError::Field {
        document,
        path: e.path().to_string(),
        source: e.into_inner(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_yaml_1_1_reads_as_booleans_stay_strings() {
        let text = "pipelineInfo:\n  name: n\nroot:\n  dag:\n    tasks: {}\n  inputDefinitions:\n    parameters:\n      y:\n        parameterType: BOOLEAN\n        defaultValue: true\n";
        let file = PipelineFile::parse(text).unwrap();
        assert_eq!(file.spec.pipeline_info.name, "n");
        let y = &file.spec.root.input_definitions.parameters["y"];
        assert_eq!(y.default_value, Some(serde_json::Value::Bool(true)));
    }

    #[test]
    fn a_third_document_is_refused() {
        let doc = "pipelineInfo:\n  name: p\nroot:\n  dag:\n    tasks: {}\n";
        let text = format!("{doc}---\nplatforms: {{}}\n---\nplatforms: {{}}\n");
        assert!(matches!(
            PipelineFile::parse(&text),
            Err(ParseError::TooManyDocuments(3))
        ));
    }
}
