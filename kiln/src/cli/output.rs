//! What the commands print on stdout. `println!` panics when the reader has gone away
//! (`kiln get isvc | head -1`); these writes turn that into [`CliError::ReaderGone`], which
//! ends the command quietly with exit 0, as `head` expects of the programs it reads.

use std::fmt;
use std::io::{ErrorKind, Write};

use super::CliError;

/// Writes one line to stdout.
pub(crate) fn line(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(write_error)
}

/// Writes `text` as it is to stdout.
pub(crate) fn text(text: &str) -> Result<(), CliError> {
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(write_error)
}

fn write_error(e: std::io::Error) -> CliError {
    match e.kind() {
        ErrorKind::BrokenPipe => CliError::ReaderGone,
        _ => CliError::Failed(format!("cannot write to stdout: {e}")),
    }
}

/// `println!` for the commands: `outln!("{}", x)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
