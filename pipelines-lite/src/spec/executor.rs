//! `deploymentSpec.executors`: what a leaf task runs (a container or an importer).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::component::ArtifactTypeSchema;

/// `deploymentSpec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Executors by label.
    #[serde(default)]
    pub executors: BTreeMap<String, ExecutorSpec>,
}

/// One executor. Kiln runs `container` and `importer`; the field is refused otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecutorSpec {
    /// A container, run here as a local process.
    pub container: Option<ContainerSpec>,
    /// An importer: registers an existing URI as an artifact.
    pub importer: Option<ImporterSpec>,
}

/// `container`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    /// The image (recorded, not pulled: the command runs on this machine).
    pub image: String,
    /// The entry point.
    #[serde(default)]
    pub command: Vec<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Resource requests and limits (recorded; a local process is not confined).
    pub resources: Option<serde_json::Value>,
}

/// One entry of `env`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    /// The variable.
    pub name: String,
    /// Its value (may hold placeholders).
    #[serde(default)]
    pub value: String,
}

/// `importer`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImporterSpec {
    /// The URI to import.
    pub artifact_uri: ImporterUri,
    /// The artifact's type.
    pub type_schema: ArtifactTypeSchema,
    /// Whether to import again rather than reuse an earlier import.
    #[serde(default)]
    pub reimport: bool,
    /// Metadata attached to the artifact.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `importer.artifactUri`: a constant or one of the importer's input parameters.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImporterUri {
    /// A URI written in the spec.
    pub constant: Option<String>,
    /// The name of the input parameter holding the URI.
    pub runtime_parameter: Option<String>,
}
