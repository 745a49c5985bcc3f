//! Values a thread keeps for reuse (read and write buffers, header maps), taken when
//! needed and given back when done, so that a busy thread allocates none per request
//! and its spares stay bounded.

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
}
