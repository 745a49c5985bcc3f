//! Bodies on their way through the proxy: the client's request body to the upstream
//! (counted against the size limit), and the upstream's response body to the client
//! (with the idle timeout; an HTTP/1.1 body gives its connection back to its pool at
//! its end itself).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::cache::Fill;
use crate::h1;

/// A response body from the proxy: the upstream's, streamed, or a short text of the
/// proxy's own (an error page).
pub struct Body(Kind);

enum Kind {
    Full(Option<Bytes>),
    Upstream(Box<Streaming>),
    /// A response being stored, read as it arrives (collapsed requests).
    Shared {
        pieces: tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, ()>>,
        /// Bytes still to come.
        left: u64,
    },
}

/// An upstream's response body, by the protocol that carries it.
pub(crate) enum Incoming {
    H1(h1::Body),
    H2(hyper::body::Incoming),
}

impl Incoming {
    /// The upstream's connection after a `101` (HTTP/1.1 only).
    pub(crate) fn upgrade(self) -> Option<h1::Upgraded> {
        match self {
            Incoming::H1(b) => b.upgrade(),
            Incoming::H2(_) => None,
        }
    }
}

impl http_body::Body for Incoming {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Incoming::H1(b) => Pin::new(b).poll_frame(cx),
            Incoming::H2(b) => Pin::new(b).poll_frame(cx).map_err(io::Error::other),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Incoming::H1(b) => b.is_end_stream(),
            Incoming::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Incoming::H1(b) => b.size_hint(),
            Incoming::H2(b) => b.size_hint(),
        }
    }
}

struct Streaming {
    incoming: Incoming,
    /// Longest wait for the next piece of the body.
    idle: Duration,
    /// Made on the first wait (a small body that arrives with its head needs none),
    /// and armed from the start of each wait.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// The copy going into the cache, until the body ends whole. Boxed: most
    /// bodies are not stored, and every one is allocated with room for this.
    fill: Option<Box<Fill>>,
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body(Kind::Full(None))
    }

    /// A body of the proxy's own.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body(Kind::Full(Some(bytes.into())))
    }

    /// A shared response's body of `length` bytes, from its pieces.
    pub(crate) fn shared(
        pieces: tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, ()>>,
        length: u64,
    ) -> Body {
        Body(Kind::Shared {
            pieces,
            left: length,
        })
    }

    /// Reads this body to its end (or its first error), dropping what it reads:
    /// what a task does with an upstream body being stored for others.
    pub(crate) async fn drain(mut self) {
        while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut self).await {}
    }

    /// The upstream's body; with `fill`, it is also stored once it has arrived
    /// whole.
    pub(crate) fn upstream(incoming: Incoming, idle: Duration, fill: Option<Fill>) -> Body {
        let mut s = Streaming {
            incoming,
            idle,
            timer: None,
            armed: false,
            fill: fill.map(Box::new),
        };
        if http_body::Body::is_end_stream(&s.incoming) {
            // No body (HEAD, 204, 304, Content-Length: 0): nothing more to wait for.
            s.release();
        }
        Body(Kind::Upstream(Box::new(s)))
    }
}

impl Streaming {
    /// The body has ended whole: the copy is stored.
    fn release(&mut self) {
        if let Some(fill) = self.fill.take() {
            fill.finish();
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let s = match &mut self.get_mut().0 {
            Kind::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(s) => s,
            Kind::Shared { pieces, left } => {
                return match ready!(pieces.poll_recv(cx)) {
                    Some(Ok(data)) => {
                        *left = left.saturating_sub(data.len() as u64);
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    None if *left == 0 => Poll::Ready(None),
                    _ => Poll::Ready(Some(Err(io::Error::other(
                        "upstream body: cut short (collapsed request)",
                    )))),
                }
            }
        };
        match Pin::new(&mut s.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                s.armed = false;
                if let (Some(fill), Some(data)) = (&mut s.fill, frame.data_ref()) {
                    if !fill.take(data) {
                        s.fill = None;
                    }
                }
                if http_body::Body::is_end_stream(&s.incoming) {
                    s.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // Nothing of the body is stored (and its connection is closed).
                s.fill = None;
                Poll::Ready(Some(Err(io::Error::other(format!("upstream body: {e}")))))
            }
            Poll::Ready(None) => {
                s.release();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !s.armed {
                    let deadline = Instant::now() + s.idle;
                    match &mut s.timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => s.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    s.armed = true;
                }
                if let Some(timer) = &mut s.timer {
                    ready!(timer.as_mut().poll(cx));
                }
                // The connection goes with the body, closed, when it is dropped.
                s.fill = None;
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("upstream body: nothing for {:?}", s.idle),
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(s) => s.incoming.is_end_stream(),
            Kind::Shared { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(s) => s.incoming.size_hint(),
            Kind::Shared { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

/// The client's request body on its way upstream, failing once more than `max`
/// bytes have come (and noting it in `over`, for the 413).
pub(crate) struct Limited<B> {
    inner: B,
    left: u64,
    over: Arc<AtomicBool>,
}

impl<B> Limited<B> {
    pub(crate) fn new(inner: B, max: u64, over: Arc<AtomicBool>) -> Self {
        Limited {
            inner,
            left: max,
            over,
        }
    }
}

impl<B> http_body::Body for Limited<B>
where
    B: http_body::Body<Data = Bytes, Error = io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            let n = f.data_ref().map_or(0, |d| d.len() as u64);
            if n > this.left {
                this.over.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(io::Error::other("request body over the limit"))));
            }
            this.left -= n;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
