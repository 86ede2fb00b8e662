//! The integration tests of `kiln-storage`, in one binary: one link and one set of debug data
//! for all of them, instead of one per file. Shared helpers are in `common`.

mod azure;
mod common;
mod gcs;
mod http;
mod local;
mod s3;
