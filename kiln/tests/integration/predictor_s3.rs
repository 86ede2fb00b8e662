//! `kiln predictor` fetching its model from a real S3-protocol server (moto, installed by
//! scripts/setup.sh), caching it, and not downloading it again on restart.

use crate::common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Predictor, fixtures, repo};

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(repo().join(".kiln-cache/venv/bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (scripts/setup.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Moto(child, port)
}

/// Creates a bucket and puts one object, with the AWS CLI protocol spoken by boto3.
fn upload(port: u16, bucket: &str, key: &str, file: &std::path::Path) {
    let script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1',\n\
                           aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         s3.create_bucket(Bucket='{bucket}')\n\
         s3.upload_file(r'{}', '{bucket}', '{key}')\n",
        file.display()
    );
    let status = Command::new(common::python())
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success(), "upload to moto failed");
}

#[test]
fn serves_a_model_from_s3_and_reuses_the_cache_on_restart() {
    let moto = start_moto();
    upload(
        moto.1,
        "models",
        "mlp/model.onnx",
        &fixtures().join("mlp/model.onnx"),
    );
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "--model-name",
        "mlp",
        "--model-format",
        "onnx",
        "--storage-uri",
        "s3://models/mlp",
    ];
    let first = Predictor::try_start_in(cache.path(), &args, &env).unwrap();
    assert_eq!(first.ready["cache_hit"], false);
    assert!(first.ready["downloaded_bytes"].as_u64().unwrap() > 2_000_000);
    let status = get_status(&first.url("/v2/models/mlp/ready"));
    assert_eq!(status, 200);
    drop(first);
    let second = Predictor::try_start_in(cache.path(), &args, &env).unwrap();
    assert_eq!(second.ready["cache_hit"], true);
    assert_eq!(second.ready["downloaded_bytes"], 0);
}

#[test]
fn a_missing_object_and_a_plain_http_endpoint_fail_with_one_clear_line() {
    let moto = start_moto();
    upload(
        moto.1,
        "models",
        "mlp/model.onnx",
        &fixtures().join("mlp/model.onnx"),
    );
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ];
    let args = ["--model-name", "mlp", "--storage-uri", "s3://models/mlp"];
    let err = Predictor::try_start_with(&args, &env)
        .err()
        .expect("http endpoint without AWS_ALLOW_HTTP");
    assert!(err.contains("AWS_ALLOW_HTTP"), "{err}");
    env.push(("AWS_ALLOW_HTTP", "true"));
    let missing = [
        "--model-name",
        "mlp",
        "--storage-uri",
        "s3://models/nothing-here",
    ];
    let err = Predictor::try_start_with(&missing, &env)
        .err()
        .expect("missing object");
    assert!(err.contains("s3://models/nothing-here"), "{err}");
}

/// A blocking GET that returns the status code.
fn get_status(url: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
}
