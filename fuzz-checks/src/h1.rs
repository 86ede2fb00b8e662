//! The router's HTTP/1.1 request head parser and chunked body scanner.

use std::sync::OnceLock;

use kiln_router::fuzzing::{Body, BodyFraming, ChunkedBody, HeadDecision, RequestHeads};
use kiln_router::{RevisionSpec, Router, ServiceSpec};

/// Largest body the head parser accepts (the router's default is larger; a small one lets
/// the fuzzer reach the 413 path).
const MAX_BODY: u64 = 1 << 20;

/// A parser over a table with one service, `mlp`, split 90/10 between a revision with an
/// endpoint (tag `prev`) and one without (tag `latest`), under the domain `example.com`.
fn heads() -> &'static RequestHeads {
    static HEADS: OnceLock<RequestHeads> = OnceLock::new();
    HEADS.get_or_init(|| {
        let router = Router::builder().seed(1).build().expect("a router builds");
        let table = router.table();
        table
            .upsert_service(
                ServiceSpec::new("mlp")
                    .revision(
                        RevisionSpec::new("mlp-predictor-00001", 90)
                            .tag("prev")
                            .endpoints(["127.0.0.1:9".parse().expect("an address")]),
                    )
                    .revision(RevisionSpec::new("mlp-predictor-00002", 10).tag("latest")),
            )
            .expect("the table takes the service");
        RequestHeads::new(table, "example.com", MAX_BODY)
    })
}

/// What must survive the trip upstream of a complete head.
#[derive(Debug, PartialEq, Eq)]
struct Parts {
    /// Bytes of the head.
    len: usize,
    method: String,
    target: String,
    /// `content-length` and `transfer-encoding` fields, in order, names lower-cased.
    framing: Vec<(String, Vec<u8>)>,
}

/// The parts of a complete head.
fn parts(head: &[u8]) -> Option<Parts> {
    let mut fields = [httparse::EMPTY_HEADER; 100];
    let mut request = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(len) = request.parse(head).ok()? else {
        return None;
    };
    let framing = request
        .headers
        .iter()
        .filter(|f| {
            f.name.eq_ignore_ascii_case("content-length")
                || f.name.eq_ignore_ascii_case("transfer-encoding")
        })
        .map(|f| (f.name.to_ascii_lowercase(), f.value.to_vec()))
        .collect();
    Some(Parts {
        len,
        method: request.method?.to_owned(),
        target: request.path?.to_owned(),
        framing,
    })
}

/// Bytes at the start of a client connection. A head the router answers or forwards is
/// `Partial` on any shorter prefix; a forwarded head goes upstream as a complete HTTP/1.1
/// head with the same method, target and framing fields.
pub fn request_head(data: &[u8]) {
    let heads = heads();
    let decision = heads.decide(data);
    let (head_len, framing) = match &decision {
        HeadDecision::Answer {
            head_len, framing, ..
        }
        | HeadDecision::Forward {
            head_len, framing, ..
        } => (*head_len, *framing),
        HeadDecision::Partial | HeadDecision::Handover | HeadDecision::Malformed(_) => return,
    };
    assert!(head_len <= data.len(), "a head longer than the bytes read");
    for cut in [0, head_len / 2, head_len.saturating_sub(1)] {
        if cut < head_len {
            assert_eq!(
                heads.decide(&data[..cut]),
                HeadDecision::Partial,
                "the first {cut} bytes of a {head_len}-byte head are not partial"
            );
        }
    }
    let HeadDecision::Forward { upstream_head, .. } = decision else {
        return;
    };
    if let BodyFraming::Length(length) = framing {
        assert!(length <= MAX_BODY, "a forwarded body over the limit");
    }
    let client = parts(&data[..head_len]).expect("the client head parses");
    let Some(upstream) = parts(&upstream_head) else {
        panic!(
            "the upstream head is not a complete HTTP/1.1 head: {:?}",
            String::from_utf8_lossy(&upstream_head)
        );
    };
    assert_eq!(
        upstream.len,
        upstream_head.len(),
        "bytes after the upstream head"
    );
    assert_eq!(
        (&upstream.method, &upstream.target),
        (&client.method, &client.target),
        "request line changed"
    );
    assert_eq!(
        upstream.framing, client.framing,
        "framing fields changed on the way upstream"
    );
}

/// A chunked body: the first byte picks where the rest is cut into pieces. Fed in pieces or
/// whole, the scanner takes the same bytes, ends at the same place and counts the same data.
pub fn chunked(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let mut whole = ChunkedBody::default();
    let whole_result = whole.scan(body);
    if let Ok(taken) = whole_result {
        assert!(taken <= body.len(), "took more bytes than given");
        assert!(whole.data_bytes() <= taken as u64, "more data than bytes");
    }

    let mut pieces = ChunkedBody::default();
    let mut cursor = Body::new(BodyFraming::Chunked);
    let (mut at, mut taken, mut n) = (0usize, 0usize, 0usize);
    let mut pieces_result = Ok(0);
    while at < body.len() && !pieces.is_done() {
        let size = 1 + (usize::from(seed).wrapping_mul(n + 7) % 13);
        let piece = &body[at..(at + size).min(body.len())];
        let from_scanner = pieces.scan(piece);
        let from_cursor = cursor.take(piece);
        assert_eq!(
            from_scanner, from_cursor,
            "the cursor and the scanner disagree"
        );
        match from_scanner {
            Ok(k) => {
                taken += k;
                pieces_result = Ok(taken);
            }
            Err(e) => {
                pieces_result = Err(e);
                break;
            }
        }
        at += piece.len();
        n += 1;
    }
    assert_eq!(pieces_result, whole_result, "pieces and whole disagree");
    assert_eq!(
        pieces.is_done(),
        whole.is_done(),
        "pieces and whole end apart"
    );
    assert_eq!(cursor.is_done(), whole.is_done());
    if whole_result.is_ok() {
        assert_eq!(
            pieces.data_bytes(),
            whole.data_bytes(),
            "data counted apart"
        );
        assert_eq!(cursor.chunked_data_bytes(), whole.data_bytes());
    }
}
