//! The routes file (YAML) for running the router on its own, and a watcher that applies
//! changes without dropping a request (revision state survives a reload; a file that does
//! not parse is reported and the table is left as it was).
//!
//! ```yaml
//! services:
//!   - name: mlp
//!     namespace: default        # optional
//!     timeout: 300s             # optional
//!     revisions:
//!       - name: mlp-predictor-00001
//!         percent: 90
//!         tags: [prev]
//!         containerConcurrency: 0
//!         endpoints: ["127.0.0.1:9001"]
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::RouterError;
use crate::table::{DEFAULT_NAMESPACE, RevisionSpec, ServiceSpec, TableHandle};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    services: Vec<FileService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    name: String,
    namespace: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    revisions: Vec<FileRevision>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileRevision {
    name: String,
    #[serde(default)]
    percent: u32,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    container_concurrency: u32,
    #[serde(default)]
    endpoints: Vec<String>,
}

/// Parses a duration such as `300s`, `5m`, `1m30s`, `250ms`: Kiln's one duration grammar
/// (Go's, [`kiln_api::duration`]), for the routes file and the router's flags alike.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    kiln_api::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn endpoint(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("invalid endpoint {text:?} (expected host:port)"))
}

/// Parses the text of a routes file.
pub fn parse(text: &str, default_timeout: Duration) -> Result<Vec<ServiceSpec>, String> {
    let file: File = kiln_api::yaml::from_str(text).map_err(|e| e.to_string())?;
    file.services
        .into_iter()
        .map(|s| {
            let timeout = match &s.timeout {
                Some(t) => parse_duration(t).map_err(|e| format!("service {}: {e}", s.name))?,
                None => default_timeout,
            };
            let revisions = s
                .revisions
                .into_iter()
                .map(|r| {
                    let endpoints = r
                        .endpoints
                        .iter()
                        .map(|e| endpoint(e))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("revision {}: {e}", r.name))?;
                    Ok(RevisionSpec {
                        name: r.name,
                        percent: r.percent,
                        tags: r.tags,
                        container_concurrency: r.container_concurrency,
                        endpoints,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(ServiceSpec {
                name: s.name,
                namespace: s.namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                timeout,
                revisions,
            })
        })
        .collect()
}

/// Reads and parses a routes file.
pub fn load(path: &Path, default_timeout: Duration) -> Result<Vec<ServiceSpec>, RouterError> {
    let text = std::fs::read_to_string(path).map_err(|source| RouterError::RoutesRead {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, default_timeout).map_err(|message| RouterError::RoutesParse {
        path: path.to_owned(),
        message,
    })
}

/// Loads a routes file into `table`.
pub fn apply(
    path: &Path,
    table: &TableHandle,
    default_timeout: Duration,
) -> Result<(), RouterError> {
    let services = load(path, default_timeout)?;
    table
        .set_services(services)
        .map_err(|e| RouterError::RoutesParse {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Watches a routes file by polling its contents every `interval` and applies each change.
/// Errors are logged; the table keeps its last good state. Runs until dropped or aborted.
pub async fn watch(
    path: PathBuf,
    table: TableHandle,
    interval: Duration,
    default_timeout: Duration,
) {
    let mut last = std::fs::read(&path).ok();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let current = match tokio::fs::read(&path).await {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read routes file");
                continue;
            }
        };
        if current == last {
            continue;
        }
        last = current;
        match apply(&path, &table, default_timeout) {
            Ok(()) => tracing::info!(path = %path.display(), "routes reloaded"),
            Err(error) => {
                tracing::warn!(%error, "routes file rejected; keeping the previous table")
            }
        }
    }
}
