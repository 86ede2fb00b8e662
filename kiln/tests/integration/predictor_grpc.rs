//! `kiln predictor` over v2 gRPC (KServe's proto plus Triton's ModelConfig).

use crate::common;

use common::{Predictor, assert_close, fixtures, input_row, reference_mlp};
use kiln_api::protocol::grpc::grpc_inference_service_client::GrpcInferenceServiceClient;
use kiln_api::protocol::grpc::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use kiln_api::protocol::grpc::*;
use tonic::Code;
use tonic::transport::Channel;

async fn client(p: &Predictor) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::connect(p.grpc_url())
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
}

fn mlp() -> Predictor {
    let dir = fixtures().join("mlp");
    Predictor::start(&[
        "--model-name",
        "mlp",
        "--storage-uri",
        dir.to_str().unwrap(),
    ])
}

fn input(shape: Vec<i64>, contents: Option<InferTensorContents>) -> InferInputTensor {
    InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape,
        parameters: Default::default(),
        contents,
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[tokio::test]
async fn health_metadata_and_config() {
    let p = mlp();
    let mut c = client(&p).await;
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = c
        .model_ready(ModelReadyRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ready.ready);
    let server = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(server.name, "kiln");
    let meta = c
        .model_metadata(ModelMetadataRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.inputs[0].shape, vec![-1, 784]);
    assert_eq!(meta.platform, "onnxruntime_onnx");
    let config = c
        .model_config(ModelConfigRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert!(config.max_batch_size > 0);
    assert_eq!(config.input[0].dims, vec![784]);
    assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
}

#[tokio::test]
async fn raw_and_typed_inputs_give_raw_outputs_matching_the_reference() {
    let p = mlp();
    let mut c = client(&p).await;
    let row = input_row(9);
    let raw = ModelInferRequest {
        model_name: "mlp".into(),
        id: "abc".into(),
        inputs: vec![input(vec![1, 784], None)],
        raw_input_contents: vec![
            row.iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        ],
        ..Default::default()
    };
    let typed = ModelInferRequest {
        model_name: "mlp".into(),
        id: "abc".into(),
        inputs: vec![input(
            vec![1, 784],
            Some(InferTensorContents {
                fp32_contents: row.clone(),
                ..Default::default()
            }),
        )],
        outputs: vec![InferRequestedOutputTensor {
            name: "output".into(),
            parameters: Default::default(),
        }],
        ..Default::default()
    };
    for request in [raw, typed] {
        let r = c.model_infer(request).await.unwrap().into_inner();
        assert_eq!(r.id, "abc");
        assert_eq!(r.outputs[0].name, "output");
        assert_eq!(r.outputs[0].shape, vec![1, 10]);
        assert_close(&floats(&r.raw_output_contents[0]), &reference_mlp(&row));
    }
}

#[tokio::test]
async fn errors_map_to_grpc_codes_and_the_server_keeps_serving() {
    let p = mlp();
    let mut c = client(&p).await;
    let unknown = ModelInferRequest {
        model_name: "nope".into(),
        ..Default::default()
    };
    assert_eq!(
        c.model_infer(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    let bad_shape = ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![input(vec![1, 3], None)],
        raw_input_contents: vec![vec![0u8; 12].into()],
        ..Default::default()
    };
    let status = c.model_infer(bad_shape).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("input 'input'"),
        "{}",
        status.message()
    );
    let short_raw = ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![input(vec![1, 784], None)],
        raw_input_contents: vec![vec![0u8; 10].into()],
        ..Default::default()
    };
    assert_eq!(
        c.model_infer(short_raw).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let ok = ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![input(vec![1, 784], None)],
        raw_input_contents: vec![vec![0u8; 784 * 4].into()],
        ..Default::default()
    };
    assert!(c.model_infer(ok).await.is_ok());
}

#[tokio::test]
async fn messages_larger_than_tonic_default_are_accepted() {
    let p = mlp();
    let mut c = client(&p).await;
    let rows = 2048; // 6.4 MB of input, over tonic's 4 MiB default
    let data: Vec<u8> = (0..rows)
        .flat_map(|r| input_row(r % 7))
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let request = ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![input(vec![rows as i64, 784], None)],
        raw_input_contents: vec![data.into()],
        ..Default::default()
    };
    let r = c.model_infer(request).await.unwrap().into_inner();
    assert_eq!(r.outputs[0].shape, vec![rows as i64, 10]);
}

#[tokio::test]
async fn grpc_is_also_served_on_the_http_port() {
    let p = mlp();
    let mut c = GrpcInferenceServiceClient::connect(format!("http://127.0.0.1:{}", p.http_port))
        .await
        .unwrap();
    let request = ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![input(vec![1, 784], None)],
        raw_input_contents: vec![
            input_row(2)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        ],
        ..Default::default()
    };
    let r = c.model_infer(request).await.unwrap().into_inner();
    assert_close(
        &floats(&r.raw_output_contents[0]),
        &reference_mlp(&input_row(2)),
    );
    // REST still answers on the same port, unknown paths still get the JSON 404.
    let status = reqwest::get(p.url("/v2/health/ready"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let missing = reqwest::get(p.url("/nothing")).await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// Sends bytes as they are and reads the answer's bytes: for messages no generated client
/// would send.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let len = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, len).to_vec()))
    }
}

async fn model_infer_raw(port: u16, message: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/inference.GRPCInferenceService/ModelInfer");
    grpc.unary(tonic::Request::new(message), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_invalid_argument_on_both_ports() {
    let p = mlp();
    let valid = prost::Message::encode_to_vec(&ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![input(vec![1, 784], None)],
        raw_input_contents: vec![vec![0u8; 784 * 4].into()],
        ..Default::default()
    });
    let truncated = valid[..valid.len() - 7].to_vec();
    for port in [p.grpc_port, p.http_port] {
        let status = model_infer_raw(port, truncated.clone()).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "port {port}: {status:?}"
        );
        assert!(status.message().contains("does not decode"), "{status:?}");
        // The whole message still works on the same server.
        assert!(model_infer_raw(port, valid.clone()).await.is_ok());
    }
}
