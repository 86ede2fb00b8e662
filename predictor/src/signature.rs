//! Where a model's signature comes from when the model file does not carry one
//! (TorchScript): Triton's `config.pbtxt` beside the model, or Kiln's `signature.json`.
//!
//! `signature.json` lists inputs and outputs in the model's order, with `-1` for dynamic
//! dimensions:
//!
//! ```json
//! {"inputs":  [{"name": "INPUT__0",  "datatype": "FP32", "shape": [-1, 784]}],
//!  "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}]}
//! ```

use std::path::Path;

use kiln_api::protocol::{DataType, TensorMetadata};
use serde::Deserialize;

use crate::model::{Signature, TensorSpec};
use crate::pbtxt::{self, Value};

/// A signature file that cannot be read or does not describe a model.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file's content is wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads Triton's `config.pbtxt`. With `max_batch_size > 0` the batch dimension is implicit
/// in `dims` and becomes a leading `-1`.
pub fn from_triton_config(path: &Path) -> Result<Signature, SignatureError> {
    from_triton_config_text(&read(path)?, path)
}

/// [`from_triton_config`] on the text of a `config.pbtxt` already read; `path` names the file
/// in errors.
pub fn from_triton_config_text(text: &str, path: &Path) -> Result<Signature, SignatureError> {
    let invalid = |message: String| SignatureError::Invalid {
        path: path.display().to_string(),
        message,
    };
    let doc = pbtxt::parse(text).map_err(|e| invalid(e.to_string()))?;
    let max_batch_size: i64 = Value::scalar(&doc, "max_batch_size")
        .unwrap_or("0")
        .parse()
        .map_err(|_| invalid("max_batch_size is not an integer".into()))?;
    let tensors = |key: &str| -> Result<Vec<TensorSpec>, SignatureError> {
        Value::all(&doc, key)
            .into_iter()
            .map(|v| {
                let Value::Message(fields) = v else {
                    return Err(invalid(format!("{key} must be a message")));
                };
                let name = Value::scalar(fields, "name")
                    .ok_or_else(|| invalid(format!("an {key} has no name")))?
                    .to_owned();
                let type_name = Value::scalar(fields, "data_type")
                    .ok_or_else(|| invalid(format!("{key} '{name}' has no data_type")))?;
                let datatype = DataType::from_triton_config_name(type_name).ok_or_else(|| {
                    invalid(format!("{key} '{name}': unknown data_type {type_name}"))
                })?;
                let mut shape = Vec::new();
                if max_batch_size > 0 {
                    shape.push(-1);
                }
                for d in Value::all(fields, "dims") {
                    let Value::Scalar(d) = d else {
                        return Err(invalid(format!("{key} '{name}': dims must be integers")));
                    };
                    shape.push(d.parse().map_err(|_| {
                        invalid(format!("{key} '{name}': dim '{d}' is not an integer"))
                    })?);
                }
                Ok(TensorSpec {
                    name,
                    datatype,
                    shape,
                })
            })
            .collect()
    };
    let signature = Signature {
        inputs: tensors("input")?,
        outputs: tensors("output")?,
    };
    if signature.inputs.is_empty() || signature.outputs.is_empty() {
        return Err(invalid("needs at least one input and one output".into()));
    }
    Ok(signature)
}

#[derive(Deserialize)]
struct SignatureFile {
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
}

/// Reads Kiln's `signature.json` (see the module docs).
pub fn from_signature_json(path: &Path) -> Result<Signature, SignatureError> {
    let text = read(path)?;
    let invalid = |message: String| SignatureError::Invalid {
        path: path.display().to_string(),
        message,
    };
    let file: SignatureFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let convert = |list: Vec<TensorMetadata>| -> Result<Vec<TensorSpec>, SignatureError> {
        list.into_iter()
            .map(|t| {
                let datatype = t
                    .datatype
                    .parse()
                    .map_err(|e: kiln_api::protocol::ProtocolError| invalid(e.to_string()))?;
                Ok(TensorSpec {
                    name: t.name,
                    datatype,
                    shape: t.shape,
                })
            })
            .collect()
    };
    Ok(Signature {
        inputs: convert(file.inputs)?,
        outputs: convert(file.outputs)?,
    })
}

fn read(path: &Path) -> Result<String, SignatureError> {
    std::fs::read_to_string(path).map_err(|source| SignatureError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triton_config_with_batching_gets_a_leading_dynamic_dimension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.pbtxt");
        std::fs::write(
            &path,
            r#"platform: "pytorch_libtorch" max_batch_size: 16
               input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [784] }]
               output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [10] }]"#,
        )
        .unwrap();
        let sig = from_triton_config(&path).unwrap();
        assert_eq!(sig.inputs[0].shape, vec![-1, 784]);
        assert_eq!(sig.outputs[0].datatype, DataType::Fp32);
        assert!(sig.is_batchable());
    }

    #[test]
    fn signature_json_is_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signature.json");
        std::fs::write(
            &path,
            r#"{"inputs":[{"name":"a","datatype":"INT64","shape":[2]}],"outputs":[{"name":"b","datatype":"FP64","shape":[-1]}]}"#,
        )
        .unwrap();
        let sig = from_signature_json(&path).unwrap();
        assert_eq!(sig.inputs[0].datatype, DataType::Int64);
        assert!(!sig.is_batchable());
        std::fs::write(
            &path,
            r#"{"inputs":[{"name":"a","datatype":"FLOAT","shape":[2]}],"outputs":[]}"#,
        )
        .unwrap();
        let err = from_signature_json(&path).unwrap_err();
        assert!(err.to_string().contains("FLOAT"), "{err}");
    }
}
