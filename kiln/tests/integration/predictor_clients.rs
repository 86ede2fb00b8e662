//! Standard clients work unchanged: Triton's Python HTTP (binary and JSON) and gRPC clients
//! against `kiln predictor`, for both an ONNX and a TorchScript model, and KServe's Python
//! clients (REST v2 and gRPC).

use crate::common;

use std::path::PathBuf;

use common::{Predictor, fixtures, python, repo};

/// Runs a client script from kiln/tests/clients with the predictor's ports and the model.
fn run_clients(interpreter: PathBuf, script: &str, p: &Predictor, model: &str) {
    let output = std::process::Command::new(&interpreter)
        .arg(repo().join("kiln/tests/clients").join(script))
        .args([
            p.http_port.to_string(),
            p.grpc_port.to_string(),
            model.to_owned(),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} (scripts/setup.sh makes it): {e}",
                interpreter.display()
            )
        });
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn serve(model: &str, folder: &str) -> Predictor {
    let dir = fixtures().join(folder);
    Predictor::start(&[
        "--model-name",
        model,
        "--storage-uri",
        dir.to_str().unwrap(),
    ])
}

#[test]
fn triton_clients_against_the_onnx_model() {
    let p = serve("mlp", "mlp");
    run_clients(python(), "triton_clients.py", &p, "mlp");
}

#[test]
fn triton_clients_against_the_torchscript_model() {
    let p = serve("mlp-torch", "mlp-torch");
    assert_eq!(p.ready["event"], "ready");
    run_clients(python(), "triton_clients.py", &p, "mlp-torch");
}

#[test]
fn kserve_clients_against_the_onnx_model() {
    let p = serve("mlp", "mlp");
    let interpreter = repo().join(".kiln-cache/venv-kserve/bin/python");
    run_clients(interpreter, "kserve_clients.py", &p, "mlp");
}
