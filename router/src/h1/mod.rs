//! The HTTP/1.1 path of the router, written for the proxy's one job: each client connection
//! is one task that reads a request head, picks the revision and endpoint, and drives a
//! pooled upstream connection itself, passing bodies through with their framing unchanged.
//! Nothing crosses to another task on the way (hyper's client runs every upstream
//! connection as a task of its own and its server keeps two 8 KiB buffers per connection),
//! so a request costs a few system calls and a held request costs about a kilobyte.
//!
//! Rare forms (HTTP/1.0, `Expect`, `Upgrade`, gRPC over HTTP/1.1, absolute targets) are
//! handed, with the bytes already read, to hyper's HTTP/1.1 server, which serves the rest
//! of that connection through the general path.

mod buffer;
mod connection;
mod date;
mod exchange;
pub(crate) mod framing;
mod headers;
mod io;
pub(crate) mod request;
mod response;
mod upstream;

pub(crate) use connection::{Ended, serve};
pub(crate) use upstream::UpstreamPool;
