//! `kiln predictor` over REST: v2 JSON and binary tensors, v1, metadata, health, Triton's
//! model configuration and metrics, against a real process serving the fixture MLP.

use crate::common;

use common::{Predictor, assert_close, fixtures, input_row, reference_mlp};
use serde_json::{Value, json};

fn mlp() -> Predictor {
    let dir = fixtures().join("mlp");
    Predictor::start(&[
        "--model-name",
        "mlp",
        "--storage-uri",
        dir.to_str().unwrap(),
    ])
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Posts a binary-extension request (JSON `header`, then `tail`) and splits the 200 answer
/// into its JSON part and the binary output data that follows it.
async fn post_binary(
    p: &Predictor,
    path: &str,
    header: String,
    tail: &[u8],
) -> (Value, bytes::Bytes) {
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(tail);
    let r = reqwest::Client::new()
        .post(p.url(path))
        .header("Inference-Header-Content-Length", header.len())
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes[..json_len]).unwrap();
    (json, bytes.slice(json_len..))
}

#[tokio::test]
async fn health_metadata_and_config_describe_the_model() {
    let p = mlp();
    let c = reqwest::Client::new();
    let get = |path: &str| c.get(p.url(path)).send();
    assert_eq!(get("/v2/health/live").await.unwrap().status(), 200);
    assert_eq!(get("/v2/health/ready").await.unwrap().status(), 200);
    let server: Value = get("/v2").await.unwrap().json().await.unwrap();
    assert_eq!(server["name"], "kiln");
    let meta: Value = get("/v2/models/mlp").await.unwrap().json().await.unwrap();
    assert_eq!(meta["platform"], "onnxruntime_onnx");
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "input", "datatype": "FP32", "shape": [-1, 784]})
    );
    assert_eq!(
        meta["outputs"][0],
        json!({"name": "output", "datatype": "FP32", "shape": [-1, 10]})
    );
    let versioned = get("/v2/models/mlp/versions/1").await.unwrap();
    assert_eq!(versioned.status(), 200);
    let ready: Value = get("/v2/models/mlp/ready")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    let config: Value = get("/v2/models/mlp/config")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(config["max_batch_size"].as_i64().unwrap() > 0);
    assert_eq!(config["input"][0]["dims"], json!([784]));
    assert_eq!(config["input"][0]["data_type"], "TYPE_FP32");
    let v1: Value = get("/v1/models/mlp").await.unwrap().json().await.unwrap();
    assert_eq!(v1, json!({"name": "mlp", "ready": true}));
}

#[tokio::test]
async fn json_inference_matches_the_reference_for_flat_and_nested_data() {
    let p = mlp();
    let c = reqwest::Client::new();
    let rows = [input_row(1), input_row(2)];
    let flat: Vec<f32> = rows.concat();
    for data in [json!(flat), json!(rows)] {
        let body = json!({
            "id": "req-7",
            "inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32", "data": data}],
        });
        let r = c
            .post(p.url("/v2/models/mlp/infer"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["id"], "req-7");
        assert_eq!(v["model_name"], "mlp");
        assert_eq!(v["outputs"][0]["shape"], json!([2, 10]));
        let out = floats(&v["outputs"][0]["data"]);
        assert_close(&out[..10], &reference_mlp(&rows[0]));
        assert_close(&out[10..], &reference_mlp(&rows[1]));
    }
}

#[tokio::test]
async fn binary_tensors_in_and_out() {
    let p = mlp();
    let row = input_row(5);
    let header = json!({
        "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 784 * 4}}],
        "outputs": [{"name": "output", "parameters": {"binary_data": true}}],
    })
    .to_string();
    let tail: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (v, data) = post_binary(&p, "/v2/models/mlp/infer", header, &tail).await;
    assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 40);
    let out: Vec<f32> = data
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_close(&out, &reference_mlp(&row));
}

#[tokio::test]
async fn v1_predict_turns_instances_into_predictions() {
    let p = mlp();
    let rows = [input_row(3), input_row(4)];
    let r = reqwest::Client::new()
        .post(p.url("/v1/models/mlp:predict"))
        .json(&json!({"instances": rows}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let predictions = v["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    assert_close(&floats(&predictions[1]), &reference_mlp(&rows[1]));
}

#[tokio::test]
async fn every_datatype_round_trips() {
    let dir = fixtures().join("types");
    let p = Predictor::start(&[
        "--model-name",
        "types",
        "--storage-uri",
        dir.to_str().unwrap(),
    ]);
    let cases = [
        (
            "fp64",
            "FP64",
            json!([1.5, -2.25, 3.0]),
            json!([3.0, -4.5, 6.0]),
        ),
        (
            "int64",
            "INT64",
            json!([1, -2, 9007199254740993i64]),
            json!([2, -4, 18014398509481986i64]),
        ),
        ("int32", "INT32", json!([1, -2, 3]), json!([2, -4, 6])),
        (
            "fp32",
            "FP32",
            json!([0.5, 1.0, -1.0]),
            json!([0.5, 1.0, -1.0]),
        ),
        ("int8", "INT8", json!([-128, 0, 127]), json!([-128, 0, 127])),
        (
            "int16",
            "INT16",
            json!([-300, 0, 300]),
            json!([-300, 0, 300]),
        ),
        ("uint8", "UINT8", json!([0, 128, 255]), json!([0, 128, 255])),
        (
            "bool",
            "BOOL",
            json!([true, false, true]),
            json!([true, false, true]),
        ),
    ];
    let mut inputs: Vec<Value> = cases
        .iter()
        .map(|(n, t, data, _)| json!({"name": format!("in_{n}"), "shape": [1, 3], "datatype": t, "data": data}))
        .collect();
    // FP16 has no JSON form: send it as binary data.
    let halves: Vec<u8> = [0x3c00u16, 0xc000, 0x3800]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    inputs.push(json!({"name": "in_fp16", "shape": [1, 3], "datatype": "FP16", "parameters": {"binary_data_size": 6}}));
    let header = json!({"inputs": inputs}).to_string();
    let (v, data) = post_binary(&p, "/v2/models/types/infer", header, &halves).await;
    let outputs = v["outputs"].as_array().unwrap();
    for (n, t, _, want) in &cases {
        let out = outputs
            .iter()
            .find(|o| o["name"] == format!("out_{n}"))
            .unwrap();
        assert_eq!(out["datatype"], *t);
        assert_eq!(out["data"], *want, "output {n}");
    }
    let fp16 = outputs.iter().find(|o| o["name"] == "out_fp16").unwrap();
    assert_eq!(fp16["parameters"]["binary_data_size"], 6);
    assert_eq!(&data[..], &halves[..]);
}

#[tokio::test]
async fn metrics_count_requests_by_protocol_and_status() {
    let p = mlp();
    let c = reqwest::Client::new();
    let body = json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": input_row(0)}]});
    c.post(p.url("/v2/models/mlp/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    c.post(p.url("/v2/models/mlp/infer"))
        .body("{")
        .send()
        .await
        .unwrap();
    let text = c
        .get(p.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"kiln_predictor_requests_total{model="mlp",protocol="rest",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"kiln_predictor_requests_total{model="mlp",protocol="rest",status="400"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("kiln_predictor_request_duration_seconds_bucket"));
    assert!(text.contains("kiln_predictor_queue_duration_seconds_count"));
    assert!(text.contains("kiln_predictor_batch_size_count"));
    assert!(text.contains("kiln_predictor_model_load_seconds"));
    assert!(text.contains("kiln_predictor_download_bytes_total"));
}
