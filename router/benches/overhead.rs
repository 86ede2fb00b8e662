//! Router overhead benchmark (see benches/router/run.sh).
fn main() {}
