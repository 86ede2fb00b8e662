//! HTTP/1.1 on the wire: raw bytes over loopback TCP, from a hand-driven client through the
//! router to a raw upstream, so that framing is under the test's control on both sides.
//!
//! What a correct HTTP/1.1 reverse proxy must do, checked byte for byte: keep-alive and
//! pipelining towards the client, pooled connections towards the upstream (and recovery when
//! the upstream closes an idle one), request and response bodies framed by Content-Length,
//! by chunks or by the end of the connection, bodiless answers (HEAD, 204), hop-by-hop headers
//! dropped and end-to-end ones kept, `Connection: close`, HTTP/1.0 clients,
//! `Expect: 100-continue`, and the router's own error answers.

use std::time::Duration;

use kiln_api::load::RevisionKey;
use kiln_router::{RevisionSpec, Router, ServiceSpec};

use crate::common::wire::{
    Answer, Client, Framing, RawUpstream, assert_json_error, assert_ok, echo, find, pattern,
    router_to, router_with, within,
};

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn keep_alive_serves_several_requests_over_one_pooled_upstream_connection() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    for step in ["a", "b", "c"] {
        let target = format!("/v2/models/mlp/{step}");
        let reply = client.get("GET", &target).await;
        assert_ok(&reply, &target);
    }
    assert_eq!(upstream.requests().len(), 3);
    assert_eq!(
        upstream.connections(),
        1,
        "the upstream connection is reused"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "GET /v2/models/mlp/first HTTP/1.1\r\nhost: router\r\n\r\n\
             POST /v2/models/mlp/second HTTP/1.1\r\nhost: router\r\ncontent-length: 6\r\n\r\nsecond",
        )
        .await;
    assert_ok(&client.response("GET").await, "/v2/models/mlp/first");
    assert_ok(&client.response("POST").await, "second");
}

#[tokio::test]
async fn upstream_closing_an_idle_pooled_connection_does_not_fail_the_next_request() {
    let upstream =
        RawUpstream::start(|request| echo(request).close_after(Duration::from_millis(50))).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/1").await,
        "/v2/models/mlp/1",
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/2").await,
        "/v2/models/mlp/2",
    );
    assert_eq!(upstream.connections(), 2);
}

/// The upstream holds a pooled connection without reading it, then closes it: the request the
/// router wrote there was discarded unread (a reset), so it goes out again on a new connection
/// and the model sees it once.
#[tokio::test]
async fn a_request_the_upstream_discarded_unread_goes_out_again_on_a_new_connection() {
    let upstream =
        RawUpstream::start(|request| echo(request).close_after(Duration::from_millis(300))).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/1").await,
        "/v2/models/mlp/1",
    );
    client
        .send("POST /v2/models/mlp/2 HTTP/1.1\r\nhost: router\r\ncontent-length: 5\r\n\r\nagain")
        .await;
    assert_ok(&client.response("POST").await, "again");
    assert_eq!(upstream.connections(), 2);
    let bodies: Vec<Vec<u8>> = upstream.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, [b"".to_vec(), b"again".to_vec()]);
}

/// The upstream reads a request on a pooled connection and closes it without answering, as a
/// model server that crashes mid-inference does: the request may have reached the model, so it
/// is not sent again; the client gets 502.
#[tokio::test]
async fn a_request_the_upstream_read_and_dropped_is_not_sent_again() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let upstream = RawUpstream::start(move |request| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            Answer::raw(Vec::new()).then_close()
        } else {
            echo(request)
        }
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/1").await,
        "/v2/models/mlp/1",
    );
    client
        .send("POST /v2/models/mlp/2 HTTP/1.1\r\nhost: router\r\ncontent-length: 4\r\n\r\nonce")
        .await;
    let reply = client.response("POST").await;
    assert_json_error(&reply, 502, "a request the upstream read and dropped");
    assert_eq!(
        upstream.requests().len(),
        2,
        "the second request went out once"
    );
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn connection_close_from_the_client_closes_after_the_answer() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("GET /v2/models/mlp/bye HTTP/1.1\r\nhost: router\r\nconnection: close\r\n\r\n")
        .await;
    assert_ok(&client.response("GET").await, "/v2/models/mlp/bye");
    assert!(client.closed().await, "the router closes the connection");
    assert_eq!(upstream.only_request().head.target(), "/v2/models/mlp/bye");
}

#[tokio::test]
async fn http10_clients_get_an_http1_answer_and_a_close() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send("GET /v2/models/mlp/ready HTTP/1.0\r\n\r\n")
        .await;
    let reply = client.final_response("GET").await;
    assert!(reply.head.start.starts_with("HTTP/1."), "{:?}", reply.head);
    assert!(
        reply.framing != Framing::Chunked,
        "no chunked answer to HTTP/1.0"
    );
    assert_ok(&reply, "/v2/models/mlp/ready");
    assert!(client.closed().await, "the router closes the connection");
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn content_length_request_bodies_arrive_byte_exact() {
    let upstream = RawUpstream::start(|request| Answer::ok(request.body.len().to_string())).await;
    let router = router_to(&upstream).await;
    let body = pattern(100 * 1024);
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(format!(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ))
        .await;
    client.send(&body).await;
    assert_ok(&client.response("POST").await, body.len().to_string());
    assert!(upstream.only_request().body == body, "the body is intact");
}

#[tokio::test]
async fn chunked_request_bodies_arrive_complete() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             transfer-encoding: chunked\r\n\r\n",
        )
        .await;
    // Chunks sent in pieces, one of them split inside its data and one inside its size line.
    let pieces: [&[u8]; 6] = [
        b"5\r\nhello\r\n",
        b"6\r\n world\r\n",
        b"a\r\n0123",
        b"456789\r\n1",
        b"0\r\n-0123456789abcde\r\n",
        b"0\r\n\r\n",
    ];
    for piece in pieces {
        client.send(piece).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected = "hello world0123456789-0123456789abcde";
    assert_ok(&client.response("POST").await, expected);
    assert_eq!(upstream.only_request().body, expected.as_bytes());
}

#[tokio::test]
async fn expect_100_continue_gets_the_body_through() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             expect: 100-continue\r\ncontent-length: 9\r\n\r\n",
        )
        .await;
    // Like curl: wait up to a second for `100 Continue`, then send the body anyway.
    let interim = tokio::time::timeout(Duration::from_secs(1), client.wire.head()).await;
    if let Ok(head) = interim {
        let head = head
            .expect("read an interim response")
            .expect("the router closed the connection");
        assert_eq!(
            head.status(),
            100,
            "no final answer before the body: {head:?}"
        );
    }
    client.send("continued").await;
    assert_ok(&client.final_response("POST").await, "continued");
    assert_eq!(upstream.only_request().body, b"continued");
}

// ---------------------------------------------------------------------------------------------
// Response bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn chunked_response_bodies_come_back_decoded_and_keep_the_connection() {
    let upstream = RawUpstream::start(|_| {
        Answer::pieces(
            &[
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nalpha-\r\n",
                b"5\r\nbeta-\r\n",
                b"5\r\ngamma\r\n",
                b"0\r\n\r\n",
            ],
            Duration::from_millis(10),
        )
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    for _ in 0..2 {
        let reply = client.get("GET", "/v2/models/mlp/stream").await;
        assert_ok(&reply, "alpha-beta-gamma");
    }
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn close_delimited_response_bodies_come_back_complete() {
    let body = pattern(20 * 1024);
    let upstream = RawUpstream::start({
        let body = body.clone();
        move |_| {
            let mut bytes = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n".to_vec();
            bytes.extend_from_slice(&body);
            Answer::raw(bytes).then_close()
        }
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("GET", "/v2/models/mlp/all").await;
    assert_ok(&reply, &body);
    // The closed upstream connection is not handed out again.
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(&client.get("GET", "/v2/models/mlp/again").await, &body);
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn head_answers_have_no_body_and_keep_the_connection() {
    let upstream = RawUpstream::start(|request| {
        if request.head.method() == "HEAD" {
            Answer::raw("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        } else {
            Answer::ok("hello")
        }
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let head = client.get("HEAD", "/v2/models/mlp/ready").await;
    assert_ok(&head, "");
    if let Some(length) = head.head.header("content-length") {
        assert_eq!(
            length, "5",
            "a HEAD answer keeps the length of the GET answer"
        );
    }
    // Any body bytes after the HEAD answer would garble this one.
    assert_ok(&client.get("GET", "/v2/models/mlp/ready").await, "hello");
}

#[tokio::test]
async fn no_content_answers_pass_through_and_keep_the_connection() {
    let upstream = RawUpstream::start(|request| {
        if request.head.method() == "DELETE" {
            Answer::raw("HTTP/1.1 204 No Content\r\nx-up: 1\r\n\r\n")
        } else {
            echo(request)
        }
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("DELETE", "/v2/models/mlp/state").await;
    assert_eq!(reply.status(), 204, "{:?}", reply.head);
    assert_eq!(reply.head.header("x-up"), Some("1"));
    assert!(
        !reply.head.has("transfer-encoding"),
        "no transfer-encoding on 204: {:?}",
        reply.head
    );
    let next = client.get("GET", "/v2/models/mlp/after").await;
    assert_ok(&next, "/v2/models/mlp/after");
}

#[tokio::test]
async fn large_responses_stream_back_complete() {
    let body = pattern(1024 * 1024);
    let upstream = RawUpstream::start({
        let body = body.clone();
        move |_| Answer::ok(&body)
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("GET", "/v2/models/mlp/big").await;
    assert_ok(&reply, &body);
}

// ---------------------------------------------------------------------------------------------
// Heads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn method_target_and_end_to_end_headers_arrive_unchanged() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "POST /v2/models/mlp/infer?x=1&y=2 HTTP/1.1\r\nhost: router\r\n\
             content-type: application/json\r\nauthorization: Bearer s3cr3t\r\n\
             X-Custom-Thing: Mixed Case, commas; and=signs\r\nx-multi: a\r\nx-multi: b\r\n\
             content-length: 2\r\n\r\n{}",
        )
        .await;
    assert_ok(&client.response("POST").await, "{}");
    let request = upstream.only_request();
    assert_eq!(
        request.head.start,
        "POST /v2/models/mlp/infer?x=1&y=2 HTTP/1.1"
    );
    let head = &request.head;
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(head.header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(
        head.header("x-custom-thing"),
        Some("Mixed Case, commas; and=signs")
    );
    assert_eq!(head.all("x-multi").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(head.header("content-length"), Some("2"));
    assert_eq!(request.body, b"{}");
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let upstream = RawUpstream::start(|request| {
        let mut answer = echo(request);
        // `echo` already sends `x-up: 1`; add a hop-by-hop header the client must not see.
        let bytes = &mut answer.pieces[0];
        let at = find(bytes, b"\r\n").expect("status line") + 2;
        bytes.splice(
            at..at,
            b"connection: x-up-hop\r\nx-up-hop: 1\r\n".iter().copied(),
        );
        answer
    })
    .await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client
        .send(
            "GET /v2/models/mlp/hops HTTP/1.1\r\nhost: router\r\n\
             connection: keep-alive, x-drop-me\r\nx-drop-me: 1\r\nkeep-alive: timeout=5\r\n\
             x-keep-me: 1\r\n\r\n",
        )
        .await;
    let reply = client.response("GET").await;
    assert_ok(&reply, "/v2/models/mlp/hops");
    assert_eq!(reply.head.header("x-up"), Some("1"));
    assert!(!reply.head.has("x-up-hop"), "{:?}", reply.head);

    let seen = upstream.only_request().head;
    assert_eq!(seen.header("x-keep-me"), Some("1"));
    assert!(!seen.has("x-drop-me"), "{seen:?}");
    assert!(!seen.has("keep-alive"), "{seen:?}");
    assert!(!seen.lists("connection", "x-drop-me"), "{seen:?}");
    let raw = String::from_utf8_lossy(&upstream.raw(0)).to_ascii_lowercase();
    assert!(!raw.contains("x-drop-me"), "{raw}");

    // The client connection is still good.
    let again = client.get("GET", "/v2/models/mlp/again").await;
    assert_ok(&again, "/v2/models/mlp/again");
}

// ---------------------------------------------------------------------------------------------
// The router's own answers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_models_get_a_json_404_and_keep_the_connection() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    let reply = client.get("GET", "/v2/models/nope/ready").await;
    assert_json_error(&reply, 404, "an unknown model");
    // An answer of the router's own carries a Date, as an origin server's must.
    assert!(reply.head.header("date").is_some(), "{:?}", reply.head);
    assert_ok(
        &client.get("GET", "/v2/models/mlp/ready").await,
        "/v2/models/mlp/ready",
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn garbage_request_lines_get_400_and_the_router_keeps_serving() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    client.send("HELLO\r\n\r\n").await;
    let answer = within("an answer to garbage", client.wire.head()).await;
    if let Ok(Some(head)) = answer {
        assert_eq!(head.status(), 400, "{head:?}");
    }
    // Otherwise the router just closed (or reset) the connection, which is fine too.
    let mut client = Client::connect(router.http_addr()).await;
    assert_ok(
        &client.get("GET", "/v2/models/mlp/ready").await,
        "/v2/models/mlp/ready",
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "the garbage was not forwarded"
    );
}

#[tokio::test]
async fn declared_bodies_over_the_limit_get_a_json_413() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_with(Router::builder().max_body_bytes(1024), upstream.addr).await;
    let mut client = Client::connect(router.http_addr()).await;
    // The head alone: the router refuses on the declared length without reading a byte.
    client
        .send("POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: 4096\r\n\r\n")
        .await;
    let reply = client.response("POST").await;
    assert_json_error(&reply, 413, "a body over the limit");
    assert!(
        upstream.requests().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_get_a_json_413() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_with(Router::builder().max_body_bytes(1024), upstream.addr).await;
    let mut client = Client::connect(router.http_addr()).await;
    // No declared length: the router counts the chunks as they pass and stops at the limit.
    client
        .send(
            "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\n\
             transfer-encoding: chunked\r\n\r\n",
        )
        .await;
    let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
    client.send(&chunk).await;
    client.send(&chunk).await;
    let reply = client.response("POST").await;
    assert_json_error(&reply, 413, "a body over the limit");
}

#[tokio::test]
async fn forwarded_answers_without_a_date_get_one() {
    let upstream = RawUpstream::start(echo).await;
    let router = router_to(&upstream).await;
    let mut client = Client::connect(router.http_addr()).await;
    // `echo` answers with `Answer::ok`, which has no Date field.
    let reply = client.get("GET", "/v2/models/mlp/ready").await;
    assert_ok(&reply, "/v2/models/mlp/ready");
    assert!(reply.head.header("date").is_some(), "{:?}", reply.head);
}

#[tokio::test]
async fn a_body_that_arrives_while_its_request_waits_reaches_the_upstream_whole() {
    let upstream = RawUpstream::start(echo).await;
    let router = Router::builder().build().expect("build the router");
    let table = router.table();
    table
        .upsert_service(ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100)))
        .expect("add the service");
    let router = router.start().await.expect("start the router");
    let body = pattern(3000);
    let mut client = Client::connect(router.http_addr()).await;
    // No endpoint yet: the request waits in the activator while its body keeps coming, more
    // of it than the connection's small buffer holds.
    let head = format!(
        "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: router\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    client.send(head).await;
    client.send(&body[..500]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send(&body[500..]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    table
        .set_endpoints(&RevisionKey::new("default", "mlp-1"), vec![upstream.addr])
        .expect("publish the endpoint");
    assert_ok(&client.response("POST").await, &body);
    assert_eq!(upstream.only_request().body, body);
    // The connection goes on with the next request.
    assert_ok(
        &client.get("GET", "/v2/models/mlp/ready").await,
        "/v2/models/mlp/ready",
    );
}
