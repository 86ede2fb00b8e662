//! `http(s)://` against a small HTTP/1.1 server started in the test: single files, `.tar.gz`,
//! `.tgz` and `.zip` archives (unpacked), refused archive paths, truncated bodies.

use crate::common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{complete_entries, one_line_naming, tree};
use kiln_storage::{StorageError, fetch_with_env};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Path -> body. A path starting with `/truncated` announces more bytes than it sends.
type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A minimal HTTP/1.1 file server (GET and HEAD, ETag, `Connection: close`), stopped on drop.
struct FileServer {
    port: u16,
    files: Files,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Files = Arc::default();
        let served = files.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer(conn, served.clone()));
            }
        });
        FileServer { port, files, task }
    }

    fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), body.into());
    }

    fn uri(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

async fn answer(mut conn: tokio::net::TcpStream, files: Files) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut words = text.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let body = files.lock().unwrap().get(path).cloned();
    let Some(body) = body else {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let truncated = path.starts_with("/truncated");
    let length = if truncated {
        body.len() * 10
    } else {
        body.len()
    };
    let etag = format!(
        "\"{:x}-{}\"",
        body.iter().map(|b| *b as u64).sum::<u64>(),
        body.len()
    );
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nETag: {etag}\r\n\
         Last-Modified: Tue, 01 Sep 2026 10:00:00 GMT\r\nConnection: close\r\n\r\n"
    );
    let _ = conn.write_all(head.as_bytes()).await;
    if method == "GET" {
        let _ = conn.write_all(&body).await;
    }
    let _ = conn.shutdown().await;
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, *body).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(body).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

#[tokio::test]
async fn a_single_file_is_downloaded_once() {
    let server = FileServer::start().await;
    server.put("/models/model.onnx", "onnx-bytes");
    let cache = tempfile::tempdir().unwrap();
    let uri = server.uri("/models/model.onnx");

    let first = fetch_with_env(&uri, cache.path(), &no_env()).await.unwrap();
    assert_eq!(tree(&first.dir), ["model.onnx"]);
    assert_eq!(first.downloaded_bytes, 10);
    let second = fetch_with_env(&uri, cache.path(), &no_env()).await.unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.downloaded_bytes, 0);
    assert_eq!(second.dir, first.dir);

    server.put("/models/model.onnx", "new onnx bytes");
    let third = fetch_with_env(&uri, cache.path(), &no_env()).await.unwrap();
    assert!(!third.cache_hit);
    assert_ne!(third.dir, first.dir);
    assert_eq!(
        std::fs::read_to_string(third.dir.join("model.onnx")).unwrap(),
        "new onnx bytes"
    );
}

#[tokio::test]
async fn tar_gz_and_tgz_archives_are_unpacked() {
    let server = FileServer::start().await;
    let archive = tar_gz(&[
        ("m/config.pbtxt", b"name: \"m\""),
        ("./m/1/model.onnx", b"weights"),
    ]);
    server.put("/repo.tar.gz", archive.clone());
    server.put("/repo.tgz", archive);
    let cache = tempfile::tempdir().unwrap();

    for path in ["/repo.tar.gz", "/repo.tgz"] {
        let model = fetch_with_env(&server.uri(path), cache.path(), &no_env())
            .await
            .unwrap();
        assert_eq!(
            tree(&model.dir),
            ["m/1/model.onnx", "m/config.pbtxt"],
            "{path}"
        );
        assert_eq!(
            std::fs::read_to_string(model.dir.join("m/1/model.onnx")).unwrap(),
            "weights"
        );
        assert!(model.downloaded_bytes > 0);
    }
}

#[tokio::test]
async fn zip_archives_are_unpacked() {
    let server = FileServer::start().await;
    server.put(
        "/model.zip",
        zip(&[("model.pt", b"pt"), ("extra/vocab.txt", b"a b")]),
    );
    let cache = tempfile::tempdir().unwrap();
    let model = fetch_with_env(&server.uri("/model.zip"), cache.path(), &no_env())
        .await
        .unwrap();
    assert_eq!(tree(&model.dir), ["extra/vocab.txt", "model.pt"]);
}

#[tokio::test]
async fn archive_entries_that_escape_are_refused() {
    let server = FileServer::start().await;
    // tar's builder refuses `..` in names, so write the header's name field by hand.
    let evil_tar = {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escaped.py");
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, &b"x"[..]).unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    };
    server.put("/evil.tar.gz", evil_tar);
    server.put("/evil.zip", zip(&[("../../escaped.py", b"x")]));
    let cache = tempfile::tempdir().unwrap();

    for path in ["/evil.tar.gz", "/evil.zip"] {
        let uri = server.uri(path);
        let err = fetch_with_env(&uri, cache.path(), &no_env())
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Archive { .. }), "{err:?}");
        let text = one_line_naming(&err, &uri);
        assert!(text.contains("escape"), "{text}");
    }
    assert_eq!(complete_entries(cache.path()), 0);
    assert!(!cache.path().join("escaped.py").exists());
    assert!(!cache.path().join(".tmp/escaped.py").exists());
}

#[tokio::test]
async fn a_missing_file_is_a_not_found_error() {
    let server = FileServer::start().await;
    let cache = tempfile::tempdir().unwrap();
    let uri = server.uri("/absent/model.onnx");
    let err = fetch_with_env(&uri, cache.path(), &no_env())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    one_line_naming(&err, &uri);
}

#[tokio::test]
async fn a_truncated_download_is_never_cached() {
    let server = FileServer::start().await;
    server.put("/truncated/model.onnx", vec![7u8; 1000]);
    let cache = tempfile::tempdir().unwrap();
    let uri = server.uri("/truncated/model.onnx");

    let err = fetch_with_env(&uri, cache.path(), &no_env())
        .await
        .unwrap_err();
    one_line_naming(&err, &uri);
    assert_eq!(complete_entries(cache.path()), 0);
    let staging: Vec<_> = std::fs::read_dir(cache.path().join(".tmp"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "staging left behind: {staging:?}");
}

#[tokio::test]
async fn a_uri_without_a_file_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    for uri in [
        "http://127.0.0.1:9/",
        "https://example.com/model.onnx?X-Amz-Signature=1",
    ] {
        let err = fetch_with_env(uri, cache.path(), &no_env())
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidUri { .. }), "{err:?}");
    }
}
