//! Values a thread keeps for reuse (read and write buffers, header maps, a scratch
//! buffer), taken when needed and given back when done, so that a busy thread
//! allocates none per request and its spares stay bounded.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A thread's stack of spare values, declared with `thread_local!`.
pub type Spares<T> = LocalKey<RefCell<Vec<T>>>;

/// The spare given back last on this thread, if any.
pub fn take<T: 'static>(spares: &'static Spares<T>) -> Option<T> {
    spares.try_with(|s| s.borrow_mut().pop()).ok().flatten()
}

/// Keeps `item` for reuse unless the thread keeps `keep` already (it is dropped then,
/// as it is while the thread exits).
pub fn keep<T: 'static>(spares: &'static Spares<T>, item: T, keep: usize) {
    let _ = spares.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < keep {
            s.push(item);
        }
    });
}

thread_local! {
    static SCRATCH: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer that grew past this is dropped after use instead of kept.
const SCRATCH_KEEP: usize = 1024;

/// Calls `f` with an empty byte buffer of the thread's, for a value that is built
/// there and then copied out at its exact length: one allocation for the value,
/// where handing over a buffer with spare room costs `Bytes` a second one to
/// remember its capacity. (A call from inside `f` gets a buffer of its own.)
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = take(&SCRATCH).unwrap_or_default();
    buf.clear();
    let made = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP {
        keep(&SCRATCH, buf, 1);
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static NUMBERS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn the_last_kept_comes_first_and_the_stack_is_bounded() {
        assert_eq!(take(&NUMBERS), None);
        for n in 0..5 {
            keep(&NUMBERS, n, 3);
        }
        assert_eq!(take(&NUMBERS), Some(2));
        assert_eq!(take(&NUMBERS), Some(1));
        assert_eq!(take(&NUMBERS), Some(0));
        assert_eq!(take(&NUMBERS), None);
    }

    #[test]
    fn the_scratch_comes_empty_and_a_nested_call_gets_its_own() {
        with_scratch(|outer| {
            assert!(outer.is_empty());
            outer.extend_from_slice(b"outer");
            with_scratch(|inner| {
                assert!(inner.is_empty());
                inner.extend_from_slice(b"inner");
            });
            assert_eq!(outer, b"outer");
        });
        with_scratch(|again| assert!(again.is_empty(), "cleared before reuse"));
    }
}
