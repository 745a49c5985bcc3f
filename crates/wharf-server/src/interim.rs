//! `103 Early Hints` a service sends while it works (`wharf_http::interim::Interim`,
//! used by the proxy to pass on its upstream's): a small channel per request, whose
//! receiving end the transport polls beside the service.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use http::HeaderMap;
use wharf_http::interim::{Interim, InterimSink};

/// At most this many `103`s wait to be sent; more are dropped (hints are advice).
const QUEUE: usize = 4;

/// An [`Interim`] for one request; the transport sends what arrives on the receiver.
pub(crate) fn channel() -> (Interim, Receiver) {
    let slot = Arc::new(Slot::default());
    (Interim::new(slot.clone(), 0), Receiver(slot))
}

/// One request's hints not yet taken, and the task that takes them. (A tokio channel
/// allocated a block of 32 slots for every request, almost always to carry nothing.)
#[derive(Default)]
struct Slot(Mutex<Queue>);

#[derive(Default)]
struct Queue {
    hints: Vec<HeaderMap>,
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl InterimSink for Slot {
    fn early_hints(&self, _stream: u32, fields: HeaderMap) {
        let waker = {
            let mut q = self.lock();
            if q.hints.len() >= QUEUE {
                return;
            }
            q.hints.push(fields);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The receiving end of [`channel`].
pub(crate) struct Receiver(Arc<Slot>);

impl Receiver {
    /// The next hint sent, or `Pending` (woken when one comes).
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<HeaderMap> {
        let mut q = self.0.lock();
        if !q.hints.is_empty() {
            return Poll::Ready(q.hints.remove(0));
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The next hint sent, if any.
    fn try_recv(&mut self) -> Option<HeaderMap> {
        let mut q = self.0.lock();
        (!q.hints.is_empty()).then(|| q.hints.remove(0))
    }
}

/// What a service's work brings next: a `103` to send, or its response once every
/// `103` that came before its end is out.
pub(crate) enum Next<R> {
    Hint(HeaderMap),
    Done(R),
}

/// The service's work on a request given an [`Interim`] by [`channel`], with the `103`s
/// it sends on the way (HTTP/2 and HTTP/3, which can send them at any time).
pub(crate) struct Hinted<'a, F: Future> {
    call: Pin<&'a mut F>,
    hints: Receiver,
    out: Option<F::Output>,
}

impl<'a, F: Future> Hinted<'a, F> {
    pub(crate) fn new(call: Pin<&'a mut F>, hints: Receiver) -> Self {
        Hinted {
            call,
            hints,
            out: None,
        }
    }

    /// The service is polled first: one that answers at once (a file in memory)
    /// costs no look at its hints but the last.
    pub(crate) async fn next(&mut self) -> Next<F::Output> {
        std::future::poll_fn(|cx| {
            if self.out.is_none() {
                if let Poll::Ready(res) = self.call.as_mut().poll(cx) {
                    self.out = Some(res);
                }
            }
            if self.out.is_none() {
                return self.hints.poll_recv(cx).map(Next::Hint);
            }
            Poll::Ready(match self.hints.try_recv() {
                Some(fields) => Next::Hint(fields),
                None => Next::Done(self.out.take().expect("the service's response")),
            })
        })
        .await
    }
}
