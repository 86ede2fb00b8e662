//! The admin commands themselves.

use std::path::PathBuf;
use std::time::Duration;

use kiln_api::inference_service::status::READY;
use kiln_api::inference_service::{ConditionStatus, InferenceService, TrafficTarget};
use kiln_controller::admin::{Deleted, LogLines, RolloutRequest, ServiceList};
use kiln_controller::controller::ApplyReport;

use super::client::Client;
use super::output::{self, outln};
use super::wait::{condition, summary, until};
use super::{CliError, Target};

fn parse_duration(s: &str) -> Result<Duration, String> {
    kiln_api::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Apply InferenceService manifests (a file or a folder).
#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// A manifest file or folder.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    #[command(flatten)]
    target: Target,
}

impl ApplyArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let text = crate::up::read_manifests(&self.file)
            .map_err(|e| CliError::Invalid(format!("{e:#}")))?;
        let client = Client::new(&self.target);
        let report: ApplyReport = client.post("/v1/apply", text).await?;
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        for applied in &report.applied {
            outln!(
                "inferenceservice.serving.kserve.io/{} {} (revision {})",
                applied.name,
                applied.action,
                applied.revision
            )?;
        }
        Ok(())
    }
}

/// What `get` and `delete` act on.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    /// InferenceServices.
    #[value(name = "isvc", alias = "inferenceservice", alias = "inferenceservices")]
    Isvc,
}

/// Output format of `get`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Output {
    /// KServe's YAML, with status.
    Yaml,
    /// KServe's JSON, with status.
    Json,
}

/// Show InferenceServices with their status.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// `isvc`.
    kind: Kind,
    /// One service; all in the namespace when absent.
    name: Option<String>,
    /// Print the whole object instead of a table.
    #[arg(short = 'o', long)]
    output: Option<Output>,
    #[command(flatten)]
    target: Target,
}

impl GetArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let _ = self.kind;
        let client = Client::new(&self.target);
        let items: Vec<InferenceService> = match &self.name {
            Some(name) => vec![client.get(&client.service_path(name)).await?],
            None => {
                let path = format!("/v1/inferenceservices?namespace={}", client.namespace);
                client.get::<ServiceList>(&path).await?.items
            }
        };
        let output = match self.output {
            Some(output) => output,
            None => return print_table(&items),
        };
        // One object for one name, as kubectl prints it; a List otherwise.
        let whole = match (&self.name, items.as_slice()) {
            (Some(_), [one]) => serde_json::to_value(one),
            _ => serde_json::to_value(ObjectList {
                api_version: "v1",
                kind: "List",
                items: &items,
            }),
        }
        .map_err(|e| CliError::Failed(format!("cannot print the services: {e}")))?;
        match output {
            Output::Json => outln!(
                "{}",
                serde_json::to_string_pretty(&whole).unwrap_or_default()
            ),
            Output::Yaml => output::text(&serde_saphyr::to_string(&whole).unwrap_or_default()),
        }
    }
}

/// Kubernetes' `List` of objects, as `kubectl get -o yaml` prints several.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectList<'a> {
    api_version: &'static str,
    kind: &'static str,
    items: &'a [InferenceService],
}

fn print_table(items: &[InferenceService]) -> Result<(), CliError> {
    let row = |cells: [&str; 6]| {
        outln!(
            "{:<24} {:<44} {:<6} {:<5} {:<7} {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5]
        )
    };
    row([
        "NAME",
        "URL",
        "READY",
        "PREV",
        "LATEST",
        "LATESTREADYREVISION",
    ])?;
    for item in items {
        let status = item.status.as_ref();
        let predictor = status.and_then(|s| s.predictor());
        let traffic: &[TrafficTarget] = predictor.map_or(&[], |p| p.traffic.as_slice());
        let percent = |tag: &str| {
            traffic
                .iter()
                .find(|t| t.tag.as_deref() == Some(tag))
                .and_then(|t| t.percent)
                .map(|p| p.to_string())
                .unwrap_or_default()
        };
        row([
            item.name(),
            status.and_then(|s| s.url.as_deref()).unwrap_or(""),
            &condition(item, READY).to_string(),
            &percent("prev"),
            &percent("latest"),
            predictor
                .and_then(|p| p.latest_ready_revision.as_deref())
                .unwrap_or(""),
        ])?;
    }
    Ok(())
}

/// Delete an InferenceService, its revisions and replicas.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    /// `isvc`.
    kind: Kind,
    /// The service.
    name: String,
    #[command(flatten)]
    target: Target,
}

impl DeleteArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let _ = self.kind;
        let client = Client::new(&self.target);
        let _: Deleted = client.delete(&client.service_path(&self.name)).await?;
        outln!("inferenceservice.serving.kserve.io/{} deleted", self.name)?;
        Ok(())
    }
}

/// Print a service's replica logs.
#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// `isvc`.
    kind: Kind,
    /// The service.
    name: String,
    /// A revision (default: the latest).
    #[arg(long)]
    revision: Option<String>,
    /// Keep printing new lines.
    #[arg(short = 'f', long)]
    follow: bool,
    #[command(flatten)]
    target: Target,
}

impl LogsArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let _ = self.kind;
        let client = Client::new(&self.target);
        let mut path = format!("{}/logs", client.service_path(&self.name));
        if let Some(revision) = &self.revision {
            path.push_str(&format!("?revision={revision}"));
        }
        let mut seen: Vec<String> = Vec::new();
        loop {
            let LogLines { lines } = client.get(&path).await?;
            // Print what follows the longest overlap with what was already printed.
            let overlap = (0..=seen.len().min(lines.len()))
                .rev()
                .find(|&n| seen[seen.len() - n..] == lines[..n])
                .unwrap_or(0);
            for line in &lines[overlap..] {
                outln!("{line}")?;
            }
            seen = lines;
            if !self.follow {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Canary rollouts: status, canary, promote, rollback.
#[derive(Debug, clap::Args)]
pub(crate) struct RolloutArgs {
    #[command(subcommand)]
    action: RolloutAction,
}

#[derive(Debug, clap::Subcommand)]
enum RolloutAction {
    /// Show readiness and the traffic split; with --wait, wait until Ready.
    Status(RolloutCommon),
    /// Give the latest revision P% of the traffic.
    Canary {
        #[command(flatten)]
        common: RolloutCommon,
        /// The latest revision's share, 0 to 100.
        #[arg(long)]
        percent: u32,
    },
    /// Give the latest revision all of the traffic.
    Promote(RolloutCommon),
    /// Send all traffic back to the previously rolled-out revision.
    Rollback(RolloutCommon),
}

#[derive(Debug, clap::Args)]
struct RolloutCommon {
    /// The service.
    name: String,
    /// Wait until the change has taken effect and the service is Ready.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits (e.g. 90s, 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    target: Target,
}

/// The latest created revision's share of the traffic.
fn latest_percent(service: &InferenceService) -> Option<i64> {
    let predictor = service.status.as_ref()?.predictor()?;
    let latest = predictor.latest_created_revision.as_deref()?;
    predictor
        .traffic
        .iter()
        .find(|t| t.revision_name.as_deref() == Some(latest))
        .and_then(|t| t.percent)
}

impl RolloutArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let no_percent = RolloutRequest { percent: None };
        let (common, action, body, want): (
            &RolloutCommon,
            Option<&str>,
            RolloutRequest,
            Option<i64>,
        ) = match &self.action {
            RolloutAction::Status(c) => (c, None, no_percent, None),
            RolloutAction::Canary { common, percent } => {
                if *percent > 100 {
                    return Err(CliError::Invalid(format!(
                        "--percent {percent}: must be 0 to 100"
                    )));
                }
                (
                    common,
                    Some("canary"),
                    RolloutRequest {
                        percent: Some(*percent),
                    },
                    Some(i64::from(*percent)),
                )
            }
            RolloutAction::Promote(c) => (c, Some("promote"), no_percent, Some(100)),
            RolloutAction::Rollback(c) => (c, Some("rollback"), no_percent, Some(0)),
        };
        let client = Client::new(&common.target);
        let mut service: InferenceService = match action {
            Some(action) => {
                let path = format!("{}/rollout/{action}", client.service_path(&common.name));
                client.post_json(&path, &body).await?
            }
            None => client.get(&client.service_path(&common.name)).await?,
        };
        if common.wait {
            let what = match want {
                Some(p) => format!("Ready with {p}% on the latest revision"),
                None => "Ready".to_owned(),
            };
            service = until(&client, &common.name, common.timeout, &what, |s| {
                condition(s, READY) == ConditionStatus::True
                    && want.is_none_or(|p| latest_percent(s) == Some(p))
            })
            .await?;
        }
        outln!("{}: {}", common.name, summary(&service))?;
        Ok(())
    }
}
