//! The second YAML document `kfp.kubernetes` adds: `platforms.kubernetes`, per executor.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The platform-spec document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformSpec {
    /// Platforms by name; Kiln knows `kubernetes`.
    #[serde(default)]
    pub platforms: BTreeMap<String, SinglePlatformSpec>,
}

/// One platform's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SinglePlatformSpec {
    /// Per-executor settings.
    #[serde(default)]
    pub deployment_spec: PlatformDeploymentSpec,
    /// Pipeline-wide settings (refused unless empty).
    pub pipeline_config: Option<serde_json::Value>,
}

/// `deploymentSpec` of a platform.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformDeploymentSpec {
    /// Settings by executor label.
    #[serde(default)]
    pub executors: BTreeMap<String, KubernetesExecutorConfig>,
}

/// `KubernetesExecutorConfig`. Fields that only place work on a cluster are accepted (a
/// warning); fields whose absence would change results are kept so validation can refuse
/// them by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesExecutorConfig {
    /// `kubernetes.set_timeout`: the task's deadline in seconds.
    pub active_deadline_seconds: Option<i64>,
    /// Placement only.
    pub node_selector: Option<serde_json::Value>,
    /// Placement only.
    pub tolerations: Option<serde_json::Value>,
    /// Placement only.
    pub node_affinity: Option<serde_json::Value>,
    /// Placement only.
    pub pod_affinity: Option<serde_json::Value>,
    /// Placement only.
    pub image_pull_secret: Option<serde_json::Value>,
    /// Placement only.
    pub image_pull_policy: Option<serde_json::Value>,
    /// Labels and annotations of the pod: placement only.
    pub pod_metadata: Option<serde_json::Value>,
    /// Refused: a secret Kiln cannot provide.
    pub secret_as_volume: Option<serde_json::Value>,
    /// Refused: a secret Kiln cannot provide.
    pub secret_as_env: Option<serde_json::Value>,
    /// Refused: a volume Kiln cannot provide.
    pub pvc_mount: Option<serde_json::Value>,
    /// Refused: a config map Kiln cannot provide.
    pub config_map_as_volume: Option<serde_json::Value>,
    /// Refused: a config map Kiln cannot provide.
    pub config_map_as_env: Option<serde_json::Value>,
    /// Refused: pod fields Kiln cannot provide.
    pub field_path_as_env: Option<serde_json::Value>,
    /// Refused: a volume Kiln cannot provide.
    pub generic_ephemeral_volume: Option<serde_json::Value>,
    /// Refused: a volume Kiln cannot provide.
    pub empty_dir_mounts: Option<serde_json::Value>,
    /// Refused: shared memory sizing Kiln cannot provide.
    pub enabled_shared_memory: Option<serde_json::Value>,
}
