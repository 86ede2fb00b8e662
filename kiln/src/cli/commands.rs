//! The admin commands themselves.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::client::Client;
use super::wait::{condition, summary, until};
use super::{CliError, Target};

fn parse_duration(s: &str) -> Result<Duration, String> {
    kiln_autoscaler::duration::parse_duration(s)
        .ok_or_else(|| format!("'{s}' is not a duration (e.g. 90s, 5m)"))
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
        let report = client.post("/v1/apply", text).await?;
        for warning in report["warnings"].as_array().into_iter().flatten() {
            eprintln!("warning: {}", warning.as_str().unwrap_or_default());
        }
        for applied in report["applied"].as_array().into_iter().flatten() {
            println!(
                "inferenceservice.serving.kserve.io/{} {} (revision {})",
                applied["name"].as_str().unwrap_or("?"),
                applied["action"].as_str().unwrap_or("?"),
                applied["revision"].as_str().unwrap_or("?")
            );
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
        let items: Vec<Value> = match &self.name {
            Some(name) => vec![client.get(&client.service_path(name)).await?],
            None => client
                .get(&format!(
                    "/v1/inferenceservices?namespace={}",
                    client.namespace
                ))
                .await?["items"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        };
        let whole = |v: Value| {
            if self.name.is_some() {
                items[0].clone()
            } else {
                v
            }
        };
        match self.output {
            Some(Output::Json) => {
                let v = whole(json!({"apiVersion": "v1", "kind": "List", "items": items}));
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            Some(Output::Yaml) => {
                let v = whole(json!({"apiVersion": "v1", "kind": "List", "items": items}));
                print!("{}", serde_yaml::to_string(&v).unwrap_or_default());
            }
            None => print_table(&items),
        }
        Ok(())
    }
}

fn print_table(items: &[Value]) {
    let row = |cells: [&str; 6]| {
        println!(
            "{:<24} {:<44} {:<6} {:<5} {:<7} {}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        )
    };
    row([
        "NAME",
        "URL",
        "READY",
        "PREV",
        "LATEST",
        "LATESTREADYREVISION",
    ]);
    for item in items {
        let predictor = &item["status"]["components"]["predictor"];
        let percent = |tag: &str| {
            predictor["traffic"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["tag"] == tag)
                .map(|t| t["percent"].to_string())
                .unwrap_or_default()
        };
        row([
            item["metadata"]["name"].as_str().unwrap_or("?"),
            item["status"]["url"].as_str().unwrap_or(""),
            &condition(item, "Ready"),
            &percent("prev"),
            &percent("latest"),
            predictor["latestReadyRevision"].as_str().unwrap_or(""),
        ]);
    }
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
        client.delete(&client.service_path(&self.name)).await?;
        println!("inferenceservice.serving.kserve.io/{} deleted", self.name);
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
            let lines: Vec<String> = client.get(&path).await?["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect();
            // Print what follows the longest overlap with what was already printed.
            let overlap = (0..=seen.len().min(lines.len()))
                .rev()
                .find(|&n| seen[seen.len() - n..] == lines[..n])
                .unwrap_or(0);
            for line in &lines[overlap..] {
                println!("{line}");
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

fn latest_percent(service: &Value) -> Option<i64> {
    let predictor = &service["status"]["components"]["predictor"];
    let latest = predictor["latestCreatedRevision"].as_str()?;
    predictor["traffic"]
        .as_array()?
        .iter()
        .find(|t| t["revisionName"] == latest)
        .and_then(|t| t["percent"].as_i64())
}

impl RolloutArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let (common, action, body, want): (&RolloutCommon, Option<&str>, Value, Option<i64>) =
            match &self.action {
                RolloutAction::Status(c) => (c, None, json!({}), None),
                RolloutAction::Canary { common, percent } => {
                    if *percent > 100 {
                        return Err(CliError::Invalid(format!(
                            "--percent {percent}: must be 0 to 100"
                        )));
                    }
                    (
                        common,
                        Some("canary"),
                        json!({"percent": percent}),
                        Some(i64::from(*percent)),
                    )
                }
                RolloutAction::Promote(c) => (c, Some("promote"), Value::Null, Some(100)),
                RolloutAction::Rollback(c) => (c, Some("rollback"), Value::Null, Some(0)),
            };
        let client = Client::new(&common.target);
        let mut service = match action {
            Some(action) => {
                let path = format!("{}/rollout/{action}", client.service_path(&common.name));
                client.post_json(&path, body).await?
            }
            None => client.get(&client.service_path(&common.name)).await?,
        };
        if common.wait {
            let what = match want {
                Some(p) => format!("Ready with {p}% on the latest revision"),
                None => "Ready".to_owned(),
            };
            service = until(&client, &common.name, common.timeout, &what, |s| {
                condition(s, "Ready") == "True" && want.is_none_or(|p| latest_percent(s) == Some(p))
            })
            .await?;
        }
        println!("{}: {}", common.name, summary(&service));
        Ok(())
    }
}
