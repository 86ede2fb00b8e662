//! Inference protocols spoken by Kiln's predictor and understood by its router.

pub mod grpc;
