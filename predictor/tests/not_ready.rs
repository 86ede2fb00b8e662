//! While the model is still loading, health says not ready and inference answers 503 with a
//! JSON error; the server itself is live.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kiln_predictor::batcher::BatchPolicy;
use kiln_predictor::state::ServerState;
use tower::ServiceExt;

fn app() -> axum::Router {
    let policy = BatchPolicy {
        max_batch_size: 1,
        max_batch_delay: Duration::ZERO,
    };
    kiln_predictor::http::router(Arc::new(ServerState::new("mlp".into(), 1 << 20, policy)))
}

async fn call(method: &str, uri: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_loading_model_answers_503_and_reports_not_ready() {
    let body = r#"{"inputs":[{"name":"input","shape":[1,1],"datatype":"FP32","data":[1]}]}"#;
    let (status, json) = call("POST", "/v2/models/mlp/infer", body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json["error"].as_str().unwrap().contains("loading"),
        "{json}"
    );
    let (status, json) = call("GET", "/v2/health/ready", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["ready"], false);
    let (status, _) = call("GET", "/v2/health/live", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, json) = call("GET", "/v2/models/mlp/ready", "").await;
    assert_eq!(
        (status, json["ready"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!(false))
    );
    // Another model is still a 404, loading or not.
    let (status, _) = call("POST", "/v2/models/other/infer", body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
