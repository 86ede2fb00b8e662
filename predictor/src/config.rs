//! `kiln predictor` settings: flags, or the environment as KServe and Knative pass them.

use std::path::PathBuf;
use std::time::Duration;

use crate::batcher::BatchPolicy;
use crate::layout::ModelFormat;
use crate::runtime::Device;

/// Serve one model over v1/v2 REST and v2 gRPC.
#[derive(Debug, Clone, clap::Args)]
pub struct PredictorArgs {
    /// The name clients use for the model (`/v2/models/{name}`).
    #[arg(long, env = "MODEL_NAME")]
    pub model_name: String,
    /// Where the model is: s3://, gs://, az://, http(s)://, file:// or a local path.
    #[arg(long, env = "STORAGE_URI")]
    pub storage_uri: String,
    /// onnx or pytorch (TorchScript); detected from the files when absent.
    #[arg(long, env = "KILN_MODEL_FORMAT")]
    pub model_format: Option<ModelFormat>,
    /// Address to listen on.
    #[arg(long, env = "KILN_BIND", default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
    /// REST port (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// gRPC port (0 picks a free one).
    #[arg(long, env = "KILN_GRPC_PORT", default_value_t = 8081)]
    pub grpc_port: u16,
    /// Where downloaded models are cached (default: the user's cache folder).
    #[arg(long, env = "KILN_MODEL_CACHE_DIR")]
    pub model_cache_dir: Option<PathBuf>,
    /// cpu, cuda or cuda:N. A GPU that cannot be used is an error, never a silent CPU fallback.
    #[arg(long, env = "KILN_DEVICE", default_value = "cpu")]
    pub device: Device,
    /// Most rows joined into one model run; 1 turns dynamic batching off.
    #[arg(long, env = "KILN_MAX_BATCH_SIZE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_batch_size: u32,
    /// Longest a request waits for others to join its batch, in milliseconds.
    #[arg(long, env = "KILN_MAX_BATCH_DELAY_MS", default_value_t = 2.0)]
    pub max_batch_delay_ms: f64,
    /// Largest request body (REST) or message (gRPC), in bytes.
    #[arg(long, env = "KILN_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Threads per inference (default: the CPUs this process may use).
    #[arg(long, env = "KILN_THREADS")]
    pub threads: Option<usize>,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "KILN_DRAIN_SECONDS", default_value_t = 30)]
    pub drain_seconds: u64,
}

impl PredictorArgs {
    /// The batching policy these settings ask for.
    pub fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_batch_size: self.max_batch_size as usize,
            max_batch_delay: Duration::from_secs_f64(self.max_batch_delay_ms.max(0.0) / 1000.0),
        }
    }

    /// The model cache folder.
    pub fn cache_dir(&self) -> PathBuf {
        self.model_cache_dir
            .clone()
            .unwrap_or_else(kiln_storage::default_cache_dir)
    }
}
