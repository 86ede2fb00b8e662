//! The gRPC `ModelInferRequest` decoder (prost, then Kiln's conversion) and the router's
//! reader of the model name (field 1) from the raw first message.

use kiln_api::protocol::InferRequest;
use kiln_api::protocol::grpc::ModelInferRequest;
use kiln_api::protocol::grpc::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use kiln_api::protocol::grpc_codec::decode_grpc_request;
use kiln_router::grpc::{Peek, peek_field_one};
use prost::Message;

/// A serialized `ModelInferRequest`, as a gRPC message carries it. When it decodes, the
/// message encoded again converts the same way, and a converted request sent again with
/// every input raw converts to the same request.
pub fn infer(data: &[u8]) {
    let Ok(message) = ModelInferRequest::decode(data) else {
        return;
    };
    let converted = decode_grpc_request(message.clone());
    let reencoded = ModelInferRequest::decode(message.encode_to_vec().as_slice())
        .expect("a message prost encoded decodes");
    assert_eq!(
        decode_grpc_request(reencoded),
        converted,
        "a decoded message, encoded again, converts differently"
    );
    let Ok(request) = converted else {
        return;
    };
    assert_eq!(
        decode_grpc_request(raw_message(&request)).as_ref(),
        Ok(&request),
        "a converted request, sent again with raw inputs, converts differently"
    );
}

/// `request` as a `ModelInferRequest` with every input in `raw_input_contents`.
pub fn raw_message(request: &InferRequest) -> ModelInferRequest {
    ModelInferRequest {
        id: request.id.clone().unwrap_or_default(),
        inputs: request
            .inputs
            .iter()
            .map(|t| InferInputTensor {
                name: t.name.clone(),
                datatype: t.datatype.name().to_owned(),
                shape: t.shape.clone(),
                ..InferInputTensor::default()
            })
            .collect(),
        outputs: request
            .outputs
            .iter()
            .map(|o| InferRequestedOutputTensor {
                name: o.name.clone(),
                ..InferRequestedOutputTensor::default()
            })
            .collect(),
        raw_input_contents: request.inputs.iter().map(|t| t.data.clone()).collect(),
        ..ModelInferRequest::default()
    }
}

/// A gRPC request body: the 5-byte message prefix (compression flag, big-endian length) and
/// the message bytes received so far. The router reads the model name as the bytes arrive
/// and acts on the first answer that is not "need more", so an answer given on a prefix of
/// the bytes must be the answer given on all of them.
pub fn model_name(data: &[u8]) {
    let Some((prefix, message)) = data.split_first_chunk::<5>() else {
        return;
    };
    let message_len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    let full = peek_field_one(message, message_len);
    if let Peek::Found(name) = full {
        assert!(name.len() <= message_len, "a name longer than its message");
    }
    // Every prefix up to 64 bytes, then 64 more spread over the rest.
    let step = (message.len() / 64).max(1);
    let cuts = (0..message.len().min(64)).chain((64..message.len()).step_by(step));
    for cut in cuts {
        let early = peek_field_one(&message[..cut], message_len);
        if early != Peek::NeedMore {
            assert_eq!(
                early,
                full,
                "the answer on the first {cut} bytes differs from the answer on all {}",
                message.len()
            );
        }
    }
}
