//! The queue that carries the endpoint's events to one connection (wharf's patch, see
//! the crate's vendor/README.md), in place of a tokio unbounded channel: such a channel
//! keeps its slots in blocks of 32 for as long as it lives, one or two blocks of 32
//! datagram events (208 bytes each) per connection whether the connection is busy or
//! idle. This queue holds what waits and lets its buffer go each time it has been
//! drained, so an idle connection keeps none (and a busy one allocates once per burst
//! of datagrams).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::ConnectionEvent;

/// Events the receiver takes in a row before it yields, as tokio's channel did by the
/// task's budget (128 operations): the connection's driver then sends and runs its
/// timers before it takes more.
const IN_A_ROW: u32 = 128;

/// A queue from the endpoint (the sender) to one connection (the receiver).
pub(crate) fn channel() -> (EventSender, EventReceiver) {
    let shared = Arc::new(Shared(Mutex::new(Queue::default())));
    (
        EventSender(shared.clone()),
        EventReceiver {
            shared,
            in_a_row: 0,
        },
    )
}

struct Shared(Mutex<Queue>);

#[derive(Default)]
struct Queue {
    events: VecDeque<ConnectionEvent>,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The endpoint's end.
#[derive(Debug)]
pub(crate) struct EventSender(Arc<Shared>);

impl EventSender {
    /// Queues `event` for the connection; gives it back if the connection is gone.
    pub(crate) fn send(&self, event: ConnectionEvent) -> Result<(), ConnectionEvent> {
        let waker = {
            let mut queue = self.0.lock();
            if queue.receiver_gone {
                return Err(event);
            }
            queue.events.push_back(event);
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let waker = {
            let mut queue = self.0.lock();
            queue.sender_gone = true;
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The connection's end.
#[derive(Debug)]
pub(crate) struct EventReceiver {
    shared: Arc<Shared>,
    /// Events taken since the queue was last found empty or the receiver last yielded.
    in_a_row: u32,
}

impl EventReceiver {
    /// The next event; `None` once the queue is empty and the endpoint is gone.
    /// `Pending`, with the task woken again at once, after [`IN_A_ROW`] events in a row.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ConnectionEvent>> {
        if self.in_a_row == IN_A_ROW {
            self.in_a_row = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut queue = self.shared.lock();
        if let Some(event) = queue.events.pop_front() {
            self.in_a_row += 1;
            return Poll::Ready(Some(event));
        }
        self.in_a_row = 0;
        if queue.events.capacity() > 0 {
            queue.events = VecDeque::new();
        }
        if queue.sender_gone {
            return Poll::Ready(None);
        }
        if !queue.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            queue.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.receiver_gone = true;
        queue.events.clear();
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}
