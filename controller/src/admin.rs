//! The admin API: what `kiln apply|get|delete|logs|rollout` talk to. JSON in and out;
//! errors are `{"error": "..."}` with 422 (invalid manifest), 404, 409 or 500. When a token
//! is configured every request must carry `Authorization: Bearer <token>`.

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_api::error_body::ErrorBody;
use kiln_api::inference_service::InferenceService;
use serde::{Deserialize, Serialize};

use crate::controller::{ControlError, Controller};

/// The answer to `GET /v1/inferenceservices`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceList {
    /// The services, with their status.
    pub items: Vec<InferenceService>,
}

/// The answer to `GET .../inferenceservices/{name}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLines {
    /// The replicas' recent log lines, oldest first.
    pub lines: Vec<String>,
}

/// The answer to `DELETE .../inferenceservices/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deleted {
    /// `namespace/name`.
    pub deleted: String,
}

#[derive(Clone)]
struct AdminState {
    controller: Controller,
    token: Option<String>,
}

/// The admin routes over `controller`.
pub fn router(controller: Controller, token: Option<String>) -> Router {
    let state = AdminState { controller, token };
    Router::new()
        .route(
            "/v1/apply",
            post(apply).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v1/inferenceservices", get(list))
        .route(
            "/v1/namespaces/{namespace}/inferenceservices/{name}",
            get(get_one).delete(delete),
        )
        .route(
            "/v1/namespaces/{namespace}/inferenceservices/{name}/logs",
            get(logs),
        )
        .route(
            "/v1/namespaces/{namespace}/inferenceservices/{name}/rollout/{action}",
            post(rollout),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

async fn authorize(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(token.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(ErrorBody::new(
                    "a valid bearer token is required (KILN_TOKEN)",
                )),
            )
                .into_response();
        }
    }
    next.run(request).await
}

fn error(e: ControlError) -> Response {
    let status = match e {
        ControlError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Conflict(_) => StatusCode::CONFLICT,
        ControlError::Store(_) | ControlError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(ErrorBody::new(e.to_string()))).into_response()
}

/// Largest manifest text an apply takes (10,000 services are about 3 MiB).
pub const APPLY_BODY_LIMIT: usize = 256 << 20;

async fn apply(State(state): State<AdminState>, body: axum::body::Body) -> Response {
    let body = match axum::body::to_bytes(body, APPLY_BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let cause = e.into_inner();
            let too_large =
                kiln_api::error_chain::find_cause::<http_body_util::LengthLimitError>(&*cause)
                    .is_some();
            return if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Json(ErrorBody::new(format!(
                        "the manifests exceed the limit of {APPLY_BODY_LIMIT} bytes"
                    ))),
                )
                    .into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    Json(ErrorBody::new("cannot read the manifests")),
                )
                    .into_response()
            };
        }
    };
    let body = match String::from_utf8(body.into()) {
        Ok(text) => text,
        Err(_) => return error(ControlError::Invalid("the manifests are not UTF-8".into())),
    };
    let controller = state.controller.clone();
    match tokio::task::spawn_blocking(move || controller.apply(&body)).await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(e)) => error(e),
        Err(e) => error(ControlError::Conflict(format!("apply failed: {e}"))),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

async fn list(State(state): State<AdminState>, Query(q): Query<ListQuery>) -> Response {
    Json(ServiceList {
        items: state.controller.list(q.namespace.as_deref()),
    })
    .into_response()
}

async fn get_one(
    State(state): State<AdminState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match state.controller.get(&namespace, &name) {
        Ok(service) => Json(service).into_response(),
        Err(e) => error(e),
    }
}

async fn delete(
    State(state): State<AdminState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match state.controller.delete(&namespace, &name) {
        Ok(()) => Json(Deleted {
            deleted: format!("{namespace}/{name}"),
        })
        .into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct LogsQuery {
    revision: Option<String>,
}

async fn logs(
    State(state): State<AdminState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Response {
    match state
        .controller
        .logs(&namespace, &name, q.revision.as_deref())
    {
        Ok(lines) => Json(LogLines { lines }).into_response(),
        Err(e) => error(e),
    }
}

/// The body of `POST .../rollout/{action}`: `{"percent": P}` for `canary`, nothing (or
/// `{}`) for `promote` and `rollback`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RolloutRequest {
    /// The latest revision's share, for `canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
}

async fn rollout(
    State(state): State<AdminState>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    // An empty body (or JSON null) means no parameters.
    let body: RolloutRequest = match serde_json::from_slice::<Option<RolloutRequest>>(&body) {
        Ok(parsed) => parsed.unwrap_or_default(),
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => RolloutRequest::default(),
        Err(e) => return error(ControlError::Invalid(format!("rollout body: {e}"))),
    };
    let c = &state.controller;
    let result = match action.as_str() {
        "canary" => match body.percent {
            Some(p) => c.canary(&namespace, &name, p),
            None => Err(ControlError::Invalid(
                "canary needs {\"percent\": P}".into(),
            )),
        },
        "promote" => c.promote(&namespace, &name),
        "rollback" => c.rollback(&namespace, &name),
        other => Err(ControlError::Invalid(format!(
            "unknown rollout action '{other}' (canary, promote, rollback)"
        ))),
    };
    match result.and_then(|()| c.get(&namespace, &name)) {
        Ok(service) => Json(service).into_response(),
        Err(e) => error(e),
    }
}
