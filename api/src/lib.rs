//! `kiln-api`: the vocabulary every Kiln crate shares.
//!
//! - [`inference_service`]: KServe's `InferenceService` manifests, parsed and validated.
//! - [`load`]: load samples and the traits between the data plane and the autoscaler.
//! - [`protocol`]: the Open Inference Protocol v2 (JSON and Triton's binary extension),
//!   v1 `:predict`, tensor data types, and the v2 gRPC messages and service.

pub mod inference_service;
pub mod load;
pub mod protocol;
