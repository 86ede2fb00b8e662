//! `kiln predictor`: serves ONNX models itself and hands TorchScript models to the
//! `kiln-predictor-torch` binary, so that `kiln` never links or loads libtorch.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, bail};
use kiln_predictor::layout::ModelFormat;
use kiln_predictor::runtime::onnx::OnnxRuntime;
use kiln_predictor::runtime::{Device, Runtimes};
use kiln_predictor::{Outcome, PredictorArgs};

pub(crate) async fn run(args: PredictorArgs) -> anyhow::Result<()> {
    let device = args.device;
    let runtimes = Runtimes::default().with(OnnxRuntime {
        library: None,
        threads: args.threads,
    });
    match kiln_predictor::run(args, runtimes).await? {
        Outcome::Stopped => Ok(()),
        Outcome::HandOff(ModelFormat::PyTorch) => Err(hand_off_to_torch(device)),
        Outcome::HandOff(other) => bail!("no runtime for {other} models"),
    }
}

/// Replaces this process with `kiln-predictor-torch` (same arguments, same PID, so a
/// supervisor sees one process). Returns only on failure.
fn hand_off_to_torch(device: Device) -> anyhow::Error {
    let cuda = matches!(device, Device::Cuda(_));
    let binary = match torch_binary(cuda) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let mut command = std::process::Command::new(&binary);
    command.args(std::env::args_os().skip(2));
    command.env("KILN_MODEL_FORMAT", "pytorch");
    if let Ok(dir) = kiln_predictor::native::libtorch_dir(cuda) {
        let mut paths = vec![dir.join("lib")];
        if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
            paths.extend(std::env::split_paths(&existing));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("LD_LIBRARY_PATH", joined);
        }
    }
    tracing::info!(binary = %binary.display(), "TorchScript model: handing off to the torch runtime");
    let error = command.exec();
    anyhow::Error::new(error).context(format!("cannot start {}", binary.display()))
}

fn torch_binary(cuda: bool) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the kiln executable")?;
    let dir = exe.parent().context("the kiln executable has no folder")?;
    // The CUDA build also runs on the CPU where CUDA's libraries are present.
    let names: &[&str] = if cuda {
        &["kiln-predictor-torch-cuda", "kiln-predictor-torch"]
    } else {
        &["kiln-predictor-torch", "kiln-predictor-torch-cuda"]
    };
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "this is a TorchScript model, served by kiln-predictor-torch, which is not built beside {}: \
                 run scripts/build.sh (it builds the torch runtime with the libtorch from scripts/setup.sh)",
                exe.display()
            )
        })
}
