//! Readiness probes, `httpGet` (plain HTTP) and `tcpSocket`, sent from the node to the Pod's
//! address as a kubelet sends them. `exec` and `grpc` probes are not supported: a container
//! with one is never ready, which a test notices.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A container's readiness probe, with Kubernetes' defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    probe: Probe,
    port: Option<u16>,
    pub(crate) initial_delay: Duration,
    pub(crate) period: Duration,
    timeout: Duration,
    pub(crate) success_threshold: u32,
    pub(crate) failure_threshold: u32,
}

fn seconds(value: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(value.unwrap_or(default).max(0) as u64)
}

impl Readiness {
    /// The container's readiness probe, if it has one.
    pub(crate) fn of(container: &Container) -> Option<Self> {
        let probe = container.readiness_probe.clone()?;
        let port = probe
            .http_get
            .as_ref()
            .map(|h| &h.port)
            .or(probe.tcp_socket.as_ref().map(|t| &t.port))
            .and_then(|port| match port {
                IntOrString::Int(n) => u16::try_from(*n).ok(),
                IntOrString::String(name) => container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
            });
        Some(Self {
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_millis(100)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_millis(100)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
            port,
            probe,
        })
    }

    /// Whether one probe of the container at `ip` succeeds.
    pub(crate) async fn check(&self, ip: Ipv4Addr) -> bool {
        let Some(port) = self.port else {
            return false;
        };
        let attempt = async {
            let mut stream = TcpStream::connect((ip, port)).await?;
            let Some(get) = &self.probe.http_get else {
                return Ok::<_, std::io::Error>(self.probe.tcp_socket.is_some());
            };
            if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                return Ok(false);
            }
            let path = get.path.as_deref().unwrap_or("/");
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: kiln-test-node\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await?;
            // "HTTP/1.x NNN": kubelet counts 200..399 as success.
            let code: u16 = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
            Ok((200..400).contains(&code))
        };
        matches!(
            tokio::time::timeout(self.timeout, attempt).await,
            Ok(Ok(true))
        )
    }
}
