//! Conversions between the v2 gRPC messages and Kiln's [`InferRequest`] / [`InferResponse`].
//!
//! Inputs may come as typed `contents` or as `raw_input_contents` (one entry per input, in
//! order). Outputs always go back as `raw_output_contents`, which is what Triton's gRPC
//! client reads.

use bytes::Bytes;

use super::grpc::model_infer_response::InferOutputTensor;
use super::grpc::{InferTensorContents, ModelInferRequest, ModelInferResponse};
use super::{DataType, InferRequest, InferResponse, ProtocolError, RequestedOutput, Tensor};

/// Decodes a gRPC `ModelInferRequest`.
pub fn decode_grpc_request(request: ModelInferRequest) -> Result<InferRequest, ProtocolError> {
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ProtocolError::Framing(format!(
            "raw_input_contents has {} entries for {} inputs; send all inputs raw or none",
            raw.len(),
            request.inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let datatype: DataType = input.datatype.parse()?;
        let data = match raw.next() {
            Some(bytes) => bytes,
            None => contents_to_bytes(&input.name, datatype, input.contents.unwrap_or_default())?,
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
    Ok(InferRequest {
        id: (!request.id.is_empty()).then_some(request.id),
        inputs,
        outputs: request
            .outputs
            .into_iter()
            .map(|o| RequestedOutput {
                name: o.name,
                binary_data: Some(true),
            })
            .collect(),
        binary_data_output: true,
    })
}

fn contents_to_bytes(
    name: &str,
    datatype: DataType,
    c: InferTensorContents,
) -> Result<Bytes, ProtocolError> {
    let bad = |v: String| ProtocolError::BadValue {
        name: name.to_owned(),
        datatype: datatype.to_string(),
        value: v,
    };
    macro_rules! narrow {
        ($src:expr, $t:ty) => {{
            let mut out = Vec::with_capacity($src.len() * std::mem::size_of::<$t>());
            for v in $src {
                let x = <$t>::try_from(v).map_err(|_| bad(v.to_string()))?;
                out.extend_from_slice(&x.to_le_bytes());
            }
            out
        }};
    }
    macro_rules! same {
        ($src:expr) => {
            $src.iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
        };
    }
    let bytes = match datatype {
        DataType::Bool => c.bool_contents.iter().map(|&b| u8::from(b)).collect(),
        DataType::Int8 => narrow!(c.int_contents, i8),
        DataType::Int16 => narrow!(c.int_contents, i16),
        DataType::Int32 => same!(c.int_contents),
        DataType::Int64 => same!(c.int64_contents),
        DataType::Uint8 => narrow!(c.uint_contents, u8),
        DataType::Uint16 => narrow!(c.uint_contents, u16),
        DataType::Uint32 => same!(c.uint_contents),
        DataType::Uint64 => same!(c.uint64_contents),
        DataType::Fp32 => same!(c.fp32_contents),
        DataType::Fp64 => same!(c.fp64_contents),
        DataType::Fp16 | DataType::Bf16 | DataType::Bytes => {
            return Err(ProtocolError::Unsupported {
                name: name.to_owned(),
                datatype: datatype.to_string(),
                reason: "must be sent in raw_input_contents",
            });
        }
    };
    Ok(Bytes::from(bytes))
}

/// Encodes a response with every output in `raw_output_contents`.
pub fn encode_grpc_response(response: InferResponse) -> ModelInferResponse {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw = Vec::with_capacity(response.outputs.len());
    for t in response.outputs {
        outputs.push(InferOutputTensor {
            name: t.name,
            datatype: t.datatype.name().to_owned(),
            shape: t.shape,
            parameters: Default::default(),
            contents: None,
        });
        raw.push(t.data);
    }
    ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version.unwrap_or_default(),
        id: response.id.unwrap_or_default(),
        parameters: Default::default(),
        outputs,
        raw_output_contents: raw,
    }
}

#[cfg(test)]
mod tests {
    use super::super::grpc::model_infer_request::InferInputTensor;
    use super::*;

    fn input(
        datatype: &str,
        shape: Vec<i64>,
        contents: Option<InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: "x".into(),
            datatype: datatype.into(),
            shape,
            parameters: Default::default(),
            contents,
        }
    }

    #[test]
    fn typed_contents_become_little_endian_bytes() {
        let req = ModelInferRequest {
            inputs: vec![input(
                "INT8",
                vec![2],
                Some(InferTensorContents {
                    int_contents: vec![-1, 5],
                    ..Default::default()
                }),
            )],
            ..Default::default()
        };
        let decoded = decode_grpc_request(req).unwrap();
        assert_eq!(&decoded.inputs[0].data[..], &[0xff, 5]);
    }

    #[test]
    fn raw_contents_must_cover_every_input_and_match_shapes() {
        let req = ModelInferRequest {
            inputs: vec![input("FP32", vec![2], None)],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        };
        let err = decode_grpc_request(req).unwrap_err();
        assert!(err.to_string().contains("needs 8 bytes, got 4"), "{err}");
        let req = ModelInferRequest {
            inputs: vec![input("FP32", vec![1], None), input("FP32", vec![1], None)],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        };
        assert!(matches!(
            decode_grpc_request(req),
            Err(ProtocolError::Framing(_))
        ));
    }

    #[test]
    fn out_of_range_typed_values_are_refused() {
        let req = ModelInferRequest {
            inputs: vec![input(
                "UINT8",
                vec![1],
                Some(InferTensorContents {
                    uint_contents: vec![300],
                    ..Default::default()
                }),
            )],
            ..Default::default()
        };
        assert!(matches!(
            decode_grpc_request(req),
            Err(ProtocolError::BadValue { .. })
        ));
    }
}
