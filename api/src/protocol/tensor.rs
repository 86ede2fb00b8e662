//! Tensors as the protocols carry them, independent of the wire encoding.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{DataType, ProtocolError};

/// One named tensor: its type, its shape, and its elements as little-endian bytes
/// (row-major). Every encoding (JSON, binary extension, gRPC) decodes to this.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The input or output name.
    pub name: String,
    /// The element type.
    pub datatype: DataType,
    /// The shape; every dimension is non-negative once checked by [`element_count`].
    ///
    /// [`element_count`]: Tensor::element_count
    pub shape: Vec<i64>,
    /// The elements, little-endian, row-major.
    pub data: Bytes,
}

impl Tensor {
    /// The number of elements the shape describes, or an error for a negative or
    /// overflowing shape.
    pub fn element_count(&self) -> Result<usize, ProtocolError> {
        element_count(&self.name, &self.shape)
    }

    /// Checks that the data holds exactly as many bytes as the shape needs.
    pub fn check_byte_length(&self) -> Result<(), ProtocolError> {
        let count = self.element_count()?;
        let Some(size) = self.datatype.size() else {
            return Err(ProtocolError::Unsupported {
                name: self.name.clone(),
                datatype: self.datatype.to_string(),
                reason: "tensors are not supported",
            });
        };
        let expected = count
            .checked_mul(size)
            .ok_or_else(|| self.invalid_shape())?;
        if self.data.len() != expected {
            return Err(ProtocolError::DataLength {
                name: self.name.clone(),
                shape: self.shape.clone(),
                datatype: self.datatype.to_string(),
                expected,
                got: self.data.len(),
                unit: "bytes",
            });
        }
        Ok(())
    }

    fn invalid_shape(&self) -> ProtocolError {
        ProtocolError::InvalidShape {
            name: self.name.clone(),
            shape: self.shape.clone(),
        }
    }
}

/// The number of elements in `shape`, checked for negative dimensions and overflow.
pub fn element_count(name: &str, shape: &[i64]) -> Result<usize, ProtocolError> {
    shape.iter().try_fold(1usize, |acc, &d| {
        usize::try_from(d)
            .ok()
            .and_then(|d| acc.checked_mul(d))
            .ok_or_else(|| ProtocolError::InvalidShape {
                name: name.to_owned(),
                shape: shape.to_vec(),
            })
    })
}

/// An output the client asked for, and whether it wants it as binary data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// `Some(true)`: as binary data (Triton's extension); `None`: the request's default.
    pub binary_data: Option<bool>,
}

/// An inference request, decoded from any encoding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferRequest {
    /// The request id, echoed in the response.
    pub id: Option<String>,
    /// The input tensors.
    pub inputs: Vec<Tensor>,
    /// The outputs asked for; empty means all.
    pub outputs: Vec<RequestedOutput>,
    /// Request-level `binary_data_output`: outputs default to binary data.
    pub binary_data_output: bool,
}

/// An inference response, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version, when it has one.
    pub model_version: Option<String>,
    /// The request id, echoed.
    pub id: Option<String>,
    /// The output tensors.
    pub outputs: Vec<Tensor>,
}

/// The name, type and shape of one model input or output (`-1` marks a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMetadata {
    /// The tensor's name.
    pub name: String,
    /// The element type's protocol name (`"FP32"`).
    pub datatype: String,
    /// The shape, `-1` for a dynamic dimension.
    pub shape: Vec<i64>,
}

/// The v2 model metadata document (`GET /v2/models/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// The model's name.
    pub name: String,
    /// Its versions.
    pub versions: Vec<String>,
    /// The runtime, e.g. `onnxruntime_onnx` or `pytorch_libtorch`.
    pub platform: String,
    /// The inputs.
    pub inputs: Vec<TensorMetadata>,
    /// The outputs.
    pub outputs: Vec<TensorMetadata>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_count_rejects_negative_and_overflowing_shapes() {
        assert_eq!(element_count("x", &[2, 3]).unwrap(), 6);
        assert_eq!(element_count("x", &[]).unwrap(), 1);
        assert!(element_count("x", &[-1, 3]).is_err());
        assert!(element_count("x", &[i64::MAX, i64::MAX]).is_err());
    }

    #[test]
    fn byte_length_must_match_shape() {
        let t = Tensor {
            name: "x".into(),
            datatype: DataType::Fp32,
            shape: vec![2],
            data: Bytes::from(vec![0u8; 7]),
        };
        let err = t.check_byte_length().unwrap_err();
        assert!(err.to_string().contains("needs 8 bytes, got 7"), "{err}");
    }
}
