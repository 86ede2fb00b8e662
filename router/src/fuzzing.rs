//! Thin wrappers over the HTTP/1.1 path's request head parser and chunked body scanner, which
//! are crate-private, for the fuzz targets (`fuzz/`) and their corpus replay test
//! (`fuzz-checks/`) only. Not part of the router's API: nothing else should call them, and
//! they may change with the code they wrap. Each wrapper calls the real function unchanged
//! and only turns its crate-private result into public types.

use std::time::Duration;

use crate::app::App;
use crate::h1::framing::{BodyCursor, ChunkedScanner, Framing};
use crate::h1::request::{self, Decision};
use crate::table::TableHandle;

/// How a request body is delimited (the router's `Framing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (never for a request).
    UntilClose,
}

impl From<Framing> for BodyFraming {
    fn from(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Self::Empty,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked,
            Framing::UntilClose => Self::UntilClose,
        }
    }
}

impl From<BodyFraming> for Framing {
    fn from(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Empty => Self::Empty,
            BodyFraming::Length(n) => Self::Length(n),
            BodyFraming::Chunked => Self::Chunked,
            BodyFraming::UntilClose => Self::UntilClose,
        }
    }
}

/// What the HTTP/1.1 path decided for a request head (the router's `Decision`, flattened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadDecision {
    /// The head is not complete yet.
    Partial,
    /// Left to the general HTTP/1.1 server.
    Handover,
    /// Answered 400, with this message.
    Malformed(String),
    /// Answered by the router itself.
    Answer {
        /// The answer's status code.
        status: u16,
        /// Bytes of the client's head.
        head_len: usize,
        /// How the client's body is delimited.
        framing: BodyFraming,
        /// Whether the connection stays open.
        keep_alive: bool,
    },
    /// Forwarded to a revision.
    Forward {
        /// Bytes of the client's head.
        head_len: usize,
        /// How the client's body is delimited.
        framing: BodyFraming,
        /// Whether the connection stays open.
        keep_alive: bool,
        /// The head sent upstream.
        upstream_head: Vec<u8>,
        /// The revision chosen.
        revision: String,
    },
}

/// The request head parser of the router's HTTP/1.1 path, over a routing table.
pub struct RequestHeads {
    app: App,
}

impl RequestHeads {
    /// A parser routing by `table`, with hosts under `domain` and bodies up to `max_body`.
    pub fn new(table: TableHandle, domain: &str, max_body: u64) -> Self {
        Self {
            app: App {
                table,
                domain_suffix: format!(".{}", domain.trim_start_matches('.')),
                max_body,
                body_read_timeout: Duration::from_secs(30),
                header_read_timeout: Duration::from_secs(30),
            },
        }
    }

    /// Reads the head at the start of `bytes` and says what the router would do with it.
    pub fn decide(&self, bytes: &[u8]) -> HeadDecision {
        match request::decide(&self.app, bytes) {
            Decision::Partial => HeadDecision::Partial,
            Decision::Handover => HeadDecision::Handover,
            Decision::Malformed(message) => HeadDecision::Malformed(message),
            Decision::Answer {
                answer, message, ..
            } => HeadDecision::Answer {
                status: answer.status.as_u16(),
                head_len: message.head_len,
                framing: message.framing.into(),
                keep_alive: message.keep_alive,
            },
            Decision::Forward(forward) => HeadDecision::Forward {
                head_len: forward.message.head_len,
                framing: forward.message.framing.into(),
                keep_alive: forward.message.keep_alive,
                revision: forward.count.revision().key.revision.clone(),
                upstream_head: forward.upstream_head,
            },
        }
    }
}

/// The chunked body scanner of the router's HTTP/1.1 path.
#[derive(Debug, Clone, Default)]
pub struct ChunkedBody(ChunkedScanner);

impl ChunkedBody {
    /// Feeds the next bytes of the body; returns how many belong to it, or the error message
    /// of a malformed body.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<usize, String> {
        self.0.scan(bytes).map_err(|e| e.to_string())
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// Chunk data bytes seen so far.
    pub fn data_bytes(&self) -> u64 {
        self.0.data_bytes()
    }
}

/// The body cursor of the router's HTTP/1.1 path (any framing).
#[derive(Debug, Clone)]
pub struct Body(BodyCursor);

impl Body {
    /// At the start of a body framed as `framing`.
    pub fn new(framing: BodyFraming) -> Self {
        Self(BodyCursor::new(framing.into()))
    }

    /// How many of `bytes`, the next ones received, belong to the body.
    pub fn take(&mut self, bytes: &[u8]) -> Result<usize, String> {
        self.0.take(bytes).map_err(|e| e.to_string())
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// Decoded bytes of a chunked body seen so far.
    pub fn chunked_data_bytes(&self) -> u64 {
        self.0.chunked_data_bytes()
    }
}
