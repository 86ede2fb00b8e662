//! `kiln router`: flags, the open-file limit, serving a routes file, draining on SIGTERM.

use crate::common;

use clap::Parser;
use common::{Upstream, client, eventually, get};
use kiln_router::cli::{RouterArgs, raise_open_file_limit, run};

#[derive(Parser)]
struct Kiln {
    #[command(flatten)]
    router: RouterArgs,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// 10,000 held requests need 10,000 sockets: at start the router lifts its open-file soft
/// limit to the hard limit.
#[test]
fn the_open_file_soft_limit_is_raised_to_the_hard_limit() {
    use rlimit::Resource;
    let (_, hard) = Resource::NOFILE.get().unwrap();
    // One below the hard limit, so that there is something to raise (other tests in this
    // process keep working with one descriptor fewer).
    let lowered = hard.min(1 << 20) - 1;
    Resource::NOFILE.set(lowered, hard).unwrap();
    let raised = raise_open_file_limit().expect("the limit was raised");
    let (soft, _) = Resource::NOFILE.get().unwrap();
    assert_eq!(soft, raised);
    assert!(soft > lowered, "soft limit {soft}, hard {hard}");
}

#[test]
fn flags_have_defaults_and_parse_durations() {
    let args = Kiln::try_parse_from(["kiln", "--routes", "r.yaml"])
        .unwrap()
        .router;
    assert_eq!((args.http_port, args.grpc_port), (8080, 8081));
    assert_eq!(args.domain, "example.com");
    assert_eq!(args.queue_depth, 10_000);
    let args = Kiln::try_parse_from([
        "kiln",
        "--routes",
        "r.yaml",
        "--http-port",
        "0",
        "--domain",
        "svc.local",
        "--default-timeout",
        "5m",
        "--reload-interval",
        "250ms",
    ])
    .unwrap()
    .router;
    assert_eq!(args.http_port, 0);
    assert_eq!(args.default_timeout, std::time::Duration::from_secs(300));
    assert_eq!(args.reload_interval, std::time::Duration::from_millis(250));
    assert!(
        Kiln::try_parse_from(["kiln"]).is_err(),
        "--routes is required"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_routes_file_until_sigterm_then_drains() {
    // Our own handler first, so SIGTERM can never take the default action on this process.
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let upstream = Upstream::start("mlp").await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            "services:\n  - name: mlp\n    revisions:\n      - name: mlp-1\n        percent: 100\n        endpoints: [\"{}\"]\n",
            upstream.addr
        ),
    )
    .unwrap();
    let (http_port, grpc_port) = (free_port(), free_port());
    let args = Kiln::try_parse_from([
        "kiln",
        "--routes",
        routes.to_str().unwrap(),
        "--address",
        "127.0.0.1",
        "--http-port",
        &http_port.to_string(),
        "--grpc-port",
        &grpc_port.to_string(),
    ])
    .unwrap()
    .router;
    let server = tokio::spawn(run(args));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let c = client();
    let mut up = false;
    for _ in 0..2000 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(up, "the router never listened");
    let reply = get(&c, addr, "/v2/models/mlp/infer", &[]).await;
    assert_eq!((reply.status.as_u16(), reply.revision()), (200, "mlp-1"));

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    term.recv().await;
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("run returned after SIGTERM");
    assert!(outcome.unwrap().is_ok());
    eventually("listener closed", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
}
