//! A gRPC request body as the router reads the model name from it.
//! The check lives in `kiln_fuzz_checks` (fuzz-checks/), shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz_checks::grpc::model_name(data));
