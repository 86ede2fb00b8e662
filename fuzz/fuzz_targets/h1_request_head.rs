//! Bytes at the start of a client connection to the router's HTTP/1.1 path.
//! The check lives in `kiln_fuzz_checks` (fuzz-checks/), shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz_checks::h1::request_head(data));
