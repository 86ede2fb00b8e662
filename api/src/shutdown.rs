//! Waiting for the signal to stop, written once for every Kiln process (`kiln up`, the
//! router, the predictor): SIGTERM, as Kubernetes and supervisors send it, or Ctrl-C.

/// Completes when the process gets SIGTERM or SIGINT (Ctrl-C).
///
/// # Errors
/// When the signal handlers cannot be installed (the runtime has no signal driver).
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
