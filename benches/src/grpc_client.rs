//! gRPC clients for `inference.GRPCInferenceService/ModelInfer`: one tonic channel (one
//! HTTP/2 connection) each, the input as `raw_input_contents`, the request built once.

use kiln_api::protocol::grpc::ModelInferRequest;
use kiln_api::protocol::grpc::grpc_inference_service_client::GrpcInferenceServiceClient;
use kiln_api::protocol::grpc::model_infer_request::InferInputTensor;
use tonic::transport::{Channel, Endpoint};

use crate::loadgen::Caller;
use crate::{BenchError, f32_from_le, f32_to_le};

/// The request asking `model` for one row of `input` (input tensor `input`), raw bytes.
pub fn raw_request(model: &str, input: &[f32]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, input.len() as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![f32_to_le(input).into()],
        ..Default::default()
    }
}

/// One gRPC channel sending the same request over and over.
pub struct GrpcCaller {
    client: GrpcInferenceServiceClient<Channel>,
    request: ModelInferRequest,
}

impl GrpcCaller {
    /// Connects to `127.0.0.1:{port}` with TCP_NODELAY.
    pub async fn connect(port: u16, request: ModelInferRequest) -> Result<Self, BenchError> {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .map_err(|e| BenchError::context("gRPC endpoint", e))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| BenchError::context(format!("connecting to 127.0.0.1:{port}"), e))?;
        Ok(GrpcCaller {
            client: GrpcInferenceServiceClient::new(channel),
            request,
        })
    }

    /// Sends one request and returns the output row, to check the server computes what the
    /// bare run does. Done once per connection, before loading.
    pub async fn check(&mut self) -> Result<Vec<f32>, BenchError> {
        let response = self
            .client
            .model_infer(self.request.clone())
            .await
            .map_err(|e| BenchError::context("ModelInfer", e))?
            .into_inner();
        let raw = response
            .raw_output_contents
            .first()
            .ok_or_else(|| BenchError::msg("ModelInfer answered no raw_output_contents"))?;
        Ok(f32_from_le(raw))
    }
}

impl Caller for GrpcCaller {
    async fn call(&mut self) -> Result<(), BenchError> {
        self.client
            .model_infer(self.request.clone())
            .await
            .map_err(|e| BenchError::context("ModelInfer", e))?;
        Ok(())
    }
}
