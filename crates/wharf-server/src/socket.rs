//! The socket as an HTTP/2 connection sees it: reads begin with the bytes read while
//! the protocol was sniffed and pass through the flood meter; both halves report to
//! the connection's [`Watchdog`]. (Writes need no buffering here: the codec encodes
//! everything every stream has ready into one buffer, written in one go.)

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::h2::flood::Meter;
use crate::watchdog::Watchdog;

/// What an HTTP/2 connection reads from and writes to.
pub(crate) struct Socket<R, W> {
    /// Bytes read before the protocol was known (to tell HTTP/1.1 from HTTP/2),
    /// returned before anything else.
    prefix: Bytes,
    read: R,
    write: W,
    dog: Arc<Watchdog>,
    /// Follows the client's frames to catch floods.
    meter: Option<Meter>,
}

impl<R, W> Socket<R, W> {
    pub(crate) fn new(read: R, write: W, dog: Arc<Watchdog>) -> Self {
        Socket {
            prefix: Bytes::new(),
            read,
            write,
            dog,
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
            self.dog.on_read();
        }
        self.prefix = prefix;
        self
    }
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Socket<R, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.dog.is_abused() {
            // Cut off: the connection's driver closes it.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
        } else {
            ready!(Pin::new(&mut this.read).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                this.dog.on_read();
            }
        }
        if let Some(meter) = &mut this.meter {
            if let Some(flood) = meter.feed(&buf.filled()[before..], Instant::now()) {
                this.dog.abuse(flood.describe());
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Socket<R, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.write).poll_write(cx, buf);
        self.dog.on_write(res.is_pending());
        res
    }

    /// A TLS half may have taken the bytes and still hold their records (its socket
    /// was full): the flush writes them, or registers for when it can.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.write).poll_flush(cx);
        self.dog.on_write(res.is_pending());
        res
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::watchdog::tests::dog;

    #[tokio::test]
    async fn the_prefix_comes_first_and_writes_pass_through() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(server);
        let mut sock = Socket::new(r, w, dog()).with_prefix(Bytes::from_static(b"PRI "));
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"rest").await.unwrap();
        let mut got = [0u8; 8];
        sock.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"PRI rest");
        sock.write_all(b"answer").await.unwrap();
        sock.shutdown().await.unwrap();
        let mut all = Vec::new();
        cr.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"answer");
    }
}
