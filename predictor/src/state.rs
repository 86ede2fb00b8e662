//! What the protocol front ends share: the model (once loaded), limits and metrics.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use kiln_api::protocol::{InferRequest, InferResponse, ModelMetadata};

use crate::batcher::{Arrival, Arrivals, BatchPolicy, Worker};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::model::Signature;
use crate::validate::check_request;

/// A model that finished loading.
pub struct LoadedModel {
    /// Runs inferences.
    pub worker: Worker,
    /// Inputs and outputs.
    pub signature: Signature,
    /// Triton platform name.
    pub platform: &'static str,
    /// The served version (Triton repository folder), `"1"` when the layout has none.
    pub version: String,
}

/// State shared by the REST and gRPC servers.
pub struct ServerState {
    /// The name clients use for the model.
    pub model_name: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The batching policy in force.
    pub batch_policy: BatchPolicy,
    /// Metrics.
    pub metrics: Metrics,
    /// Requests between arrival and the model queue (the batcher closes early without them).
    pub arrivals: Arrivals,
    model: OnceLock<LoadedModel>,
}

/// A shared handle to the server state.
pub type SharedState = Arc<ServerState>;

impl ServerState {
    /// State for a server whose model is not loaded yet.
    pub fn new(model_name: String, max_body_bytes: usize, batch_policy: BatchPolicy) -> Self {
        ServerState {
            metrics: Metrics::new(&model_name),
            model_name,
            max_body_bytes,
            batch_policy,
            arrivals: Arrivals::default(),
            model: OnceLock::new(),
        }
    }

    /// Publishes the loaded model; the server is ready from now on.
    pub fn set_loaded(&self, model: LoadedModel) {
        if self.model.set(model).is_err() {
            tracing::warn!("model loaded twice; keeping the first");
        }
    }

    /// Whether the model is loaded.
    pub fn is_ready(&self) -> bool {
        self.model.get().is_some()
    }

    /// The loaded model for a request naming `name` (and optionally a version): 404 for
    /// another model or version, 503 while loading.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<&LoadedModel, ServeError> {
        if name != self.model_name {
            return Err(ServeError::ModelNotFound(name.to_owned()));
        }
        let model = self.model.get().ok_or_else(|| {
            ServeError::Unavailable(format!("model '{name}' is loading; try again shortly"))
        })?;
        match version {
            Some(v) if !v.is_empty() && v != model.version => {
                Err(ServeError::ModelNotFound(format!("{name}' version '{v}")))
            }
            _ => Ok(model),
        }
    }

    /// v2 metadata of the model.
    pub fn metadata(&self, name: &str, version: Option<&str>) -> Result<ModelMetadata, ServeError> {
        let model = self.model(name, version)?;
        Ok(ModelMetadata {
            name: self.model_name.clone(),
            versions: vec![model.version.clone()],
            platform: model.platform.to_owned(),
            inputs: model
                .signature
                .inputs
                .iter()
                .map(|t| t.metadata())
                .collect(),
            outputs: model
                .signature
                .outputs
                .iter()
                .map(|t| t.metadata())
                .collect(),
        })
    }

    /// Marks a request as on its way to the model, from its arrival until it is queued.
    pub fn arriving(&self) -> Arrival {
        self.arrivals.arrive()
    }

    /// Validates and runs a request; keeps only the requested outputs. `arrival` is released
    /// when the request is queued (or fails before).
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        mut request: InferRequest,
        arrival: Arrival,
    ) -> Result<InferResponse, ServeError> {
        let model = self.model(name, version)?;
        check_request(&model.signature, &mut request)?;
        let mut outputs = model.worker.infer(request.inputs, Some(arrival)).await?;
        if !request.outputs.is_empty() {
            outputs.retain(|o| request.outputs.iter().any(|r| r.name == o.name));
        }
        Ok(InferResponse {
            model_name: self.model_name.clone(),
            model_version: Some(model.version.clone()),
            id: request.id,
            outputs,
        })
    }

    /// Records one finished request in the metrics.
    pub fn record(&self, protocol: &str, status: u16, started: Instant) {
        self.metrics
            .requests
            .with_label_values(&[protocol, &status_label(status)])
            .inc();
        self.metrics
            .latency
            .with_label_values(&[protocol])
            .observe(started.elapsed().as_secs_f64());
    }

    /// The `max_batch_size` reported in Triton's model configuration: the dynamic batching
    /// limit when the model's first dimension is dynamic, else 0 (no batch dimension).
    pub fn triton_max_batch_size(&self, signature: &Signature) -> i32 {
        if signature.is_batchable() {
            self.batch_policy.max_batch_size.max(1) as i32
        } else {
            0
        }
    }
}

/// The status as a metric label, without an allocation for the codes the predictor answers.
fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    let known = match status {
        200 => "200",
        400 => "400",
        404 => "404",
        413 => "413",
        500 => "500",
        503 => "503",
        504 => "504",
        other => return other.to_string().into(),
    };
    known.into()
}

#[cfg(test)]
mod tests {
    use super::status_label;

    #[test]
    fn status_labels_are_the_codes() {
        for code in [200, 400, 404, 413, 418, 500, 503, 504] {
            assert_eq!(status_label(code), code.to_string());
        }
    }
}
