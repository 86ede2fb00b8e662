//! A v2 REST body with Triton's binary extension: the first line is `Inference-Header-Content-Length`.
//! The check lives in `kiln_fuzz_checks` (fuzz-checks/), shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz_checks::rest::binary(data));
