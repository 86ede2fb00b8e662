//! The clock the scheduler sleeps on between retries, injectable so back-off is tested without
//! waiting.

use std::time::Duration;

use futures::future::BoxFuture;

/// Something that can wait.
pub trait Clock: Send + Sync {
    /// Waits `delay`.
    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()>;
}

/// Tokio's timer (pausable in tests with `tokio::time::pause`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(delay))
    }
}
