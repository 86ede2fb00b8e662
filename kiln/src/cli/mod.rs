//! The commands that talk to a running `kiln up` through its admin API:
//! `apply`, `get`, `delete`, `logs` and `rollout`. Exit codes a CI job can branch on:
//! 0 done, 1 failed, 2 invalid input, 3 timed out, each with one line on stderr.

mod client;
mod commands;
mod lineage;
mod output;
mod pipeline;
mod wait;

pub(crate) use commands::{ApplyArgs, DeleteArgs, GetArgs, LogsArgs, RolloutArgs};
pub(crate) use lineage::LineageArgs;
pub(crate) use pipeline::PipelineArgs;

/// Where the admin API is, and which namespace.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Target {
    /// The admin API of `kiln up`.
    #[arg(
        long,
        env = "KILN_SERVER",
        default_value = "http://127.0.0.1:8079",
        global = true
    )]
    server: String,
    /// The namespace.
    #[arg(
        short = 'n',
        long,
        env = "KILN_NAMESPACE",
        default_value = kiln_api::DEFAULT_NAMESPACE,
        global = true
    )]
    namespace: String,
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Exit 1.
    #[error("{0}")]
    Failed(String),
    /// Exit 2.
    #[error("{0}")]
    Invalid(String),
    /// Exit 3.
    #[error("{0}")]
    TimedOut(String),
    /// Stdout's reader went away (`kiln get isvc | head -1`): exit 0, nothing more to say.
    #[error("the reader of stdout went away")]
    ReaderGone,
}

impl CliError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Invalid(_) => 2,
            CliError::TimedOut(_) => 3,
            CliError::ReaderGone => 0,
        }
    }
}
