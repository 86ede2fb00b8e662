//! The model formats Kiln serves, as KServe's `modelFormat.name` and the predictor's
//! `--model-format` name them. The manifest validator, the controller (which passes the format
//! to each replica) and the predictor (which picks a runtime by it) share this one enum.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A model format Kiln serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelFormat {
    /// ONNX (`model.onnx`), served with ONNX Runtime.
    #[serde(rename = "onnx")]
    Onnx,
    /// PyTorch as TorchScript (`model.pt`), as KServe's Triton runtime serves it; TorchServe's
    /// `.mar` archives are refused.
    #[serde(rename = "pytorch")]
    PyTorch,
}

impl ModelFormat {
    /// Every format, in the order messages list them.
    pub const ALL: [ModelFormat; 2] = [ModelFormat::Onnx, ModelFormat::PyTorch];

    /// The name KServe and the predictor's flag use: `onnx`, `pytorch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onnx => "onnx",
            Self::PyTorch => "pytorch",
        }
    }
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name Kiln does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not served by Kiln (it serves onnx, and pytorch as TorchScript)")]
pub struct UnknownModelFormat(pub String);

impl FromStr for ModelFormat {
    type Err = UnknownModelFormat;

    /// Case-insensitive, as KServe matches `modelFormat.name` against its runtimes.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownModelFormat(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_to_their_format() {
        for format in ModelFormat::ALL {
            assert_eq!(format.to_string().parse(), Ok(format));
            assert_eq!(
                serde_json::to_string(&format).unwrap(),
                format!("\"{format}\"")
            );
        }
        assert_eq!("ONNX".parse(), Ok(ModelFormat::Onnx));
        assert_eq!("PyTorch".parse(), Ok(ModelFormat::PyTorch));
        let refused = "tensorflow".parse::<ModelFormat>().unwrap_err();
        assert!(refused.to_string().contains("\"tensorflow\" is not served"));
    }
}
