//! Event loops, one per CPU: single-threaded runtimes, each on a thread of its own,
//! that TCP connections are handed to in turn as they are accepted. A connection then
//! lives on one thread, as an nginx worker's do: its socket is watched by that
//! thread's own `epoll`, its wake-ups stay on that thread, and nothing of it moves
//! between CPUs.
//!
//! Why: on tokio's work-stealing runtime, one worker at a time waits on the sockets
//! and hands what became ready to the others, so with the kernel spreading the
//! workers over the CPUs a reverse proxy's request (a client socket and an upstream
//! one) kept waking the other worker with a futex, and tasks (with the memory they
//! allocated) moved between CPUs. Measured on the pooled reverse proxy with the
//! kernel placing every thread (bench/RESULTS.md, issue 12): 15.8 → 12.8 µs of CPU
//! per request, 62.7k → 77.3k requests/s. A server of files alone measured better
//! on the work-stealing runtime, as did everything pinned to one CPU, so the binary
//! starts loops only for a server that proxies, on more than one CPU
//! (ARCHITECTURE.md, Decisions).
//!
//! Connections are handed out in turn, so the loops' shares are even; loops each
//! accepting on their own copy of a listener would all wake for every connection,
//! and whichever was idle could take a whole burst.
//!
//! Everything else (HTTP/3, FTP, background tasks) stays on the runtime that called
//! [`Loops::start`].

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The event loops connections are handed to, started by [`Loops::start`] and
/// stopped when dropped: each thread then ends and drops its remaining tasks, or
/// the process exits first (drain before).
pub struct Loops {
    handles: Vec<Handle>,
    next: AtomicUsize,
    _stop: DropGuard,
}

impl Loops {
    /// `count` loops (at least one), on threads named `wharf-loop-N`.
    pub fn start(count: usize) -> io::Result<Arc<Loops>> {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        for n in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let stopped = stop.clone().cancelled_owned();
            std::thread::Builder::new()
                .name(format!("wharf-loop-{n}"))
                .spawn(move || runtime.block_on(stopped))?;
        }
        Ok(Arc::new(Loops {
            handles,
            next: AtomicUsize::new(0),
            _stop: stop.drop_guard(),
        }))
    }

    /// The loop whose turn it is.
    pub(crate) fn next(&self) -> &Handle {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.handles[n % self.handles.len()]
    }
}
