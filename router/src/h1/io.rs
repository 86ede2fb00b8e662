//! The client's socket with its read buffer (and noticing a client that goes away), writing
//! several byte ranges in one system call, and handing a connection to another server with
//! the bytes already read.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf as TokioReadBuf};
use tokio::net::TcpStream;

use crate::h1::buffer::ReadBuf;

/// Read buffer of a client connection at rest: room for a typical inference request head and
/// a small body. A held request keeps this, so it is small; a larger head grows it.
pub(crate) const CLIENT_BUFFER_BYTES: usize = 1024;

/// The largest request head accepted.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A client connection.
pub(crate) struct Client {
    /// The socket.
    pub(crate) stream: TcpStream,
    /// Bytes received and not yet used.
    pub(crate) buf: ReadBuf,
}

impl Client {
    /// A fresh connection.
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: ReadBuf::with_capacity(CLIENT_BUFFER_BYTES),
        }
    }

    /// Resolves when the client closes its side or the connection fails. Bytes it sends
    /// meanwhile (the rest of a body, a pipelined request) are kept in the buffer as long as
    /// it has room; once it is full, this waits for ever (the close shows up later).
    pub(crate) async fn closed(&mut self) {
        let room = self.buf.capacity();
        loop {
            match self.buf.read_from(&mut self.stream, room).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                    std::future::pending::<()>().await;
                }
                Err(_) => return,
            }
        }
    }
}

/// Writes all of `parts` in order, in one `writev` when the socket takes them all.
pub(crate) async fn write_all<const N: usize>(
    stream: &mut TcpStream,
    mut parts: [&[u8]; N],
) -> io::Result<()> {
    while parts.iter().any(|part| !part.is_empty()) {
        let slices: [IoSlice<'_>; N] = std::array::from_fn(|i| IoSlice::new(parts[i]));
        let mut n = stream.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        for part in &mut parts {
            let taken = n.min(part.len());
            *part = &part[taken..];
            n -= taken;
        }
    }
    Ok(())
}

/// A connection handed to another server: the bytes already read from it come first.
pub(crate) struct Rewind {
    prefix: Vec<u8>,
    read: usize,
    stream: TcpStream,
}

impl Rewind {
    /// `stream`, with `prefix` read back first.
    pub(crate) fn new(prefix: Vec<u8>, stream: TcpStream) -> Self {
        Self {
            prefix,
            read: 0,
            stream,
        }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut TokioReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
