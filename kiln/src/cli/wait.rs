//! Waiting for a service to reach a state, with progress on a terminal (indicatif) and
//! plain lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use kiln_api::inference_service::status::READY;
use kiln_api::inference_service::{ConditionStatus, InferenceService};

use super::CliError;
use super::client::Client;

/// Polls the service until `done(status)` says so, or `timeout` passes (exit 3).
pub(crate) async fn until(
    client: &Client,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&InferenceService) -> bool,
) -> Result<InferenceService, CliError> {
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
        let service: InferenceService = client.get(&client.service_path(name)).await?;
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
pub(crate) fn summary(service: &InferenceService) -> String {
    let ready = condition(service, READY);
    let predictor = service.status.as_ref().and_then(|s| s.predictor());
    let traffic: Vec<String> = predictor
        .map_or(&[][..], |p| p.traffic.as_slice())
        .iter()
        .map(|t| {
            format!(
                "{}={}%",
                t.revision_name.as_deref().unwrap_or("latest"),
                t.percent.unwrap_or(0)
            )
        })
        .collect();
    format!("Ready={ready} traffic [{}]", traffic.join(", "))
}

/// The status of condition `type_` (`Unknown` when the service has none).
pub(crate) fn condition(service: &InferenceService, type_: &str) -> ConditionStatus {
    service
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .map(|c| c.status)
        .unwrap_or_default()
}
