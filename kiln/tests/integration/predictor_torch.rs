//! TorchScript models: `kiln predictor` hands them to `kiln-predictor-torch` (libtorch is
//! never loaded by `kiln` itself), with the signature from Triton's config.pbtxt or Kiln's
//! signature.json.

use crate::common;

use common::{Predictor, assert_close, fixtures, input_row, reference_mlp};
use serde_json::{Value, json};

async fn infer(p: &Predictor, model: &str, input: &str) -> Value {
    let row = input_row(11);
    let body =
        json!({"inputs": [{"name": input, "shape": [1, 784], "datatype": "FP32", "data": row}]});
    let r = reqwest::Client::new()
        .post(p.url(&format!("/v2/models/{model}/infer")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let out: Vec<f32> = v["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_close(&out, &reference_mlp(&row));
    v
}

#[tokio::test]
async fn a_triton_repository_with_a_torchscript_model_is_detected_and_served() {
    let dir = fixtures().join("mlp-torch");
    let p = Predictor::start(&[
        "--model-name",
        "mlp-torch",
        "--storage-uri",
        dir.to_str().unwrap(),
    ]);
    let meta: Value = reqwest::get(p.url("/v2/models/mlp-torch"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["platform"], "pytorch_libtorch");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 784]));
    let v = infer(&p, "mlp-torch", "INPUT__0").await;
    assert_eq!(v["outputs"][0]["name"], "OUTPUT__0");
}

#[tokio::test]
async fn a_model_pt_with_signature_json_is_served_when_the_format_is_given() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("mlp-torch/1/model.pt"),
        dir.path().join("model.pt"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("signature.json"),
        r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 784]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 10]}]}"#,
    )
    .unwrap();
    let p = Predictor::start(&[
        "--model-name",
        "m",
        "--model-format",
        "pytorch",
        "--storage-uri",
        dir.path().to_str().unwrap(),
    ]);
    infer(&p, "m", "x").await;
}

#[test]
fn a_torchscript_model_without_a_signature_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("mlp-torch/1/model.pt"),
        dir.path().join("model.pt"),
    )
    .unwrap();
    let err = Predictor::start_error(&[
        "--model-name",
        "m",
        "--storage-uri",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("config.pbtxt") && err.contains("signature.json"),
        "{err}"
    );
}

#[test]
fn cuda_on_a_machine_without_a_usable_gpu_is_an_error() {
    let dir = fixtures().join("mlp-torch");
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
