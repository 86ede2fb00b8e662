//! Turning a parsed `InferenceService` into a [`ServableSpec`] Kiln can serve, or the list of
//! every field at fault.
//!
//! Ranges are KServe's and Knative's: `minReplicas >= 0` (absent: 1), `maxReplicas >= 0` (0:
//! no limit) and not below `minReplicas`, `scaleTarget >= 1`, `scaleMetric` in
//! {concurrency, rps}, `containerConcurrency` in [0, 1000], `timeout >= 1` second,
//! `canaryTrafficPercent` in [0, 100], a whole number of `nvidia.com/gpu`. The name is a
//! DNS-1035 label of at most 63 characters (it becomes the host `{name}.{namespace}.{domain}`
//! and the revisions `{name}-predictor-00001`, ...).
//!
//! # What makes a new revision
//!
//! As in Knative, a revision is an immutable snapshot of the predictor's pod template. The
//! fields [`ServableSpec::spec_hash`] covers are exactly those: model format, storage URI,
//! runtime, protocol, resources (GPUs included), env, `containerConcurrency` and `timeout`. A
//! change to any of them makes a new revision (`-00002`); re-applying the same manifest does
//! not.
//!
//! The rest change the running service in place: `minReplicas`, `maxReplicas`, `scaleTarget`,
//! `scaleMetric` and the autoscaling annotations re-tune the existing revision's autoscaler,
//! and `canaryTrafficPercent` only moves traffic. Here Kiln departs from Knative on purpose: in
//! Knative (and so KServe) these become annotations on the revision template, so changing
//! `minReplicas` rolls a new revision and its cold start; Kiln applies them to the revision
//! that is running.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::load::{CONTAINER_CONCURRENCY_MAX, ScaleMetric};
pub use crate::model_format::ModelFormat;

use super::parse::{Collector, DocumentRef, ManifestError, ManifestErrors, Warning};
use super::spec::{EnvVar, FrameworkSpec, InferenceService, ResourceRequirements};

/// The prefix of Knative's autoscaling annotations.
pub const AUTOSCALING_PREFIX: &str = "autoscaling.knative.dev/";
/// The only autoscaler class Kiln implements: Knative's KPA.
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
/// The resource name of an NVIDIA GPU.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";
/// Longest name of a Kubernetes label-like name (DNS-1035 / DNS-1123 label).
pub const NAME_MAX: usize = 63;

/// `protocolVersion`: the inference protocol the service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum Protocol {
    /// `v1`: TensorFlow-style `:predict` (KServe's default).
    #[default]
    #[serde(rename = "v1")]
    V1,
    /// `v2`: the Open Inference Protocol over REST.
    #[serde(rename = "v2")]
    V2,
    /// `grpc-v2`: the Open Inference Protocol over gRPC.
    #[serde(rename = "grpc-v2")]
    GrpcV2,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::GrpcV2 => "grpc-v2",
        })
    }
}

/// Resource limits and requests, as strings by resource name (GPUs included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// `limits`.
    pub limits: BTreeMap<String, String>,
    /// `requests`.
    pub requests: BTreeMap<String, String>,
}

/// A validated predictor: everything Kiln needs to serve one `InferenceService`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServableSpec {
    /// The model's format.
    pub model_format: ModelFormat,
    /// `storageUri`, as written.
    pub storage_uri: String,
    /// `runtime`, as written (`None`: Kiln's choice).
    pub runtime: Option<String>,
    /// `protocolVersion` (absent: `v1`, KServe's default; `v2` on a Triton runtime, the only
    /// protocol Triton speaks).
    pub protocol: Protocol,
    /// `minReplicas`; absent means 1, as in KServe. For the autoscaler's own precedence
    /// between this and a `min-scale` annotation, read `spec.predictor.min_replicas`.
    pub min_replicas: u32,
    /// `maxReplicas`; `None` when absent or 0 (no limit).
    pub max_replicas: Option<u32>,
    /// `scaleTarget`.
    pub scale_target: Option<u32>,
    /// `scaleMetric` (absent: the autoscaler's default, concurrency).
    pub scale_metric: Option<ScaleMetric>,
    /// `containerConcurrency` (0: no limit).
    pub container_concurrency: u32,
    /// `timeout` (absent: the router's default).
    pub timeout: Option<Duration>,
    /// `canaryTrafficPercent`.
    pub canary_traffic_percent: Option<u8>,
    /// GPUs per replica: the `nvidia.com/gpu` limit (or request).
    pub gpus: u32,
    /// All resource limits and requests, predictor-level and model-level merged.
    pub resources: Resources,
    /// Environment variables, in order (model-level ones replace predictor-level ones of the
    /// same name).
    pub env: Vec<(String, String)>,
    /// The object's annotations, with the predictor's on top (without kubectl's
    /// `last-applied-configuration`); the `autoscaling.knative.dev/*` ones are checked.
    pub annotations: BTreeMap<String, String>,
}

/// The fields that define a revision, in a fixed order: the input of
/// [`ServableSpec::spec_hash`].
#[derive(Serialize)]
struct RevisionTemplate<'a> {
    /// Bumped when the set of fields changes, so old and new hashes never collide.
    kiln_revision_template: u32,
    model_format: ModelFormat,
    storage_uri: &'a str,
    runtime: Option<&'a str>,
    protocol: Protocol,
    resources: &'a Resources,
    env: &'a [(String, String)],
    container_concurrency: u32,
    timeout_seconds: Option<u64>,
}

impl ServableSpec {
    /// SHA-256 (hex) of a canonical JSON of the fields that define a revision: model format,
    /// storage URI, runtime, protocol, resources, env, container concurrency and timeout.
    ///
    /// Equal hashes mean "same revision": re-applying an unchanged manifest, or changing only
    /// scaling bounds, autoscaling annotations or `canaryTrafficPercent`, keeps the hash. See
    /// the [module docs](self) for why.
    pub fn spec_hash(&self) -> String {
        let template = RevisionTemplate {
            kiln_revision_template: 1,
            model_format: self.model_format,
            storage_uri: &self.storage_uri,
            runtime: self.runtime.as_deref(),
            protocol: self.protocol,
            resources: &self.resources,
            env: &self.env,
            container_concurrency: self.container_concurrency,
            timeout_seconds: self.timeout.map(|t| t.as_secs()),
        };
        // Struct fields serialise in declaration order and maps are BTreeMaps: canonical.
        let json = serde_json::to_vec(&template).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }
}

/// One field at fault in one `InferenceService`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's path, e.g. `spec.predictor.canaryTrafficPercent`.
    pub field: String,
    /// What is wrong, and what is accepted.
    pub message: String,
}

/// A service that passed validation, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedService {
    /// The document it was read from.
    pub document: DocumentRef,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (absent: `default`).
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The validated predictor.
    pub servable: ServableSpec,
    /// The object as read, for whoever keeps it (the controller stores it).
    pub object: InferenceService,
}

impl ValidatedService {
    /// The name of the predictor's `generation`-th revision (1-based); see [`revision_name`].
    pub fn revision_name(&self, generation: u32) -> String {
        revision_name(&self.name, generation)
    }

    /// The service's host under `domain`: `{name}.{namespace}.{domain}`.
    pub fn host(&self, domain: &str) -> String {
        format!("{}.{}.{domain}", self.name, self.namespace)
    }
}

/// The name of a service's `generation`-th predictor revision, as KServe and Knative name
/// them: `{name}-predictor-00001`. A name too long for a 63-character label keeps its first
/// characters and gets 8 hex digits of its SHA-256, as Knative's `kmeta.ChildName` does (with
/// MD5 there), so that distinct names stay distinct.
pub fn revision_name(service: &str, generation: u32) -> String {
    let suffix = format!("-predictor-{generation:05}");
    if service.len() + suffix.len() <= NAME_MAX {
        return format!("{service}{suffix}");
    }
    let hash = hex::encode(Sha256::digest(service.as_bytes()));
    let keep = NAME_MAX.saturating_sub(suffix.len() + 9);
    let head: String = service.chars().take(keep).collect();
    format!("{}-{}{suffix}", head.trim_end_matches('-'), &hash[..8])
}

/// What a successful load found: validated services and the warnings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The services, in file and document order.
    pub services: Vec<ValidatedService>,
    /// Fields and documents Kiln ignores.
    pub warnings: Vec<Warning>,
}

/// Parses and validates YAML text (see [`super::parse_str`]); every problem is reported.
pub fn load_str(text: &str, file: Option<&Path>) -> Result<Loaded, ManifestErrors> {
    let mut collector = Collector::default();
    collector.text(text, file);
    finish(collector)
}

/// Parses and validates a file or a folder of manifests (see [`super::parse_path`]); every
/// problem in every file is reported.
pub fn load_path(path: &Path) -> Result<Loaded, ManifestErrors> {
    let mut collector = Collector::default();
    collector.path(path);
    finish(collector)
}

fn finish(collector: Collector) -> Result<Loaded, ManifestErrors> {
    let Collector { parsed, mut errors } = collector;
    let mut services: Vec<ValidatedService> = Vec::new();
    // Where each (namespace, name) was first defined: one look-up per document, so that
    // loading N services stays linear in N.
    let mut defined: HashMap<(String, String), usize> = HashMap::new();
    for parsed in parsed.services {
        let document = parsed.document;
        let service = parsed.service;
        let key = (service.namespace().to_owned(), service.name().to_owned());
        if let Some(first) = defined.get(&key).map(|&i| &services[i]) {
            errors.push(ManifestError {
                document: document.clone(),
                field: "metadata.name".into(),
                message: format!(
                    "{}/{} is defined twice (also in {})",
                    first.namespace, first.name, first.document
                ),
            });
            continue;
        }
        match validate(&service) {
            Ok(servable) => {
                defined.insert(key, services.len());
                services.push(ValidatedService {
                    document,
                    name: service.name().to_owned(),
                    namespace: service.namespace().to_owned(),
                    labels: service.labels().clone(),
                    servable,
                    object: service,
                });
            }
            Err(problems) => errors.extend(problems.into_iter().map(|p| ManifestError {
                document: document.clone(),
                field: p.field,
                message: p.message,
            })),
        }
    }
    // Parse errors come first; put each document's problems together, in file order.
    errors.sort_by(|a, b| {
        (&a.document.file, a.document.index).cmp(&(&b.document.file, b.document.index))
    });
    if errors.is_empty() {
        Ok(Loaded {
            services,
            warnings: parsed.warnings,
        })
    } else {
        Err(ManifestErrors {
            errors,
            warnings: parsed.warnings,
        })
    }
}

/// Validates one service. Every field at fault is reported, not only the first.
pub fn validate(service: &InferenceService) -> Result<ServableSpec, Vec<FieldError>> {
    let mut v = Validator::default();
    let servable = v.service(service);
    match servable {
        Some(servable) if v.errors.is_empty() => Ok(servable),
        _ => Err(v.errors),
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn service(&mut self, service: &InferenceService) -> Option<ServableSpec> {
        self.name(service.name());
        if let Some(namespace) = service.metadata.namespace.as_deref()
            && let Err(why) = check_label(namespace, false)
        {
            self.error("metadata.namespace", why);
        }
        let spec = &service.spec;
        if spec.transformer.is_some() {
            self.error(
                "spec.transformer",
                "transformers are not supported: Kiln serves the predictor alone",
            );
        }
        if spec.explainer.is_some() {
            self.error(
                "spec.explainer",
                "explainers are not supported: Kiln serves the predictor alone",
            );
        }
        let p = &spec.predictor;

        let model = self.model(service);
        let min_replicas = match p.min_replicas {
            None => Some(1),
            Some(n) => self.count("spec.predictor.minReplicas", n, 0),
        };
        let max_replicas = p
            .max_replicas
            .and_then(|n| self.count("spec.predictor.maxReplicas", n, 0));
        if let (Some(min), Some(max)) = (min_replicas, max_replicas)
            && max > 0
            && min > max
        {
            let field = if p.min_replicas.is_some() {
                "spec.predictor.minReplicas"
            } else {
                "spec.predictor.maxReplicas"
            };
            self.error(
                field,
                format!("minReplicas ({min}) is more than maxReplicas ({max})"),
            );
        }
        let scale_target = p
            .scale_target
            .and_then(|n| self.count("spec.predictor.scaleTarget", n, 1));
        let scale_metric = p
            .scale_metric
            .as_deref()
            .and_then(|m| self.scale_metric("spec.predictor.scaleMetric", m));
        let container_concurrency = match p.container_concurrency {
            None => Some(0),
            Some(n) => self
                .count("spec.predictor.containerConcurrency", n, 0)
                .and_then(|n| {
                    if n > CONTAINER_CONCURRENCY_MAX {
                        self.error(
                            "spec.predictor.containerConcurrency",
                            format!(
                                "{n} is more than {CONTAINER_CONCURRENCY_MAX} (Knative's \
                                 container-concurrency-max-limit); 0 means no limit"
                            ),
                        );
                        None
                    } else {
                        Some(n)
                    }
                }),
        };
        let timeout = p.timeout.and_then(|n| {
            self.count("spec.predictor.timeout", n, 1)
                .map(|s| Duration::from_secs(u64::from(s)))
        });
        let canary_traffic_percent = p.canary_traffic_percent.and_then(|n| {
            if (0..=100).contains(&n) {
                u8::try_from(n).ok()
            } else {
                self.error(
                    "spec.predictor.canaryTrafficPercent",
                    format!("{n} is not a percentage (0 to 100)"),
                );
                None
            }
        });
        let annotations = self.annotations(service);

        let (model_format, storage_uri, runtime, protocol, resources, gpus, env) = model?;
        Some(ServableSpec {
            model_format,
            storage_uri,
            runtime,
            protocol,
            min_replicas: min_replicas?,
            max_replicas: max_replicas.filter(|&n| n > 0),
            scale_target,
            scale_metric,
            container_concurrency: container_concurrency?,
            timeout,
            canary_traffic_percent,
            gpus,
            resources,
            env,
            annotations,
        })
    }

    fn name(&mut self, name: &str) {
        if name.is_empty() {
            self.error("metadata.name", "required");
        } else if let Err(why) = check_label(name, true) {
            self.error("metadata.name", why);
        }
    }

    /// An integer field that must be at least `min` and fit a `u32`.
    fn count(&mut self, field: &str, n: i64, min: i64) -> Option<u32> {
        if n < min {
            self.error(field, format!("{n} is less than {min}"));
            return None;
        }
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(field, format!("{n} is too large"));
                None
            }
        }
    }

    fn scale_metric(&mut self, field: &str, metric: &str) -> Option<ScaleMetric> {
        match metric.parse::<ScaleMetric>() {
            Ok(metric) => Some(metric),
            Err(_) if matches!(metric, "cpu" | "memory") => {
                self.error(
                    field,
                    format!(
                        "{metric} is not supported: it needs Kubernetes' HPA, and Kiln's \
                         autoscaler is KPA-style (concurrency or rps)"
                    ),
                );
                None
            }
            Err(unknown) => {
                self.error(field, unknown.to_string());
                None
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn model(
        &mut self,
        service: &InferenceService,
    ) -> Option<(
        ModelFormat,
        String,
        Option<String>,
        Protocol,
        Resources,
        u32,
        Vec<(String, String)>,
    )> {
        let p = &service.spec.predictor;
        let given = [p.model.is_some(), p.onnx.is_some(), p.pytorch.is_some()]
            .iter()
            .filter(|&&b| b)
            .count();
        if given > 1 {
            self.error(
                "spec.predictor",
                "more than one model: give exactly one of model, onnx and pytorch",
            );
            return None;
        }
        let common: FrameworkSpec;
        let (base, format, runtime, common): (&str, _, _, &FrameworkSpec) = if let Some(model) =
            &p.model
        {
            let format = match &model.model_format {
                None => {
                    self.error(
                        "spec.predictor.model.modelFormat",
                        "required: {name: onnx} or {name: pytorch}",
                    );
                    None
                }
                Some(f) => match f.name.parse::<ModelFormat>() {
                    Ok(format) => Some(format),
                    Err(unknown) => {
                        self.error("spec.predictor.model.modelFormat.name", unknown.to_string());
                        None
                    }
                },
            };
            if let (Some(runtime), Some(format)) = (&model.runtime, format) {
                self.runtime("spec.predictor.model.runtime", runtime, format);
            }
            common = model.framework();
            (
                "spec.predictor.model",
                format,
                model.runtime.clone(),
                &common,
            )
        } else if let Some(onnx) = &p.onnx {
            ("spec.predictor.onnx", Some(ModelFormat::Onnx), None, onnx)
        } else if let Some(pytorch) = &p.pytorch {
            (
                "spec.predictor.pytorch",
                Some(ModelFormat::PyTorch),
                None,
                pytorch,
            )
        } else {
            self.error(
                "spec.predictor",
                "no model: give spec.predictor.model (modelFormat, storageUri) or the \
                     onnx or pytorch shorthand",
            );
            return None;
        };

        let storage_uri = match common.storage_uri.as_deref() {
            None | Some("") => {
                self.error(&format!("{base}.storageUri"), "required");
                None
            }
            Some(uri) => self.storage_uri(&format!("{base}.storageUri"), uri),
        };
        let triton = runtime
            .as_deref()
            .is_some_and(|r| r.to_ascii_lowercase().contains("triton"));
        let protocol = match common.protocol_version.as_deref() {
            // Triton speaks only the v2 protocol; everything else defaults to KServe's v1.
            None if triton => Some(Protocol::V2),
            None => Some(Protocol::V1),
            Some("v1") => Some(Protocol::V1),
            Some("v2") => Some(Protocol::V2),
            Some("grpc-v2") => Some(Protocol::GrpcV2),
            Some(other) => {
                self.error(
                    &format!("{base}.protocolVersion"),
                    format!("{other:?} is not served (v1, v2 or grpc-v2)"),
                );
                None
            }
        };

        // Predictor-level first, then the model's, which win per name.
        let mut resources = Resources::default();
        let mut gpus = GpuCount::default();
        if let Some(r) = &p.resources {
            self.resources("spec.predictor.resources", r, &mut resources, &mut gpus);
        }
        if let Some(r) = &common.resources {
            self.resources(&format!("{base}.resources"), r, &mut resources, &mut gpus);
        }
        let gpus = match (gpus.limit, gpus.request) {
            (Some(l), Some(r)) if l != r => {
                self.error(
                    &format!("{base}.resources.requests.{NVIDIA_GPU}"),
                    format!("{r} differs from the limit ({l}); GPUs cannot be overcommitted"),
                );
                l
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => 0,
        };
        let mut env = Vec::new();
        if let Some(vars) = &p.env {
            self.env("spec.predictor.env", vars, &mut env);
        }
        if let Some(vars) = &common.env {
            self.env(&format!("{base}.env"), vars, &mut env);
        }
        Some((
            format?,
            storage_uri?,
            runtime,
            protocol?,
            resources,
            gpus,
            env,
        ))
    }

    fn runtime(&mut self, field: &str, runtime: &str, format: ModelFormat) {
        let lower = runtime.to_ascii_lowercase();
        if lower.contains("torchserve") {
            self.error(
                field,
                format!(
                    "{runtime:?} serves TorchServe .mar archives: Kiln serves {format} as \
                     TorchScript, as kserve-tritonserver does; omit runtime or name \
                     kserve-tritonserver"
                ),
            );
        } else if !(lower == "kiln" || lower.contains("triton")) {
            self.error(
                field,
                format!(
                    "{runtime:?} is not a runtime Kiln stands in for: omit runtime, or name \
                     kserve-tritonserver or kiln"
                ),
            );
        }
    }

    fn storage_uri(&mut self, field: &str, uri: &str) -> Option<String> {
        if uri.ends_with(".mar") {
            self.error(
                field,
                "a TorchServe .mar archive: Kiln serves pytorch models as TorchScript \
                 (model.pt), as KServe's Triton runtime does",
            );
            return None;
        }
        let scheme = uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            None | Some("s3" | "gs" | "az" | "azure" | "http" | "https" | "file") => {
                Some(uri.to_owned())
            }
            Some("pvc") => {
                self.error(
                    field,
                    "pvc:// needs Kubernetes volumes, which Kiln does not mount: copy the model \
                     to object storage, or give a file:// URI or a path",
                );
                None
            }
            Some(other) => {
                self.error(
                    field,
                    format!(
                        "the scheme {other}:// is not supported (s3, gs, az, http, https, file, \
                         or a plain path)"
                    ),
                );
                None
            }
        }
    }

    fn resources(
        &mut self,
        base: &str,
        r: &ResourceRequirements,
        out: &mut Resources,
        gpus: &mut GpuCount,
    ) {
        for (kind, list, target, gpu) in [
            ("limits", &r.limits, &mut out.limits, &mut gpus.limit),
            (
                "requests",
                &r.requests,
                &mut out.requests,
                &mut gpus.request,
            ),
        ] {
            let Some(list) = list else { continue };
            for (name, quantity) in list {
                let field = format!("{base}.{kind}.{name}");
                let value = quantity.0.trim();
                if name == NVIDIA_GPU {
                    match value.parse::<u32>() {
                        Ok(n) => *gpu = Some(n),
                        Err(_) => self.error(
                            &field,
                            format!("{value:?} is not a whole, non-negative number of GPUs"),
                        ),
                    }
                } else if name.ends_with("/gpu") || name.starts_with("gpu.") {
                    self.error(
                        &field,
                        format!("only NVIDIA GPUs ({NVIDIA_GPU}) are supported"),
                    );
                } else if value.is_empty() {
                    self.error(&field, "empty quantity");
                } else if name == "cpu" {
                    if let Err(e) = crate::quantity::cpu_millis(value) {
                        self.error(&field, e.to_string());
                    }
                } else if name == "memory"
                    && let Err(e) = crate::quantity::bytes(value)
                {
                    self.error(&field, e.to_string());
                }
                target.insert(name.clone(), value.to_owned());
            }
        }
    }

    fn env(&mut self, base: &str, vars: &[EnvVar], out: &mut Vec<(String, String)>) {
        for (i, var) in vars.iter().enumerate() {
            if var.name.is_empty() {
                self.error(&format!("{base}[{i}].name"), "required");
                continue;
            }
            if var.value_from.is_some() {
                self.error(
                    &format!("{base}[{i}].valueFrom"),
                    "not supported: give the value (Kiln does not read Kubernetes secrets or \
                     config maps)",
                );
                continue;
            }
            let value = var.value.clone().unwrap_or_default();
            match out.iter_mut().find(|(name, _)| *name == var.name) {
                Some(slot) => slot.1 = value,
                None => out.push((var.name.clone(), value)),
            }
        }
    }

    fn annotations(&mut self, service: &InferenceService) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let sources = [
            ("metadata.annotations", Some(service.annotations())),
            (
                "spec.predictor.annotations",
                service.spec.predictor.annotations.as_ref(),
            ),
        ];
        for (base, map) in sources {
            for (key, value) in map.into_iter().flatten() {
                if key == "kubectl.kubernetes.io/last-applied-configuration" {
                    continue;
                }
                if let Some(name) = key.strip_prefix(AUTOSCALING_PREFIX) {
                    self.autoscaling(&format!("{base}.{key}"), name, value);
                }
                out.insert(key.clone(), value.clone());
            }
        }
        out
    }

    /// Checks the form of one `autoscaling.knative.dev/*` annotation; the same keys the
    /// autoscaler accepts (its ranges are checked there).
    fn autoscaling(&mut self, field: &str, name: &str, value: &str) {
        let value = value.trim();
        let ok = match name {
            "class" => {
                if value != KPA_CLASS {
                    self.error(
                        field,
                        format!(
                            "{value:?} is not supported: Kiln's autoscaler is KPA-style \
                             ({KPA_CLASS})"
                        ),
                    );
                }
                return;
            }
            "metric" => {
                self.scale_metric(field, value);
                return;
            }
            "min-scale" | "minScale" | "max-scale" | "maxScale" | "initial-scale"
            | "activation-scale" => value.parse::<u32>().is_ok(),
            "target"
            | "target-utilization-percentage"
            | "panic-window-percentage"
            | "panic-threshold-percentage" => value.parse::<f64>().is_ok_and(f64::is_finite),
            "window" | "scale-down-delay" | "scale-to-zero-pod-retention-period" => {
                crate::duration::parse_duration(value).is_ok()
            }
            "target-burst-capacity" | "window-algorithm" => true,
            _ => {
                self.error(
                    field,
                    "unknown autoscaling annotation (known: class, metric, target, \
                     target-utilization-percentage, window, panic-window-percentage, \
                     panic-threshold-percentage, min-scale, max-scale, initial-scale, \
                     scale-down-delay, activation-scale, scale-to-zero-pod-retention-period)",
                );
                return;
            }
        };
        if !ok {
            self.error(field, format!("{value:?} is not a valid value"));
        }
    }
}

#[derive(Default)]
struct GpuCount {
    limit: Option<u32>,
    request: Option<u32>,
}

/// Checks a DNS-1035 label (`dns1035`: must start with a letter) or a DNS-1123 label.
fn check_label(name: &str, dns1035: bool) -> Result<(), String> {
    if name.len() > NAME_MAX {
        return Err(format!(
            "{name:?} is {} characters long; at most {NAME_MAX}",
            name.len()
        ));
    }
    let bytes = name.as_bytes();
    let valid_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || (!dns1035 && b.is_ascii_digit()));
    let last_ok = bytes.last().is_some_and(|b| *b != b'-');
    if valid_chars && first_ok && last_ok {
        Ok(())
    } else if dns1035 {
        Err(format!(
            "{name:?} is not a DNS-1035 label: lowercase letters, digits and '-', starting \
             with a letter and not ending with '-'"
        ))
    } else {
        Err(format!(
            "{name:?} is not a DNS-1123 label: lowercase letters, digits and '-', not \
             starting or ending with '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_label("mnist", true).is_ok());
        assert!(check_label("mnist-v2", true).is_ok());
        assert!(check_label("2mnist", true).is_err());
        assert!(check_label("2mnist", false).is_ok());
        assert!(check_label("Mnist", true).is_err());
        assert!(check_label("mnist-", true).is_err());
        assert!(check_label("mnist_v2", true).is_err());
        assert!(check_label(&"a".repeat(63), true).is_ok());
        assert!(check_label(&"a".repeat(64), true).is_err());
    }

    #[test]
    fn revision_names_fit_a_label() {
        assert_eq!(revision_name("mnist", 1), "mnist-predictor-00001");
        assert_eq!(revision_name("mnist", 12), "mnist-predictor-00012");
        let long = "a".repeat(60);
        let name = revision_name(&long, 3);
        assert!(name.len() <= NAME_MAX, "{name}");
        assert!(name.ends_with("-predictor-00003"));
        assert_ne!(name, revision_name(&"a".repeat(61), 3));
        assert!(check_label(&name, true).is_ok());
    }
}
