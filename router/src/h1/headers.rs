//! Looking up header fields of a parsed head, and telling hop-by-hop fields (which a proxy
//! does not forward) from end-to-end ones.

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
}

/// Whether the comma-separated list `value` holds `token` (ASCII case-insensitive).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the field `name` concerns only this hop: the fixed hop-by-hop fields and those the
/// message's `Connection` field (`connection`) lists. `Transfer-Encoding` is forwarded,
/// since bodies pass through with their framing unchanged.
pub(crate) fn is_hop_by_hop(name: &str, connection: &[u8]) -> bool {
    const FIXED: [&str; 4] = ["connection", "keep-alive", "proxy-connection", "upgrade"];
    FIXED.iter().any(|fixed| name.eq_ignore_ascii_case(fixed))
        || (!connection.is_empty() && has_token(connection, name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_lists_name_more_hop_by_hop_fields() {
        let connection = b"keep-alive, X-Drop-Me";
        assert!(is_hop_by_hop("Connection", connection));
        assert!(is_hop_by_hop("keep-alive", connection));
        assert!(is_hop_by_hop("x-drop-me", connection));
        assert!(!is_hop_by_hop("x-keep-me", connection));
        assert!(!is_hop_by_hop("transfer-encoding", b""));
    }

    #[test]
    fn lookups_ignore_case_and_keep_every_value() {
        let fields = [
            httparse::Header {
                name: "Content-Length",
                value: b"3",
            },
            httparse::Header {
                name: "content-length",
                value: b"4",
            },
        ];
        let list = HeaderList(&fields);
        assert_eq!(list.get("CONTENT-LENGTH"), Some(&b"3"[..]));
        assert_eq!(list.values("content-length").count(), 2);
        assert!(has_token(b"Keep-Alive, close", b"close"));
        assert!(!has_token(b"closed", b"close"));
    }
}
