//! `kiln-api`: the vocabulary every Kiln crate shares.
//!
//! - [`inference_service`]: KServe's `InferenceService` manifests, parsed and validated.
//! - [`load`]: load samples and the traits between the data plane and the autoscaler.
//! - [`protocol`]: the Open Inference Protocol v2 (JSON and Triton's binary extension),
//!   v1 `:predict`, tensor data types, and the v2 gRPC messages and service.
//! - [`duration`]: the one duration grammar (Go's, as Knative writes it).
//! - [`model_format`], [`load::ScaleMetric`]: the enums manifests, the controller, the
//!   predictor and the autoscaler share.
//! - [`error_body`]: the `{"error": ...}` body of every HTTP error.
//! - [`quantity`]: Kubernetes resource quantities (CPU, memory); [`yaml`]: how YAML is read.
//! - [`predictor_event`]: the predictor's stdout event lines.
//! - [`error_chain`], [`shutdown`]: walking an error's sources; waiting for SIGTERM/Ctrl-C.

pub mod duration;
pub mod error_body;
pub mod error_chain;
pub mod inference_service;
pub mod load;
pub mod model_format;
pub mod predictor_event;
pub mod protocol;
pub mod quantity;
pub mod shutdown;
pub mod yaml;

pub use inference_service::DEFAULT_NAMESPACE;
pub use model_format::ModelFormat;
