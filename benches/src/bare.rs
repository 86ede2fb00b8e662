//! The baseline: the same model file on ONNX Runtime (crate `ort`) directly, in process,
//! one caller, the same intra-op threads as the predictor is given.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::Session;

use crate::loadgen::LoadResult;
use crate::procfs::{self, Memory};
use crate::{BenchError, INPUT_LEN};

/// Loads ONNX Runtime from `library`, or from where `kiln predictor` finds it
/// ([`kiln_predictor::native::onnxruntime_library`]).
pub fn environment(library: Option<PathBuf>) -> Result<Environment, BenchError> {
    let path = match library {
        Some(p) => p,
        None => kiln_predictor::native::onnxruntime_library().map_err(BenchError::msg)?,
    };
    ort::init_from(&path)
        .map_err(|e| BenchError::context(format!("loading {}", path.display()), e))?
        .with_name("kiln-bench")
        .build()
        .map_err(|e| BenchError::context("starting ONNX Runtime", e))
}

/// The MLP in an ONNX Runtime session.
pub struct BareModel {
    session: Session,
    _environment: Environment,
}

impl BareModel {
    /// Loads `model` with `threads` intra-op threads, as the predictor's `--threads` does.
    pub fn load(
        environment: &Environment,
        model: &Path,
        threads: usize,
    ) -> Result<Self, BenchError> {
        let what = format!("loading {}", model.display());
        let session = Session::builder(environment)
            .map_err(|e| BenchError::context(&what, e))?
            .with_intra_threads(threads)
            .map_err(|e| BenchError::context(&what, e))?
            .commit_from_file(model)
            .map_err(|e| BenchError::context(&what, e))?;
        Ok(BareModel {
            session,
            _environment: environment.clone(),
        })
    }

    /// Runs one row: the input copied into a new tensor, the output copied out, as any
    /// caller holding its own buffers does.
    pub fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, BenchError> {
        let tensor = ort::value::Tensor::from_array(([1usize, INPUT_LEN], input.to_vec()))
            .map_err(|e| BenchError::context("input tensor", e))?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => tensor])
            .map_err(|e| BenchError::context("ONNX Runtime run", e))?;
        let output = outputs
            .get("output")
            .ok_or_else(|| BenchError::msg("the model returned no 'output'"))?;
        let (_, values) = output
            .try_extract_tensor::<f32>()
            .map_err(|e| BenchError::context("output tensor", e))?;
        Ok(values.to_vec())
    }

    /// One caller in a loop on this thread: `warmup`, then `measure` counted.
    pub fn run(
        &mut self,
        input: &[f32],
        warmup: Duration,
        measure: Duration,
    ) -> Result<LoadResult, BenchError> {
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + measure;
        let mut latencies_ns = Vec::with_capacity((measure.as_secs_f64() * 50_000.0) as usize);
        let mut total_ok = 0;
        loop {
            let sent = Instant::now();
            if sent >= end {
                break;
            }
            self.infer(input)?;
            total_ok += 1;
            let done = Instant::now();
            if done >= measure_from && done <= end {
                latencies_ns.push((done - sent).as_nanos() as u64);
            }
        }
        latencies_ns.sort_unstable();
        Ok(LoadResult {
            completed: latencies_ns.len() as u64,
            total_ok,
            errors: 0,
            first_error: None,
            window: measure,
            latencies_ns,
        })
    }
}

/// The RSS baseline: loads the model, runs it once, and reports this process's memory.
/// `kiln-bench bare-hold` runs it in a process of its own.
pub fn hold(library: Option<PathBuf>, model: &Path, threads: usize) -> Result<Memory, BenchError> {
    let environment = environment(library)?;
    let mut bare = BareModel::load(&environment, model, threads)?;
    bare.infer(&crate::input_row())?;
    procfs::memory("self")
}
