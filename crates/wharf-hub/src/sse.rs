//! Server-Sent Events (HTML Living Standard §9.2): a subscription as an endless
//! response body. Each message is an event with its id (so a browser's EventSource
//! resumes with `Last-Event-ID` after a reconnect) and the message's JSON object as
//! its data; lost ids are an event named `missed`; an idle stream gets a comment line
//! every heartbeat, which keeps proxies from timing it out and finds dead clients.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, ReusableBoxFuture, WaitForCancellationFutureOwned};

use crate::channel::{Cursor, Step};

/// Events one wake-up takes from the channel at most.
pub(crate) const BATCH: usize = 64;

/// A subscription's event stream; it ends when the server shuts down (the browser
/// reconnects, to another node or to this one restarted, with `Last-Event-ID`).
pub(crate) struct Events {
    next: ReusableBoxFuture<'static, (Cursor, Step)>,
    heartbeat: Pin<Box<Interval>>,
    first: Option<Bytes>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

async fn wait(mut cursor: Cursor) -> (Cursor, Step) {
    let step = cursor.next(BATCH).await;
    (cursor, step)
}

impl Events {
    pub(crate) fn new(
        cursor: Cursor,
        heartbeat: Duration,
        shutdown: Option<CancellationToken>,
    ) -> Self {
        let mut interval = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Events {
            next: ReusableBoxFuture::new(wait(cursor)),
            heartbeat: Box::pin(interval),
            // Sent at once, so the client sees the stream open; and how long a
            // browser waits before reconnecting.
            first: Some(Bytes::from_static(b"retry: 2000\n\n")),
            shutdown: shutdown.map(|t| Box::pin(t.cancelled_owned())),
        }
    }

    /// The next piece of the stream; `None` once the server shuts down.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        if self
            .shutdown
            .as_mut()
            .is_some_and(|s| s.as_mut().poll(cx).is_ready())
        {
            return Poll::Ready(None);
        }
        if let Poll::Ready((cursor, step)) = self.next.poll(cx) {
            self.next.set(wait(cursor));
            return Poll::Ready(Some(encode(&step)));
        }
        if self.heartbeat.as_mut().poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Bytes::from_static(b": heartbeat\n\n")));
        }
        Poll::Pending
    }
}

/// The events of one step, in the stream's format.
pub(crate) fn encode(step: &Step) -> Bytes {
    let mut out = Vec::new();
    match step {
        Step::Missed(m) => {
            out.put_slice(b"event: missed\ndata: ");
            out.put_slice(format!("{{\"from\":{},\"to\":{}}}\n\n", m.from, m.to).as_bytes());
        }
        Step::Events(events) => {
            for e in events {
                out.put_slice(format!("id: {}\ndata: ", e.id).as_bytes());
                out.put_slice(&e.json); // one line: JSON escapes line breaks
                out.put_slice(b"\n\n");
            }
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::channel::{Event, Missed};

    #[test]
    fn events_carry_their_id_and_json() {
        let e = Arc::new(Event::new("c", 7, 1, Bytes::from_static(b"two\nlines")));
        let text = encode(&Step::Events(vec![e]));
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            "id: 7\ndata: {\"channel\":\"c\",\"data\":\"two\\nlines\",\"id\":7,\"time\":1}\n\n"
        );
        let gap = encode(&Step::Missed(Missed { from: 1, to: 3 }));
        assert_eq!(&gap[..], b"event: missed\ndata: {\"from\":1,\"to\":3}\n\n");
    }
}
