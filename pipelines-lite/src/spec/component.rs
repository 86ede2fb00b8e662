//! Components and their interfaces: `components.<name>` and `root` (KFP's `ComponentSpec`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::dag::DagSpec;
use crate::value::ParameterType;

/// One component: either a DAG of tasks or a reference to an executor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Inputs the component takes.
    #[serde(default)]
    pub input_definitions: InterfaceSpec,
    /// Outputs the component produces.
    #[serde(default)]
    pub output_definitions: InterfaceSpec,
    /// The tasks of a DAG component.
    pub dag: Option<DagSpec>,
    /// The key of the executor in `deploymentSpec.executors`.
    pub executor_label: Option<String>,
}

/// The parameters and artifacts of one side of a component's interface.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InterfaceSpec {
    /// Parameters by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterSpec>,
    /// Artifacts by name.
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactSpec>,
}

/// A typed parameter, with an optional default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParameterSpec {
    /// The type.
    pub parameter_type: ParameterType,
    /// The default value (as the SDK wrote it: integers as doubles).
    pub default_value: Option<serde_json::Value>,
    /// Whether the input may be left out.
    #[serde(default)]
    pub is_optional: bool,
    /// Free text.
    pub description: Option<String>,
}

/// An artifact input or output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactSpec {
    /// The artifact's type.
    pub artifact_type: ArtifactTypeSchema,
    /// A list of artifacts (`List[Dataset]`, a `dsl.Collected` of artifacts).
    #[serde(default)]
    pub is_artifact_list: bool,
    /// Whether the input may be left out.
    #[serde(default)]
    pub is_optional: bool,
    /// Free text.
    pub description: Option<String>,
}

/// `artifactType`: an MLMD type name such as `system.Dataset`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactTypeSchema {
    /// For example `system.Model`.
    pub schema_title: Option<String>,
    /// For example `0.0.1`.
    pub schema_version: Option<String>,
    /// An inline schema (custom artifact types).
    pub instance_schema: Option<String>,
}
