//! What a connection's streams leave for its task: flow-control window owed back to
//! the client (request body bytes the service has taken) and `103` fields a service
//! sent while working (`wharf_http::interim::Interim`). Either may come from another
//! task (a proxy's upstream exchange), so the connection's task is woken for them.

use crate::lock;
use std::sync::{Arc, Mutex};
use std::task::Context;

use futures_util::task::AtomicWaker;
use http::HeaderMap;
use wharf_http::interim::{Interim, InterimSink};

#[derive(Default)]
pub(crate) struct Mailbox {
    owed: Mutex<Vec<(u32, usize)>>,
    hints: Mutex<Vec<(u32, HeaderMap)>>,
    task: AtomicWaker,
}

impl Mailbox {
    /// Stream `id`'s service has taken `n` request body bytes.
    pub(crate) fn owe(&self, id: u32, n: usize) {
        if n > 0 {
            lock(&self.owed).push((id, n));
            self.task.wake();
        }
    }

    /// An `Interim` whose `103`s go out on stream `id`.
    pub(crate) fn interim(self: &Arc<Self>, id: u32) -> Interim {
        Interim::new(self.clone(), id)
    }

    /// Registers `cx` to be woken for what arrives next.
    pub(crate) fn register(&self, cx: &Context<'_>) {
        self.task.register(cx.waker());
    }

    /// The window owed since the last call.
    pub(crate) fn take_owed(&self) -> Vec<(u32, usize)> {
        std::mem::take(&mut *lock(&self.owed))
    }

    /// The `103`s sent since the last call, in order.
    pub(crate) fn take_hints(&self) -> Vec<(u32, HeaderMap)> {
        std::mem::take(&mut *lock(&self.hints))
    }
}

impl InterimSink for Mailbox {
    fn early_hints(&self, stream: u32, fields: HeaderMap) {
        lock(&self.hints).push((stream, fields));
        self.task.wake();
    }
}
