//! Durations, the one grammar every Kiln input uses: Go's `time.ParseDuration` syntax, as
//! Knative's config maps and annotations, Kubernetes and KServe write them (`60s`, `1m30s`,
//! `500ms`, `1.5h`, `+5s`, `1µs`, `0`).
//!
//! The manifest validator, the autoscaler's config and annotations, the router's routes file
//! and flags, and the CLI's `--timeout` all parse with [`parse_duration`], so a value one of
//! them accepts is accepted by all. Negative durations parse in Go but no Kiln setting takes
//! one, so they are refused here with a message that says so. The arithmetic is Go's: whole
//! nanoseconds, an overflow past 2^63 ns refused.

use std::fmt;
use std::time::Duration;

/// What [`parse_duration`] refuses, each with the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// An empty string (or just a sign).
    #[error("{0:?} is not a duration: it is empty (write e.g. 60s, 1m30s or 500ms)")]
    Empty(String),
    /// A number without a unit (`60`): Go's syntax needs one unless the value is `0`.
    #[error("{0:?} is not a duration: a unit is missing (ns, us, ms, s, m or h, e.g. 60s)")]
    MissingUnit(String),
    /// A unit Go does not know (`5d`, `1min`).
    #[error("{text:?} is not a duration: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// Something that is neither a number nor a unit where one should be.
    #[error("{0:?} is not a duration (write e.g. 60s, 1m30s or 500ms)")]
    Malformed(String),
    /// A negative duration, which Go accepts and no Kiln setting does.
    #[error("{0:?}: a duration here must not be negative")]
    Negative(String),
    /// More than Go's largest duration (about 292 years).
    #[error("{0:?} is not a duration: it is too large")]
    Overflow(String),
}

/// Go's largest duration in nanoseconds, plus one (`1 << 63`): the bound of its overflow checks.
const LIMIT_NANOS: u128 = 1 << 63;

/// Parses a non-negative duration in Go's `time.ParseDuration` syntax.
///
/// ```
/// use std::time::Duration;
/// use kiln_api::duration::parse_duration;
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("60").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let owned = || text.to_owned();
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty(owned()));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let Some(first) = rest.bytes().next() else {
            break;
        };
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(DurationError::Malformed(owned()));
        }
        let (whole, had_whole, after_whole) = leading_int(rest);
        let whole = whole.ok_or_else(|| DurationError::Overflow(owned()))?;
        rest = after_whole;
        let (mut fraction, mut scale, mut had_fraction) = (0u128, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (f, s, after_fraction) = leading_fraction(after_dot);
            had_fraction = after_fraction.len() != after_dot.len();
            (fraction, scale) = (f, s);
            rest = after_fraction;
        }
        if !had_whole && !had_fraction {
            return Err(DurationError::Malformed(owned()));
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(owned()));
        }
        let (unit, after_unit) = rest.split_at(unit_len);
        let nanos_per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            text: owned(),
            unit: unit.to_owned(),
        })?;
        let mut value = whole
            .checked_mul(nanos_per_unit)
            .filter(|v| *v <= LIMIT_NANOS)
            .ok_or_else(|| DurationError::Overflow(owned()))?;
        if fraction > 0 {
            // Go: v += uint64(float64(f) * (float64(unit) / scale)).
            value += (fraction as f64 * (nanos_per_unit as f64 / scale)) as u128;
        }
        total += value;
        if total > LIMIT_NANOS {
            return Err(DurationError::Overflow(owned()));
        }
        rest = after_unit;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative(owned()));
    }
    if total == LIMIT_NANOS {
        return Err(DurationError::Overflow(owned()));
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::Overflow(owned()))?;
    Ok(Duration::from_nanos(nanos))
}

/// The digits at the start of `text`: their value (`None` past 2^63), whether there were
/// any, and the rest.
fn leading_int(text: &str) -> (Option<u128>, bool, &str) {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    let mut value: Option<u128> = Some(0);
    for digit in text[..len].bytes() {
        value = value
            .and_then(|v| v.checked_mul(10))
            .map(|v| v + u128::from(digit - b'0'))
            .filter(|v| *v <= LIMIT_NANOS);
    }
    (value, len > 0, &text[len..])
}

/// The fraction digits at the start of `text` as `(value, scale, rest)`, value / scale being
/// the fraction; digits past what fits are read and dropped, as Go does. The scale is a
/// float, as in Go: leading zeros (`0.000…001s`) grow it past any integer's range.
fn leading_fraction(text: &str) -> (u128, f64, &str) {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    let (mut value, mut scale, mut overflowed) = (0u128, 1f64, false);
    for digit in text[..len].bytes() {
        if overflowed {
            continue;
        }
        match value.checked_mul(10).map(|v| v + u128::from(digit - b'0')) {
            Some(v) if v <= LIMIT_NANOS => {
                value = v;
                scale *= 10.0;
            }
            _ => overflowed = true,
        }
    }
    (value, scale, &text[len..])
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Writes a duration the way Go's `Duration.String` does for whole units and the way
/// Knative's messages read: `6s`, `1h`, `1m30s`, `250ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    FormattedDuration(duration).to_string()
}

struct FormattedDuration(Duration);

impl fmt::Display for FormattedDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.0;
        if duration.is_zero() {
            return f.write_str("0s");
        }
        if duration.subsec_nanos() != 0 {
            // Exact milliseconds with up to six decimals (whole nanoseconds): through an f64,
            // durations past a few hours lost their last nanoseconds and parsed back different.
            let nanos = duration.as_nanos();
            let (millis, fraction) = (nanos / 1_000_000, nanos % 1_000_000);
            if fraction == 0 {
                return write!(f, "{millis}ms");
            }
            let fraction = format!("{fraction:06}");
            return write!(f, "{millis}.{}ms", fraction.trim_end_matches('0'));
        }
        let secs = duration.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_go_parses() {
        let cases = [
            ("60s", Duration::from_secs(60)),
            ("1m", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("1h", Duration::from_secs(3600)),
            ("1.5h", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("+60s", Duration::from_secs(60)),
            ("1us", Duration::from_micros(1)),
            ("1\u{b5}s", Duration::from_micros(1)),
            ("1\u{3bc}s", Duration::from_micros(1)),
            ("3ns", Duration::from_nanos(3)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            ("0s", Duration::ZERO),
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("-0s", Duration::ZERO),
            ("0.000000001s", Duration::from_nanos(1)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    type Expect = fn(&DurationError) -> bool;

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        let cases: [(&str, Expect); 12] = [
            ("", |e| matches!(e, DurationError::Empty(_))),
            ("+", |e| matches!(e, DurationError::Empty(_))),
            ("60", |e| matches!(e, DurationError::MissingUnit(_))),
            ("1m30", |e| matches!(e, DurationError::MissingUnit(_))),
            ("5d", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("1min", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("s", |e| matches!(e, DurationError::Malformed(_))),
            (".", |e| matches!(e, DurationError::Malformed(_))),
            (" 60s", |e| matches!(e, DurationError::Malformed(_))),
            ("1m-3s", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("-5s", |e| matches!(e, DurationError::Negative(_))),
            ("2562048h", |e| matches!(e, DurationError::Overflow(_))),
        ];
        for (text, is_expected) in cases {
            let error = parse_duration(text).expect_err(text);
            assert!(is_expected(&error), "{text}: {error:?}");
            assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
        }
    }

    #[test]
    fn formats_whole_units_in_go_style() {
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(6)), "6s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn what_it_formats_it_parses_back() {
        for d in [1, 59, 60, 61, 3599, 3600, 3661, 86_400] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn long_fractions_read_like_go() {
        // More than 38 fraction digits overflowed an integer scale (a panic with overflow
        // checks, a wrong value without): fuzz/corpus/duration/crash-long-fraction.
        let zeros = "0".repeat(60);
        assert_eq!(
            parse_duration(&format!("1.{zeros}s")),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(parse_duration(&format!(".{zeros}1s")), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration(&format!("1.5{zeros}h")),
            Ok(Duration::from_secs(5400))
        );
        let digits = "9".repeat(400);
        // Go keeps the first 18 digits and rounds through a float, as here: 1s.
        assert_eq!(
            parse_duration(&format!("0.{digits}s")),
            Ok(Duration::from_secs(1))
        );
    }

    #[test]
    fn fractions_of_a_second_format_exactly_to_the_nanosecond() {
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0.000001ms");
        assert_eq!(format_duration(Duration::from_nanos(100_000)), "0.1ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        // The fuzzer's find (fuzz/corpus/duration/crash-format-loses-nanoseconds): through an
        // f64 this printed 3832053578541.0664ms, 2 ns short.
        let d = Duration::new(3_832_053_578, 541_066_290);
        assert_eq!(format_duration(d), "3832053578541.06629ms");
        for d in [
            d,
            Duration::from_nanos(i64::MAX as u64),
            Duration::new(86_400, 1),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
