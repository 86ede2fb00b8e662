//! The REST front end: Open Inference Protocol v2 (JSON and binary tensors), Triton's
//! model-configuration extension, v1 `:predict`, health and `/metrics`.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::protocol::{rest, v1};
use serde_json::json;

use crate::error::ServeError;
use crate::state::SharedState;
use crate::triton_config;

/// The REST routes, over shared state.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{model}/config", get(model_config))
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(model_config_version),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/v1/models/{model}", get(v1_status).post(v1_predict))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(kiln_api::error_body::ErrorBody::new("no such endpoint")),
    )
        .into_response()
}

async fn server_metadata() -> Json<serde_json::Value> {
    Json(json!({
        "name": "kiln",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_configuration"],
    }))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "live": true }))
}

async fn ready(State(state): State<SharedState>) -> Response {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready }))).into_response()
}

async fn model_metadata(State(state): State<SharedState>, Path(model): Path<String>) -> Response {
    to_response(state.metadata(&model, None).map(Json))
}

async fn model_metadata_version(
    State(state): State<SharedState>,
    Path((model, version)): Path<(String, String)>,
) -> Response {
    to_response(state.metadata(&model, Some(&version)).map(Json))
}

async fn model_ready(State(state): State<SharedState>, Path(model): Path<String>) -> Response {
    ready_answer(&state, &model, None)
}

async fn model_ready_version(
    State(state): State<SharedState>,
    Path((model, version)): Path<(String, String)>,
) -> Response {
    ready_answer(&state, &model, Some(&version))
}

fn ready_answer(state: &SharedState, model: &str, version: Option<&str>) -> Response {
    match state.model(model, version) {
        Ok(_) => Json(json!({ "name": model, "ready": true })).into_response(),
        Err(ServeError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "name": model, "ready": false })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_config(State(state): State<SharedState>, Path(model): Path<String>) -> Response {
    config_answer(&state, &model, None)
}

async fn model_config_version(
    State(state): State<SharedState>,
    Path((model, version)): Path<(String, String)>,
) -> Response {
    config_answer(&state, &model, Some(&version))
}

fn config_answer(state: &SharedState, model: &str, version: Option<&str>) -> Response {
    to_response(
        state
            .model(model, version)
            .map(|m| Json(triton_config::json(state, m))),
    )
}

async fn metrics(State(state): State<SharedState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn infer(
    State(state): State<SharedState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_v2(state, model, None, headers, body).await
}

async fn infer_version(
    State(state): State<SharedState>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_v2(state, model, Some(version), headers, body).await
}

async fn infer_v2(
    state: SharedState,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let arrival = state.arriving();
    let result = async {
        // An unknown model or version is 404 (a loading one 503) whatever the body holds,
        // as KServe's server answers.
        state.model(&model, version.as_deref())?;
        let json_len = header_json_len(&headers)?;
        let body = read_body(&state, &headers, body).await?;
        let request = rest::decode_infer_request(&body, json_len)?;
        let binary_default = request.binary_data_output;
        let wanted = request.outputs.clone();
        let response = state
            .infer(&model, version.as_deref(), request, arrival)
            .await?;
        let encoded = rest::encode_infer_response(&response, |name| {
            rest::wants_binary(&wanted, binary_default, name)
        });
        let mut http = Response::new(Body::from(encoded.body));
        let headers = http.headers_mut();
        match encoded.json_len {
            Some(len) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                headers.insert(rest::HEADER_CONTENT_LENGTH, HeaderValue::from(len));
            }
            None => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
        }
        Ok::<_, ServeError>(http)
    }
    .await;
    finish(&state, "rest", started, result)
}

async fn v1_status(State(state): State<SharedState>, Path(model): Path<String>) -> Response {
    if model != state.model_name {
        return ServeError::ModelNotFound(model).into_response();
    }
    Json(json!({ "name": model, "ready": state.is_ready() })).into_response()
}

async fn v1_predict(
    State(state): State<SharedState>,
    Path(spec): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let arrival = state.arriving();
    let result = async {
        let model = spec.strip_suffix(":predict").ok_or_else(|| {
            ServeError::BadRequest(format!(
                "POST /v1/models/{spec}: expected /v1/models/{{name}}:predict"
            ))
        })?;
        let body = read_body(&state, &headers, body).await?;
        let loaded = state.model(model, None)?;
        let inputs: Vec<_> = loaded
            .signature
            .inputs
            .iter()
            .map(|t| t.metadata())
            .collect();
        let tensors = v1::decode_predict_request(&body, &inputs)?;
        let request = kiln_api::protocol::InferRequest {
            inputs: tensors,
            ..Default::default()
        };
        let response = state.infer(model, None, request, arrival).await?;
        let body = v1::encode_predict_response(&response.outputs)?;
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    }
    .await;
    finish(&state, "v1", started, result)
}

fn finish(
    state: &SharedState,
    protocol: &str,
    started: Instant,
    result: Result<Response, ServeError>,
) -> Response {
    let response = result.unwrap_or_else(|e| {
        if e.status().is_server_error() {
            tracing::warn!(error = %e, "request failed");
        }
        e.into_response()
    });
    state.record(protocol, response.status().as_u16(), started);
    response
}

fn to_response<T: IntoResponse>(result: Result<T, ServeError>) -> Response {
    match result {
        Ok(v) => v.into_response(),
        Err(e) => e.into_response(),
    }
}

fn header_json_len(headers: &HeaderMap) -> Result<Option<usize>, ServeError> {
    headers
        .get(rest::HEADER_CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ServeError::BadRequest("Inference-Header-Content-Length is not a number".into())
                })
        })
        .transpose()
}

async fn read_body(
    state: &SharedState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ServeError> {
    let limit = state.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ServeError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if kiln_api::error_chain::find_cause::<http_body_util::LengthLimitError>(&*inner).is_some()
        {
            return ServeError::PayloadTooLarge { limit };
        }
        ServeError::BadRequest(format!("cannot read the request body: {inner}"))
    })
}
