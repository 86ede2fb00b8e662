//! The v2 gRPC service `inference.GRPCInferenceService`, generated from
//! `proto/grpc_predict_v2.proto` (KServe's field numbers plus Triton's `ModelConfig`).

#![allow(missing_docs, unreachable_pub, clippy::all)]

tonic::include_proto!("inference");
