//! The value of the `Date` header (RFC 9110 §6.6.1): the router adds it to its own answers and
//! to forwarded responses that lack one. Formatted at most once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

thread_local! {
    static CACHED: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
}

/// Appends `date: <now>\r\n` to `out`.
pub(crate) fn append_header(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with_borrow_mut(|(cached_second, value)| {
        if *cached_second != second {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == LEN {
                value.copy_from_slice(formatted.as_bytes());
                *cached_second = second;
            }
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_an_imf_fixdate() {
        let mut out = Vec::new();
        append_header(&mut out);
        let text = String::from_utf8(out).unwrap();
        let value = text
            .strip_prefix("date: ")
            .unwrap()
            .strip_suffix("\r\n")
            .unwrap();
        assert!(httpdate::parse_http_date(value).is_ok(), "{value}");
    }
}
