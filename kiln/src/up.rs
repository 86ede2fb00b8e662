//! `kiln up`: the whole platform on one machine (router, autoscaler, local backend,
//! controller and admin API), serving the InferenceServices in `--manifests`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kiln_autoscaler::AutoscalerConfig;
use kiln_controller::platform::{Platform, PlatformConfig};
use serde::Deserialize;

/// Run Kiln on this machine: serve InferenceServices with scale-to-zero and canaries.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// A manifest file or folder of InferenceServices to apply at start.
    #[arg(long, env = "KILN_MANIFESTS")]
    manifests: Option<PathBuf>,
    /// A YAML file with `domain:` and an `autoscaler:` section of Knative's config-autoscaler keys.
    #[arg(long, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    /// Address the router and admin API listen on.
    #[arg(long, env = "KILN_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// The router's port for REST and gRPC (0 picks one).
    #[arg(long, env = "KILN_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// A second router port for gRPC only.
    #[arg(long, env = "KILN_GRPC_PORT")]
    grpc_port: Option<u16>,
    /// The admin API's port, used by `kiln apply|get|rollout` (0 picks one).
    #[arg(long, env = "KILN_ADMIN_PORT", default_value_t = 8079)]
    admin_port: u16,
    /// Where services, revisions, logs and the model cache persist.
    #[arg(long, env = "KILN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Seconds a stopping replica gets to finish its requests.
    #[arg(long, env = "KILN_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpConfig {
    domain: Option<String>,
    autoscaler: Option<AutoscalerConfig>,
    /// What replicas may take at once; the machine's by default.
    #[serde(default)]
    capacity: kiln_controller::local::CapacityConfig,
}

pub(crate) fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("kiln"))
        .unwrap_or_else(|| PathBuf::from(".kiln-state"))
}

fn read_config(path: Option<&Path>) -> anyhow::Result<UpConfig> {
    let Some(path) = path else {
        return Ok(UpConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: UpConfig = kiln_api::yaml::from_str(&text)
        .with_context(|| format!("{} is not a valid Kiln config", path.display()))?;
    if let Some(autoscaler) = &config.autoscaler {
        autoscaler
            .validate()
            .with_context(|| format!("{}: autoscaler", path.display()))?;
    }
    Ok(config)
}

/// Reads a manifest file, or every YAML/JSON file directly in a folder, as one text.
pub(crate) fn read_manifests(path: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
        {
            let file = entry?.path();
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
            {
                files.push(file);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut text = String::new();
    for file in files {
        let content = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        text.push_str("\n---\n");
        text.push_str(&content);
    }
    Ok(text)
}

pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    let config = read_config(args.config.as_deref())?;
    // Requests held while revisions start each need a socket.
    kiln_router::cli::raise_open_file_limit();
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let capacity = config
        .capacity
        .resolve()
        .context("the config's capacity section")?;
    tracing::info!(
        processes = capacity.processes,
        cpu = %kiln_api::quantity::format_cpu(capacity.cpu_millis),
        memory = %kiln_api::quantity::format_bytes(capacity.memory_bytes),
        "capacity"
    );
    let platform = Platform::start(PlatformConfig {
        state_dir: state_dir.clone(),
        domain: config.domain.unwrap_or_else(|| "example.com".into()),
        autoscaler: config.autoscaler.unwrap_or_default(),
        http_addr: SocketAddr::new(args.bind, args.http_port),
        grpc_addr: args.grpc_port.map(|p| SocketAddr::new(args.bind, p)),
        admin_addr: SocketAddr::new(args.bind, args.admin_port),
        admin_token: std::env::var("KILN_TOKEN").ok().filter(|t| !t.is_empty()),
        kiln_program: std::env::current_exe().context("cannot locate the kiln executable")?,
        gpus: kiln_controller::local::detect_gpus(),
        drain_timeout: Duration::from_secs(args.drain_seconds),
        capacity,
    })
    .await?;
    let event = serde_json::json!({
        "event": "up",
        "http_port": platform.http_addr().port(),
        "admin_port": platform.admin_addr().port(),
        "state_dir": state_dir,
    });
    println!("{event}");
    tracing::info!(
        router = %platform.http_addr(),
        admin = %platform.admin_addr(),
        state_dir = %state_dir.display(),
        "kiln is up"
    );
    if let Some(path) = &args.manifests {
        let text = read_manifests(path)?;
        let controller = platform.controller.clone();
        let report = tokio::task::spawn_blocking(move || controller.apply(&text)).await??;
        for warning in &report.warnings {
            tracing::warn!("{warning}");
        }
        for applied in &report.applied {
            tracing::info!(service = %format!("{}/{}", applied.namespace, applied.name), revision = %applied.revision, action = %applied.action, "applied");
        }
    }
    kiln_api::shutdown::shutdown_signal()
        .await
        .context("cannot install the SIGTERM handler")?;
    tracing::info!("stopping: draining replicas");
    platform.shutdown().await;
    Ok(())
}
