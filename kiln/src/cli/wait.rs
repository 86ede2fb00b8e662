//! Waiting for a service to reach a state, with progress on a terminal (indicatif) and
//! plain lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::CliError;
use super::client::Client;

/// Polls the service until `done(status)` says so, or `timeout` passes (exit 3).
pub(crate) async fn until(
    client: &Client,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, CliError> {
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.set_message(format!("waiting for {name}: {what}"));
        bar
    });
    if bar.is_none() {
        eprintln!("waiting for {name}: {what}");
    }
    let mut last = String::new();
    loop {
        let service = client.get(&client.service_path(name)).await?;
        let summary = summary(&service);
        if summary != last {
            match &bar {
                Some(bar) => bar.set_message(format!("{name}: {summary}")),
                None => eprintln!("{name}: {summary}"),
            }
            last = summary;
        }
        if done(&service) {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return Ok(service);
        }
        if started.elapsed() >= timeout {
            if let Some(bar) = bar {
                bar.abandon();
            }
            return Err(CliError::TimedOut(format!(
                "timed out after {}s waiting for {name}: {what} (now: {last})",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One line: readiness and the traffic split.
pub(crate) fn summary(service: &Value) -> String {
    let ready = condition(service, "Ready");
    let traffic: Vec<String> = service["status"]["components"]["predictor"]["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}={}%",
                t["revisionName"].as_str().unwrap_or("?"),
                t["percent"]
            )
        })
        .collect();
    format!("Ready={ready} traffic [{}]", traffic.join(", "))
}

/// The status of condition `type_` ("True", "False", "Unknown").
pub(crate) fn condition(service: &Value, type_: &str) -> String {
    service["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
        .to_owned()
}
