//! The shared cache's disk tier (`[proxy.cache] dir`): every stored response is also
//! written to a file of its own, so the cache survives a restart and holds more than
//! memory does; a target missing from memory is read back from its files.
//!
//! A file is written whole under `tmp/` and then renamed into place, so a crash (even
//! `kill -9`) leaves either the old file, the new one, or a leftover in `tmp/` (removed
//! at the next start) — never a torn entry. Each file also ends with a checksum of
//! everything before it, checked when it is read: a file damaged some other way (a
//! power loss before the kernel wrote it out; wharf does not fsync, as nginx does
//! not) is deleted, not served.
//!
//! Layout of a file: `WHARFC01`, the length of the metadata (u32, little endian), the
//! metadata (JSON: target, status, fields, `Vary` values, key additions, tags,
//! times), the body's length (u64), the body, and the XXH3-64 of all that (u64).
//! The index (target → files, with sizes and tags, least recently used first out
//! beyond `max_bytes`) is rebuilt at start from the files' metadata.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use wharf_http::cache as rules;

use crate::cache::{Entry, Key, Removals};

const MAGIC: &[u8; 8] = b"WHARFC01";
/// Metadata larger than this is not ours (or is damaged).
const MAX_META: u32 = 1 << 20;

/// The disk tier.
#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    /// The cache's count of removals: a write that began before one is dropped.
    removals: Arc<Removals>,
    /// Writes queued on the blocking pool; beyond `MAX_PENDING` more are skipped.
    pending: AtomicUsize,
}

/// Writes waiting at most (each holds its response): a disk slower than the traffic
/// skips writes rather than holding responses memory has let go.
const MAX_PENDING: usize = 64;

#[derive(Debug, Default)]
struct Index {
    files: HashMap<Key, Vec<Filed>>,
    /// Recency: tick → (target, file name), oldest first.
    order: BTreeMap<u64, (Key, String)>,
    next_tick: u64,
    bytes: u64,
}

/// One file of the index.
#[derive(Debug, Clone)]
struct Filed {
    name: String,
    size: u64,
    tags: Vec<String>,
    tick: u64,
}

/// What a file says of its response, besides the body.
#[derive(Serialize, Deserialize)]
struct Meta {
    host: String,
    target: String,
    status: u16,
    fields: Vec<(String, Vec<u8>)>,
    vary: Vec<(String, String)>,
    extra: Vec<Option<Vec<u8>>>,
    tags: Vec<String>,
    /// Seconds and nanoseconds since the epoch.
    request_time: (u64, u32),
    response_time: (u64, u32),
}

impl Disk {
    /// Opens (creating) `dir`, removes what a crash left in `dir/tmp`, and indexes
    /// the files there; damaged ones are removed.
    pub(crate) fn open(dir: &Path, max_bytes: u64, removals: Arc<Removals>) -> io::Result<Disk> {
        let tmp = dir.join("tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        let mut index = Index::default();
        let mut found: Vec<(SystemTime, Key, Filed)> = Vec::new();
        for item in fs::read_dir(dir)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".entry") {
                continue;
            }
            let path = item.path();
            match read_meta(&path) {
                Ok(meta) => {
                    let used = item
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    let size = item.metadata().map_or(0, |m| m.len());
                    let key = (meta.host, meta.target);
                    found.push((
                        used,
                        key,
                        Filed {
                            name,
                            size,
                            tags: meta.tags,
                            tick: 0,
                        },
                    ));
                }
                Err(e) => {
                    tracing::warn!(target: "wharf::proxy", file = %path.display(), error = %e, "cache file damaged: removed");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        // Oldest first, so that the recency order starts as the files' ages.
        found.sort_by_key(|(used, _, _)| *used);
        for (_, key, filed) in found {
            index.add(key, filed);
        }
        let disk = Disk {
            dir: dir.to_owned(),
            max_bytes,
            index: Mutex::new(index),
            removals,
            pending: AtomicUsize::new(0),
        };
        disk.evict();
        Ok(disk)
    }

    /// Whether `key` has files.
    pub(crate) fn has(&self, key: &Key) -> bool {
        self.index
            .lock()
            .expect("disk lock")
            .files
            .contains_key(key)
    }

    /// The responses stored for `key`, read from their files (on the blocking pool);
    /// a file that fails its checksum, or is gone, is forgotten.
    pub(crate) async fn load(self: &Arc<Self>, key: &Key) -> Vec<Entry> {
        let names: Vec<String> = {
            let mut ix = self.index.lock().expect("disk lock");
            ix.touch(key);
            ix.files
                .get(key)
                .into_iter()
                .flatten()
                .map(|f| f.name.clone())
                .collect()
        };
        let disk = self.clone();
        let key = key.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            for name in names {
                match read_entry(&disk.dir.join(&name)) {
                    Ok(e) => entries.push(e),
                    Err(e) => {
                        tracing::warn!(target: "wharf::proxy", file = %name, error = %e, "cache file damaged: removed");
                        disk.forget(&key, &name);
                    }
                }
            }
            entries
        });
        read.await.unwrap_or_default()
    }

    /// Writes `entry` for `key` (on the blocking pool), replacing the file of the
    /// same variant, then keeps the tier within `max_bytes`. `epoch` is the cache's
    /// removal count when the response was stored: a removal since then (a purge,
    /// an invalidation) drops the write.
    pub(crate) fn save(self: &Arc<Self>, key: &Key, entry: &Arc<Entry>, epoch: u64) {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(target: "wharf::proxy", "cache file not written: the disk is behind");
            return;
        }
        let (disk, key, entry) = (self.clone(), key.clone(), entry.clone());
        tokio::task::spawn_blocking(move || {
            let name = file_name(&key, &entry);
            let written = disk.write(&key, &entry, &name);
            disk.pending.fetch_sub(1, Ordering::AcqRel);
            match written {
                Ok(size) => {
                    let filed = Filed {
                        name,
                        size,
                        tags: entry.tags.clone(),
                        tick: 0,
                    };
                    let mut ix = disk.index.lock().expect("disk lock");
                    // Checked under the index's lock, which removals take after
                    // counting themselves.
                    if disk.removals.of(&key) != epoch {
                        drop(ix);
                        let _ = fs::remove_file(disk.dir.join(&filed.name));
                        return;
                    }
                    ix.add(key, filed);
                    drop(ix);
                    disk.evict();
                }
                Err(e) => {
                    tracing::warn!(target: "wharf::proxy", dir = %disk.dir.display(), error = %e, "cache file not written");
                }
            }
        });
    }

    fn write(&self, key: &Key, entry: &Entry, name: &str) -> io::Result<u64> {
        let bytes = encode(key, entry)?;
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{name}.{:x}", rand_u64()));
        let mut f = File::create(&tmp)?;
        let written = f.write_all(&bytes).and_then(|()| {
            drop(f);
            fs::rename(&tmp, self.dir.join(name))
        });
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| bytes.len() as u64)
    }

    /// Removes every file of `key`; returns how many.
    pub(crate) fn remove(&self, key: &Key) -> usize {
        let gone = {
            let mut ix = self.index.lock().expect("disk lock");
            ix.take(key, |_| true)
        };
        self.delete(&gone)
    }

    /// Removes every file tagged with one of `tags`; returns the targets they were of.
    pub(crate) fn remove_tagged(&self, tags: &[String]) -> Vec<Key> {
        let mut ix = self.index.lock().expect("disk lock");
        let keys: Vec<Key> = ix
            .files
            .iter()
            .filter(|(_, fs)| fs.iter().any(|f| f.tags.iter().any(|t| tags.contains(t))))
            .map(|(k, _)| k.clone())
            .collect();
        let mut gone = Vec::new();
        for key in &keys {
            gone.extend(ix.take(key, |f| f.tags.iter().any(|t| tags.contains(t))));
        }
        drop(ix);
        self.delete(&gone);
        keys
    }

    fn forget(&self, key: &Key, name: &str) {
        let gone = self
            .index
            .lock()
            .expect("disk lock")
            .take(key, |f| f.name == name);
        self.delete(&gone);
    }

    fn delete(&self, names: &[String]) -> usize {
        for name in names {
            let _ = fs::remove_file(self.dir.join(name));
        }
        names.len()
    }

    /// Removes the least recently used files beyond `max_bytes`.
    fn evict(&self) {
        let mut gone = Vec::new();
        {
            let mut ix = self.index.lock().expect("disk lock");
            while ix.bytes > self.max_bytes {
                let Some((_, (key, name))) = ix.order.pop_first() else {
                    break;
                };
                gone.extend(ix.take(&key, |f| f.name == name));
            }
        }
        self.delete(&gone);
    }
}

impl Index {
    /// Adds (or replaces) a file of `key`, as the most recently used.
    fn add(&mut self, key: Key, mut filed: Filed) {
        self.take(&key, |f| f.name == filed.name);
        filed.tick = self.next_tick;
        self.next_tick += 1;
        self.bytes += filed.size;
        self.order
            .insert(filed.tick, (key.clone(), filed.name.clone()));
        self.files.entry(key).or_default().push(filed);
    }

    /// Marks the files of `key` used.
    fn touch(&mut self, key: &Key) {
        let Some(files) = self.files.get_mut(key) else {
            return;
        };
        for f in files {
            self.order.remove(&f.tick);
            f.tick = self.next_tick;
            self.next_tick += 1;
            self.order.insert(f.tick, (key.clone(), f.name.clone()));
        }
    }

    /// Takes the files of `key` that `which` selects out of the index; their names.
    fn take(&mut self, key: &Key, which: impl Fn(&Filed) -> bool) -> Vec<String> {
        let Some(files) = self.files.get_mut(key) else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        files.retain(|f| {
            if !which(f) {
                return true;
            }
            gone.push((f.tick, f.size, f.name.clone()));
            false
        });
        if files.is_empty() {
            self.files.remove(key);
        }
        for (tick, size, _) in &gone {
            self.order.remove(tick);
            self.bytes -= size;
        }
        gone.into_iter().map(|(_, _, name)| name).collect()
    }
}

/// The file name of a variant: a hash of its target, `Vary` values and key additions.
fn file_name(key: &Key, entry: &Entry) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [&key.0, &key.1] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    for (n, v) in &entry.vary {
        h.update(n.as_str().as_bytes());
        h.update(&[1]);
        h.update(v.as_bytes());
        h.update(&[0]);
    }
    for e in &entry.extra {
        match e {
            Some(v) => {
                h.update(&[2]);
                h.update(v);
            }
            None => h.update(&[3]),
        }
    }
    format!("{:032x}.entry", h.digest128())
}

fn since_epoch(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

fn from_epoch((secs, nanos): (u64, u32)) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

/// A file's bytes for `entry`.
fn encode(key: &Key, entry: &Entry) -> io::Result<Vec<u8>> {
    let meta = Meta {
        host: key.0.clone(),
        target: key.1.clone(),
        status: entry.status.as_u16(),
        fields: entry
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        vary: entry
            .vary
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.clone()))
            .collect(),
        extra: entry.extra.clone(),
        tags: entry.tags.clone(),
        request_time: since_epoch(entry.request_time),
        response_time: since_epoch(entry.response_time),
    };
    let meta = serde_json::to_vec(&meta).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(meta.len() + entry.body.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(entry.body.len() as u64).to_le_bytes());
    out.extend_from_slice(&entry.body);
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

fn damaged(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// The metadata at the start of a file (its checksum is checked when it is read
/// whole).
fn read_meta(path: &Path) -> io::Result<Meta> {
    let mut r = BufReader::new(File::open(path)?);
    let mut head = [0u8; 12];
    r.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(damaged("not a wharf cache file"));
    }
    let len = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if len > MAX_META {
        return Err(damaged("metadata too large"));
    }
    let mut meta = vec![0u8; len as usize];
    r.read_exact(&mut meta)?;
    serde_json::from_slice(&meta).map_err(|e| damaged(&e.to_string()))
}

/// A whole file, checked against its checksum.
fn read_entry(path: &Path) -> io::Result<Entry> {
    let bytes = fs::read(path)?;
    if bytes.len() < 28 || &bytes[..8] != MAGIC {
        return Err(damaged("not a wharf cache file"));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(content).to_le_bytes() != sum {
        return Err(damaged("checksum mismatch"));
    }
    let len = u32::from_le_bytes(content[8..12].try_into().expect("4 bytes")) as usize;
    let meta_end = 12 + len;
    let body_at = meta_end + 8;
    if content.len() < body_at {
        return Err(damaged("short file"));
    }
    let meta: Meta =
        serde_json::from_slice(&content[12..meta_end]).map_err(|e| damaged(&e.to_string()))?;
    let body_len = u64::from_le_bytes(content[meta_end..body_at].try_into().expect("8 bytes"));
    if (content.len() - body_at) as u64 != body_len {
        return Err(damaged("body length mismatch"));
    }
    let mut headers = HeaderMap::new();
    for (n, v) in meta.fields {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| damaged("field name"))?;
        let value = HeaderValue::from_bytes(&v).map_err(|_| damaged("field value"))?;
        headers.append(name, value);
    }
    let vary = meta
        .vary
        .into_iter()
        .map(|(n, v)| {
            Ok((
                HeaderName::from_bytes(n.as_bytes()).map_err(|_| damaged("Vary name"))?,
                v,
            ))
        })
        .collect::<io::Result<_>>()?;
    let targeted = rules::targeted(&headers);
    Ok(Entry {
        status: StatusCode::from_u16(meta.status).map_err(|_| damaged("status"))?,
        headers,
        body: Bytes::from(bytes).slice(body_at..body_at + body_len as usize),
        vary,
        extra: meta.extra,
        tags: meta.tags,
        purged_at: None,
        targeted,
        memo: Default::default(),
        request_time: from_epoch(meta.request_time),
        response_time: from_epoch(meta.response_time),
    })
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(crate::tunnel::random::<8>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &'static [u8]) -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
        Entry {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(body),
            vary: vec![(http::header::ACCEPT_ENCODING, "gzip".into())],
            extra: vec![Some(b"en".to_vec()), None],
            tags: vec!["t".into()],
            purged_at: None,
            targeted: None,
            memo: Default::default(),
            request_time: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            response_time: SystemTime::UNIX_EPOCH + Duration::from_secs(6),
        }
    }

    #[test]
    fn files_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let key: Key = ("a.test".into(), "/x?y".into());
        let bytes = encode(&key, &entry(b"hello")).unwrap();
        let path = dir.path().join("e.entry");
        fs::write(&path, &bytes).unwrap();
        let back = read_entry(&path).unwrap();
        assert_eq!(back.body, "hello");
        assert_eq!(back.headers["cache-control"], "max-age=60");
        assert_eq!(back.vary, entry(b"").vary);
        assert_eq!(back.extra, entry(b"").extra);
        assert_eq!(back.response_time, entry(b"").response_time);
        assert_eq!(read_meta(&path).unwrap().target, "/x?y");
        // Cut short (what a write without the rename could leave) or changed: refused.
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_entry(&path).is_err());
        let mut flipped = bytes.clone();
        flipped[bytes.len() - 12] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert!(read_entry(&path).is_err());
    }

    #[test]
    fn the_index_keeps_within_its_bytes_least_recently_used_out() {
        let mut ix = Index::default();
        let key = |p: &str| -> Key { ("a".into(), p.into()) };
        let filed = |name: &str| Filed {
            name: name.into(),
            size: 10,
            tags: vec!["t".into()],
            tick: 0,
        };
        ix.add(key("/a"), filed("a"));
        ix.add(key("/b"), filed("b"));
        ix.add(key("/a"), filed("a")); // replaced, not added twice
        assert_eq!(ix.bytes, 20);
        ix.touch(&key("/b"));
        let (_, (oldest, _)) = ix.order.pop_first().unwrap();
        assert_eq!(oldest, key("/a"), "/b was used since");
        assert_eq!(ix.take(&key("/b"), |_| true), ["b"]);
        assert!(!ix.files.contains_key(&key("/b")));
    }
}
