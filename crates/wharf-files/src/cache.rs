//! What wharf remembers about files: validators, small files' bytes and their
//! compressed variants, in memory, bounded.
//!
//! Entries are keyed by (device, inode) and checked against the file's size, mtime
//! and ctime (nanoseconds) whenever the file is opened or its path checked, so a
//! changed file is not served stale (paths watched by inotify are trusted until a
//! change is reported, see `paths`).
//! The strong `ETag` of a file up to `max_file` bytes is a hash of its content: two
//! writes of the same size within one second still change it, whatever the file
//! system's timestamp granularity (the reason ETag beats Last-Modified). Files changed
//! less than a second ago are hashed on every request and not remembered, because a
//! coarse clock could give the next write the same timestamps. Larger files are
//! streamed from disk and tagged by a hash of (inode, size, mtime, ctime).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::{OnceCell, Semaphore};
use wharf_http::date::fmt_http_date;
use wharf_http::etag::EntityTag;
use wharf_http::negotiate::Coding;

use crate::compress;
use crate::front;
use crate::mime::MediaType;
use crate::paths::{Lookup, PathIndex};
use crate::root::Root;

/// Size bounds of the file cache (`[file_cache]` in `wharf.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheLimits {
    /// Largest file whose bytes are kept in memory (and hashed for its ETag).
    pub max_file: u64,
    /// Total bytes of file content and compressed variants kept.
    pub max_total: u64,
}

impl Default for CacheLimits {
    /// 2 MiB per file, 64 MiB in all.
    fn default() -> Self {
        CacheLimits {
            max_file: 2 << 20,
            max_total: 64 << 20,
        }
    }
}

/// How recent a change must be for an entry not to be remembered.
const SETTLE: Duration = Duration::from_secs(1);

/// Entries by device and inode. The keys come from the file system, not from
/// requests, so a fast hash without a secret seed does (`FxHash`; the default
/// SipHash cost two hundred instructions a lookup).
type Entries = HashMap<(u64, u64), Arc<Entry>, rustc_hash::FxBuildHasher>;

/// The shared file cache of all sites.
#[derive(Debug)]
pub(crate) struct FileCache {
    limits: CacheLimits,
    entries: Mutex<Entries>,
    clock: AtomicU64,
    /// Compressions allowed at once: one per CPU.
    compressing: Semaphore,
}

/// The identity of one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of_statx(st: &rustix::fs::Statx) -> Stamp {
        let ns = |t: rustix::fs::StatxTimestamp| {
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        Stamp {
            size: st.stx_size,
            mtime_ns: ns(st.stx_mtime),
            ctime_ns: ns(st.stx_ctime),
        }
    }

    fn of(m: &Metadata) -> Stamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    fn changed_within(&self, now: SystemTime, window: Duration) -> bool {
        let now_ns = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now_ns - self.ctime_ns < window.as_nanos() as i128
    }
}

/// The (device, inode) of a `statx` result.
fn statx_key(st: &rustix::fs::Statx) -> (u64, u64) {
    (
        rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
        st.stx_ino,
    )
}

/// What an entry costs beyond its bytes (validators, header values, map slot), so
/// that entries without content are bounded too.
const ENTRY_OVERHEAD: u64 = 256;

fn slot(coding: Coding) -> Option<usize> {
    match coding {
        Coding::Brotli => Some(0),
        Coding::Zstd => Some(1),
        Coding::Gzip => Some(2),
        Coding::Identity => None,
    }
}

/// One version of one file.
#[derive(Debug)]
pub(crate) struct Entry {
    stamp: Stamp,
    /// Strong validator of the identity representation.
    pub(crate) etag: Tag,
    /// Modification time, and its header value.
    pub(crate) modified: SystemTime,
    pub(crate) modified_value: HeaderValue,
    /// The whole file, when it is small enough to keep.
    pub(crate) content: Option<Bytes>,
    variants: [OnceCell<Option<Variant>>; 3],
    /// Preload hints of an HTML file, scanned on first use.
    hints: std::sync::OnceLock<Arc<[HeaderValue]>>,
    last_used: AtomicU64,
    /// Out of the cache (evicted, or replaced by a newer version of the file): not
    /// to be served again by whoever still holds it for reuse (`crate::front`).
    evicted: AtomicBool,
}

/// An entity tag and its header value, rendered once.
#[derive(Clone, Debug)]
pub(crate) struct Tag {
    pub(crate) tag: EntityTag,
    pub(crate) value: HeaderValue,
}

impl Tag {
    fn strong(opaque: String) -> Tag {
        let tag = EntityTag::strong(opaque);
        let value = HeaderValue::from_str(&tag.to_string())
            .expect("hex entity tags are valid header values");
        Tag { tag, value }
    }
}

/// A compressed form of an entry's content.
#[derive(Debug)]
pub(crate) struct Variant {
    pub(crate) bytes: Bytes,
    pub(crate) etag: Tag,
}

impl Entry {
    /// The `coding` variant of this entry's content, compressing it on first use.
    /// `None` when the entry has no content in memory or compression does not shrink it.
    /// At most `permits` compressions run at once, whatever the request rate.
    pub(crate) async fn variant(&self, coding: Coding, permits: &Semaphore) -> Option<&Variant> {
        let slot = slot(coding)?;
        let content = self.content.clone()?;
        let base = self.etag.tag.tag().to_owned();
        self.variants[slot]
            .get_or_init(|| async move {
                let _permit = permits.acquire().await.ok()?;
                let packed = tokio::task::spawn_blocking(move || {
                    compress::compress(coding, &content).map(|b| (b, content.len()))
                })
                .await
                .ok()??;
                let (bytes, original) = packed;
                (bytes.len() < original).then(|| Variant {
                    bytes: Bytes::from(bytes),
                    etag: Tag::strong(format!("{base}-{coding}")),
                })
            })
            .await
            .as_ref()
    }

    /// The file's size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.stamp.size
    }

    /// Whether the cache let it go (see `evicted`).
    pub(crate) fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// The `Link` preload values of this file read as HTML (none for files not kept
    /// in memory).
    pub(crate) fn html_hints(&self) -> &Arc<[HeaderValue]> {
        self.hints.get_or_init(|| match &self.content {
            Some(bytes) => crate::hints::derive(bytes).into(),
            None => Arc::from([]),
        })
    }

    fn has_variant(&self, coding: Coding) -> bool {
        slot(coding).is_some_and(|i| self.variants[i].initialized())
    }

    /// Bytes held in memory by this entry, with its bookkeeping.
    fn weight(&self) -> u64 {
        let variants: usize = self
            .variants
            .iter()
            .filter_map(|v| v.get()?.as_ref())
            .map(|v| v.bytes.len())
            .sum();
        ENTRY_OVERHEAD + self.content.as_ref().map_or(0, |c| c.len() as u64) + variants as u64
    }
}

impl FileCache {
    pub(crate) fn new(limits: CacheLimits) -> FileCache {
        FileCache {
            limits,
            entries: Mutex::new(Entries::default()),
            clock: AtomicU64::new(0),
            compressing: Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        }
    }

    /// The entry for the open `file`, from memory when its stamp still matches.
    pub(crate) async fn lookup(
        &self,
        file: &Arc<File>,
        meta: &Metadata,
        now: SystemTime,
    ) -> io::Result<(Arc<Entry>, bool)> {
        let key = (meta.dev(), meta.ino());
        let stamp = Stamp::of(meta);
        if let Some(e) = self.lock().get(&key) {
            if e.stamp == stamp {
                self.touch(e);
                return Ok((e.clone(), true));
            }
        }
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let remembered = !stamp.changed_within(now, SETTLE);
        let entry = Arc::new(self.load(file, meta, stamp, tick).await?);
        if remembered {
            self.insert(key, entry.clone());
        }
        Ok((entry, remembered))
    }

    /// Calls `f` with the in-memory entry a site path led to last time and the
    /// path's media type, if the path still names that same file, unchanged. One
    /// `statx(2)` instead of open, stat and close (the file was reached safely
    /// beneath the root, `openat2`, when it was remembered, and a path that now leads
    /// elsewhere — another inode, a symlink, a changed file — falls back to opening
    /// it); none while change notification vouches for the path; and none of the
    /// index or the cache either for a path the thread keeps ([`crate::front`]).
    pub(crate) fn with_path<R>(
        &self,
        paths: &PathIndex,
        root: &Root,
        rel: &Path,
        f: impl FnOnce(&Arc<Entry>, &MediaType) -> R,
    ) -> Option<R> {
        let index = paths.generation();
        let raw = rel.as_os_str().as_bytes();
        let mut f = Some(f);
        let kept = front::with(index, raw, crate::clock::monotonic(), |e, media| {
            self.touch(e);
            f.take().map(|f| f(e, media))
        });
        if let Some(answer) = kept.flatten() {
            return Some(answer);
        }
        let (lookup, media) = paths.get(rel)?;
        let (key, stamp, until) = match lookup {
            Lookup::Trusted(key, until) => (key, None, Some(until)),
            Lookup::Check(key) => {
                let st = root.stat(rel)?;
                if statx_key(&st) != key {
                    return None;
                }
                (key, Some(Stamp::of_statx(&st)), None)
            }
        };
        let e = {
            let map = self.lock();
            let e = map.get(&key)?;
            if stamp.is_some_and(|s| e.stamp != s) || e.content.is_none() {
                return None;
            }
            self.touch(e);
            e.clone()
        };
        if stamp.is_some() {
            paths.checked(rel);
        }
        if let Some(until) = until {
            front::keep(index, raw, until, &e, &media);
        }
        f.take().map(|f| f(&e, &media))
    }

    /// Remembers that `rel` led to the file of `meta`, unless it changed since.
    pub(crate) fn remember(paths: &PathIndex, root: &Root, rel: &Path, meta: &Metadata) {
        let key = (meta.dev(), meta.ino());
        let stamp = Stamp::of(meta);
        paths.remember(rel, key, || {
            root.stat(rel)
                .is_some_and(|st| statx_key(&st) == key && Stamp::of_statx(&st) == stamp)
        });
    }

    async fn load(
        &self,
        file: &Arc<File>,
        meta: &Metadata,
        stamp: Stamp,
        tick: u64,
    ) -> io::Result<Entry> {
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let (content, etag) = if stamp.size <= self.limits.max_file {
            let f = file.clone();
            let size = stamp.size as usize;
            let bytes = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; size];
                f.read_exact_at(&mut buf, 0).map(|()| buf)
            })
            .await
            .map_err(io::Error::other)??;
            let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
            (
                Some(Bytes::from(bytes)),
                Tag::strong(format!("{hash:016x}")),
            )
        } else {
            let ident = format!(
                "{}:{}:{}:{}",
                meta.ino(),
                stamp.size,
                stamp.mtime_ns,
                stamp.ctime_ns
            );
            let hash = xxhash_rust::xxh3::xxh3_64(ident.as_bytes());
            (None, Tag::strong(format!("m{hash:016x}")))
        };
        Ok(Entry {
            stamp,
            etag,
            modified,
            modified_value: HeaderValue::from_str(&fmt_http_date(modified))
                .expect("HTTP dates are valid header values"),
            content,
            variants: Default::default(),
            hints: std::sync::OnceLock::new(),
            last_used: AtomicU64::new(tick),
            evicted: AtomicBool::new(false),
        })
    }

    /// Marks `e` used now, unless it was used among the last `RECENT` uses or loads:
    /// a file served over and over then writes neither the cache's clock nor its
    /// entry (both shared by every thread), and eviction's order is kept to within
    /// that many uses.
    fn touch(&self, e: &Entry) {
        const RECENT: u64 = 64;
        let now = self.clock.load(Ordering::Relaxed);
        if now.saturating_sub(e.last_used.load(Ordering::Relaxed)) >= RECENT {
            let tick = self.clock.fetch_add(1, Ordering::Relaxed);
            e.last_used.store(tick, Ordering::Relaxed);
        }
    }

    fn insert(&self, key: (u64, u64), entry: Arc<Entry>) {
        if let Some(old) = self.lock().insert(key, entry) {
            old.evicted.store(true, Ordering::Relaxed);
        }
        self.trim();
    }

    /// `entry`'s `coding` variant (see [`Entry::variant`]); a new one counts against
    /// the cache's bound at once.
    pub(crate) async fn variant<'e>(
        &self,
        entry: &'e Entry,
        coding: Coding,
    ) -> Option<&'e Variant> {
        let fresh = !entry.has_variant(coding);
        let v = entry.variant(coding, &self.compressing).await;
        if fresh && v.is_some() {
            self.trim();
        }
        v
    }

    /// Evicts the least recently used entries while over the bound, down to 7/8 of it
    /// so that a cache at its bound does not sort on every miss.
    fn trim(&self) {
        let mut map = self.lock();
        let mut total: u64 = map.values().map(|e| e.weight()).sum();
        if total <= self.limits.max_total {
            return;
        }
        let target = self.limits.max_total / 8 * 7;
        let mut by_age: Vec<_> = map
            .iter()
            .map(|(k, e)| (e.last_used.load(Ordering::Relaxed), *k))
            .collect();
        by_age.sort_unstable();
        for (_, k) in by_age {
            if total <= target {
                break;
            }
            if let Some(e) = map.remove(&k) {
                e.evicted.store(true, Ordering::Relaxed);
                total -= e.weight();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(5)
    }

    async fn entry_of(cache: &FileCache, path: &std::path::Path, now: SystemTime) -> Arc<Entry> {
        let f = Arc::new(File::open(path).unwrap());
        let m = f.metadata().unwrap();
        cache.lookup(&f, &m, now).await.unwrap().0
    }

    #[tokio::test]
    async fn same_size_rewrite_changes_etag() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        let cache = FileCache::new(CacheLimits::default());
        std::fs::write(&p, "aaaa").unwrap();
        // Real clock: both writes fall within the settle window, as in production.
        let a = entry_of(&cache, &p, SystemTime::now()).await;
        std::fs::File::create(&p)
            .unwrap()
            .write_all(b"bbbb")
            .unwrap();
        let b = entry_of(&cache, &p, SystemTime::now()).await;
        assert_ne!(a.etag.value, b.etag.value);
        assert_eq!(b.content.as_deref(), Some(&b"bbbb"[..]));
    }

    #[tokio::test]
    async fn recent_changes_are_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "x").unwrap();
        let cache = FileCache::new(CacheLimits::default());
        entry_of(&cache, &p, SystemTime::now()).await;
        assert_eq!(cache.len(), 0);
        entry_of(&cache, &p, later()).await;
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn large_files_are_streamed_and_tagged_by_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        let cache = FileCache::new(CacheLimits {
            max_file: 10,
            max_total: 100,
        });
        let e = entry_of(&cache, &p, later()).await;
        assert!(e.content.is_none());
        assert!(e.etag.tag.tag().starts_with('m'));
    }

    #[tokio::test]
    async fn total_is_bounded_by_evicting_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        // Each entry weighs 100 bytes + ENTRY_OVERHEAD (356): two fit in 1000, three do not.
        let cache = FileCache::new(CacheLimits {
            max_file: 100,
            max_total: 1000,
        });
        for i in 0..5 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, vec![i as u8; 100]).unwrap();
            entry_of(&cache, &p, later()).await;
        }
        assert_eq!(cache.len(), 2);
    }

    /// A file used again and again leaves the cache's clock alone; one not used for
    /// 64 loads is marked used again, so eviction still finds it recent.
    #[tokio::test]
    async fn only_uses_that_are_not_recent_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(CacheLimits::default());
        let hot = dir.path().join("hot");
        std::fs::write(&hot, "hot").unwrap();
        let e = entry_of(&cache, &hot, later()).await;
        let clock = || cache.clock.load(Ordering::Relaxed);
        let before = clock();
        for _ in 0..100 {
            entry_of(&cache, &hot, later()).await;
        }
        assert_eq!(clock(), before, "recent uses write nothing");
        for i in 0..64 {
            let p = dir.path().join(format!("other{i}"));
            std::fs::write(&p, "x").unwrap();
            entry_of(&cache, &p, later()).await;
        }
        let stale = e.last_used.load(Ordering::Relaxed);
        entry_of(&cache, &hot, later()).await;
        assert!(e.last_used.load(Ordering::Relaxed) > stale, "marked again");
        assert_eq!(e.last_used.load(Ordering::Relaxed), clock() - 1);
    }

    #[tokio::test]
    async fn variants_have_distinct_tags_and_only_when_smaller() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "hello hello hello hello hello hello hello hello hello").unwrap();
        let cache = FileCache::new(CacheLimits::default());
        let e = entry_of(&cache, &p, later()).await;
        let gz = cache.variant(&e, Coding::Gzip).await.unwrap();
        assert_ne!(gz.etag.value, e.etag.value);
        assert!(cache.variant(&e, Coding::Identity).await.is_none());
        std::fs::write(&p, "x").unwrap();
        let tiny = entry_of(&cache, &p, later()).await;
        assert!(cache.variant(&tiny, Coding::Brotli).await.is_none());
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;
    use crate::config::SymlinkPolicy;

    /// Whether `f` holds within a bounded wait (change notification is asynchronous).
    fn soon(mut f: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    impl FileCache {
        fn by_path(
            &self,
            paths: &PathIndex,
            root: &Root,
            rel: &Path,
        ) -> Option<(Arc<Entry>, MediaType)> {
            self.with_path(paths, root, rel, |e, media| (e.clone(), media.clone()))
        }
    }

    /// A path the thread keeps is served without the index while the index's
    /// generation stays; a change wharf makes itself (an upload) moves it at once,
    /// and an entry the cache evicts is not served from the thread's keeping.
    #[tokio::test]
    async fn kept_paths_hold_only_while_the_index_and_the_cache_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one").unwrap();
        std::fs::write(dir.path().join("b.txt"), "two").unwrap();
        let root = Root::open(dir.path(), SymlinkPolicy::WithinRoot).unwrap();
        let cache = FileCache::new(CacheLimits {
            max_total: 2 * ENTRY_OVERHEAD + 4,
            ..CacheLimits::default()
        });
        let paths = PathIndex::new(root.fd());
        let later = SystemTime::now() + Duration::from_secs(5);
        let load = |rel: &'static str| {
            let (file, meta) = root.open_file(Path::new(rel)).unwrap();
            let cache = &cache;
            let (paths, root) = (&paths, &root);
            async move {
                cache.lookup(&Arc::new(file), &meta, later).await.unwrap();
                FileCache::remember(paths, root, Path::new(rel), &meta);
            }
        };
        let a = Path::new("a.txt");
        load("a.txt").await;
        let first = cache.by_path(&paths, &root, a).expect("remembered").0;
        // Kept: found with the index emptied behind its back.
        paths.forget_unannounced();
        let kept = cache
            .by_path(&paths, &root, a)
            .expect("kept by the thread")
            .0;
        assert!(Arc::ptr_eq(&first, &kept));
        // A change announced moves the generation: neither kept nor remembered.
        load("a.txt").await;
        assert!(cache.by_path(&paths, &root, a).is_some());
        paths.changed(a);
        assert!(cache.by_path(&paths, &root, a).is_none());
        // Evicted (b.txt pushes a.txt out of a cache with room for one): not served.
        load("a.txt").await;
        assert!(cache.by_path(&paths, &root, a).is_some());
        paths.forget_unannounced();
        load("b.txt").await;
        assert!(cache.by_path(&paths, &root, Path::new("b.txt")).is_some());
        assert!(first.evicted(), "the least recently used");
        assert!(
            cache.by_path(&paths, &root, a).is_none(),
            "not served once evicted"
        );
    }

    #[tokio::test]
    async fn by_path_serves_only_the_same_unchanged_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "one").unwrap();
        let root = Root::open(dir.path(), SymlinkPolicy::WithinRoot).unwrap();
        let cache = FileCache::new(CacheLimits::default());
        let paths = PathIndex::new(root.fd());
        let rel = Path::new("a.txt");
        assert!(cache.by_path(&paths, &root, rel).is_none(), "unknown path");
        let (file, meta) = root.open_file(rel).unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        let (e, remembered) = cache.lookup(&Arc::new(file), &meta, later).await.unwrap();
        assert!(remembered);
        FileCache::remember(&paths, &root, rel, &meta);
        let fast = cache
            .by_path(&paths, &root, rel)
            .expect("same file, unchanged");
        assert!(Arc::ptr_eq(&fast.0, &e));
        assert_eq!(fast.1.value, "text/plain; charset=utf-8");
        // Changed content: the change is noticed (inotify, or the stamp).
        std::fs::write(&p, "two!").unwrap();
        assert!(soon(|| cache.by_path(&paths, &root, rel).is_none()));
        // Replaced by a symlink to the same content elsewhere: another inode.
        let (file, meta) = root.open_file(rel).unwrap();
        cache.lookup(&Arc::new(file), &meta, later).await.unwrap();
        FileCache::remember(&paths, &root, rel, &meta);
        assert!(cache.by_path(&paths, &root, rel).is_some());
        std::fs::remove_file(&p).unwrap();
        std::fs::write(dir.path().join("b.txt"), "one").unwrap();
        std::os::unix::fs::symlink("b.txt", &p).unwrap();
        assert!(soon(|| cache.by_path(&paths, &root, rel).is_none()));
    }

    #[tokio::test]
    async fn nested_paths_take_the_slow_path_unless_every_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a.txt"), "one").unwrap();
        let rel = Path::new("d/a.txt");
        for (policy, fast) in [
            (SymlinkPolicy::WithinRoot, false),
            (SymlinkPolicy::Never, false),
            (SymlinkPolicy::Follow, true),
        ] {
            let root = Root::open(dir.path(), policy).unwrap();
            let cache = FileCache::new(CacheLimits::default());
            let paths = PathIndex::new(root.fd());
            let (file, meta) = root.open_file(rel).unwrap();
            let later = SystemTime::now() + Duration::from_secs(5);
            cache.lookup(&Arc::new(file), &meta, later).await.unwrap();
            FileCache::remember(&paths, &root, rel, &meta);
            assert_eq!(
                cache.by_path(&paths, &root, rel).is_some(),
                fast,
                "{policy:?}"
            );
        }
    }

    #[test]
    fn statx_device_numbers_match_std() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let st = rustix::fs::statx(
            rustix::fs::CWD,
            f.path(),
            rustix::fs::AtFlags::empty(),
            rustix::fs::StatxFlags::BASIC_STATS,
        )
        .unwrap();
        let m = std::fs::metadata(f.path()).unwrap();
        assert_eq!(
            rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            m.dev()
        );
        assert_eq!(st.stx_ino, m.ino());
        assert_eq!(Stamp::of_statx(&st), Stamp::of(&m));
    }
}
