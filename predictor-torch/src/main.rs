//! `kiln-predictor-torch`: `kiln predictor` with the TorchScript runtime. `kiln predictor`
//! hands TorchScript models to it; it takes the same flags and environment.

mod runtime;

use clap::Parser;
use kiln_predictor::layout::ModelFormat;
use kiln_predictor::runtime::Runtimes;
use kiln_predictor::{Outcome, PredictorArgs};
use runtime::TorchRuntime;

/// Serve one TorchScript model over v1/v2 REST and v2 gRPC.
#[derive(Parser)]
#[command(name = "kiln-predictor-torch", version, about)]
struct Cli {
    #[command(flatten)]
    args: PredictorArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    kiln_predictor::logging::init();
    let runtimes = Runtimes::default().with(TorchRuntime);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    kiln_predictor::one_cpu::configure_runtime(&mut builder);
    let result = builder.build().map_err(anyhow::Error::from).and_then(|rt| {
        rt.block_on(kiln_predictor::run(cli.args, runtimes))
            .map_err(anyhow::Error::from)
    });
    match result {
        Ok(Outcome::Stopped) => std::process::ExitCode::SUCCESS,
        Ok(Outcome::HandOff(ModelFormat::Onnx)) => {
            eprintln!(
                "kiln-predictor-torch: this is an ONNX model: serve it with `kiln predictor`"
            );
            std::process::ExitCode::FAILURE
        }
        Ok(Outcome::HandOff(other)) => {
            eprintln!("kiln-predictor-torch: no runtime for {other} models");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("kiln-predictor-torch: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
