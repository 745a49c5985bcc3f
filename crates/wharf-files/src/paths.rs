//! Where a site's request paths last led, so a hot file is served without opening it
//! — and, where the kernel can tell wharf about changes, without even a `statx`.
//!
//! A remembered path maps to the (device, inode) of the file it reached. Without
//! change notification every use checks the path with one `statx(2)`. With inotify
//! the directories on the path are watched: any change to an entry of a watched
//! directory (write, attribute change, rename, delete, create), or to the directory
//! itself, forgets the paths it may affect, at once. A remembered path is then
//! trusted without a system call, and re-checked with `statx` at most once per
//! [`RECHECK`], which bounds staleness where notification cannot see a change (a
//! network file system changed by another machine). A queue overflow forgets all.
//!
//! The race between opening a file and watching its directory is closed by
//! re-checking the file after the watch exists: a change before it is seen by the
//! check, a change after it by the watch.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rustix::fs::inotify::{self, ReadFlags, WatchFlags};

use crate::mime::{media_type, MediaType};

/// Paths remembered per site before the index starts over.
const MAX_PATHS: usize = 1 << 16;

/// How long a watched path is trusted before it is checked with `statx` again.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// What inotify reports for a watched directory.
const WATCHED: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// A remembered path.
#[derive(Clone, Debug)]
struct Known {
    key: (u64, u64),
    /// The media type its name gives, looked up once rather than per request.
    media: MediaType,
    /// Every directory on the path is watched.
    watched: bool,
    /// When it was last checked ([`crate::clock::monotonic`]).
    checked: Duration,
}

/// What [`PathIndex::get`] knows of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The file's (device, inode); nothing changed since it was checked, and
    /// nothing seen will have until this time ([`crate::clock::monotonic`]) unless
    /// the index's generation moves.
    Trusted((u64, u64), Duration),
    /// The file's (device, inode) when last checked; check it again.
    Check((u64, u64)),
}

/// Remembered paths and what they led to.
type Paths = HashMap<OsString, Known>;

/// A site's remembered paths.
#[derive(Debug)]
pub(crate) struct PathIndex {
    inner: Arc<Inner>,
}

struct Inner {
    /// Told apart from every other index of this process (an index's address may be
    /// another's after a reload).
    id: u64,
    /// Moves whenever a remembered path is forgotten or replaced, so that what was
    /// looked up here at an earlier generation can be trusted as long as it stays.
    generation: AtomicU64,
    /// Change notification stopped (its events could not be read): no path is
    /// trusted on its word from then on.
    watch_failed: AtomicBool,
    /// Hashed with std's keyed SipHash: the paths are of files that exist, but an
    /// FTP user who may write can make files whose names collide under an unkeyed
    /// hash, and every request for them would walk the collisions under this lock.
    map: Mutex<Paths>,
    watch: Option<Watch>,
    /// Told of every entry that changed in a watched directory.
    listener: std::sync::OnceLock<Listener>,
}

/// What [`PathIndex::listen`] calls with the path (relative to the root) of an entry
/// that was written, created, moved or deleted.
pub(crate) type Listener = Arc<dyn Fn(&Path) + Send + Sync>;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

/// The events that tell a listener an entry changed: a file written and closed,
/// created, moved in or out, deleted (not every `write(2)` of a file being written).
const CHANGED: ReadFlags = ReadFlags::CLOSE_WRITE
    .union(ReadFlags::CREATE)
    .union(ReadFlags::MOVED_FROM)
    .union(ReadFlags::MOVED_TO)
    .union(ReadFlags::DELETE);

/// The site's inotify instance and what it watches.
#[derive(Debug)]
struct Watch {
    fd: Arc<OwnedFd>,
    /// The site root, reachable by path through this process's descriptor.
    root: PathBuf,
    dirs: Mutex<Dirs>,
}

#[derive(Debug, Default)]
struct Dirs {
    by_wd: HashMap<i32, OsString>,
    by_dir: HashMap<OsString, i32>,
}

impl PathIndex {
    /// Calls `listener` for every change seen from now on in the watched directories
    /// (those on the paths of files served); a second listener is ignored.
    pub(crate) fn listen(&self, listener: Listener) {
        let _ = self.inner.listener.set(listener);
    }

    /// `rel` (a file or directory) was changed by wharf itself (an FTP upload,
    /// rename or delete): forgets it and everything beneath it now, rather than when
    /// the kernel's notice arrives, and tells the listener.
    pub(crate) fn changed(&self, rel: &Path) {
        self.inner.forget(rel.as_os_str().as_bytes());
        if let Some(listener) = self.inner.listener.get() {
            listener(rel);
        }
    }

    /// Watches the directories on `rel`'s path without remembering it.
    pub(crate) fn watch(&self, rel: &Path) {
        if let Some(w) = &self.inner.watch {
            w.cover(rel);
        }
    }

    /// An index for the site whose root directory is `root`; with change
    /// notification when the kernel offers it.
    pub(crate) fn new(root: &OwnedFd) -> PathIndex {
        let watch = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .ok()
            .map(|fd| Watch {
                fd: Arc::new(fd),
                root: PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd())),
                dirs: Mutex::default(),
            });
        static IDS: AtomicU64 = AtomicU64::new(0);
        let inner = Arc::new(Inner {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            watch_failed: AtomicBool::new(false),
            map: Mutex::default(),
            watch,
            listener: std::sync::OnceLock::new(),
        });
        if let Some(w) = &inner.watch {
            listen(w.fd.clone(), Arc::downgrade(&inner));
        }
        PathIndex { inner }
    }

    /// What is known of `rel`, and its media type.
    pub(crate) fn get(&self, rel: &Path) -> Option<(Lookup, MediaType)> {
        // Keyed by the raw bytes: hashing a `Path` walks its components.
        let map = self.inner.lock();
        let k = map.get(rel.as_os_str())?;
        let until = k.checked + RECHECK;
        let lookup = if k.watched && crate::clock::monotonic() < until {
            Lookup::Trusted(k.key, until)
        } else {
            Lookup::Check(k.key)
        };
        Some((lookup, k.media.clone()))
    }

    /// This index among the process's, and its generation now: read before a lookup,
    /// what the lookup found holds while the generation is the same.
    pub(crate) fn generation(&self) -> (u64, u64) {
        (self.inner.id, self.inner.generation.load(Ordering::Acquire))
    }

    /// `rel` was just checked and still leads to the same file.
    pub(crate) fn checked(&self, rel: &Path) {
        if let Some(k) = self.inner.lock().get_mut(rel.as_os_str()) {
            k.checked = crate::clock::monotonic();
        }
    }

    /// Notes that `rel` led to the file `key`, if `still_same` (asked after the
    /// path's directories are watched) confirms the file has not changed since.
    pub(crate) fn remember(&self, rel: &Path, key: (u64, u64), still_same: impl FnOnce() -> bool) {
        let watched = !self.inner.watch_failed.load(Ordering::Relaxed)
            && self.inner.watch.as_ref().is_some_and(|w| w.cover(rel));
        if !still_same() {
            return;
        }
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let media = media_type(name);
        let mut map = self.inner.lock();
        if map.len() >= MAX_PATHS {
            map.clear();
            self.inner.moved();
        }
        let known = Known {
            key,
            media,
            watched,
            checked: crate::clock::monotonic(),
        };
        // A path that led to another file before is a change; a new path is not.
        if map
            .insert(rel.as_os_str().to_owned(), known)
            .is_some_and(|old| old.key != key)
        {
            self.inner.moved();
        }
    }

    /// Forgets every path without moving the generation, as no change does: for
    /// tests that what a thread keeps is used without the index.
    #[cfg(test)]
    pub(crate) fn forget_unannounced(&self) {
        self.inner.lock().clear();
    }

    #[cfg(test)]
    fn watching(&self) -> bool {
        self.inner.watch.is_some()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Paths> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembered paths were forgotten or replaced (called with the map locked).
    fn moved(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forgets `target` and every path beneath it.
    fn forget(&self, target: &[u8]) {
        let mut map = self.lock();
        let before = map.len();
        if target.is_empty() {
            map.clear();
        } else {
            map.retain(|k, _| {
                let k = k.as_bytes();
                !(k.starts_with(target) && (k.len() == target.len() || k[target.len()] == b'/'))
            });
        }
        // Only a path forgotten moves the generation: a file written over and over in
        // a watched directory, never remembered, leaves what threads keep alone.
        if map.len() != before {
            self.moved();
        }
    }

    /// One inotify event.
    fn event(&self, wd: i32, flags: ReadFlags, name: Option<&[u8]>) {
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            return self.forget(b"");
        }
        let Some(w) = &self.watch else { return };
        let mut dirs = w.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(dir) = dirs.by_wd.get(&wd).cloned() else {
            return;
        };
        match name.filter(|n| !n.is_empty()) {
            Some(name) => {
                let mut target = dir.into_vec();
                if !target.is_empty() {
                    target.push(b'/');
                }
                target.extend_from_slice(name);
                drop(dirs);
                self.forget(&target);
                if let Some(listener) = self.listener.get().filter(|_| flags.intersects(CHANGED)) {
                    listener(Path::new(std::ffi::OsStr::from_bytes(&target)));
                }
            }
            None => {
                // The directory itself went away or moved: its watch is gone.
                if flags
                    .intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
                {
                    dirs.by_wd.remove(&wd);
                    dirs.by_dir.remove(&dir);
                }
                drop(dirs);
                self.forget(dir.as_bytes());
            }
        }
    }
}

impl Watch {
    /// Watches every directory from the root to `rel`'s parent; false if one cannot
    /// be watched (the path is then checked on every use).
    fn cover(&self, rel: &Path) -> bool {
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let mut dir = PathBuf::new();
        let parents = rel.parent().into_iter().flat_map(|p| p.components());
        for part in std::iter::once(None).chain(parents.map(Some)) {
            if let Some(part) = part {
                dir.push(part);
            }
            let key = dir.as_os_str().to_owned();
            if dirs.by_dir.contains_key(&key) {
                continue;
            }
            match inotify::add_watch(&*self.fd, self.root.join(&dir), WATCHED) {
                Ok(wd) => {
                    dirs.by_wd.insert(wd, key.clone());
                    dirs.by_dir.insert(key, wd);
                }
                Err(_) => return false,
            }
        }
        true
    }
}

/// Reads `fd`'s events on a thread of its own until the index is dropped.
fn listen(fd: Arc<OwnedFd>, inner: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("wharf-inotify".into())
        .spawn(move || {
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
            loop {
                let mut fds = [rustix::event::PollFd::new(
                    &*fd,
                    rustix::event::PollFlags::IN,
                )];
                let second = rustix::time::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                let ready = rustix::event::poll(&mut fds, Some(&second));
                let Some(inner) = inner.upgrade() else { return };
                if matches!(ready, Ok(0)) {
                    continue;
                }
                let mut reader = inotify::Reader::new(&*fd, &mut buf);
                loop {
                    match reader.next() {
                        Ok(ev) => {
                            let name = ev.file_name().map(|n| n.to_bytes());
                            inner.event(ev.wd(), ev.events(), name);
                        }
                        Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => break,
                        Err(e) => {
                            // Events can no longer be read: trust nothing from now on.
                            tracing::warn!(error = %e, "file change notification failed");
                            inner.watch_failed.store(true, Ordering::Relaxed);
                            inner.forget(b"");
                            return;
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no file change notification thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_until(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    /// An index over `dir`, and the descriptor it reaches the directory through.
    fn index(dir: &Path) -> (PathIndex, OwnedFd) {
        let fd: OwnedFd = std::fs::File::open(dir).unwrap().into();
        (PathIndex::new(&fd), fd)
    }

    #[test]
    fn changes_in_watched_directories_forget_the_paths_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for f in ["a.txt", "b.txt", "sub/c.txt"] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        let (idx, _root) = index(dir.path());
        assert!(idx.watching(), "inotify is available on Linux");
        for (i, f) in ["a.txt", "b.txt", "sub/c.txt"].iter().enumerate() {
            idx.remember(Path::new(f), (1, i as u64), || true);
            let (lookup, media) = idx.get(Path::new(f)).unwrap();
            assert!(matches!(lookup, Lookup::Trusted(key, _) if key == (1, i as u64)));
            assert_eq!(media.value, "text/plain; charset=utf-8");
        }
        // A write to a.txt forgets a.txt only.
        std::fs::write(dir.path().join("a.txt"), "new").unwrap();
        assert!(wait_until(|| idx.get(Path::new("a.txt")).is_none()));
        assert!(idx.get(Path::new("b.txt")).is_some());
        // Renaming the directory forgets what lies beneath it.
        std::fs::rename(dir.path().join("sub"), dir.path().join("moved")).unwrap();
        assert!(wait_until(|| idx.get(Path::new("sub/c.txt")).is_none()));
        assert!(idx.get(Path::new("b.txt")).is_some());
        // A rename over b.txt forgets it.
        std::fs::write(dir.path().join("tmp"), "x").unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("b.txt")).unwrap();
        assert!(wait_until(|| idx.get(Path::new("b.txt")).is_none()));
    }

    /// The generation moves when a remembered path is forgotten or comes to lead to
    /// another file, and for nothing else (what threads keep stays usable).
    #[test]
    fn only_a_remembered_path_forgotten_or_replaced_moves_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (idx, _root) = index(dir.path());
        let a = Path::new("a.txt");
        let start = idx.generation();
        idx.remember(a, (1, 1), || true);
        idx.remember(a, (1, 1), || true);
        assert_eq!(
            idx.generation(),
            start,
            "a new path, then the same file again"
        );
        idx.changed(Path::new("b.txt"));
        assert_eq!(idx.generation(), start, "a path never remembered");
        idx.remember(a, (1, 2), || true);
        let replaced = idx.generation();
        assert_ne!(replaced, start, "another file at the path");
        idx.changed(a);
        assert_ne!(idx.generation(), replaced, "forgotten");
    }

    #[test]
    fn a_file_changed_before_its_watch_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        let (idx, _root) = index(dir.path());
        idx.remember(Path::new("a.txt"), (1, 1), || false);
        assert!(idx.get(Path::new("a.txt")).is_none());
    }
}
