//! `103 Early Hints` a service sends while it works (`wharf_http::interim::Interim`,
//! used by the proxy to pass on its upstream's): a small channel per request, whose
//! receiving end the transport polls beside the service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;
use tokio::sync::mpsc;
use wharf_http::interim::{Interim, InterimSink};

/// At most this many `103`s wait to be sent; more are dropped (hints are advice).
const QUEUE: usize = 4;

/// An [`Interim`] for one request; the transport sends what arrives on the receiver.
pub(crate) fn channel() -> (Interim, mpsc::Receiver<HeaderMap>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (Interim::new(Arc::new(Hints(tx)), 0), rx)
}

/// The sending end of [`channel`]: one request's, so the stream is implied.
struct Hints(mpsc::Sender<HeaderMap>);

impl InterimSink for Hints {
    fn early_hints(&self, _stream: u32, fields: HeaderMap) {
        let _ = self.0.try_send(fields);
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
    hints: mpsc::Receiver<HeaderMap>,
    out: Option<F::Output>,
}

impl<'a, F: Future> Hinted<'a, F> {
    pub(crate) fn new(call: Pin<&'a mut F>, hints: mpsc::Receiver<HeaderMap>) -> Self {
        Hinted {
            call,
            hints,
            out: None,
        }
    }

    pub(crate) async fn next(&mut self) -> Next<F::Output> {
        if self.out.is_none() {
            tokio::select! {
                res = self.call.as_mut() => self.out = Some(res),
                Some(fields) = self.hints.recv() => return Next::Hint(fields),
            }
        }
        match self.hints.try_recv() {
            Ok(fields) => Next::Hint(fields),
            Err(_) => Next::Done(self.out.take().expect("the service's response")),
        }
    }
}
