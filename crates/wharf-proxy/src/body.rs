//! Bodies on their way through the proxy: the client's request body to the upstream
//! (counted against the size limit), and the upstream's response body to the client
//! (with the idle timeout, and the connection given back to its pool at the end).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tokio::time::{Instant, Sleep};

use crate::cache::Fill;
use crate::pool::Pool;
use crate::RequestBody;

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

struct Streaming {
    incoming: hyper::body::Incoming,
    /// The connection, until the body ends (then back to its pool) or fails.
    conn: Option<(SendRequest<RequestBody>, Arc<Pool>)>,
    /// Longest wait for the next piece of the body.
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// The copy going into the cache, until the body ends whole.
    fill: Option<Fill>,
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

    /// The upstream's body; `conn`, an HTTP/1.1 connection, goes back to its pool
    /// at the body's end.
    /// With `fill`, the body is also stored once it has arrived whole.
    pub(crate) fn upstream(
        incoming: hyper::body::Incoming,
        conn: Option<(SendRequest<RequestBody>, Arc<Pool>)>,
        idle: Duration,
        fill: Option<Fill>,
    ) -> Body {
        let mut s = Streaming {
            incoming,
            conn,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            fill,
        };
        if http_body::Body::is_end_stream(&s.incoming) {
            // No body (HEAD, 204, 304, Content-Length: 0): nothing more to wait for.
            s.release();
        }
        Body(Kind::Upstream(Box::new(s)))
    }
}

impl Streaming {
    /// The body has ended whole: the connection goes back, the copy is stored.
    fn release(&mut self) {
        if let Some((sender, pool)) = self.conn.take() {
            pool.release(sender);
        }
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
                let deadline = Instant::now() + s.idle;
                s.timer.as_mut().reset(deadline);
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
                // The connection is not reused: dropping its sender closes it; and
                // nothing of the body is stored.
                s.conn = None;
                s.fill = None;
                Poll::Ready(Some(Err(io::Error::other(format!("upstream body: {e}")))))
            }
            Poll::Ready(None) => {
                s.release();
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(s.timer.as_mut().poll(cx));
                s.conn = None;
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
