//! gRPC: routing by the model name in field 1, original bytes forwarded, server-scoped calls
//! answered by the router, errors as gRPC statuses.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Recorder, eventually, h2_client, key, send};
use kiln_api::protocol::grpc as pb;
use kiln_router::grpc::{Peek, peek_field_one};
use kiln_router::{RevisionSpec, Router, RunningRouter, ServiceSpec};
use pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use prost::Message;
use tonic::{Request, Response, Status};

struct Model {
    name: &'static str,
}

#[tonic::async_trait]
impl GrpcInferenceService for Model {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Err(Status::internal("the router should answer ServerLive"))
    }
    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Err(Status::internal("the router should answer ServerReady"))
    }
    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        Ok(Response::new(pb::ModelReadyResponse {
            ready: request.into_inner().name == "mlp",
        }))
    }
    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Err(Status::internal("the router should answer ServerMetadata"))
    }
    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        Ok(Response::new(pb::ModelMetadataResponse {
            name: request.into_inner().name,
            platform: self.name.into(),
            ..Default::default()
        }))
    }
    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(pb::ModelInferResponse {
            model_name: request.model_name,
            id: self.name.into(),
            raw_output_contents: request.raw_input_contents,
            ..Default::default()
        }))
    }
    async fn model_config(
        &self,
        _: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        Err(Status::unimplemented("no config"))
    }
}

struct Upstream {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn model(name: &'static str) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(GrpcInferenceServiceServer::new(Model { name }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    Upstream { addr, task }
}

async fn start(services: Vec<ServiceSpec>, recorder: Option<Arc<Recorder>>) -> RunningRouter {
    let mut builder = Router::builder().grpc_addr("127.0.0.1:0".parse().unwrap());
    if let Some(recorder) = recorder {
        builder = builder.activation(recorder);
    }
    let router = builder.build().unwrap();
    router.table().set_services(services).unwrap();
    router.start().await.unwrap()
}

async fn connect(
    addr: std::net::SocketAddr,
) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn infer(model: &str, payload: Vec<u8>) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        id: "req-1".into(),
        raw_input_contents: vec![Bytes::from(payload)],
        ..Default::default()
    }
}

#[tokio::test]
async fn model_infer_is_routed_by_model_name_and_forwarded_untouched() {
    let mlp = model("mlp-upstream").await;
    let cnn = model("cnn-upstream").await;
    let router = start(
        vec![
            ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([mlp.addr])),
            ServiceSpec::new("cnn").revision(RevisionSpec::new("cnn-1", 100).endpoints([cnn.addr])),
        ],
        None,
    )
    .await;
    // Both the gRPC port and the HTTP port speak gRPC.
    for addr in [router.grpc_addr().unwrap(), router.http_addr()] {
        let mut client = connect(addr).await;
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let response = client
            .model_infer(infer("cnn", payload.clone()))
            .await
            .unwrap();
        assert_eq!(response.metadata().get("x-kiln-revision").unwrap(), "cnn-1");
        let body = response.into_inner();
        assert_eq!(
            (body.model_name.as_str(), body.id.as_str()),
            ("cnn", "cnn-upstream")
        );
        assert_eq!(body.raw_output_contents[0].as_ref(), payload.as_slice());

        let ready = client
            .model_ready(pb::ModelReadyRequest {
                name: "mlp".into(),
                version: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(ready.metadata().get("x-kiln-revision").unwrap(), "mlp-1");
        assert!(ready.into_inner().ready);
        let meta = client
            .model_metadata(pb::ModelMetadataRequest {
                name: "mlp".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(meta.platform, "mlp-upstream");
    }
}

#[tokio::test]
async fn server_calls_are_answered_by_the_router() {
    let router = start(
        vec![ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100))],
        None,
    )
    .await;
    let mut client = connect(router.grpc_addr().unwrap()).await;
    assert!(
        client
            .server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        client
            .server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let meta = client
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "kiln-router");
}

#[tokio::test]
async fn unknown_models_and_pins_get_not_found() {
    let mlp = model("mlp-upstream").await;
    let router = start(
        vec![
            ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([mlp.addr])),
        ],
        None,
    )
    .await;
    let mut client = connect(router.grpc_addr().unwrap()).await;
    let status = client
        .model_infer(infer("nope", vec![1]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(status.message().contains("nope"));
    let mut pinned = tonic::Request::new(infer("mlp", vec![1]));
    pinned
        .metadata_mut()
        .insert("x-kiln-tag", "missing".parse().unwrap());
    assert_eq!(
        client.model_infer(pinned).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn a_malformed_frame_gets_invalid_argument() {
    let router = start(
        vec![ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100))],
        None,
    )
    .await;
    // Field 1 claims 100 bytes in a 3-byte message.
    let frame = "\u{0}\u{0}\u{0}\u{0}\u{3}\u{a}\u{64}x";
    let reply = send(
        &h2_client(),
        "POST",
        format!(
            "http://{}/inference.GRPCInferenceService/ModelInfer",
            router.grpc_addr().unwrap()
        ),
        &[("content-type", "application/grpc"), ("te", "trailers")],
        frame,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["grpc-status"], "3", "{:?}", reply.headers);
    let unknown = send(
        &h2_client(),
        "POST",
        format!(
            "http://{}/inference.GRPCInferenceService/Nope",
            router.grpc_addr().unwrap()
        ),
        &[("content-type", "application/grpc")],
        "",
    )
    .await;
    assert_eq!(unknown.headers["grpc-status"], "12");
}

#[tokio::test]
async fn grpc_calls_wait_for_a_cold_revision() {
    let recorder = Arc::new(Recorder::default());
    let router = start(
        vec![
            ServiceSpec::new("mlp")
                .timeout(Duration::from_secs(30))
                .revision(RevisionSpec::new("mlp-1", 100)),
        ],
        Some(recorder.clone()),
    )
    .await;
    let table = router.table();
    let mut client = connect(router.grpc_addr().unwrap()).await;
    let call = tokio::spawn(async move { client.model_infer(infer("mlp", vec![7])).await });
    eventually("queued", || table.queued(&key("mlp-1")) == Some(1)).await;
    assert_eq!(recorder.pokes_for(&key("mlp-1")), 1);
    let mlp = model("mlp-upstream").await;
    table.set_endpoints(&key("mlp-1"), vec![mlp.addr]).unwrap();
    let response = call.await.unwrap().unwrap().into_inner();
    assert_eq!(response.id, "mlp-upstream");
}

#[test]
fn field_one_is_peeked_without_decoding_the_rest() {
    let encoded = infer("mlp", vec![0; 1000]).encode_to_vec();
    assert_eq!(peek_field_one(&encoded, encoded.len()), Peek::Found("mlp"));
    assert_eq!(
        peek_field_one(&encoded[..5], encoded.len()),
        Peek::Found("mlp")
    );
    assert_eq!(peek_field_one(&encoded[..4], encoded.len()), Peek::NeedMore);
    assert_eq!(peek_field_one(&encoded[..1], encoded.len()), Peek::NeedMore);
    // Field 3 (id) before field 1: skipped.
    let mut reordered = vec![0x1a, 2, b'i', b'd'];
    reordered.extend_from_slice(&[0x0a, 3, b'c', b'n', b'n']);
    assert_eq!(
        peek_field_one(&reordered, reordered.len()),
        Peek::Found("cnn")
    );
    assert_eq!(peek_field_one(&[], 0), Peek::Missing);
    assert_eq!(peek_field_one(&[0x1a, 0], 2), Peek::Missing);
    assert_eq!(peek_field_one(&[0x0b], 1), Peek::Malformed, "wire type 3");
    assert_eq!(
        peek_field_one(&[0x0a, 2, 0xff, 0xfe], 4),
        Peek::Malformed,
        "not UTF-8"
    );
    assert_eq!(
        peek_field_one(&[0x08, 1], 2),
        Peek::Malformed,
        "field 1 as varint"
    );
}
