//! The `InferenceService` object and its `spec`, in KServe's `serving.kserve.io/v1beta1` shape.
//!
//! Only the fields Kiln reads are typed; the rest of KServe's schema is recognised by the
//! parser ([`super::parse`]), which warns about or refuses it by name before these types see
//! the document. Numbers are kept as KServe writes them (`i64`) so that a negative or
//! out-of-range value reaches [`validate`](mod@super::validate) and is refused with the
//! field's name, rather than failing inside serde.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::status::InferenceServiceStatus;

/// The API group and version: `serving.kserve.io/v1beta1`.
pub const API_VERSION: &str = "serving.kserve.io/v1beta1";
/// The API group: `serving.kserve.io`.
pub const GROUP: &str = "serving.kserve.io";
/// The API version within the group: `v1beta1`.
pub const VERSION: &str = "v1beta1";
/// The kind: `InferenceService`.
pub const KIND: &str = "InferenceService";
/// The namespace of an object that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

// With the `kube` feature this type derives `kube::CustomResource`, which generates the
// `InferenceService` object type (group `serving.kserve.io`, version `v1beta1`, namespaced,
// short name `isvc`, with the status subresource). Doc comments here end up in the CRD.
/// `spec` of an `InferenceService`: the predictor, and the components Kiln refuses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource, schemars::JsonSchema))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "serving.kserve.io",
        version = "v1beta1",
        kind = "InferenceService",
        plural = "inferenceservices",
        shortname = "isvc",
        namespaced,
        status = "InferenceServiceStatus",
        derive = "PartialEq",
        derive = "Default",
        doc = "A KServe `InferenceService` (`serving.kserve.io/v1beta1`), as Kiln serves it.",
        printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceSpec {
    /// `spec.predictor`: the model server.
    pub predictor: PredictorSpec,
    /// `spec.transformer`: kept only so that validation can refuse it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(schema_with = "any_object"))]
    pub transformer: Option<serde_json::Value>,
    /// `spec.explainer`: kept only so that validation can refuse it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(schema_with = "any_object"))]
    pub explainer: Option<serde_json::Value>,
}

/// `spec.predictor`: the model (new `model` form or an old framework shorthand) and KServe's
/// component extension fields (scaling, concurrency, timeout, canary).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PredictorSpec {
    /// `model`: KServe's current form, with `modelFormat.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// `onnx`: the older shorthand for `model.modelFormat.name: onnx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<FrameworkSpec>,
    /// `pytorch`: the older shorthand for `model.modelFormat.name: pytorch` (TorchScript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pytorch: Option<FrameworkSpec>,
    /// `minReplicas`: 0 allows scale to zero; absent means 1, as in KServe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i64>,
    /// `maxReplicas`: 0 or absent means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i64>,
    /// `scaleTarget`: the per-replica target of `scaleMetric`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target: Option<i64>,
    /// `scaleMetric`: `concurrency` or `rps` (KServe's `cpu` and `memory` are refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_metric: Option<String>,
    /// `containerConcurrency`: the hard limit of requests in flight per replica (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,
    /// `timeout`: the request timeout, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// `canaryTrafficPercent`: the share of traffic for the latest revision during a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_traffic_percent: Option<i64>,
    /// `resources` on the predictor (Kiln also reads them on `model`, where KServe puts them;
    /// those win per resource name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// `env` on the predictor (Kiln also reads `model.env`, which wins per variable name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// `labels` KServe puts on the predictor's revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `annotations` KServe puts on the predictor's revisions (`autoscaling.knative.dev/*`
    /// among them); they win over the object's own annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// `spec.predictor.model`: a model by format, with its storage and protocol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// `modelFormat`: `{name, version}`; Kiln serves `onnx` and `pytorch` (TorchScript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_format: Option<ModelFormatRef>,
    /// `runtime`: a KServe serving runtime name; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// `storageUri`: where the model lives (`s3://`, `gs://`, `az://`, `http(s)://`,
    /// `file://` or a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// `protocolVersion`: `v1`, `v2` or `grpc-v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// `runtimeVersion`: the runtime image tag; ignored by Kiln (with a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// `name`: the container's name; ignored by Kiln.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `resources`: limits and requests; an `nvidia.com/gpu` limit is the GPUs per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// `env`: environment variables of the model server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
}

impl ModelSpec {
    /// The fields this form shares with the shorthands, as a [`FrameworkSpec`].
    pub fn framework(&self) -> FrameworkSpec {
        FrameworkSpec {
            storage_uri: self.storage_uri.clone(),
            protocol_version: self.protocol_version.clone(),
            runtime_version: self.runtime_version.clone(),
            name: self.name.clone(),
            resources: self.resources.clone(),
            env: self.env.clone(),
        }
    }
}

/// `spec.predictor.model.modelFormat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModelFormatRef {
    /// `name`: the format, e.g. `onnx` or `pytorch`.
    pub name: String,
    /// `version`: the format's version, e.g. `"1"`; recorded, not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<IntOrString>,
}

/// `spec.predictor.onnx` and `spec.predictor.pytorch`, the shorthands: KServe's
/// `PredictorExtensionSpec`, of which Kiln reads the storage, protocol, resources and env
/// (fields [`ModelSpec`] has too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FrameworkSpec {
    /// `storageUri`: where the model lives (`s3://`, `gs://`, `az://`, `http(s)://`,
    /// `file://` or a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// `protocolVersion`: `v1`, `v2` or `grpc-v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// `runtimeVersion`: the runtime image tag; ignored by Kiln (with a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// `name`: the container's name; ignored by Kiln.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `resources`: limits and requests; an `nvidia.com/gpu` limit is the GPUs per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// `env`: environment variables of the model server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
}

/// Kubernetes `ResourceRequirements`: `limits` and `requests` by resource name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    /// `limits`, e.g. `{cpu: "1", memory: 2Gi, nvidia.com/gpu: 1}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Quantity>>,
    /// `requests`, in the same form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// A Kubernetes environment variable: `{name, value}` (or `valueFrom`, which Kiln refuses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// `name`.
    pub name: String,
    /// `value` (absent: the empty string, as in Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `valueFrom`: kept only so that validation can refuse it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(schema_with = "any_object"))]
    pub value_from: Option<serde_json::Value>,
}

/// A Kubernetes resource quantity (`"2"`, `500m`, `4Gi`), written as a string or a number.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(pub String);

/// A value YAML may write as a number or a string (e.g. `modelFormat.version: 1`); kept as
/// the string.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntOrString(pub String);

macro_rules! string_or_number {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $ty {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visit;
                impl serde::de::Visitor<'_> for Visit {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        Ok($ty(v.to_owned()))
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$ty, E> {
                        Ok($ty(v.to_string()))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$ty, E> {
                        Ok($ty(v.to_string()))
                    }
                    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<$ty, E> {
                        Ok($ty(v.to_string()))
                    }
                }
                deserializer.deserialize_any(Visit)
            }
        }

        #[cfg(feature = "kube")]
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "x-kubernetes-int-or-string": true })
            }
        }
    };
}

string_or_number!(Quantity, "a quantity such as \"1\", 500m or 4Gi");
string_or_number!(IntOrString, "a number or a string");

/// The schema of a field Kiln keeps as opaque JSON: any object, preserved as written.
#[cfg(feature = "kube")]
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

#[cfg(feature = "kube")]
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The object's `metadata`: the subset of Kubernetes' `ObjectMeta` Kiln reads, with the same
/// field names and types as `k8s_openapi`'s, so code using it compiles with or without the
/// `kube` feature.
#[cfg(not(feature = "kube"))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `namespace` (absent: [`DEFAULT_NAMESPACE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `annotations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `generation`, set by the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// A KServe `InferenceService` (`serving.kserve.io/v1beta1`), as Kiln serves it.
///
/// Without the `kube` feature this is a plain serde type; with it, the type that
/// `kube::CustomResource` generates from [`InferenceServiceSpec`]. Both have public `metadata`,
/// `spec` and `status` fields, serialise with `apiVersion` and `kind`, and share the accessors
/// below.
#[cfg(not(feature = "kube"))]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InferenceService {
    /// `metadata`: name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: InferenceServiceSpec,
    /// `status`, written by the controller.
    pub status: Option<InferenceServiceStatus>,
}

#[cfg(not(feature = "kube"))]
impl InferenceService {
    /// A service named `name` (in no namespace, i.e. [`DEFAULT_NAMESPACE`]) with `spec` and no
    /// status; the same constructor `kube::CustomResource` generates.
    pub fn new(name: &str, spec: InferenceServiceSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

#[cfg(not(feature = "kube"))]
mod wire {
    //! The serialised form of the plain type: `apiVersion` and `kind` are written as
    //! constants and not stored (the parser checks them), as `kube` does.

    use super::{InferenceService, InferenceServiceSpec, InferenceServiceStatus, ObjectMeta};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        api_version: &'a str,
        kind: &'a str,
        metadata: &'a ObjectMeta,
        spec: &'a InferenceServiceSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a InferenceServiceStatus>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        #[serde(default)]
        metadata: ObjectMeta,
        spec: InferenceServiceSpec,
        #[serde(default)]
        status: Option<InferenceServiceStatus>,
    }

    impl Serialize for InferenceService {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            Out {
                api_version: super::API_VERSION,
                kind: super::KIND,
                metadata: &self.metadata,
                spec: &self.spec,
                status: self.status.as_ref(),
            }
            .serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for InferenceService {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let In {
                metadata,
                spec,
                status,
            } = In::deserialize(deserializer)?;
            Ok(Self {
                metadata,
                spec,
                status,
            })
        }
    }
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

/// Accessors shared by both shapes of the type.
impl InferenceService {
    /// `metadata.name` (empty when absent; the parser refuses such a document).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, or [`DEFAULT_NAMESPACE`] when absent.
    pub fn namespace(&self) -> &str {
        match self.metadata.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => DEFAULT_NAMESPACE,
        }
    }

    /// `metadata.annotations` (empty when absent).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        self.metadata.annotations.as_ref().unwrap_or(&EMPTY)
    }

    /// `metadata.labels` (empty when absent).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    /// Sets `metadata.namespace`, for building objects in code.
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_owned());
        self
    }
}
