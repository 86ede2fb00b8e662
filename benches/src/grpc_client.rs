//! gRPC clients for `inference.GRPCInferenceService/ModelInfer`: one HTTP/2 connection
//! each, the input as `raw_input_contents`, the request built once.
//!
//! The first call goes through tonic's generated client, which checks the answer the way a
//! standard client reads it. The load itself is sent with the `h2` crate directly, so that
//! each call's HEADERS and DATA frames leave in one write, as gRPC's C++ and Go clients send
//! them (Triton's perf_analyzer among them); tonic's client writes the two frames
//! separately, which costs the server a second read and wake-up per call that real clients
//! do not cause.

use bytes::{BufMut, Bytes, BytesMut};
use kiln_api::protocol::grpc::ModelInferRequest;
use kiln_api::protocol::grpc::grpc_inference_service_client::GrpcInferenceServiceClient;
use kiln_api::protocol::grpc::model_infer_request::InferInputTensor;
use prost::Message;
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

/// One HTTP/2 connection sending the same request over and over.
pub struct GrpcCaller {
    client: GrpcInferenceServiceClient<Channel>,
    request: ModelInferRequest,
    load: h2::client::SendRequest<Bytes>,
    /// The request as a gRPC message: the 5-byte prefix and the protobuf.
    framed: Bytes,
    uri: http::Uri,
}

impl GrpcCaller {
    /// Connects twice to `127.0.0.1:{port}` with TCP_NODELAY: tonic for the check, h2 for
    /// the load.
    pub async fn connect(port: u16, request: ModelInferRequest) -> Result<Self, BenchError> {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .map_err(|e| BenchError::context("gRPC endpoint", e))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| BenchError::context(format!("connecting to 127.0.0.1:{port}"), e))?;
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| BenchError::context(format!("connecting to 127.0.0.1:{port}"), e))?;
        tcp.set_nodelay(true)
            .map_err(|e| BenchError::context("TCP_NODELAY", e))?;
        let (load, connection) = h2::client::handshake(tcp)
            .await
            .map_err(|e| BenchError::context("HTTP/2 handshake", e))?;
        tokio::spawn(connection);
        let body = request.encode_to_vec();
        let mut framed = BytesMut::with_capacity(5 + body.len());
        framed.put_u8(0);
        framed.put_u32(body.len() as u32);
        framed.put_slice(&body);
        Ok(GrpcCaller {
            client: GrpcInferenceServiceClient::new(channel),
            request,
            load,
            framed: framed.freeze(),
            uri: format!("http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer")
                .parse()
                .map_err(|e| BenchError::context("gRPC URI", e))?,
        })
    }

    /// Sends one request through tonic and returns the output row, to check the server
    /// computes what the bare run does. Done once per connection, before loading.
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
        let h2err = |e: h2::Error| BenchError::context("ModelInfer over HTTP/2", e);
        let request = http::Request::post(self.uri.clone())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| BenchError::context("gRPC request", e))?;
        let mut load = self.load.clone().ready().await.map_err(h2err)?;
        let (response, mut send) = load.send_request(request, false).map_err(h2err)?;
        send.send_data(self.framed.clone(), true).map_err(h2err)?;
        let response = response.await.map_err(h2err)?;
        let status = response.headers().get("grpc-status").cloned();
        let mut body = response.into_body();
        let mut received = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(h2err)?;
            received += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let status = match status {
            Some(status) => Some(status),
            None => body
                .trailers()
                .await
                .map_err(h2err)?
                .and_then(|t| t.get("grpc-status").cloned()),
        };
        match status {
            Some(s) if s == "0" && received > 5 => Ok(()),
            other => Err(BenchError::msg(format!(
                "ModelInfer answered grpc-status {other:?} with {received} bytes"
            ))),
        }
    }
}
