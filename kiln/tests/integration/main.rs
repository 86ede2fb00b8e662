//! The integration tests of `kiln`, in one binary: one link and one set of debug data
//! for all of them, instead of one per file. Shared helpers are in `common`.

mod common;
mod predictor_batching;
mod predictor_clients;
mod predictor_errors;
mod predictor_grpc;
mod predictor_one_cpu;
mod predictor_parent;
mod predictor_rest;
mod predictor_s3;
mod predictor_torch;
mod up;
