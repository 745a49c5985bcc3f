//! The socket as HTTP/2 sees it: reads pass through the flood meter, writes are
//! corked.
//!
//! The connection writes what its codec encoded for every stream; the cork holds it
//! until the connection has nothing more to do for now ([`Cork::poll_drain`], called
//! after every turn of the connection): many streams' frames leave in one `write(2)`. Writes larger than the
//! cork go straight to the socket, and a full socket pushes back as usual. Both
//! halves report to the connection's [`Watchdog`].

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::h2::flood::Meter;

use crate::watchdog::Watchdog;

/// Bytes held back before a write goes to the socket regardless.
/// (After every drain the half is flushed too: see `Out::poll_drain`.)
const CORK_LIMIT: usize = 64 * 1024;

/// The write half of a connection and the bytes waiting for it.
pub(crate) struct Cork<W> {
    out: Mutex<Out<W>>,
    dog: Arc<Watchdog>,
}

struct Out<W> {
    half: W,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> Cork<W> {
    pub(crate) fn new(half: W, dog: Arc<Watchdog>) -> Arc<Self> {
        Arc::new(Cork {
            out: Mutex::new(Out {
                half,
                buf: Vec::new(),
            }),
            dog,
        })
    }

    /// Writes out everything held back; ready when nothing is left.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().poll_drain(cx, &self.dog)
    }

    fn lock(&self) -> MutexGuard<'_, Out<W>> {
        // Only the connection's own task takes this lock; it is never contended.
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<W: AsyncWrite + Unpin> Out<W> {
    fn poll_drain(&mut self, cx: &mut Context<'_>, dog: &Watchdog) -> Poll<io::Result<()>> {
        let mut sent = 0;
        while sent < self.buf.len() {
            match Pin::new(&mut self.half).poll_write(cx, &self.buf[sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.buf.drain(..sent);
                    dog.on_write(true);
                    return Poll::Pending;
                }
            }
        }
        // An idle connection holds no buffer.
        self.buf = Vec::new();
        // A TLS half may have accepted the bytes and still hold their records (its
        // socket was full): the flush writes them, or registers for when it can.
        match Pin::new(&mut self.half).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                dog.on_write(false);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                dog.on_write(true);
                Poll::Pending
            }
        }
    }

    /// Room for `len` more bytes: drains first when they would not fit.
    fn poll_room(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
        dog: &Watchdog,
    ) -> Poll<io::Result<bool>> {
        if self.buf.len() + len <= CORK_LIMIT {
            return Poll::Ready(Ok(true));
        }
        ready!(self.poll_drain(cx, dog))?;
        Poll::Ready(Ok(len <= CORK_LIMIT))
    }
}

/// What h2 reads from and writes to.
pub(crate) struct Socket<R, W> {
    /// Bytes read before the protocol was known (to tell HTTP/1.1 from HTTP/2),
    /// returned before anything else.
    prefix: Bytes,
    read: R,
    cork: Arc<Cork<W>>,
    /// HTTP/2 only: follows the client's frames to catch floods.
    meter: Option<Meter>,
}

impl<R, W> Socket<R, W> {
    pub(crate) fn new(read: R, cork: Arc<Cork<W>>) -> Self {
        Socket {
            prefix: Bytes::new(),
            read,
            cork,
            meter: None,
        }
    }

    /// The socket, metering the client's HTTP/2 frames: on a flood, the watchdog is
    /// told and nothing more is read.
    pub(crate) fn with_meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The socket, with `prefix` read first.
    pub(crate) fn with_prefix(mut self, prefix: Bytes) -> Self {
        if !prefix.is_empty() {
            self.cork.dog.on_read();
        }
        self.prefix = prefix;
        self
    }
}

impl<R: AsyncRead + Unpin, W> AsyncRead for Socket<R, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.cork.dog.is_abused() {
            // Cut off: the connection's driver was woken and closes it.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
        } else {
            ready!(Pin::new(&mut this.read).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                this.cork.dog.on_read();
            }
        }
        if let Some(meter) = &mut this.meter {
            if let Some(flood) = meter.feed(&buf.filled()[before..], Instant::now()) {
                this.cork.dog.abuse(flood.describe());
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Socket<R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let cork = &self.cork;
        let mut out = cork.lock();
        if ready!(out.poll_room(cx, buf.len(), &cork.dog))? {
            out.buf.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        let res = Pin::new(&mut out.half).poll_write(cx, buf);
        cork.dog.on_write(res.is_pending());
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let cork = &self.cork;
        let mut out = cork.lock();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if ready!(out.poll_room(cx, len, &cork.dog))? {
            bufs.iter().for_each(|b| out.buf.extend_from_slice(b));
            return Poll::Ready(Ok(len));
        }
        let res = Pin::new(&mut out.half).poll_write_vectored(cx, bufs);
        cork.dog.on_write(res.is_pending());
        res
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing to write: the connection drains the cork after every poll.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let cork = &self.cork;
        let mut out = cork.lock();
        ready!(out.poll_drain(cx, &cork.dog))?;
        Pin::new(&mut out.half).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::watchdog::tests::dog;

    #[tokio::test]
    async fn small_writes_wait_for_the_drain_and_go_out_together() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (r, w) = tokio::io::split(server);
        let cork = Cork::new(w, dog());
        let mut sock = Socket::new(r, cork.clone());
        sock.write_all(b"one ").await.unwrap();
        sock.write_all(b"two").await.unwrap();
        sock.flush().await.unwrap();
        let (mut cr, _cw) = tokio::io::split(client);
        let mut got = [0u8; 7];
        let early = tokio::time::timeout(Duration::from_millis(0), cr.read(&mut got)).await;
        assert!(early.is_err(), "nothing is written before the drain");
        std::future::poll_fn(|cx| cork.poll_drain(cx))
            .await
            .unwrap();
        cr.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
    }

    #[tokio::test]
    async fn large_writes_bypass_the_cork_and_shutdown_drains() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (r, w) = tokio::io::split(server);
        let cork = Cork::new(w, dog());
        let mut sock = Socket::new(r, cork);
        let big = vec![7u8; CORK_LIMIT + 1];
        sock.write_all(b"head").await.unwrap();
        sock.write_all(&big).await.unwrap();
        sock.write_all(b"tail").await.unwrap();
        sock.shutdown().await.unwrap();
        let (mut cr, _cw) = tokio::io::split(client);
        let mut all = Vec::new();
        cr.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), 4 + big.len() + 4);
        assert!(all.starts_with(b"head") && all.ends_with(b"tail"));
    }
}
