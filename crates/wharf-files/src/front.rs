//! The last few files each thread served by path, kept for the next request of the
//! same path: such a request is answered without the site's path index and the file
//! cache, whose locks, hashes and reference counts were a tenth of a small file's
//! cost under HTTP/2 (each lock and count is an atomic instruction on a line every
//! thread shares).
//!
//! A kept file is used only while what the path index said of it still holds: the
//! index's generation (which moves whenever it forgets or replaces a path: a change
//! seen by inotify, an upload through wharf) is the one it was looked up at, the
//! index's recheck time has not come, and the cache has not evicted the entry. Each
//! thread keeps [`SLOTS`] files: an evicted entry's memory is held, outside the
//! cache's bound, until the thread keeps four other paths (at most four files of
//! the cache's largest size, and their compressed variants, per thread).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Entry;
use crate::mime::MediaType;

/// Files kept per thread.
const SLOTS: usize = 4;

/// One kept file.
struct Slot {
    /// The path index's id and generation when the path was looked up.
    index: (u64, u64),
    /// The path, relative to the site root.
    rel: Box<[u8]>,
    /// When the index would have the path checked again.
    until: Duration,
    entry: Arc<Entry>,
    media: MediaType,
}

#[derive(Default)]
struct Front {
    slots: [Option<Slot>; SLOTS],
    /// The slot the next file takes.
    next: usize,
}

thread_local! {
    static FRONT: RefCell<Front> = RefCell::new(Front::default());
}

/// Calls `f` with the file kept for `rel` if it still holds at the index's
/// generation `index` and time `now`; `None` (and `f` not called) otherwise.
pub(crate) fn with<R>(
    index: (u64, u64),
    rel: &[u8],
    now: Duration,
    f: impl FnOnce(&Arc<Entry>, &MediaType) -> R,
) -> Option<R> {
    FRONT
        .try_with(|front| {
            let front = front.try_borrow().ok()?;
            let slot = front.slots.iter().flatten().find(|s| {
                s.index == index && *s.rel == *rel && now < s.until && !s.entry.evicted()
            })?;
            Some(f(&slot.entry, &slot.media))
        })
        .ok()
        .flatten()
}

/// Keeps `entry` for `rel`, looked up at the index's generation `index` and
/// trusted until `until`, in place of the file kept longest.
pub(crate) fn keep(
    index: (u64, u64),
    rel: &[u8],
    until: Duration,
    entry: &Arc<Entry>,
    media: &MediaType,
) {
    let _ = FRONT.try_with(|front| {
        let Ok(mut front) = front.try_borrow_mut() else {
            return;
        };
        // The path's own slot if it has one (kept again at a later generation or
        // recheck time), else the one kept longest.
        let own = front.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| s.index.0 == index.0 && *s.rel == *rel)
        });
        let at = own.unwrap_or(front.next);
        if own.is_none() {
            front.next = (at + 1) % SLOTS;
        }
        front.slots[at] = Some(Slot {
            index,
            rel: rel.into(),
            until,
            entry: entry.clone(),
            media: media.clone(),
        });
    });
}
