//! Finding the service: by path, host and tag host; the router's own answers; bad input.

use crate::common;

use common::{Upstream, client, get, h2_client, post, send};
use kiln_router::{RevisionSpec, Router, RunningRouter, ServiceSpec};

async fn router_with(services: Vec<ServiceSpec>) -> RunningRouter {
    let router = Router::builder().max_body_bytes(1024).build().unwrap();
    router.table().set_services(services).unwrap();
    router.start().await.unwrap()
}

#[tokio::test]
async fn v2_and_v1_paths_route_to_the_named_model() {
    let mlp = Upstream::start("mlp").await;
    let cnn = Upstream::start("cnn").await;
    let router = router_with(vec![
        ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([mlp.addr])),
        ServiceSpec::new("cnn").revision(RevisionSpec::new("cnn-1", 100).endpoints([cnn.addr])),
    ])
    .await;
    let c = client();
    let a = post(&c, router.http_addr(), "/v2/models/mlp/infer", "x").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, "mlp:x");
    assert_eq!(a.revision(), "mlp-1");
    let b = post(&c, router.http_addr(), "/v1/models/cnn:predict", "y").await;
    assert_eq!(b.body, "cnn:y");
    assert_eq!(b.revision(), "cnn-1");
    let c2 = get(&c, router.http_addr(), "/v2/models/cnn", &[]).await;
    assert_eq!(c2.body, "cnn");
    assert_eq!(
        c2.headers["x-upstream"], "cnn",
        "upstream headers come back unchanged"
    );
}

#[tokio::test]
async fn host_header_and_tag_hosts_route_like_kserve() {
    let one = Upstream::start("one").await;
    let two = Upstream::start("two").await;
    let router = router_with(vec![
        ServiceSpec::new("mlp")
            .namespace("team")
            .revision(
                RevisionSpec::new("mlp-1", 100)
                    .tag("prev")
                    .endpoints([one.addr]),
            )
            .revision(
                RevisionSpec::new("mlp-2", 0)
                    .tag("latest")
                    .endpoints([two.addr]),
            ),
    ])
    .await;
    let c = client();
    let addr = router.http_addr();
    let plain = get(&c, addr, "/predict", &[("host", "mlp.team.example.com")]).await;
    assert_eq!((plain.status.as_u16(), plain.revision()), (200, "mlp-1"));
    let latest = get(&c, addr, "/", &[("host", "latest-mlp.team.example.com:80")]).await;
    assert_eq!(latest.revision(), "mlp-2");
    let prev = get(
        &c,
        addr,
        "/v2/models/mlp/infer",
        &[("host", "prev-mlp.team.example.com")],
    )
    .await;
    assert_eq!(prev.revision(), "mlp-1");
    let other = get(&c, addr, "/", &[("host", "nope.team.example.com")]).await;
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn h2c_clients_are_proxied_to_http1_upstreams() {
    let mlp = Upstream::start("mlp").await;
    let router = router_with(vec![
        ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([mlp.addr])),
    ])
    .await;
    let reply = send(
        &h2_client(),
        "POST",
        format!("http://{}/v2/models/mlp/infer", router.http_addr()),
        &[],
        "h2",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "mlp:h2");
    assert_eq!(reply.revision(), "mlp-1");
}

#[tokio::test]
async fn calls_naming_no_model_are_answered_by_the_router() {
    let router = router_with(vec![
        ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100)),
    ])
    .await;
    let c = client();
    let addr = router.http_addr();
    let live = get(&c, addr, "/v2/health/live", &[]).await;
    assert_eq!(
        (live.status.as_u16(), live.json()["live"].as_bool()),
        (200, Some(true))
    );
    let ready = get(&c, addr, "/v2/health/ready", &[]).await;
    assert_eq!(ready.status, 200);
    let meta = get(&c, addr, "/v2", &[]).await;
    assert_eq!(meta.json()["name"], "kiln-router");
    let models = get(&c, addr, "/v2/models", &[]).await;
    assert_eq!(models.json()["models"][0]["name"], "mlp");
    assert_eq!(get(&c, addr, "/healthz", &[]).await.status, 200);
    let metrics = get(&c, addr, "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("kiln_router_responses_total"),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn bad_input_gets_json_errors_with_the_right_status() {
    let mlp = Upstream::start("mlp").await;
    let router = router_with(vec![
        ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([mlp.addr])),
    ])
    .await;
    let c = client();
    let addr = router.http_addr();

    let unknown = post(&c, addr, "/v2/models/nope/infer", "{}").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"].as_str().unwrap().contains("nope"));

    let malformed = post(&c, addr, "/v2/models//infer", "{}").await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["error"].is_string());

    let big = "x".repeat(2048);
    let too_large = post(&c, addr, "/v2/models/mlp/infer", &big).await;
    assert_eq!(too_large.status, 413);
    assert!(too_large.json()["error"].is_string());

    let pinned_unknown = get(&c, addr, "/v2/models/mlp", &[("x-kiln-revision", "mlp-9")]).await;
    assert_eq!(pinned_unknown.status, 404);
    assert_eq!(mlp.requests(), 0, "no bad request reached the upstream");

    // The process keeps serving.
    assert_eq!(
        post(&c, addr, "/v2/models/mlp/infer", "ok").await.body,
        "mlp:ok"
    );
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_get_413() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    let mlp = Upstream::start("mlp").await;
    let router = router_with(vec![
        ServiceSpec::new("mlp").revision(RevisionSpec::new("mlp-1", 100).endpoints([mlp.addr])),
    ])
    .await;
    let stream = tokio_stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; 512])))),
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<StreamBody<_>>();
    let request = http::Request::post(format!("http://{}/v2/models/mlp/infer", router.http_addr()))
        .body(StreamBody::new(stream))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 413);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("limit"));
}
