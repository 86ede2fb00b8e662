//! Bad input gets a clear error with the right status, and the predictor keeps serving.

use crate::common;

use common::{Predictor, fixtures, input_row};
use serde_json::{Value, json};

async fn post(
    p: &Predictor,
    path: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, String)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(p.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is not JSON: {text}"));
    (status, body)
}

fn input(name: &str, shape: Value, datatype: &str, data: Value) -> String {
    json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]})
        .to_string()
}

/// Path, body, extra headers, expected status, and a phrase the error message must contain.
type Case = (
    &'static str,
    String,
    Vec<(&'static str, String)>,
    u16,
    &'static str,
);

#[tokio::test]
async fn each_bad_request_gets_its_status_and_a_message() {
    let dir = fixtures().join("mlp");
    let p = Predictor::start(&[
        "--model-name",
        "mlp",
        "--storage-uri",
        dir.to_str().unwrap(),
        "--max-body-bytes",
        "100000",
    ]);
    let row = json!(input_row(0));
    let cases: Vec<Case> = vec![
        ("/v2/models/mlp/infer", "{not json".into(), vec![], 400, "malformed request body"),
        ("/v2/models/nope/infer", input("input", json!([1, 784]), "FP32", row.clone()), vec![], 404, "'nope'"),
        // The model is looked up before the body is read, as KServe's server does.
        ("/v2/models/nope/infer", "{not json".into(), vec![], 404, "'nope'"),
        ("/v2/models/mlp/versions/7/infer", "{not json".into(), vec![], 404, "version '7'"),
        ("/v1/models/nope:predict", "{not json".into(), vec![], 404, "'nope'"),
        ("/v2/models/mlp/infer", input("pixels", json!([1, 784]), "FP32", row.clone()), vec![], 400, "unknown input 'pixels'"),
        ("/v2/models/mlp/infer", input("input", json!([1, 784]), "FP64", row.clone()), vec![], 400, "expected FP32 with shape [-1, 784]"),
        ("/v2/models/mlp/infer", input("input", json!([1, 783]), "FP32", json!(vec![0.0; 783])), vec![], 400, "got FP32 with shape [1, 783]"),
        ("/v2/models/mlp/infer", input("input", json!([2, 784]), "FP32", row.clone()), vec![], 400, "needs 1568 values, got 784"),
        ("/v2/models/mlp/infer", input("input", json!([1, 784]), "FLOAT", row.clone()), vec![], 400, "unknown datatype 'FLOAT'"),
        ("/v2/models/mlp/infer", input("input", json!([-1, 784]), "FP32", row.clone()), vec![], 400, "invalid shape"),
        (
            "/v2/models/mlp/infer",
            json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}]}).to_string(),
            vec![],
            400,
            "exceeds the 0 bytes left",
        ),
        ("/v2/models/mlp/infer", "{}".into(), vec![("Inference-Header-Content-Length", "99".into())], 400, "Inference-Header-Content-Length is 99"),
        ("/v2/models/mlp/infer", "x".repeat(200_000), vec![], 413, "exceeds the limit of 100000 bytes"),
        ("/v2/models/mlp/versions/7/infer", input("input", json!([1, 784]), "FP32", row.clone()), vec![], 404, "version '7'"),
        ("/v1/models/mlp:predict", r#"{"instances": [[1, 2], [3]]}"#.into(), vec![], 400, "instances differ in shape"),
        ("/v1/models/mlp:explain", "{}".into(), vec![], 400, "expected /v1/models/{name}:predict"),
        ("/v2/models/mlp/nothing", "{}".into(), vec![], 404, "no such endpoint"),
    ];
    for (path, body, headers, status, needle) in cases {
        let (got, v) = post(&p, path, body.clone(), &headers).await;
        let message = v["error"].as_str().unwrap_or_default().to_owned();
        assert_eq!(got, status, "{path} {body:.80}: {message}");
        assert!(
            message.contains(needle),
            "{path}: '{message}' should mention '{needle}'"
        );
    }
    // Still serving, and still right.
    let (status, v) = post(
        &p,
        "/v2/models/mlp/infer",
        input("input", json!([1, 784]), "FP32", row),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["outputs"][0]["shape"], json!([1, 10]));
}

#[test]
fn a_missing_model_ends_start_up_with_one_clear_line() {
    let err = Predictor::start_error(&[
        "--model-name",
        "m",
        "--storage-uri",
        "/nonexistent/model/dir",
    ]);
    assert!(err.contains("/nonexistent/model/dir"), "{err}");
}

#[test]
fn a_torchserve_archive_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.mar"), b"PK").unwrap();
    let err = Predictor::start_error(&[
        "--model-name",
        "m",
        "--model-format",
        "pytorch",
        "--storage-uri",
        dir.path().to_str().unwrap(),
    ]);
    assert!(err.contains("TorchServe"), "{err}");
}

#[test]
fn cuda_without_a_gpu_build_fails_instead_of_running_on_the_cpu() {
    let dir = fixtures().join("mlp");
    let err = Predictor::start_error(&[
        "--model-name",
        "m",
        "--storage-uri",
        dir.to_str().unwrap(),
        "--device",
        "cuda",
    ]);
    assert!(err.contains("CUDA"), "{err}");
}
