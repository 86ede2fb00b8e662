//! Standard clients work unchanged: Triton's Python HTTP (binary and JSON) and gRPC clients
//! against `kiln predictor`, for both an ONNX and a TorchScript model, and KServe's Python
//! clients (REST v2 and gRPC).

mod common;

use common::{Predictor, fixtures, python, repo};

fn run_triton_clients(p: &Predictor, model: &str) {
    let output = std::process::Command::new(python())
        .arg(repo().join("kiln/tests/clients/triton_clients.py"))
        .args([
            p.http_port.to_string(),
            p.grpc_port.to_string(),
            model.to_owned(),
        ])
        .output()
        .expect("running the Python client script (scripts/setup.sh makes the venv)");
    assert!(
        output.status.success(),
        "Triton clients failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn triton_clients_against_the_onnx_model() {
    let dir = fixtures().join("mlp");
    let p = Predictor::start(&[
        "--model-name",
        "mlp",
        "--storage-uri",
        dir.to_str().unwrap(),
    ]);
    run_triton_clients(&p, "mlp");
}

#[test]
fn triton_clients_against_the_torchscript_model() {
    let dir = fixtures().join("mlp-torch");
    let p = Predictor::start(&[
        "--model-name",
        "mlp-torch",
        "--storage-uri",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(p.ready["event"], "ready");
    run_triton_clients(&p, "mlp-torch");
}

#[test]
fn kserve_clients_against_the_onnx_model() {
    let dir = fixtures().join("mlp");
    let p = Predictor::start(&[
        "--model-name",
        "mlp",
        "--storage-uri",
        dir.to_str().unwrap(),
    ]);
    let output = std::process::Command::new(repo().join(".kiln-cache/venv-kserve/bin/python"))
        .arg(repo().join("kiln/tests/clients/kserve_clients.py"))
        .args([
            p.http_port.to_string(),
            p.grpc_port.to_string(),
            "mlp".to_owned(),
        ])
        .output()
        .expect("running KServe's clients (scripts/setup.sh makes .kiln-cache/venv-kserve)");
    assert!(
        output.status.success(),
        "KServe clients failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
