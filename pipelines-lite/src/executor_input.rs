//! The ExecutorInput JSON a step receives (`{{$}}`, `--executor_input`) and the executor
//! output it may write back (`outputs.outputFile`), in the shape KFP's launcher uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::spec::ArtifactTypeSchema;

/// `ExecutorInput`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorInput {
    /// Resolved inputs.
    pub inputs: ExecutorInputs,
    /// Where outputs go.
    pub outputs: ExecutorOutputs,
}

/// `ExecutorInput.inputs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorInputs {
    /// Parameter values by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameter_values: BTreeMap<String, Value>,
    /// Artifacts by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, ArtifactList>,
}

/// `ExecutorInput.outputs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorOutputs {
    /// Output parameters: the file each is written to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, OutputParameterFile>,
    /// Output artifacts, with their URIs chosen in advance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, ArtifactList>,
    /// Where the step may write its executor output.
    pub output_file: String,
}

/// `outputs.parameters.<name>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParameterFile {
    /// The path.
    pub output_file: String,
}

/// `{"artifacts": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactList {
    /// The artifacts (one, except for lists).
    #[serde(default)]
    pub artifacts: Vec<RuntimeArtifact>,
}

/// `RuntimeArtifact`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeArtifact {
    /// The artifact's name.
    #[serde(default)]
    pub name: String,
    /// Its type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_schema: Option<ArtifactTypeSchema>,
    /// Where it lives. For a local pipeline root this is an absolute path, which the kfp SDK's
    /// `Artifact.path` returns unchanged.
    pub uri: String,
    /// Metadata the step attached.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The executor output file: output parameter values and artifact metadata.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorOutput {
    /// Output parameters by name.
    #[serde(default)]
    pub parameter_values: BTreeMap<String, Value>,
    /// Output artifacts by name (metadata and, rarely, a changed URI).
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactList>,
}
