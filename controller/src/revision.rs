//! Revisions: the immutable, numbered snapshots of a predictor spec, and how one turns into
//! `kiln predictor` replicas.

use kiln_api::inference_service::ServableSpec;
use kiln_api::load::RevisionKey;
use serde::{Deserialize, Serialize};

use crate::local::{ReplicaTemplate, Share};

/// One revision of one service, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    /// `{service}-predictor-{generation:05}`.
    pub name: String,
    /// 1, 2, 3, ...
    pub generation: u32,
    /// [`ServableSpec::spec_hash`] of the spec it was made from.
    pub spec_hash: String,
    /// Arguments after `kiln predictor`.
    pub args: Vec<String>,
    /// Environment of its replicas.
    pub env: Vec<(String, String)>,
    /// GPUs per replica.
    pub gpus: u32,
    /// What each replica's resource requests take of `kiln up`'s capacity (requests, or
    /// limits where no request is given, as Kubernetes defaults them).
    #[serde(default)]
    pub cpu_millis: u64,
    /// Memory, bytes, likewise.
    #[serde(default)]
    pub memory_bytes: u64,
    /// `containerConcurrency` (0 = unlimited).
    pub container_concurrency: u32,
    /// Whether a replica of it has been ready at least once (Knative's revision Ready).
    pub ready_once: bool,
}

impl RevisionRecord {
    /// The revision `generation` of service `name` for `spec`.
    pub fn new(name: &str, generation: u32, spec: &ServableSpec) -> Self {
        let revision = kiln_api::inference_service::revision_name(name, generation);
        let mut args = vec![
            "--model-name".to_owned(),
            name.to_owned(),
            "--storage-uri".to_owned(),
            spec.storage_uri.clone(),
            "--model-format".to_owned(),
            spec.model_format.to_string(),
        ];
        if spec.gpus > 0 {
            args.extend(["--device".to_owned(), "cuda".to_owned()]);
        }
        RevisionRecord {
            name: revision,
            generation,
            spec_hash: spec.spec_hash(),
            args,
            env: spec.env.clone(),
            gpus: spec.gpus,
            cpu_millis: requested(spec, "cpu", kiln_api::quantity::cpu_millis),
            memory_bytes: requested(spec, "memory", kiln_api::quantity::bytes),
            container_concurrency: spec.container_concurrency,
            ready_once: false,
        }
    }

    /// The key the router and autoscaler know it by.
    pub fn key(&self, namespace: &str) -> RevisionKey {
        RevisionKey::new(namespace, &self.name)
    }

    /// What the local backend runs for it.
    pub fn template(&self, namespace: &str) -> ReplicaTemplate {
        let mut template = ReplicaTemplate::new(self.key(namespace), self.args.clone());
        template.env = self.env.clone();
        template.gpus_per_replica = self.gpus;
        template.share = Share {
            cpu_millis: self.cpu_millis,
            memory_bytes: self.memory_bytes,
        };
        template
    }
}

/// A replica's request of `resource`: `requests`, else `limits` (Kubernetes' default), else
/// nothing. The validator has already read these quantities, so one that does not parse
/// counts as nothing here.
pub fn requested(
    spec: &ServableSpec,
    resource: &str,
    parse: fn(&str) -> Result<u64, kiln_api::quantity::QuantityError>,
) -> u64 {
    let resources = &spec.resources;
    resources
        .requests
        .get(resource)
        .or_else(|| resources.limits.get(resource))
        .and_then(|q| parse(q).ok())
        .unwrap_or(0)
}
