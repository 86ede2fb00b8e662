//! The router's routes file (YAML).
//! The check lives in `kiln_fuzz_checks` (fuzz-checks/), shared with the corpus replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz_checks::manifest::routes_file(data));
