//! Edge cases of the router's own HTTP/1.1 path, on the wire: raw bytes from a hand-driven
//! client through the router to a raw upstream. Each test here comes from a defect found in a
//! review of `router/src/h1` (framing smuggled through `Connection`, bodies on answers to
//! HEAD, loose `Content-Length` and chunk parsing, a repeated `Connection` field, a status
//! counted twice), and keeps it fixed.

use std::time::Duration;

use kiln_router::Router;

use crate::common::wire::{
    Answer, Client, RawUpstream, assert_json_error, assert_ok, echo, find, router_to, router_with,
};

// ---------------------------------------------------------------------------------------------
// Framing fields named in `Connection`
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_connection_listed_content_length_cannot_smuggle_a_request_upstream() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let smuggled = "GET /v2/models/mlp/smuggled HTTP/1.1\r\nhost: router\r\n\r\n";
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(format!(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             connection: content-length\r\ncontent-length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        ))
        .await;
    // Refusing the request or forwarding it with its length are both fine; what the upstream
    // must never see is the body read as a request of its own.
    let reply = client.response("POST").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = upstream.requests();
    assert!(
        requests
            .iter()
            .all(|r| !r.head.target().ends_with("/smuggled")),
        "the body reached the upstream as a request: {requests:#?}"
    );
    if reply.status() == 200 {
        assert_eq!(requests.len(), 1, "{requests:#?}");
        assert_eq!(requests[0].body, smuggled.as_bytes());
    }
}

#[tokio::test]
async fn a_connection_listed_content_length_in_a_response_keeps_the_client_framed() {
    let upstream = RawUpstream::start(|_| {
        Answer::raw(
            b"HTTP/1.1 200 OK\r\nconnection: content-length\r\ncontent-length: 5\r\n\r\nhello",
        )
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("GET /v2/models/mlp/x HTTP/1.1\r\nhost: router\r\n\r\n")
        .await;
    let head = client.response_head().await;
    // The router passes the 5 bytes on and keeps the connection: the client can only find the
    // end of the body from a length (or chunks, or a close announced in the head).
    assert!(
        head.has("content-length") || head.is_chunked() || head.lists("connection", "close"),
        "a keep-alive response with a body but no framing: {head:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// HEAD
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn answers_of_the_routers_own_to_head_have_no_body() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let health = client.get("HEAD", "/healthz").await;
    assert_eq!(health.status(), 200, "{:?}", health.head);
    // An error answer (unknown model) to HEAD.
    let unknown = client.get("HEAD", "/v2/models/nope/ready").await;
    assert_eq!(unknown.status(), 404, "{:?}", unknown.head);
    // Any body bytes after those heads are read as the start of this response.
    let next = client.get("GET", "/v2/models/mlp/after").await;
    assert_ok(&next, "/v2/models/mlp/after");
}

// ---------------------------------------------------------------------------------------------
// Request framing the router must refuse (RFC 9112 §6.3, §7.1)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_content_length_that_is_not_digits_gets_400() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    for value in ["+5", "\u{a0}5"] {
        let mut client = Client::connect(router.http_addr()).await;
        client
            .send(format!(
                "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
                 content-length: {value}\r\n\r\nhello"
            ))
            .await;
        let reply = client.response("POST").await;
        assert_json_error(&reply, 400, &format!("content-length {value:?}"));
    }
    assert!(
        upstream.raw_all().is_empty(),
        "forwarded: {:?}",
        String::from_utf8_lossy(&upstream.raw_all())
    );
}

#[tokio::test]
async fn chunked_bodies_with_malformed_lines_get_400_and_are_not_forwarded() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    for body in [
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5;ext\nhello\r\n0\r\n\r\n",
        "5 junk\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut client = Client::connect(router.http_addr()).await;
        client
            .send(format!(
                "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
                 transfer-encoding: chunked\r\n\r\n{body}"
            ))
            .await;
        let reply = client.response("POST").await;
        assert_json_error(&reply, 400, &format!("chunked body {body:?}"));
    }
    let raw = upstream.raw_all();
    assert!(
        find(&raw, b"hello").is_none(),
        "forwarded: {:?}",
        String::from_utf8_lossy(&raw)
    );
}

// ---------------------------------------------------------------------------------------------
// Keep-alive
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_close_in_a_second_field_line_closes_the_connection() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "GET /v2/models/mlp/bye HTTP/1.1\r\nhost: router\r\n\
             connection: keep-alive\r\nconnection: close, x-hop\r\nx-hop: 1\r\n\r\n",
        )
        .await;
    let reply = client.response("GET").await;
    assert_ok(&reply, "/v2/models/mlp/bye");
    let seen = upstream.requests();
    assert!(
        !seen[0].head.has("x-hop"),
        "a field named in Connection was forwarded: {:?}",
        seen[0].head
    );
    assert!(
        reply.head.lists("connection", "close"),
        "no close announced: {:?}",
        reply.head
    );
    assert!(client.closed().await, "the router closes the connection");
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_declared_body_over_the_limit_is_counted_once() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_with(Router::builder().max_body_bytes(1024), upstream.addr).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: 4096\r\n\r\n")
        .await;
    assert_eq!(client.response("POST").await.status(), 413);
    let mut client = Client::connect(router.http_addr()).await;
    let metrics = client.get("GET", "/metrics").await.text();
    let series = r#"kiln_router_responses_total{class="4xx",namespace="default",revision="mlp-1",service="mlp"}"#;
    let line = metrics
        .lines()
        .find(|line| line.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
    assert_eq!(line, format!("{series} 1"), "one request, one response");
}

#[tokio::test]
async fn requests_without_exactly_one_host_get_400() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    for head in [
        "GET /v2/models/mlp/ready HTTP/1.1\r\n\r\n",
        "GET /v2/models/mlp/ready HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
    ] {
        let mut client = Client::connect(router.http_addr()).await;
        client.send(head).await;
        let reply = client.response("GET").await;
        assert_json_error(&reply, 400, &format!("{head:?}"));
    }
    assert!(upstream.requests().is_empty(), "nothing was forwarded");
}
