//! One JSON line on stdout per life event, for the supervisor (`kiln up`'s local backend):
//! `{"event":"listening","http_port":...,"grpc_port":...}` and `{"event":"ready","load_ms":...}`.
//! Logs go to stderr, so stdout carries nothing else.

use std::io::Write;

/// Writes one event line to stdout and flushes it.
pub fn emit(event: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}
