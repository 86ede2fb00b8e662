//! The checks Kiln's fuzz targets run on each input, in one place: the libFuzzer targets in
//! `fuzz/fuzz_targets/` (built with `cargo fuzz`, outside the workspace) call them, and so
//! does the corpus replay test (`tests/corpus_replay.rs`, in the normal `cargo test`), which
//! feeds every file under `fuzz/corpus/<target>/` through the same check. A check panics when
//! the parser it drives panics or breaks an invariant; any other outcome, an error included,
//! is a pass.
//!
//! Each check feeds the input to the project's real parser and, where it is cheap, checks an
//! invariant of what came out (a decoded request re-encodes to the same request, a parsed
//! duration formats and parses back to itself, a chunked body split anywhere is followed the
//! same). See `fuzz/README.md` for how to run the targets.

pub mod duration;
pub mod grpc;
pub mod h1;
pub mod manifest;
pub mod rest;
pub mod storage_uri;
pub mod triton_config;

/// One fuzz target: its name (the `cargo fuzz` target, the corpus folder) and its check.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name: `fuzz/fuzz_targets/{name}.rs`, `fuzz/corpus/{name}/`.
    pub name: &'static str,
    /// What the target runs on each input.
    pub check: fn(&[u8]),
}

/// Every fuzz target, in the order `benches/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "rest_json",
        check: rest::json,
    },
    Target {
        name: "rest_binary",
        check: rest::binary,
    },
    Target {
        name: "v1_predict",
        check: rest::v1_predict,
    },
    Target {
        name: "grpc_infer",
        check: grpc::infer,
    },
    Target {
        name: "grpc_model_name",
        check: grpc::model_name,
    },
    Target {
        name: "h1_request_head",
        check: h1::request_head,
    },
    Target {
        name: "h1_chunked",
        check: h1::chunked,
    },
    Target {
        name: "routes_file",
        check: manifest::routes_file,
    },
    Target {
        name: "inference_service",
        check: manifest::inference_service,
    },
    Target {
        name: "triton_config",
        check: triton_config::check,
    },
    Target {
        name: "storage_uri",
        check: storage_uri::check,
    },
    Target {
        name: "duration",
        check: duration::check,
    },
];
