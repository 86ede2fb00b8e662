//! `kiln-benches`: Kiln's benchmarks, run by the `kiln-bench` binary.
//!
//! The predictor benchmark (`kiln-bench predictor`, driven by `benches/predictor.sh`) serves
//! the fixture MLP with `kiln predictor` on one core and drives it from the other with the
//! closed-loop load generator in [`loadgen`], over gRPC ([`grpc_client`]) and REST with JSON
//! or binary tensors ([`http_client`]), beside a bare in-process ONNX Runtime caller
//! ([`bare`]). [`report`] turns the numbers into one markdown table with the goal checks.

pub mod bare;
pub mod error;
pub mod grpc_client;
pub mod http_client;
pub mod loadgen;
pub mod predictor_proc;
pub mod procfs;
pub mod report;

pub use error::BenchError;

/// Elements in one input row of the MLP (`input`: `[-1, 784]` FP32).
pub const INPUT_LEN: usize = 784;
/// Elements in one output row of the MLP (`output`: `[-1, 10]` FP32).
pub const OUTPUT_LEN: usize = 10;

/// The input row every request carries: deterministic, the same for the bare caller and the
/// predictor, so their outputs can be compared.
pub fn input_row() -> Vec<f32> {
    (0..INPUT_LEN)
        .map(|i| (((i * 7 + 5 * 13) % 23) as f32 - 11.0) / 23.0)
        .collect()
}

/// Whether `got` matches the bare run's `want`, to a relative tolerance of 1e-4.
pub fn outputs_match(got: &[f32], want: &[f32]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= 1e-4 * w.abs().max(1.0))
}

/// Little-endian FP32 bytes to floats.
pub fn f32_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Floats to little-endian FP32 bytes.
pub fn f32_to_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
