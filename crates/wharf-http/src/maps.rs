//! Header maps reused within a thread, as nginx keeps a request's fields in a pool.
//!
//! A `HeaderMap` keeps its fields in a vector of about a hundred bytes per entry, in
//! powers of two: a map of seven to twelve fields (a browser's request, an origin's
//! response) is 1,248 bytes, past the 1,032 bytes glibc's per-thread cache keeps, so
//! making and dropping one took malloc's slow path each time (about a thousand
//! instructions per map, more when the map grew). The transports give back the maps
//! they are done with (a response head once written, a request's once answered) and
//! the parsers take them again, cleared but with their memory.

use std::cell::RefCell;

use http::HeaderMap;

use crate::spares;

/// Maps kept per thread; more are dropped. A busy thread has two maps out per
/// request in flight (its request's and its response's), and its requests come
/// and go in bursts: with 64 connections on one thread, keeping 16 dropped about
/// one map in four given back, and made as many new ones. (Each holds room for at
/// most 24 fields, 2.5 KB, besides what extra values of repeated fields it once
/// held: a field section is bounded by the header limits, so this is bounded too;
/// 160 KB per thread at most.)
const KEEP: usize = 64;

/// Maps with room for more fields than this, or holding more values when given back
/// (a request with dozens of fields, or many values of one), are dropped rather than
/// kept.
const MAX_CAPACITY: usize = 24;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `n` fields: a kept one if the thread has one.
pub fn take(n: usize) -> HeaderMap {
    match spares::take(&SPARE) {
        Some(mut map) => {
            map.reserve(n);
            map
        }
        None => HeaderMap::with_capacity(n),
    }
}

/// Gives `map` back to be reused; its fields are dropped now.
pub fn give(mut map: HeaderMap) {
    // `len` counts every value; repeated fields' values are kept apart from the
    // entries `capacity` counts.
    if map.capacity() == 0 || map.capacity() > MAX_CAPACITY || map.len() > MAX_CAPACITY {
        return;
    }
    map.clear();
    spares::keep(&SPARE, map, KEEP);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, ETAG, VIA};

    #[test]
    fn a_map_given_back_comes_back_empty_with_its_memory() {
        let mut map = take(8);
        map.insert(ETAG, HeaderValue::from_static("\"x\""));
        map.append(VIA, HeaderValue::from_static("1.1 a"));
        let capacity = map.capacity();
        give(map);
        let again = take(2);
        assert!(again.is_empty());
        assert_eq!(again.get(ETAG), None);
        assert_eq!(again.capacity(), capacity);
    }

    #[test]
    fn large_and_unallocated_maps_are_not_kept() {
        while spares::take(&SPARE).is_some() {}
        give(HeaderMap::new());
        give(HeaderMap::with_capacity(4 * MAX_CAPACITY));
        let mut repeated = HeaderMap::with_capacity(4);
        for _ in 0..=MAX_CAPACITY {
            repeated.append(VIA, HeaderValue::from_static("1.1 a"));
        }
        give(repeated);
        assert_eq!(SPARE.with(|s| s.borrow().len()), 0);
        for _ in 0..2 * KEEP {
            give(HeaderMap::with_capacity(4));
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), KEEP);
    }
}
