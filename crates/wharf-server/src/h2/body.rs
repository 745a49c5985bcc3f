//! Request bodies of HTTP/2 streams.
//!
//! The connection's task queues each stream's DATA as the codec hands it out
//! ([`Feed`]); the service takes it from the queue ([`Incoming`]). Bytes taken give
//! their flow-control window back: the amounts are noted in the connection's
//! [`Mailbox`], and its task, woken, sends the WINDOW_UPDATEs. A body the service
//! drops gives back what it held, and what arrives afterwards is given back at once.
//! A client can queue no more than its windows allow, so the queue is bounded by the
//! window the connection announced.

use crate::lock;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use wharf_h2::Reason;

use super::mailbox::Mailbox;

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    queued: usize,
    trailers: Option<HeaderMap>,
    end: bool,
    reset: Option<Reason>,
    reader: Option<Waker>,
    dropped: bool,
}

/// The connection's end of a request body.
pub(crate) struct Feed(Arc<Mutex<Queue>>);

/// The service's end of a request body.
pub(crate) struct Incoming {
    id: u32,
    queue: Arc<Mutex<Queue>>,
    released: Arc<Mailbox>,
}

/// A body for stream `id`.
pub(crate) fn channel(id: u32, released: Arc<Mailbox>) -> (Feed, Incoming) {
    let queue = Arc::new(Mutex::new(Queue::default()));
    (
        Feed(queue.clone()),
        Incoming {
            id,
            queue,
            released,
        },
    )
}

impl Feed {
    /// Queues `data`; false if the service dropped the body (the caller gives the
    /// window back at once).
    pub(crate) fn data(&self, data: Bytes, end: bool) -> bool {
        let mut q = lock(&self.0);
        if q.dropped {
            return false;
        }
        q.queued += data.len();
        if !data.is_empty() {
            q.chunks.push_back(data);
        }
        q.end |= end;
        wake(&mut q);
        true
    }

    pub(crate) fn trailers(&self, trailers: HeaderMap) {
        let mut q = lock(&self.0);
        q.trailers = Some(trailers);
        q.end = true;
        wake(&mut q);
    }

    /// The stream was reset: a reader still waiting gets an error.
    pub(crate) fn reset(&self, reason: Reason) {
        let mut q = lock(&self.0);
        q.reset = Some(reason);
        wake(&mut q);
    }
}

impl Drop for Feed {
    /// The stream is over for the connection: a reader still waiting for the rest of
    /// the body gets an error rather than waiting for ever.
    fn drop(&mut self) {
        let mut q = lock(&self.0);
        if !q.end && q.reset.is_none() {
            q.reset = Some(Reason::CANCEL);
            wake(&mut q);
        }
    }
}

fn wake(q: &mut Queue) {
    if let Some(w) = q.reader.take() {
        w.wake();
    }
}

impl Incoming {
    pub(crate) fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let mut q = lock(&self.queue);
        if let Some(chunk) = q.chunks.pop_front() {
            q.queued -= chunk.len();
            drop(q);
            // The service has taken these bytes: the peer may send more.
            self.released.owe(self.id, chunk.len());
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(t) = q.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        if q.end {
            return Poll::Ready(None);
        }
        if let Some(reason) = q.reset {
            let e = io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("HTTP/2 stream reset ({reason})"),
            );
            return Poll::Ready(Some(Err(e)));
        }
        q.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        let q = lock(&self.queue);
        q.end && q.chunks.is_empty() && q.trailers.is_none()
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let mut q = lock(&self.queue);
        q.dropped = true;
        q.chunks.clear();
        let held = std::mem::take(&mut q.queued);
        drop(q);
        self.released.owe(self.id, held);
    }
}
