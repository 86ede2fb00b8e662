//! The router's listeners queue a burst of new connections (a cold start's callers arriving
//! together) instead of dropping the handshakes beyond the usual backlog of 128.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kiln_router::Router;

#[test]
fn a_burst_of_connections_waits_for_accept_instead_of_being_dropped() {
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(128);
    let burst = 1000.min(somaxconn.saturating_sub(8));
    if burst <= 128 {
        eprintln!("skipped: net.core.somaxconn is {somaxconn}");
        return;
    }
    // A runtime that runs only inside `block_on`: while this thread connects, nothing in the
    // router accepts, so every handshake has to wait in the listener's queue.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let router = runtime
        .block_on(async { Router::builder().build().unwrap().start().await })
        .unwrap();
    let addr = router.http_addr();
    // A dropped handshake is retried after a second: well past this limit.
    let limit = Duration::from_millis(500);
    let connections: Vec<TcpStream> = (0..burst)
        .map(|i| {
            TcpStream::connect_timeout(&addr, limit)
                .unwrap_or_else(|e| panic!("connection {i} of {burst} was not queued: {e}"))
        })
        .collect();

    // Once the router runs again, the last connection of the burst is served.
    let mut last = connections.last().unwrap().try_clone().unwrap();
    last.write_all(b"GET /healthz HTTP/1.1\r\nhost: router\r\n\r\n")
        .unwrap();
    runtime.block_on(async {
        tokio::task::spawn_blocking(move || {
            last.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut head = [0u8; 12];
            last.read_exact(&mut head)
                .unwrap_or_else(|e| panic!("reading: {e}"));
            assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
        })
        .await
        .unwrap();
    });
}
