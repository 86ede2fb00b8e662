//! Kiln's one duration grammar (Go's), and its formatter.

use std::time::Duration;

use kiln_api::duration::{format_duration, parse_duration};

/// Go's largest duration, in nanoseconds.
const MAX_NANOS: u64 = i64::MAX as u64;

/// The input as a duration's text, and its first 8 bytes as a number of nanoseconds: what
/// parses formats and parses back to itself, and so does every duration Go can hold.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(duration) = parse_duration(text)
    {
        round_trip(duration);
    }
    if let Some(bytes) = data.first_chunk::<8>() {
        round_trip(Duration::from_nanos(
            u64::from_le_bytes(*bytes) % (MAX_NANOS + 1),
        ));
    }
}

fn round_trip(duration: Duration) {
    let text = format_duration(duration);
    assert_eq!(
        parse_duration(&text),
        Ok(duration),
        "{duration:?} formats as {text:?}, which does not parse back to it"
    );
}
