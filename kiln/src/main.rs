//! `kiln`: the one binary that wires Kiln's crates together.

mod logging;
mod predictor;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kiln: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Predictor(args) => runtime.block_on(predictor::run(args)),
        Command::Router(args) => runtime
            .block_on(kiln_router::cli::run(args))
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
