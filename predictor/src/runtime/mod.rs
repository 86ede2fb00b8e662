//! Runtimes that turn a model file into a [`Model`](crate::model::Model).
//!
//! The `kiln` binary carries the ONNX runtime only; TorchScript is served by the
//! `kiln-predictor-torch` binary, whose crate holds the libtorch runtime, so that libtorch is
//! never linked or loaded by anything that does not serve a TorchScript model.

pub mod device;
pub mod onnx;

pub use device::Device;

use crate::layout::{ModelFormat, ModelLayout};
use crate::model::Model;

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The runtime's native library could not be found or opened.
    #[error("{0}")]
    Library(String),
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
    /// The model file is not a valid model for the runtime.
    #[error("cannot load {file}: {message}")]
    Model {
        /// The model file.
        file: String,
        /// The runtime's message.
        message: String,
    },
    /// The model has no usable signature.
    #[error("{0}")]
    Signature(String),
}

/// Loads models of one format.
pub trait Runtime: Send + Sync {
    /// The format this runtime serves.
    fn format(&self) -> ModelFormat;
    /// Loads the model onto `device`.
    fn load(&self, layout: &ModelLayout, device: Device) -> Result<Box<dyn Model>, LoadError>;
}

/// The runtimes one binary carries.
#[derive(Default)]
pub struct Runtimes(Vec<Box<dyn Runtime>>);

impl Runtimes {
    /// Adds a runtime.
    pub fn with(mut self, runtime: impl Runtime + 'static) -> Self {
        self.0.push(Box::new(runtime));
        self
    }

    /// The runtime for `format`, if this binary carries one.
    pub fn get(&self, format: ModelFormat) -> Option<&dyn Runtime> {
        self.0.iter().find(|r| r.format() == format).map(|r| &**r)
    }
}
