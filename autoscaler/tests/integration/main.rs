//! The integration tests of `kiln-autoscaler`, in one binary: one link and one set of debug data
//! for all of them, instead of one per file. Shared helpers are in `common`.

mod common;
mod decisions;
mod revisions;
mod settings;
mod shared;
mod surge;
