//! Logs to stderr (stdout carries only the event lines), filtered by `RUST_LOG` (default
//! `info`), coloured only on a terminal. Shared by `kiln` and `kiln-predictor-torch`.

/// Installs the process-wide subscriber. Call once, at start.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
}
