//! `kiln-predictor`: one model server process, like the model server inside a KServe
//! predictor pod.
//!
//! It fetches a model through [`kiln_storage`], loads it with a [`runtime`] (ONNX Runtime,
//! or libtorch in the `kiln-predictor-torch` binary), and serves it over the Open
//! Inference Protocol v2 (REST with JSON or binary tensors, and gRPC), Triton's
//! model-configuration extension and v1 `:predict`, joining concurrent requests into
//! batches when asked ([`batcher`]).
//!
//! ```no_run
//! # async fn example(args: kiln_predictor::PredictorArgs) {
//! use kiln_predictor::runtime::{Runtimes, onnx::OnnxRuntime};
//! let runtimes = Runtimes::default().with(OnnxRuntime::default());
//! let outcome = kiln_predictor::run(args, runtimes).await;
//! # }
//! ```

pub mod batcher;
pub mod config;
pub mod error;
pub mod events;
pub mod grpc;
pub mod http;
mod job_queue;
pub mod layout;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod native;
pub mod one_cpu;
pub mod parent;
mod pbtxt;
pub mod runtime;
pub mod server;
pub mod signature;
pub mod state;
mod triton_config;
pub mod validate;
mod wake_on_park;

pub use config::PredictorArgs;
pub use server::{Outcome, StartError, run, run_until};
