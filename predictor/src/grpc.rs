//! The gRPC front end: `inference.GRPCInferenceService` (v2 plus Triton's `ModelConfig`).

use std::time::Instant;

use kiln_api::protocol::grpc::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use kiln_api::protocol::grpc::*;
use kiln_api::protocol::grpc_codec::{decode_grpc_request, encode_grpc_response};
use tonic::{Request, Response, Status};

use crate::error::ServeError;
use crate::state::SharedState;
use crate::triton_config;

/// The gRPC service over shared state, with message limits as large as the REST body limit.
pub fn service(state: SharedState) -> GrpcInferenceServiceServer<GrpcService> {
    let limit = state.max_body_bytes;
    GrpcInferenceServiceServer::new(GrpcService { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
}

/// Implements the v2 gRPC methods.
pub struct GrpcService {
    state: SharedState,
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for GrpcService {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        match self.state.model(&r.name, version(&r.version)) {
            Ok(_) => Ok(Response::new(ModelReadyResponse { ready: true })),
            Err(ServeError::Unavailable(_)) => {
                Ok(Response::new(ModelReadyResponse { ready: false }))
            }
            Err(e) => Err(e.grpc_status()),
        }
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "kiln".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into(), "model_configuration".into()],
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let m = self
            .state
            .metadata(&r.name, version(&r.version))
            .map_err(|e| e.grpc_status())?;
        let tensor =
            |t: kiln_api::protocol::TensorMetadata| model_metadata_response::TensorMetadata {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
            };
        Ok(Response::new(ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: m.inputs.into_iter().map(tensor).collect(),
            outputs: m.outputs.into_iter().map(tensor).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let started = Instant::now();
        let arrival = self.state.arriving();
        let r = request.into_inner();
        let name = r.model_name.clone();
        let model_version = r.model_version.clone();
        let result = async {
            let decoded = decode_grpc_request(r)?;
            self.state
                .infer(&name, version(&model_version), decoded, arrival)
                .await
        }
        .await;
        let status = match &result {
            Ok(_) => 200,
            Err(e) => e.status().as_u16(),
        };
        self.state.record("grpc", status, started);
        result
            .map(|response| Response::new(encode_grpc_response(response)))
            .map_err(|e| e.grpc_status())
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let r = request.into_inner();
        let model = self
            .state
            .model(&r.name, version(&r.version))
            .map_err(|e| e.grpc_status())?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(triton_config::message(&self.state, model)),
        }))
    }
}
