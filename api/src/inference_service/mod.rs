//! KServe's `InferenceService` (`serving.kserve.io/v1beta1`): the manifest types, reading
//! them from YAML, and validating them into a [`ServableSpec`] Kiln can serve.
//!
//! ```
//! use kiln_api::inference_service::{load_str, ModelFormat};
//!
//! let loaded = load_str(
//!     r#"
//! apiVersion: serving.kserve.io/v1beta1
//! kind: InferenceService
//! metadata: {name: mnist}
//! spec:
//!   predictor:
//!     model:
//!       modelFormat: {name: onnx}
//!       storageUri: s3://models/mnist
//! "#,
//!     None,
//! )
//! .unwrap();
//! let service = &loaded.services[0];
//! assert_eq!(service.namespace, "default");
//! assert_eq!(service.servable.model_format, ModelFormat::Onnx);
//! assert_eq!(service.servable.min_replicas, 1); // KServe's default
//! assert_eq!(service.revision_name(1), "mnist-predictor-00001");
//! ```
//!
//! # Layers
//! - [`spec`] and [`status`]: the object, as serde types in KServe's camelCase shape.
//! - [`parse`]: text, files and folders to objects. Unknown fields are warnings, KServe
//!   fields Kiln cannot honour are errors; all problems of one apply come back together in
//!   [`ManifestErrors`].
//! - [`validate`](mod@validate): an object to a [`ServableSpec`] (ranges, formats, schemes), with
//!   [`ServableSpec::spec_hash`] telling a new revision from a re-apply.
//!
//! # The `kube` feature
//! Without it, [`InferenceService`] is a plain struct with `metadata` (a local [`ObjectMeta`]
//! holding the fields Kiln reads, with `k8s_openapi`'s names and types), `spec` and `status`,
//! and writes `apiVersion` and `kind` when serialised. With it, [`InferenceServiceSpec`]
//! derives `kube::CustomResource` and `schemars::JsonSchema`, which generates
//! `InferenceService` with `k8s_openapi`'s `ObjectMeta` (group `serving.kserve.io`, version
//! `v1beta1`, namespaced, short name `isvc`, status subresource), and `ObjectMeta` is
//! `k8s_openapi`'s. Both have the same public fields and the accessors `name()`,
//! `namespace()` (defaulting to `default`), `annotations()` and `labels()`, so code using
//! them compiles either way. The spec types are written once, with `cfg_attr` for the
//! derives; only the object type and `ObjectMeta` exist twice.
//!
//! Fields Kiln refuses are read by the parser from the raw YAML, so an object that reaches
//! the controller from the API server is validated on its typed fields only; `transformer`,
//! `explainer` and `env[].valueFrom` are typed (as opaque JSON) so that [`validate()`]
//! refuses them on that path too.

pub mod parse;
pub mod spec;
pub mod status;
pub mod validate;

pub use parse::{
    DocumentRef, ManifestError, ManifestErrors, Parsed, ParsedService, Warning, parse_path,
    parse_str,
};
pub use spec::{
    API_VERSION, DEFAULT_NAMESPACE, EnvVar, FrameworkSpec, GROUP, InferenceService,
    InferenceServiceSpec, IntOrString, KIND, ModelFormatRef, ModelSpec, ObjectMeta, PredictorSpec,
    Quantity, ResourceRequirements, VERSION,
};
pub use status::{
    Addressable, ComponentStatus, Components, Condition, ConditionStatus, InferenceServiceStatus,
    ReplicaCounts, TrafficTarget,
};
pub use validate::{
    FieldError, Loaded, ModelFormat, Protocol, Resources, ScaleMetric, ServableSpec,
    ValidatedService, load_path, load_str, revision_name, validate,
};
