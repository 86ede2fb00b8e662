//! Looking up header fields of a parsed head, reading `Content-Length` strictly, and telling
//! hop-by-hop fields (which a proxy does not forward) from end-to-end ones.

use std::borrow::Cow;

/// The fields of a parsed head.
pub(crate) struct HeaderList<'h, 'b>(pub(crate) &'h [httparse::Header<'b>]);

impl<'b> HeaderList<'_, 'b> {
    /// The value of the first field called `name` (ASCII case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&'b [u8]> {
        self.values(name).next()
    }

    /// The values of every field called `name`, in order.
    pub(crate) fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.0
            .iter()
            .filter(move |field| field.name.eq_ignore_ascii_case(name))
            .map(|field| field.value)
    }

    /// The values of every field called `name` as one comma-separated list (RFC 9110 §5.3);
    /// empty when there is none.
    pub(crate) fn joined(&self, name: &str) -> Cow<'b, [u8]> {
        let mut values = self.values(name);
        let Some(first) = values.next() else {
            return Cow::Borrowed(&[]);
        };
        let mut rest = values.peekable();
        if rest.peek().is_none() {
            return Cow::Borrowed(first);
        }
        let mut joined = first.to_vec();
        for value in rest {
            joined.push(b',');
            joined.extend_from_slice(value);
        }
        Cow::Owned(joined)
    }

    /// The body length declared by `Content-Length`: `Ok(None)` without one, an error for a
    /// value that is not all digits or for fields that disagree (RFC 9112 §6.3).
    pub(crate) fn content_length(&self) -> Result<Option<u64>, &'static str> {
        let mut length = None;
        for value in self.values("content-length") {
            let parsed = parse_length(value).ok_or("invalid content-length")?;
            if length.is_some_and(|l| l != parsed) {
                return Err("conflicting content-length fields");
            }
            length = Some(parsed);
        }
        Ok(length)
    }
}

/// `1*DIGIT` between optional spaces or tabs, without overflow.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether the comma-separated list `value` holds `token` (ASCII case-insensitive).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the field `name` concerns only this hop: the fixed hop-by-hop fields and those the
/// message's `Connection` fields (`connection`, joined) list. The framing fields
/// (`Content-Length`, `Transfer-Encoding`) are always forwarded, whatever `Connection` says:
/// bodies pass through unchanged, so their framing must go with them.
pub(crate) fn is_hop_by_hop(name: &str, connection: &[u8]) -> bool {
    const FIXED: [&str; 4] = ["connection", "keep-alive", "proxy-connection", "upgrade"];
    const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];
    if FRAMING
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
    {
        return false;
    }
    FIXED.iter().any(|fixed| name.eq_ignore_ascii_case(fixed))
        || (!connection.is_empty() && has_token(connection, name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'b>(name: &'b str, value: &'b [u8]) -> httparse::Header<'b> {
        httparse::Header { name, value }
    }

    #[test]
    fn connection_lists_name_more_hop_by_hop_fields_but_never_the_framing() {
        let connection = b"keep-alive, X-Drop-Me, content-length, Transfer-Encoding";
        assert!(is_hop_by_hop("Connection", connection));
        assert!(is_hop_by_hop("keep-alive", connection));
        assert!(is_hop_by_hop("x-drop-me", connection));
        assert!(!is_hop_by_hop("x-keep-me", connection));
        assert!(!is_hop_by_hop("Content-Length", connection));
        assert!(!is_hop_by_hop("transfer-encoding", connection));
    }

    #[test]
    fn lookups_ignore_case_and_join_repeated_fields() {
        let fields = [
            field("Connection", b"keep-alive"),
            field("connection", b"close"),
        ];
        let list = HeaderList(&fields);
        assert_eq!(list.get("CONNECTION"), Some(&b"keep-alive"[..]));
        assert_eq!(&*list.joined("connection"), b"keep-alive,close");
        assert!(has_token(&list.joined("connection"), b"close"));
        assert!(!has_token(b"closed", b"close"));
        assert!(list.joined("upgrade").is_empty());
    }

    #[test]
    fn content_length_is_digits_only_and_fields_must_agree() {
        let length = |values: &[&[u8]]| {
            let fields: Vec<_> = values.iter().map(|v| field("content-length", v)).collect();
            HeaderList(&fields).content_length()
        };
        assert_eq!(length(&[]), Ok(None));
        assert_eq!(length(&[b" 42\t"]), Ok(Some(42)));
        assert_eq!(length(&[b"5", b"5"]), Ok(Some(5)));
        assert!(length(&[b"5", b"6"]).is_err());
        assert!(length(&[b"+5"]).is_err());
        assert!(length(&[b"5 5"]).is_err());
        assert!(length(&[b""]).is_err());
        assert!(length(&["\u{a0}5".as_bytes()]).is_err());
        assert!(length(&[b"99999999999999999999999"]).is_err());
    }
}
