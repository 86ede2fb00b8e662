//! The v2 REST body (JSON, and Triton's binary tensor extension) and the v1 `:predict` body.

use bytes::Bytes;
use kiln_api::protocol::rest::decode_infer_request;
use kiln_api::protocol::v1::decode_predict_request;
use kiln_api::protocol::{InferRequest, TensorMetadata};
use serde_json::{Value, json};

/// A whole v2 JSON body, without `Inference-Header-Content-Length`.
pub fn json(data: &[u8]) {
    decode_and_reencode(&Bytes::copy_from_slice(data), None);
}

/// A v2 body with the binary extension: the first line is the value of
/// `Inference-Header-Content-Length` (decimal, as the header carries it), the rest the body.
/// Inputs without a first line that is a number are what the server answers 400 to before
/// decoding, and pass.
pub fn binary(data: &[u8]) {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Some(json_len) = std::str::from_utf8(&data[..newline])
        .ok()
        .and_then(|line| line.trim().parse::<usize>().ok())
    else {
        return;
    };
    decode_and_reencode(
        &Bytes::copy_from_slice(&data[newline + 1..]),
        Some(json_len),
    );
}

/// Decodes a body and, when it decodes, checks that the request sent again with every input
/// as binary data decodes to the same request.
fn decode_and_reencode(body: &Bytes, json_len: Option<usize>) {
    let Ok(request) = decode_infer_request(body, json_len) else {
        return;
    };
    let (again, again_json_len) = encode_binary(&request);
    let decoded = decode_infer_request(&again, Some(again_json_len));
    assert_eq!(
        decoded.as_ref(),
        Ok(&request),
        "a decoded request, sent again with binary inputs, decodes differently"
    );
}

/// A v2 body carrying `request` with every input as binary data, and its JSON length.
pub fn encode_binary(request: &InferRequest) -> (Bytes, usize) {
    let inputs: Vec<Value> = request
        .inputs
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "shape": t.shape,
                "datatype": t.datatype.name(),
                "parameters": {"binary_data_size": t.data.len()},
            })
        })
        .collect();
    let outputs: Vec<Value> = request
        .outputs
        .iter()
        .map(|o| match o.binary_data {
            Some(binary) => json!({"name": o.name, "parameters": {"binary_data": binary}}),
            None => json!({"name": o.name}),
        })
        .collect();
    let mut doc = json!({
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"binary_data_output": request.binary_data_output},
    });
    if let Some(id) = &request.id {
        doc["id"] = Value::String(id.clone());
    }
    let mut body = serde_json::to_vec(&doc).expect("a JSON value serializes");
    let json_len = body.len();
    for t in &request.inputs {
        body.extend_from_slice(&t.data);
    }
    (Bytes::from(body), json_len)
}

fn metadata(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
    TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
    }
}

/// A v1 `:predict` body, for a model with one input and for one with two. Every tensor
/// decoded must hold exactly the bytes its shape needs.
pub fn v1_predict(data: &[u8]) {
    let models = [
        vec![metadata("input", "FP32", &[-1, 4])],
        vec![
            metadata("a", "INT64", &[-1, 2]),
            metadata("b", "BOOL", &[-1]),
        ],
    ];
    for inputs in &models {
        let Ok(tensors) = decode_predict_request(data, inputs) else {
            continue;
        };
        assert_eq!(tensors.len(), inputs.len(), "one tensor per model input");
        for tensor in &tensors {
            if let Err(e) = tensor.check_byte_length() {
                panic!("v1 decoded an inconsistent tensor: {e}");
            }
        }
    }
}
