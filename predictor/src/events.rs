//! One JSON line on stdout per life event, for the supervisor (`kiln up`'s local backend):
//! the lines of [`kiln_api::predictor_event`]. Logs go to stderr, so stdout carries nothing
//! else.

use std::io::Write;

use kiln_api::predictor_event::PredictorEvent;

/// Writes one event line to stdout and flushes it.
pub fn emit(event: &PredictorEvent) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", event.to_line());
    let _ = out.flush();
}
