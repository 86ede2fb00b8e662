//! `kiln-router`: Kiln's data plane. Every inference call passes through it: it finds the
//! service (path, host or gRPC model name), draws a revision by canary weight (or follows a
//! pin), holds requests while a revision has no ready endpoint (the activator), balances over
//! endpoints within their container concurrency and reports per-revision load.
//!
//! Embedding (the controller):
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_router::RouterError> {
//! use kiln_router::{Router, ServiceSpec, RevisionSpec};
//! use kiln_api::load::RevisionKey;
//!
//! let router = Router::builder()
//!     .http_addr("127.0.0.1:0".parse().unwrap())
//!     .build()?;
//! let table = router.table();
//! table.upsert_service(
//!     ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-predictor-00001", 100)),
//! )?;
//! let running = router.start().await?;
//! println!("listening on {}", running.http_addr());
//! // A replica became ready: waiting requests drain to it.
//! let key = RevisionKey::new("default", "mlp-predictor-00001");
//! table.set_endpoints(&key, vec!["127.0.0.1:9001".parse().unwrap()])?;
//! running.shutdown().await;
//! # Ok(()) }
//! ```

mod activator;
mod answer;
mod app;
mod balance;
mod body;
mod builder;
pub mod cli;
mod coalesce;
mod error;
/// For the fuzz targets and their corpus replay test only (see the module docs).
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
mod h1;
mod http;
mod metrics;
mod proxy;
mod revision;
pub mod routes_file;
pub mod stats;
mod table;

pub use app::{PIN_REVISION_HEADER, PIN_TAG_HEADER};
pub use builder::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_QUEUE_DEPTH, Discard, Router, RouterBuilder, RunningRouter,
};
pub use error::RouterError;
pub use proxy::REVISION_HEADER;
pub use table::{DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, RevisionSpec, ServiceSpec, TableHandle};
