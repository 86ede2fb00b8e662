//! The one error type of the benchmark library: what failed, in words, with its cause.

/// A benchmark step that failed; the message says which step and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(pub String);

impl BenchError {
    /// An error from a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// Wraps a cause with what was being done: `"{what}: {cause}"`.
    pub fn context(what: impl std::fmt::Display, cause: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {cause}"))
    }
}
