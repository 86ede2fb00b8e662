//! What a runtime must provide: a model's signature and a way to run a batch.

use kiln_api::protocol::{DataType, Tensor, TensorMetadata};

/// One input or output of a model: name, element type and shape (`-1` = dynamic).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub datatype: DataType,
    /// Its shape, `-1` for a dynamic dimension.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// The v2 metadata form.
    pub fn metadata(&self) -> TensorMetadata {
        TensorMetadata {
            name: self.name.clone(),
            datatype: self.datatype.name().to_owned(),
            shape: self.shape.clone(),
        }
    }
}

/// A model's inputs and outputs, and the runtime that serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// The inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// The outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// True when every input and output has a dynamic first dimension, so requests can be
    /// joined along it.
    pub fn is_batchable(&self) -> bool {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .all(|t| t.shape.first() == Some(&-1))
    }
}

/// A loaded model. Runs on a dedicated worker thread, never on the async executor.
pub trait Model: Send + 'static {
    /// The model's inputs and outputs.
    fn signature(&self) -> &Signature;
    /// The platform name Triton uses (`onnxruntime_onnx`, `pytorch_libtorch`).
    fn platform(&self) -> &'static str;
    /// Runs the model on inputs that match the signature (checked by the caller), in
    /// signature order; returns every output, in signature order.
    fn infer(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferError>;
}

/// A failure inside the runtime while running a model.
#[derive(Debug, thiserror::Error)]
#[error("inference failed: {0}")]
pub struct InferError(pub String);
