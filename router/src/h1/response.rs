//! An upstream's response head: parsed, it gives the status, how the body ends, whether the
//! connection can be reused, and the head the client receives (hop-by-hop fields removed,
//! `x-kiln-revision` added).

use http::StatusCode;

use crate::h1::date;
use crate::h1::framing::Framing;
use crate::h1::headers::{HeaderList, has_token, is_hop_by_hop};
use crate::proxy::REVISION_HEADER;

/// Most header fields in one response head.
const MAX_HEADERS: usize = 100;

/// A parsed response head.
pub(crate) struct ResponseHead {
    /// Bytes of the head.
    pub(crate) len: usize,
    /// The status.
    pub(crate) status: StatusCode,
    /// How the body is delimited.
    pub(crate) framing: Framing,
    /// Whether the upstream keeps the connection open after this response.
    pub(crate) reusable: bool,
    /// The head for the client.
    pub(crate) client_head: Vec<u8>,
}

/// What the bytes read so far hold.
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An interim (1xx) response of this many bytes, to skip.
    Interim(usize),
    /// The final response head.
    Head(ResponseHead),
    /// Not a valid response.
    Malformed(String),
}

/// What the client side needs to build its head.
pub(crate) struct ClientSide<'a> {
    /// The request was HEAD (no body follows whatever the fields say).
    pub(crate) is_head: bool,
    /// The client keeps its connection open.
    pub(crate) keep_alive: bool,
    /// The value of `x-kiln-revision`.
    pub(crate) revision: &'a [u8],
}

/// Parses the response head at the start of `bytes`.
pub(crate) fn parse(bytes: &[u8], client: &ClientSide<'_>) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(error) => return Parsed::Malformed(format!("malformed response head: {error}")),
    };
    let (Some(version), Some(code)) = (parsed.version, parsed.code) else {
        return Parsed::Malformed("response head without status".into());
    };
    let Ok(status) = StatusCode::from_u16(code) else {
        return Parsed::Malformed(format!("invalid status {code}"));
    };
    if status.is_informational() {
        return if status == StatusCode::SWITCHING_PROTOCOLS {
            Parsed::Malformed("unexpected 101 Switching Protocols".into())
        } else {
            Parsed::Interim(len)
        };
    }
    let headers = HeaderList(parsed.headers);
    let framing = match response_framing(&headers, status, client.is_head) {
        Ok(framing) => framing,
        Err(message) => return Parsed::Malformed(message),
    };
    let connection = headers.joined("connection");
    let keeps_open = if version == 1 {
        !has_token(&connection, b"close")
    } else {
        has_token(&connection, b"keep-alive")
    };
    let close_client = !client.keep_alive || framing == Framing::UntilClose;
    Parsed::Head(ResponseHead {
        len,
        status,
        framing,
        reusable: keeps_open && framing != Framing::UntilClose,
        client_head: client_head(
            &parsed,
            &headers,
            framing,
            &connection,
            client.revision,
            close_client,
        ),
    })
}

fn response_framing(
    headers: &HeaderList<'_, '_>,
    status: StatusCode,
    is_head: bool,
) -> Result<Framing, String> {
    if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Empty);
    }
    if let Some(last) = headers.values("transfer-encoding").last() {
        let coding = last.rsplit(|&b| b == b',').next().unwrap_or_default();
        return Ok(if coding.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let length = headers
        .content_length()
        .map_err(|e| format!("{e} in the response"))?;
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

fn client_head(
    parsed: &httparse::Response<'_, '_>,
    headers: &HeaderList<'_, '_>,
    framing: Framing,
    connection: &[u8],
    revision: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parsed.code.unwrap_or(200).to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parsed.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    // With chunked framing a Content-Length is wrong (RFC 9112 §6.3): it is not passed on.
    let chunked = framing == Framing::Chunked;
    let mut dated = false;
    for field in headers.0.iter() {
        let name = field.name;
        if is_hop_by_hop(name, connection)
            || name.eq_ignore_ascii_case(REVISION_HEADER)
            || (chunked && name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        dated |= name.eq_ignore_ascii_case("date");
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
    if !dated {
        date::append_header(&mut out);
    }
    out.extend_from_slice(REVISION_HEADER.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(revision);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientSide<'static> {
        ClientSide {
            is_head: false,
            keep_alive: true,
            revision: b"mlp-1",
        }
    }

    fn head(bytes: &[u8], client: &ClientSide<'_>) -> ResponseHead {
        match parse(bytes, client) {
            Parsed::Head(head) => head,
            _ => panic!("not a head"),
        }
    }

    #[test]
    fn the_client_head_drops_hop_by_hop_fields_and_names_the_revision() {
        let bytes = b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nx-hop: 1\r\nx-end: 2\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok";
        let head = head(bytes, &client());
        assert_eq!(head.len, bytes.len() - 2);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.reusable);
        let text = String::from_utf8(head.client_head).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nx-end: 2\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\nx-kiln-revision: mlp-1\r\n\r\n"
        );
    }

    #[test]
    fn a_response_without_date_gets_one_and_chunked_drops_content_length() {
        let bytes = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n";
        let head = head(bytes, &client());
        assert_eq!(head.framing, Framing::Chunked);
        let text = String::from_utf8(head.client_head)
            .unwrap()
            .to_ascii_lowercase();
        assert!(text.contains("\r\ndate: "), "{text}");
        assert!(!text.contains("content-length"), "{text}");
        assert!(text.contains("transfer-encoding: chunked"), "{text}");
    }

    #[test]
    fn framing_follows_the_method_status_and_fields() {
        let framing = |bytes: &[u8], is_head| {
            let client = ClientSide {
                is_head,
                ..client()
            };
            head(bytes, &client).framing
        };
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true),
            Framing::Empty
        );
        assert_eq!(
            framing(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Framing::Empty
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Framing::UntilClose
        );
    }

    #[test]
    fn a_body_until_close_closes_the_client_connection_too() {
        let head = head(b"HTTP/1.1 200 OK\r\n\r\n", &client());
        assert!(!head.reusable);
        assert!(
            String::from_utf8(head.client_head)
                .unwrap()
                .contains("connection: close")
        );
    }

    #[test]
    fn interim_responses_are_skipped_and_garbage_is_refused() {
        assert!(matches!(
            parse(b"HTTP/1.1 100 Continue\r\n\r\n", &client()),
            Parsed::Interim(25)
        ));
        assert!(matches!(parse(b"HTTP/1.1 200", &client()), Parsed::Partial));
        assert!(matches!(
            parse(b"garbage\r\n\r\n", &client()),
            Parsed::Malformed(_)
        ));
    }
}
