//! Writes on a connection from an HTTP/2 client, gathered per scheduler turn. hyper runs
//! each stream of an HTTP/2 connection as a task of its own, and the connection task
//! flushes whenever it runs: with many streams in flight, each answer's frames leave in a
//! system call of their own. [`Coalesce`] takes the connection's writes into a buffer and
//! puts a flush off by one turn of the scheduler (the task wakes itself and yields), so the
//! frames the other stream tasks queue in the meantime go out in the same `write` (at
//! concurrency 64, 8 % less router CPU per gRPC call; benches/RESULTS-router.md). Only the
//! side facing clients uses it: on the upstream side the same delay lengthened every call's
//! round trip more than it saved.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes gathered before a write goes out regardless.
const HIGH_WATER: usize = 64 * 1024;

/// An I/O object whose writes are gathered and flushed one scheduler turn late.
pub(crate) struct Coalesce<T> {
    inner: T,
    pending: Vec<u8>,
    /// Bytes of `pending` already written.
    written: usize,
    /// Whether this flush has already yielded once.
    yielded: bool,
}

impl<T> Coalesce<T> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            yielded: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes out what is gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= HIGH_WATER {
            std::task::ready!(this.poll_drain(cx))?;
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= HIGH_WATER {
            std::task::ready!(this.poll_drain(cx))?;
        }
        let mut n = 0;
        for buf in bufs {
            this.pending.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if !this.yielded {
            // Let the tasks woken meanwhile queue their frames first.
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        std::task::ready!(this.poll_drain(cx))?;
        this.yielded = false;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn writes_wait_for_the_second_flush_and_leave_together() {
        let mut io = Coalesce::new(Vec::<u8>::new());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut io = Pin::new(&mut io);
        assert!(matches!(
            io.as_mut().poll_write(&mut cx, b"head"),
            Poll::Ready(Ok(4))
        ));
        let slices = [IoSlice::new(b"-data"), IoSlice::new(b"-trailers")];
        assert!(matches!(
            io.as_mut().poll_write_vectored(&mut cx, &slices),
            Poll::Ready(Ok(14))
        ));
        // The first flush yields; nothing is written yet.
        assert!(io.as_mut().poll_flush(&mut cx).is_pending());
        assert!(io.inner.is_empty());
        assert!(matches!(
            io.as_mut().poll_write(&mut cx, b"-more"),
            Poll::Ready(Ok(5))
        ));
        // The second writes everything at once.
        assert!(matches!(
            io.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.inner, b"head-data-trailers-more");
        // With nothing gathered, a flush goes straight through.
        assert!(matches!(
            io.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }
}
