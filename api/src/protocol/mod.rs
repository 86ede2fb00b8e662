//! Inference protocols spoken by Kiln's predictor and understood by its router.
//!
//! Every encoding decodes to the same [`InferRequest`] of [`Tensor`]s (elements as
//! little-endian bytes) and encodes from the same [`InferResponse`]:
//! - [`rest`]: Open Inference Protocol v2 JSON, with Triton's binary tensor extension;
//! - [`v1`]: the v1 `:predict` protocol (`instances` / `predictions`);
//! - [`grpc`] and [`grpc_codec`]: the v2 gRPC service and its conversions; [`grpc_wire`]: its
//!   protobuf codec.

mod dtype;
mod error;
pub mod grpc;
pub mod grpc_codec;
pub mod grpc_wire;
mod json_values;
pub mod rest;
mod tensor;
pub mod v1;

pub use dtype::DataType;
pub use error::ProtocolError;
pub use tensor::{
    InferRequest, InferResponse, ModelMetadata, RequestedOutput, Tensor, TensorMetadata,
    element_count,
};
