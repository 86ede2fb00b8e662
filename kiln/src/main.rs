//! `kiln`: the one binary that wires Kiln's crates together.

mod cli;
mod predictor;
mod up;

use clap::{Parser, Subcommand};

/// Kiln: serve models the way KServe on Knative does, faster and simpler.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one model (ONNX or TorchScript) over v1/v2 REST and v2 gRPC.
    Predictor(kiln_predictor::PredictorArgs),
    /// Run the data plane on its own, from a routing file that is watched for changes.
    Router(kiln_router::cli::RouterArgs),
    /// Run the whole platform on this machine, from InferenceService manifests.
    Up(up::UpArgs),
    /// Apply InferenceService manifests to a running `kiln up`.
    Apply(cli::ApplyArgs),
    /// Show InferenceServices and their status.
    Get(cli::GetArgs),
    /// Delete an InferenceService.
    Delete(cli::DeleteArgs),
    /// Print the logs of a service's replicas.
    Logs(cli::LogsArgs),
    /// Canary rollouts: status, canary, promote, rollback.
    Rollout(cli::RolloutArgs),
    /// Run Kubeflow Pipelines v2 pipelines (compiled by the kfp SDK) on this machine.
    Pipeline(cli::PipelineArgs),
    /// Where a pipeline artifact came from: run, task, parameters, inputs.
    Lineage(cli::LineageArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    kiln_predictor::logging::init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(cli.command, Command::Predictor(_)) {
        kiln_predictor::one_cpu::configure_runtime(&mut builder);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kiln: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let admin = |result: Result<(), cli::CliError>| match result {
        Ok(()) | Err(cli::CliError::ReaderGone) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    };
    let result = match cli.command {
        Command::Predictor(args) => runtime.block_on(predictor::run(args)),
        Command::Router(args) => runtime
            .block_on(kiln_router::cli::run(args))
            .map_err(anyhow::Error::from),
        Command::Up(args) => runtime.block_on(up::run(args)),
        Command::Apply(args) => return admin(runtime.block_on(args.run())),
        Command::Get(args) => return admin(runtime.block_on(args.run())),
        Command::Delete(args) => return admin(runtime.block_on(args.run())),
        Command::Logs(args) => return admin(runtime.block_on(args.run())),
        Command::Rollout(args) => return admin(runtime.block_on(args.run())),
        Command::Pipeline(args) => return admin(runtime.block_on(args.run())),
        Command::Lineage(args) => return admin(runtime.block_on(args.run())),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
