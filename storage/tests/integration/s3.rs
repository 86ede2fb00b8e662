//! `s3://` against a real S3 server: moto (`moto_server`, installed by `scripts/setup.sh`).

use crate::common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, complete_entries, free_port, one_line_naming, tool, tree};
use kiln_storage::{StorageError, fetch_with_env};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const BUCKET: &str = "models";

struct Moto {
    server: Server,
}

impl Moto {
    /// Starts moto with a `models` bucket, or `None` (skip) when moto is not installed.
    fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Option<Self> {
        let bin = tool("venv/bin/moto_server")?;
        let port = free_port();
        let mut command = Command::new(bin);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        command.envs(env.iter().copied());
        let moto = Moto {
            server: Server::start(command, port, None),
        };
        Some(moto)
    }

    fn env(&self) -> HashMap<String, String> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.server.url().as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Creates the bucket (moto accepts an unsigned request) and returns a client for it.
    async fn bucket(&self) -> impl ObjectStore {
        create_bucket(self.server.port, BUCKET);
        AmazonS3Builder::new()
            .with_endpoint(self.server.url())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_bucket_name(BUCKET)
            .build()
            .unwrap()
    }
}

fn create_bucket(port: u16, bucket: &str) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "create bucket: {answer}"
    );
}

async fn put(store: &impl ObjectStore, key: &str, body: &str) {
    store
        .put(&ObjectPath::from(key), PutPayload::from(body.to_string()))
        .await
        .unwrap();
}

fn read(dir: &std::path::Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

#[tokio::test]
async fn single_object_becomes_a_folder_with_that_file_and_is_cached() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket().await;
    put(&store, "iris/v1/model.onnx", "onnx-bytes").await;
    put(&store, "iris/v1/model.onnx.bak", "not me").await;
    let cache = tempfile::tempdir().unwrap();
    let uri = "s3://models/iris/v1/model.onnx";

    let first = fetch_with_env(uri, cache.path(), &moto.env())
        .await
        .unwrap();
    assert_eq!(tree(&first.dir), ["model.onnx"]);
    assert_eq!(read(&first.dir, "model.onnx"), "onnx-bytes");
    assert_eq!(first.downloaded_bytes, 10);
    assert!(!first.cache_hit);

    let second = fetch_with_env(uri, cache.path(), &moto.env())
        .await
        .unwrap();
    assert_eq!(second.dir, first.dir);
    assert_eq!(second.downloaded_bytes, 0);
    assert!(second.cache_hit);
}

#[tokio::test]
async fn prefix_downloads_every_object_under_it_keeping_paths() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket().await;
    put(&store, "sk/model.pt", "pt").await;
    put(&store, "sk/extra/vocab.txt", "a b c").await;
    put(&store, "sklearn/model.joblib", "a sibling, not under sk/").await;
    let cache = tempfile::tempdir().unwrap();

    for uri in ["s3://models/sk", "s3://models/sk/"] {
        let model = fetch_with_env(uri, cache.path(), &moto.env())
            .await
            .unwrap();
        assert_eq!(tree(&model.dir), ["extra/vocab.txt", "model.pt"], "{uri}");
        assert_eq!(read(&model.dir, "extra/vocab.txt"), "a b c");
    }
}

#[tokio::test]
async fn triton_model_repository_layout_is_preserved() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket().await;
    put(&store, "repo/densenet/config.pbtxt", "name: \"densenet\"").await;
    put(&store, "repo/densenet/1/model.onnx", "d1").await;
    put(&store, "repo/densenet/2/model.onnx", "d2").await;
    put(&store, "repo/resnet/config.pbtxt", "name: \"resnet\"").await;
    put(&store, "repo/resnet/1/model.onnx", "r1").await;
    // An empty "folder marker" object, as consoles create.
    put(&store, "repo/resnet/1/", "").await;
    let cache = tempfile::tempdir().unwrap();

    let model = fetch_with_env("s3://models/repo", cache.path(), &moto.env())
        .await
        .unwrap();
    assert_eq!(
        tree(&model.dir),
        [
            "densenet/1/model.onnx",
            "densenet/2/model.onnx",
            "densenet/config.pbtxt",
            "resnet/1/model.onnx",
            "resnet/config.pbtxt",
        ]
    );
    assert_eq!(read(&model.dir, "densenet/2/model.onnx"), "d2");
}

#[tokio::test]
async fn a_changed_object_downloads_again_into_a_new_folder() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket().await;
    put(&store, "m/model.onnx", "version one").await;
    let cache = tempfile::tempdir().unwrap();
    let uri = "s3://models/m";

    let old = fetch_with_env(uri, cache.path(), &moto.env())
        .await
        .unwrap();
    put(&store, "m/model.onnx", "version two!").await;
    let new = fetch_with_env(uri, cache.path(), &moto.env())
        .await
        .unwrap();
    assert!(!new.cache_hit);
    assert_eq!(new.downloaded_bytes, 12);
    assert_ne!(new.dir, old.dir);
    assert_eq!(read(&new.dir, "model.onnx"), "version two!");
    assert_eq!(read(&old.dir, "model.onnx"), "version one");
    assert_eq!(complete_entries(cache.path()), 2);
}

#[tokio::test]
async fn concurrent_fetches_of_one_uri_agree() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket().await;
    let big = "x".repeat(3 << 20);
    put(&store, "big/weights.bin", &big).await;
    put(&store, "big/config.json", "{}").await;
    let cache = tempfile::tempdir().unwrap();
    let env = moto.env();

    let (a, b) = tokio::join!(
        fetch_with_env("s3://models/big", cache.path(), &env),
        fetch_with_env("s3://models/big", cache.path(), &env),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.dir, b.dir);
    assert_eq!(tree(&a.dir), ["config.json", "weights.bin"]);
    assert_eq!(
        std::fs::metadata(a.dir.join("weights.bin")).unwrap().len(),
        3 << 20
    );
    assert_eq!(complete_entries(cache.path()), 1);
    // No staging folder is left behind.
    let staging: Vec<_> = std::fs::read_dir(cache.path().join(".tmp"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
}

#[tokio::test]
async fn kserve_s3_endpoint_variables_work() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket().await;
    put(&store, "k/model.onnx", "k").await;
    let cache = tempfile::tempdir().unwrap();
    let mut env = moto.env();
    env.remove("AWS_ENDPOINT_URL");
    env.remove("AWS_ALLOW_HTTP");
    env.insert(
        "S3_ENDPOINT".into(),
        format!("127.0.0.1:{}", moto.server.port),
    );
    env.insert("S3_USE_HTTPS".into(), "0".into());

    let model = fetch_with_env("s3://models/k", cache.path(), &env)
        .await
        .unwrap();
    assert_eq!(tree(&model.dir), ["model.onnx"]);
}

#[tokio::test]
async fn missing_object_or_bucket_is_a_one_line_not_found_error() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket().await;
    put(&store, "present/model.onnx", "x").await;
    let cache = tempfile::tempdir().unwrap();

    let uri = "s3://models/absent/model.onnx";
    let err = fetch_with_env(uri, cache.path(), &moto.env())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    one_line_naming(&err, uri);

    let uri = "s3://no-such-bucket/model";
    let err = fetch_with_env(uri, cache.path(), &moto.env())
        .await
        .unwrap_err();
    let text = one_line_naming(&err, uri);
    assert!(
        text.contains("NoSuchBucket") || err.is_not_found(),
        "{text}"
    );
    assert_eq!(complete_entries(cache.path()), 0);
}

#[tokio::test]
async fn plain_http_endpoint_without_allow_http_says_what_to_set() {
    let cache = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", "a"),
        ("AWS_SECRET_ACCESS_KEY", "b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let uri = "s3://models/m";
    let err = fetch_with_env(uri, cache.path(), &env).await.unwrap_err();
    assert!(matches!(err, StorageError::Config { .. }), "{err:?}");
    let text = one_line_naming(&err, uri);
    assert!(text.contains("AWS_ALLOW_HTTP=true"), "{text}");

    // AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL.
    let mut env = env;
    env.insert("AWS_ENDPOINT_URL".into(), "https://example.invalid".into());
    env.insert("AWS_ENDPOINT_URL_S3".into(), "http://127.0.0.1:9".into());
    let err = fetch_with_env(uri, cache.path(), &env).await.unwrap_err();
    assert!(err.to_string().contains("AWS_ALLOW_HTTP=true"), "{err}");
}

#[tokio::test]
async fn unreachable_endpoint_fails_within_seconds() {
    let cache = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there
    let env: HashMap<String, String> = [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "a".into()),
        ("AWS_SECRET_ACCESS_KEY", "b".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let uri = "s3://models/m";
    let started = Instant::now();
    let err = fetch_with_env(uri, cache.path(), &env).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, StorageError::Remote { .. }), "{err:?}");
    one_line_naming(&err, uri);
}

#[tokio::test]
async fn bad_credentials_are_reported_as_access_denied() {
    // With authentication on, moto knows no access key but its own IAM users.
    let Some(moto) = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let uri = "s3://models/m";
    let err = fetch_with_env(uri, cache.path(), &moto.env())
        .await
        .unwrap_err();
    let text = one_line_naming(&err, uri);
    assert!(
        matches!(err, StorageError::Denied { .. }) || text.contains("InvalidAccessKeyId"),
        "{text}"
    );
}
