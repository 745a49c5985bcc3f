//! What a connection's streams leave for its task: flow-control window owed back to
//! the client (request body bytes the service has taken) and `103` fields a service
//! sent while working (`wharf_http::interim::Interim`). Either may come from another
//! task (a proxy's upstream exchange), so the connection's task is woken for them.

use crate::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;

use futures_util::task::AtomicWaker;
use http::HeaderMap;
use wharf_http::interim::{Interim, InterimSink};

/// The connection's task looks at the mailbox once per response and per turn, and
/// nearly always finds it empty: a flag per list, set after each item is put in,
/// spares it the lock then.
#[derive(Default)]
pub(crate) struct Mailbox {
    owed: Mutex<Vec<(u32, usize)>>,
    any_owed: AtomicBool,
    hints: Mutex<Vec<(u32, HeaderMap)>>,
    any_hints: AtomicBool,
    task: AtomicWaker,
}

/// What `list` holds, if `any` says something was put in since the last take. (An
/// item put in after the flag was taken down sets it again, for the next take.)
fn take<T>(any: &AtomicBool, list: &Mutex<Vec<T>>) -> Vec<T> {
    if !any.swap(false, Ordering::Acquire) {
        return Vec::new();
    }
    std::mem::take(&mut *lock(list))
}

/// Puts `item` in `list` and raises `any`.
fn put<T>(any: &AtomicBool, list: &Mutex<Vec<T>>, item: T) {
    lock(list).push(item);
    any.store(true, Ordering::Release);
}

impl Mailbox {
    /// Stream `id`'s service has taken `n` request body bytes.
    pub(crate) fn owe(&self, id: u32, n: usize) {
        if n > 0 {
            put(&self.any_owed, &self.owed, (id, n));
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
        take(&self.any_owed, &self.owed)
    }

    /// The `103`s sent since the last call, in order.
    pub(crate) fn take_hints(&self) -> Vec<(u32, HeaderMap)> {
        take(&self.any_hints, &self.hints)
    }
}

impl InterimSink for Mailbox {
    fn early_hints(&self, stream: u32, fields: HeaderMap) {
        put(&self.any_hints, &self.hints, (stream, fields));
        self.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item put in is taken once, in order, however puts and takes interleave
    /// across threads; an empty mailbox gives nothing.
    #[test]
    fn what_is_put_in_is_taken_once() {
        let m = Arc::new(Mailbox::default());
        assert!(m.take_owed().is_empty() && m.take_hints().is_empty());
        m.owe(1, 10);
        m.owe(3, 0); // nothing owed: not put in
        m.early_hints(5, HeaderMap::new());
        assert_eq!(m.take_owed(), [(1, 10)]);
        assert!(m.take_owed().is_empty());
        assert_eq!(m.take_hints().len(), 1);
        assert!(m.take_hints().is_empty());

        let putter = {
            let m = m.clone();
            std::thread::spawn(move || (1..=10_000u32).for_each(|i| m.owe(i, 1)))
        };
        let mut got = Vec::new();
        while !putter.is_finished() {
            got.extend(m.take_owed());
        }
        putter.join().unwrap();
        got.extend(m.take_owed());
        let ids: Vec<u32> = got.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, (1..=10_000).collect::<Vec<_>>());
    }
}
