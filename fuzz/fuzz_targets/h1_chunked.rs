//! A chunked request body through the router's scanner (first byte: where to cut it).
//! The check lives in `kiln_fuzz_checks` (fuzz-checks/), shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz_checks::h1::chunked(data));
