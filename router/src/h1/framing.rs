//! How an HTTP/1.1 message body is delimited (RFC 9112 §6), and a scanner that follows a
//! chunked body through its raw bytes without changing them, to find where it ends.

/// The delimitation of one message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
}

/// A chunked body that is not well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub(crate) struct MalformedChunks;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// Spaces or tabs after the size, before a `;` extension.
    SizeSpace,
    /// A chunk extension, up to the end of the size line.
    Extension,
    /// The LF ending a size line.
    SizeLf,
    /// Chunk data.
    Data,
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF of the final empty line.
    EndLf,
    /// The body has ended.
    Done,
}

/// Follows a chunked body: fed its bytes in order, it says how many belong to the body and
/// when the body has ended, counting the data bytes on the way.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedScanner {
    state: State,
    size: u64,
    digits: u32,
    data_bytes: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            data_bytes: 0,
        }
    }
}

impl ChunkedScanner {
    /// Whether the whole body, trailers included, has been seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Chunk data bytes seen so far (the body's decoded length).
    pub(crate) fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Reads `bytes`, the next bytes of the body, and returns how many of them belong to it:
    /// all of them until the body ends, then none.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Result<usize, MalformedChunks> {
        let mut i = 0;
        while i < bytes.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                i += take;
                self.size -= take as u64;
                self.data_bytes += take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = bytes[i];
            i += 1;
            // RFC 9112 §7.1: size and data lines end with CRLF, and only `;` (after optional
            // whitespace) may follow a size. Anything looser is refused rather than passed
            // on to an upstream that might read the framing differently.
            self.state = match (self.state, byte) {
                (State::Size, b) if b.is_ascii_hexdigit() => {
                    let digit = (b as char).to_digit(16).unwrap_or(0);
                    if self.digits >= 15 {
                        return Err(MalformedChunks);
                    }
                    self.digits += 1;
                    self.size = self.size * 16 + u64::from(digit);
                    State::Size
                }
                (State::Size, b' ' | b'\t') if self.digits > 0 => State::SizeSpace,
                (State::Size, b';') if self.digits > 0 => State::Extension,
                (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
                (State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
                (State::SizeSpace, b';') => State::Extension,
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension, b) if b != b'\n' => State::Extension,
                (State::SizeLf, b'\n') => self.size_line_ended(),
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => {
                    self.digits = 0;
                    State::Size
                }
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::TrailerStart, b'\n') | (State::EndLf, b'\n') => State::Done,
                (State::TrailerStart, _) | (State::Trailer, _) if byte != b'\n' => State::Trailer,
                (State::Trailer, b'\n') => State::TrailerStart,
                _ => return Err(MalformedChunks),
            };
        }
        Ok(i)
    }

    fn size_line_ended(&mut self) -> State {
        if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data
        }
    }
}

/// Follows one body of known framing through the bytes received for it.
#[derive(Debug, Clone)]
pub(crate) struct BodyCursor {
    framing: Framing,
    /// Bytes still to come for a body of known length.
    left: u64,
    chunks: ChunkedScanner,
}

impl BodyCursor {
    /// At the start of a body framed as `framing`.
    pub(crate) fn new(framing: Framing) -> Self {
        Self {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunks: ChunkedScanner::default(),
        }
    }

    /// How many of `bytes`, the next ones received, belong to the body.
    pub(crate) fn take(&mut self, bytes: &[u8]) -> Result<usize, MalformedChunks> {
        match self.framing {
            Framing::Chunked => self.chunks.scan(bytes),
            Framing::UntilClose => Ok(bytes.len()),
            Framing::Empty | Framing::Length(_) => {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= n as u64;
                Ok(n)
            }
        }
    }

    /// Whether the body has ended (a body until close never ends this way).
    pub(crate) fn is_done(&self) -> bool {
        match self.framing {
            Framing::Chunked => self.chunks.is_done(),
            Framing::UntilClose => false,
            Framing::Empty | Framing::Length(_) => self.left == 0,
        }
    }

    /// The most bytes the body can still have (unbounded as `usize::MAX`).
    pub(crate) fn most_left(&self) -> usize {
        match self.framing {
            Framing::Empty | Framing::Length(_) => usize::try_from(self.left).unwrap_or(usize::MAX),
            Framing::Chunked | Framing::UntilClose => usize::MAX,
        }
    }

    /// Decoded bytes of a chunked body seen so far (0 for other framings, whose length is
    /// known from the head).
    pub(crate) fn chunked_data_bytes(&self) -> u64 {
        self.chunks.data_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> (Result<usize, MalformedChunks>, ChunkedScanner) {
        let mut scanner = ChunkedScanner::default();
        let mut total = 0;
        for piece in pieces {
            match scanner.scan(piece) {
                Ok(n) => total += n,
                Err(e) => return (Err(e), scanner),
            }
        }
        (Ok(total), scanner)
    }

    #[test]
    fn a_body_in_one_piece_ends_at_the_last_chunk_and_leaves_what_follows() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (consumed, scanner) = scan_all(&[body]);
        assert_eq!(consumed, Ok(body.len() - b"GET / HTTP/1.1\r\n".len()));
        assert!(scanner.is_done());
        assert_eq!(scanner.data_bytes(), 11);
    }

    #[test]
    fn a_body_split_at_every_byte_is_followed_the_same() {
        let body: &[u8] = b"A\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        let pieces: Vec<&[u8]> = body.chunks(1).collect();
        let (consumed, scanner) = scan_all(&pieces);
        assert_eq!(consumed, Ok(body.len()));
        assert!(scanner.is_done());
        assert_eq!(scanner.data_bytes(), 10);
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (consumed, scanner) = scan_all(&[b"5\r\nhel"]);
        assert_eq!(consumed, Ok(6));
        assert!(!scanner.is_done());
    }

    #[test]
    fn a_cursor_takes_exactly_the_body_and_leaves_the_next_message() {
        let mut cursor = BodyCursor::new(Framing::Length(5));
        assert_eq!(cursor.take(b"hel"), Ok(3));
        assert!(!cursor.is_done());
        assert_eq!(cursor.most_left(), 2);
        assert_eq!(cursor.take(b"loGET"), Ok(2));
        assert!(cursor.is_done());
        let mut cursor = BodyCursor::new(Framing::Chunked);
        assert_eq!(cursor.take(b"2\r\nhi\r\n0\r\n\r\nGET"), Ok(12));
        assert!(cursor.is_done());
        assert_eq!(cursor.chunked_data_bytes(), 2);
        assert!(BodyCursor::new(Framing::Empty).is_done());
        assert!(!BodyCursor::new(Framing::UntilClose).is_done());
    }

    #[test]
    fn malformed_sizes_and_missing_line_ends_are_refused() {
        assert_eq!(scan_all(&[b"zz\r\n"]).0, Err(MalformedChunks));
        assert_eq!(scan_all(&[b"\r\n"]).0, Err(MalformedChunks));
        assert_eq!(scan_all(&[b"3\r\nabcX"]).0, Err(MalformedChunks));
        assert_eq!(scan_all(&[b"ffffffffffffffff\r\n"]).0, Err(MalformedChunks));
        // Bare LF line ends and anything but an extension after the size.
        assert_eq!(scan_all(&[b"5\nhello\r\n"]).0, Err(MalformedChunks));
        assert_eq!(scan_all(&[b"5\r\nhello\n0\r\n"]).0, Err(MalformedChunks));
        assert_eq!(scan_all(&[b"5 junk\r\nhello\r\n"]).0, Err(MalformedChunks));
        assert_eq!(scan_all(&[b"5;ext\nhello\r\n"]).0, Err(MalformedChunks));
        // Whitespace before an extension is allowed.
        let (consumed, scanner) = scan_all(&[b"5 \t;name=value\r\nhello\r\n0\r\n\r\n"]);
        assert_eq!(consumed, Ok(28));
        assert!(scanner.is_done());
    }
}
