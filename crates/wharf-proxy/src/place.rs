//! Per-CPU places: state that each thread keeps to itself as far as it can, one
//! place per CPU, a thread in the place its number falls on. The places are apart
//! on cache lines of their own, so that a CPU that locks or counts in its own never
//! takes a line from another CPU's cache: a line written by every request from two
//! CPUs goes from one cache to the other each time (bench/RESULTS.md, issue 12).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One CPU's place, alone on its cache lines (two of them: Intel's prefetcher
/// fetches lines in pairs).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Place<T>(Mutex<T>);

impl<T> std::ops::Deref for Place<T> {
    type Target = Mutex<T>;

    fn deref(&self) -> &Mutex<T> {
        &self.0
    }
}

/// One place per CPU, each holding what `make` gives.
pub(crate) fn per_cpu<T>(mut make: impl FnMut() -> T) -> Box<[Place<T>]> {
    (0..cpus()).map(|_| Place(Mutex::new(make()))).collect()
}

/// A number for the calling thread, the same for its life.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

/// The calling thread's index among `places` places, unless there are none.
pub(crate) fn own_index(places: usize) -> Option<usize> {
    thread_slot().checked_rem(places)
}

/// The CPUs this process may run on, asked once (the answer reads cgroup files).
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
