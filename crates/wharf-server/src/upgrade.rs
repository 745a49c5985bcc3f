//! Protocol upgrades (RFC 9110 §7.8, §15.2.2), as WebSocket uses them (RFC 6455),
//! and their HTTP/2 and HTTP/3 form, extended CONNECT (RFC 8441, RFC 9220).
//!
//! For an HTTP/1.1 request with `Upgrade` and `Connection: upgrade`, the transport puts
//! an [`OnUpgrade`] in the request's extensions. A service that agrees answers 101 with
//! its own `Upgrade` and `Connection: upgrade` fields and awaits the `OnUpgrade` (in a
//! task of its own): once the 101 is written, it resolves to the connection as an
//! [`Upgraded`] stream, bytes the client sent after its request first. Any other answer
//! leaves the connection to HTTP, and the `OnUpgrade` resolves to an error.
//!
//! Over HTTP/2 and HTTP/3, a CONNECT with a `:protocol` (RFC 8441, RFC 9220) gets an
//! `OnUpgrade` too (and the protocol as a `wharf_http::conn::ConnectProtocol`): a 2xx
//! answer turns the stream into the `Upgraded` byte stream (`h2::tunnel`, and the
//! DATA frames of the request stream in `h3`).
//!
//! The connection's task (over HTTP/2, the stream's future) stays until the `Upgraded`
//! is dropped, so an upgraded connection still counts against `max_connections` and
//! graceful shutdown waits for it (within the grace period).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// Resolves to the upgraded connection once the `101` is written. (Clones share one
/// connection: request extensions must be `Clone`; the first to await it gets it.)
#[derive(Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// What the transport keeps to complete an [`OnUpgrade`].
pub(crate) struct Pending(oneshot::Sender<Upgraded>);

/// A pair for one request.
pub(crate) fn pending() -> (Pending, OnUpgrade) {
    let (tx, rx) = oneshot::channel();
    (Pending(tx), OnUpgrade(Arc::new(Mutex::new(Some(rx)))))
}

impl Pending {
    /// Hands the connection over; `false` when the service no longer waits for it.
    pub(crate) fn fulfil(self, upgraded: Upgraded) -> bool {
        self.0.send(upgraded).is_ok()
    }
}

/// The connection was not upgraded (the answer was not 101, or it failed).
#[derive(Debug)]
pub struct NotUpgraded;

impl std::fmt::Display for NotUpgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection was not upgraded")
    }
}

impl std::error::Error for NotUpgraded {}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, NotUpgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(rx) = slot.as_mut() else {
            return Poll::Ready(Err(NotUpgraded)); // a clone got it
        };
        let res = ready!(Pin::new(rx).poll(cx)).map_err(|_| NotUpgraded);
        *slot = None;
        Poll::Ready(res)
    }
}

/// An upgraded connection: reads return what the client sent after its request
/// first, then the socket's bytes; writes go to the socket (TLS included).
pub struct Upgraded {
    buffered: Bytes,
    read: Box<dyn AsyncRead + Send + Unpin>,
    write: Box<dyn AsyncWrite + Send + Unpin>,
    /// Dropped with the stream: lets the connection's task end.
    _done: oneshot::Sender<()>,
}

impl Upgraded {
    pub(crate) fn new(
        buffered: Bytes,
        read: Box<dyn AsyncRead + Send + Unpin>,
        write: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> (Self, oneshot::Receiver<()>) {
        let (done, closed) = oneshot::channel();
        let up = Upgraded {
            buffered,
            read,
            write,
            _done: done,
        };
        (up, closed)
    }
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(buf.remaining());
            let head = self.buffered.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.write.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.write).poll_flush(cx))?;
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}
