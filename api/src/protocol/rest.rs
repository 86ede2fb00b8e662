//! Open Inference Protocol v2 over REST: JSON tensors and Triton's binary tensor extension.
//!
//! A request body is a JSON document, optionally followed by binary tensor data; the
//! `Inference-Header-Content-Length` header says where the JSON ends. Inputs with a
//! `binary_data_size` parameter take their bytes, in order, from the binary part.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json_values::{FlatValues, JsonData, encode_scalars};
use super::tensor::element_count;
use super::{DataType, InferRequest, InferResponse, ProtocolError, RequestedOutput, Tensor};

/// The header that gives the length of the JSON part of a binary-extension body.
pub const HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
struct WireRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<WireInput>,
    #[serde(default)]
    outputs: Vec<WireOutput>,
}

#[derive(Deserialize)]
struct WireInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    data: Option<FlatValues>,
}

#[derive(Deserialize)]
struct WireOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// Decodes a v2 REST inference request. `json_len` is the value of the
/// `Inference-Header-Content-Length` header, when present.
pub fn decode_infer_request(
    body: &Bytes,
    json_len: Option<usize>,
) -> Result<InferRequest, ProtocolError> {
    let json_len = json_len.unwrap_or(body.len());
    if json_len > body.len() {
        return Err(ProtocolError::Framing(format!(
            "Inference-Header-Content-Length is {json_len} but the body has only {} bytes",
            body.len()
        )));
    }
    let wire: WireRequest = serde_json::from_slice(&body[..json_len])
        .map_err(|e| ProtocolError::MalformedJson(e.to_string()))?;
    let mut binary = body.slice(json_len..);
    let mut inputs = Vec::with_capacity(wire.inputs.len());
    for input in wire.inputs {
        let datatype: DataType = input.datatype.parse()?;
        let binary_size = match input.parameters.get("binary_data_size") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| {
                        ProtocolError::Framing(format!(
                            "input '{}': binary_data_size must be a non-negative integer",
                            input.name
                        ))
                    })?,
            ),
        };
        let data = match (binary_size, input.data) {
            (Some(size), _) => {
                if size > binary.len() {
                    return Err(ProtocolError::Framing(format!(
                        "input '{}': binary_data_size {size} exceeds the {} bytes left in the body",
                        input.name,
                        binary.len()
                    )));
                }
                binary.split_to(size)
            }
            (None, Some(values)) => {
                let count = element_count(&input.name, &input.shape)?;
                if !values.regular || values.values.len() != count {
                    return Err(ProtocolError::DataLength {
                        name: input.name,
                        shape: input.shape,
                        datatype: datatype.to_string(),
                        expected: count,
                        got: values.values.len(),
                        unit: "values",
                    });
                }
                Bytes::from(encode_scalars(&input.name, datatype, &values.values)?)
            }
            (None, None) => {
                return Err(ProtocolError::MalformedJson(format!(
                    "input '{}' has neither data nor a binary_data_size parameter",
                    input.name
                )));
            }
        };
        let tensor = Tensor {
            name: input.name,
            datatype,
            shape: input.shape,
            data,
        };
        tensor.check_byte_length()?;
        inputs.push(tensor);
    }
    if !binary.is_empty() {
        return Err(ProtocolError::Framing(format!(
            "{} bytes of binary data follow the JSON header but no input claims them",
            binary.len()
        )));
    }
    let outputs = wire
        .outputs
        .into_iter()
        .map(|o| RequestedOutput {
            binary_data: o.parameters.get("binary_data").and_then(Value::as_bool),
            name: o.name,
        })
        .collect();
    let binary_data_output = wire
        .parameters
        .get("binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(InferRequest {
        id: wire.id,
        inputs,
        outputs,
        binary_data_output,
    })
}

/// Whether `output` should be sent as binary data, as the request asked.
pub fn wants_binary(request_outputs: &[RequestedOutput], default: bool, output: &str) -> bool {
    request_outputs
        .iter()
        .find(|o| o.name == output)
        .and_then(|o| o.binary_data)
        .unwrap_or(default)
}

/// An encoded response body: JSON, optionally followed by binary output data.
#[derive(Debug, Clone)]
pub struct EncodedBody {
    /// The whole body.
    pub body: Bytes,
    /// The JSON part's length when binary data follows (send it as
    /// `Inference-Header-Content-Length`), else `None`.
    pub json_len: Option<usize>,
}

#[derive(Serialize)]
struct WireResponse<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<WireOutputTensor<'a>>,
}

#[derive(Serialize)]
struct WireOutputTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// Encodes a response; `binary(name)` says which outputs travel as binary data. FP16 and
/// BF16 outputs always do, since they have no JSON form.
pub fn encode_infer_response(
    response: &InferResponse,
    binary: impl Fn(&str) -> bool,
) -> EncodedBody {
    let mut tail: Vec<&Tensor> = Vec::new();
    let outputs = response
        .outputs
        .iter()
        .map(|t| {
            let as_binary = binary(&t.name) || !t.datatype.has_json_form();
            if as_binary {
                tail.push(t);
            }
            WireOutputTensor {
                name: &t.name,
                datatype: t.datatype.name(),
                shape: &t.shape,
                parameters: as_binary.then(|| BinarySize {
                    binary_data_size: t.data.len(),
                }),
                data: (!as_binary).then_some(JsonData {
                    datatype: t.datatype,
                    bytes: &t.data,
                }),
            }
        })
        .collect();
    let wire = WireResponse {
        model_name: &response.model_name,
        model_version: response.model_version.as_deref(),
        id: response.id.as_deref(),
        outputs,
    };
    let tail_len: usize = tail.iter().map(|t| t.data.len()).sum();
    let mut body = BytesMut::with_capacity(256 + tail_len).writer();
    serde_json::to_writer(&mut body, &wire).expect("serializing to memory cannot fail");
    let mut body = body.into_inner();
    let json_len = body.len();
    for t in &tail {
        body.extend_from_slice(&t.data);
    }
    EncodedBody {
        body: body.freeze(),
        json_len: (!tail.is_empty()).then_some(json_len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> Result<InferRequest, ProtocolError> {
        decode_infer_request(&Bytes::copy_from_slice(json.as_bytes()), None)
    }

    #[test]
    fn json_request_decodes_flat_and_nested_data() {
        let flat = request(
            r#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}"#,
        )
        .unwrap();
        let nested = request(
            r#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}"#,
        )
        .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.id.as_deref(), Some("7"));
        assert_eq!(&flat.inputs[0].data[4..8], &2f32.to_le_bytes());
    }

    #[test]
    fn data_length_must_match_shape() {
        let err =
            request(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"INT64","data":[1,2]}]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("input 'x'"), "{err}");
        assert!(err.to_string().contains("needs 3 values, got 2"), "{err}");
    }

    #[test]
    fn malformed_json_and_unknown_datatypes_are_refused() {
        assert!(matches!(request("{"), Err(ProtocolError::MalformedJson(_))));
        assert!(matches!(
            request(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#),
            Err(ProtocolError::UnknownDatatype(_))
        ));
    }

    #[test]
    fn binary_inputs_are_cut_from_the_tail_in_order() {
        let json = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}},{"name":"b","shape":[2],"datatype":"INT8","parameters":{"binary_data_size":2}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&1.5f32.to_le_bytes());
        body.extend_from_slice(&[7, 8]);
        let req = decode_infer_request(&Bytes::from(body), Some(json.len())).unwrap();
        assert_eq!(&req.inputs[0].data[..], &1.5f32.to_le_bytes());
        assert_eq!(&req.inputs[1].data[..], &[7, 8]);
        assert!(wants_binary(&req.outputs, false, "y"));
        assert!(!wants_binary(&req.outputs, false, "z"));
    }

    #[test]
    fn binary_framing_errors_are_named() {
        let json = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&[1, 2]);
        let err = decode_infer_request(&Bytes::from(body.clone()), Some(json.len())).unwrap_err();
        assert!(matches!(err, ProtocolError::Framing(_)), "{err}");
        let err = decode_infer_request(&Bytes::from(body), Some(10_000)).unwrap_err();
        assert!(matches!(err, ProtocolError::Framing(_)), "{err}");
    }

    #[test]
    fn responses_put_binary_outputs_after_the_json() {
        let response = InferResponse {
            model_name: "m".into(),
            model_version: None,
            id: Some("1".into()),
            outputs: vec![
                Tensor {
                    name: "y".into(),
                    datatype: DataType::Fp32,
                    shape: vec![1],
                    data: Bytes::copy_from_slice(&2.5f32.to_le_bytes()),
                },
                Tensor {
                    name: "z".into(),
                    datatype: DataType::Int32,
                    shape: vec![1],
                    data: Bytes::copy_from_slice(&3i32.to_le_bytes()),
                },
            ],
        };
        let plain = encode_infer_response(&response, |_| false);
        assert_eq!(plain.json_len, None);
        let v: Value = serde_json::from_slice(&plain.body).unwrap();
        assert_eq!(v["outputs"][0]["data"][0], 2.5);
        assert_eq!(v["id"], "1");
        let mixed = encode_infer_response(&response, |n| n == "y");
        let json_len = mixed.json_len.unwrap();
        let v: Value = serde_json::from_slice(&mixed.body[..json_len]).unwrap();
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 4);
        assert_eq!(&mixed.body[json_len..], &2.5f32.to_le_bytes());
        assert_eq!(v["outputs"][1]["data"][0], 3);
    }
}
