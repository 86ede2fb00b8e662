//! A read buffer for one socket: bytes received and not yet used, with room to read more.
//! It starts small (a held request should cost little memory) and grows only for a message
//! head that does not fit.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Received bytes `data[start..end]`; reads fill `data[end..]`.
pub(crate) struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
}

impl ReadBuf {
    /// An empty buffer of `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity],
            start: 0,
            end: 0,
            initial: capacity,
        }
    }

    /// The received bytes not yet used.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Whether no unused bytes are left.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks the first `n` unused bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Takes the unused bytes out, leaving the buffer empty.
    pub(crate) fn take_filled(&mut self) -> Vec<u8> {
        let bytes = self.filled().to_vec();
        self.consume(bytes.len());
        bytes
    }

    /// Puts `bytes` back in front of the unused ones.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut joined = Vec::with_capacity(bytes.len() + self.filled().len());
        joined.extend_from_slice(bytes);
        joined.extend_from_slice(self.filled());
        let end = joined.len();
        if joined.len() < self.data.len() {
            joined.resize(self.data.len(), 0);
        }
        self.data = joined;
        self.start = 0;
        self.end = end;
    }

    /// The whole capacity (the most one read can bring).
    pub(crate) fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Room for more bytes, up to `max_capacity`: moves the unused bytes to the front, and
    /// when they fill the buffer, doubles it. `false`: it is full at `max_capacity`.
    fn make_room(&mut self, max_capacity: usize) -> bool {
        if self.end < self.data.len() {
            return true;
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return true;
        }
        if self.data.len() >= max_capacity {
            return false;
        }
        let grown = (self.data.len() * 2).clamp(self.initial.max(1), max_capacity);
        self.data.resize(grown, 0);
        true
    }

    /// Reads once from `io` into the free room (growing up to `max_capacity`); returns the
    /// bytes read, 0 at end of stream. Fails with `OutOfMemory` when the buffer is full.
    pub(crate) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        max_capacity: usize,
    ) -> io::Result<usize> {
        if !self.make_room(max_capacity) {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let n = io.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Reads at most `limit` bytes once from `io`, from the front of an empty buffer. A read
    /// that fills the whole buffer doubles it (up to `max_capacity`) for the next one, so a
    /// stream of large bodies soon moves in few reads.
    pub(crate) async fn read_fresh<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
        max_capacity: usize,
    ) -> io::Result<usize> {
        debug_assert!(self.is_empty());
        let limit = limit.min(self.data.len());
        let n = io.read(&mut self.data[..limit]).await?;
        self.start = 0;
        self.end = n;
        if n == self.data.len() && n < max_capacity {
            self.data.resize((n * 2).min(max_capacity), 0);
        }
        Ok(n)
    }

    /// Returns to the starting size once empty, if a large message grew it.
    pub(crate) fn shrink_when_empty(&mut self) {
        if self.is_empty() && self.data.len() > self.initial {
            self.data = vec![0; self.initial];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_grow_the_buffer_only_when_the_unused_bytes_fill_it() {
        let mut buf = ReadBuf::with_capacity(4);
        let mut input: &[u8] = b"abcdefghij";
        assert_eq!(buf.read_from(&mut input, 8).await.unwrap(), 4);
        assert_eq!(buf.filled(), b"abcd");
        buf.consume(2);
        // Room is made by moving "cd" to the front, not by growing.
        assert_eq!(buf.read_from(&mut input, 8).await.unwrap(), 2);
        assert_eq!(buf.filled(), b"cdef");
        assert_eq!(buf.capacity(), 4);
        assert_eq!(buf.read_from(&mut input, 8).await.unwrap(), 4);
        assert_eq!(buf.filled(), b"cdefghij");
        assert_eq!(buf.capacity(), 8);
        let full = buf.read_from(&mut input, 8).await.unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::OutOfMemory);
        buf.consume(8);
        buf.shrink_when_empty();
        assert_eq!(buf.capacity(), 4);
    }

    #[tokio::test]
    async fn a_full_fresh_read_doubles_the_buffer_for_the_next() {
        let mut buf = ReadBuf::with_capacity(4);
        let mut input: &[u8] = b"abcdefghijklmnop";
        assert_eq!(buf.read_fresh(&mut input, usize::MAX, 8).await.unwrap(), 4);
        buf.consume(4);
        assert_eq!(buf.read_fresh(&mut input, usize::MAX, 8).await.unwrap(), 8);
        buf.consume(8);
        assert_eq!(buf.capacity(), 8);
        assert_eq!(buf.read_fresh(&mut input, 2, 8).await.unwrap(), 2);
        assert_eq!(buf.filled(), b"mn");
    }

    #[test]
    fn unread_bytes_come_first() {
        let mut buf = ReadBuf::with_capacity(8);
        buf.unread(b"xy");
        buf.unread(b"ab");
        assert_eq!(buf.filled(), b"abxy");
        assert_eq!(buf.take_filled(), b"abxy");
        assert!(buf.is_empty());
    }
}
