//! Slow or stalled clients are cut off by the header and body read timeouts.

use crate::common;

use std::time::Duration;

use common::Upstream;
use common::wire::{Client, RawUpstream, echo, router_with};
use kiln_router::{RevisionSpec, Router, ServiceSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn stalled_headers_and_bodies_are_cut_off() {
    let upstream = Upstream::start("mlp").await;
    let router = Router::builder()
        .header_read_timeout(Duration::from_millis(100))
        .body_read_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    router
        .table()
        .upsert_service(
            ServiceSpec::new("mlp")
                .revision(RevisionSpec::new("mlp-1", 100).endpoints([upstream.addr])),
        )
        .unwrap();
    let router = router.start().await.unwrap();

    // Half a request head, then nothing: the router closes the connection.
    let mut stream = tokio::net::TcpStream::connect(router.http_addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /v2/models/mlp/infer HTTP/1.1\r\nhost:")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the router closed a stalled connection");
    let n = read.unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");

    // A head promising 10 bytes of body, then 2 bytes and a stall: 408 with JSON.
    let mut stream = tokio::net::TcpStream::connect(router.http_addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /v2/models/mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the router answered a stalled body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains(r#"{"error":"request body not received in time"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let upstream = RawUpstream::start(echo).await;
    let timeout = Duration::from_millis(300);
    let router = router_with(
        Router::builder().header_read_timeout(timeout),
        upstream.addr,
    )
    .await;
    let mut client = Client::connect(router.http_addr()).await;
    // Requests closer together than the timeout keep the connection.
    for _ in 0..3 {
        let reply = client.get("GET", "/v2/models/mlp/ready").await;
        assert_eq!(reply.status(), 200, "{:?}", reply.head);
        tokio::time::sleep(timeout / 3).await;
    }
    tokio::time::sleep(timeout * 2).await;
    assert!(
        client.closed().await,
        "an idle connection outlived the timeout"
    );
}
