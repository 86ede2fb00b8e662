//! The integration tests of `kiln-router`, in one binary: one link and one set of debug data
//! for all of them, instead of one per file. Shared helpers are in `common`.

mod activator;
mod balancing;
mod cli;
mod common;
mod grpc;
mod http1_edge;
mod http1_wire;
mod listener;
mod routes_file;
mod routing;
mod slow_clients;
mod stats;
mod weights;
