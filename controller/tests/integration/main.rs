//! The integration tests of `kiln-controller`, in one binary: one link and one set of debug data
//! for all of them, instead of one per file. Shared helpers are in `support`.

mod local_failures;
mod local_gpus;
mod local_scale;
mod local_shutdown;
#[path = "../fixtures/support.rs"]
mod support;
