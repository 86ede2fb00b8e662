//! Keep-alive HTTP/1.1 connections to one endpoint, driven by the request that uses them
//! (no connection task of their own): taken from the pool for one exchange, put back when
//! the response has ended cleanly.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::h1::buffer::ReadBuf;
use crate::revision::MAX_IDLE_CONNECTIONS;

/// The starting size of an upstream connection's read buffer, which is also the copy buffer
/// for request bodies on their way there. Reads that fill it grow it up to
/// [`MAX_BUFFER_BYTES`], so a connection carrying large bodies moves each in a read or two.
const BUFFER_BYTES: usize = 16 * 1024;

/// The most an upstream connection's buffer grows to.
pub(crate) const MAX_BUFFER_BYTES: usize = 64 * 1024;

/// One connection to an endpoint.
pub(crate) struct UpstreamConn {
    /// The socket.
    pub(crate) stream: TcpStream,
    /// Bytes read from it.
    pub(crate) buf: ReadBuf,
    /// Whether it served an earlier request (the upstream may have closed it since).
    pub(crate) reused: bool,
}

impl UpstreamConn {
    /// A new connection to `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            buf: ReadBuf::with_capacity(BUFFER_BYTES),
            reused: false,
        })
    }

    /// Whether the idle connection still looks open: nothing has arrived on it (an upstream
    /// sends nothing between responses, so any readiness means a close or a stray byte).
    /// Costs a system call only when the socket reported readiness.
    fn is_open(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// Idle connections to one endpoint.
#[derive(Default)]
pub(crate) struct UpstreamPool {
    idle: Mutex<Vec<UpstreamConn>>,
}

impl UpstreamPool {
    /// An idle connection that still looks open, if any.
    pub(crate) fn take(&self) -> Option<UpstreamConn> {
        loop {
            let conn = self.idle.lock().pop()?;
            if conn.is_open() {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn` for a later request (its exchange ended cleanly).
    pub(crate) fn put(&self, mut conn: UpstreamConn) {
        debug_assert!(conn.buf.is_empty());
        conn.reused = true;
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }
}
