//! Triton's `config.pbtxt` (protobuf text format), as the predictor reads it beside a
//! TorchScript model.

use std::path::Path;

use kiln_predictor::signature::from_triton_config_text;

/// The text of a `config.pbtxt` (the predictor reads the file as UTF-8; other bytes never
/// reach the parser). A signature it yields has inputs and outputs, each with a shape.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(signature) = from_triton_config_text(text, Path::new("config.pbtxt")) else {
        return;
    };
    assert!(!signature.inputs.is_empty() && !signature.outputs.is_empty());
}
