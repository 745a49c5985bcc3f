//! History on disk (`hub.data_dir`): one append-only log per channel, so that a
//! restart loses no message the hub answered with an id.
//!
//! A record is the id and time (little-endian u64 each), the data's length
//! (little-endian u32) and the data. Each publish appends one record with one
//! `write(2)` under the channel's lock, so records are in id order; a record cut short
//! by a crash is dropped when the log is read back. When a log holds twice the
//! history limit, it is rewritten with what the history keeps (to a temporary file,
//! renamed into place). Records reach the kernel before the publisher gets its id;
//! they are not fsynced, so a power loss can take the last ones.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::channel::Event;

/// Size of a record's header.
const HEADER: usize = 20;

/// The logs of one hub.
pub(crate) struct Store {
    dir: PathBuf,
    logs: Mutex<HashMap<String, Log>>,
    /// Records a log may hold before it is compacted.
    compact_at: usize,
}

struct Log {
    file: File,
    records: usize,
}

impl Store {
    /// Opens (creating) `dir`; logs are compacted past `2 × max_messages` records.
    pub(crate) fn open(dir: &Path, max_messages: usize) -> io::Result<Store> {
        fs::create_dir_all(dir)?;
        Ok(Store {
            dir: dir.to_owned(),
            logs: Mutex::new(HashMap::new()),
            compact_at: max_messages.saturating_mul(2).max(64),
        })
    }

    fn path(&self, channel: &str) -> PathBuf {
        self.dir.join(format!("{channel}.log"))
    }

    /// The channels that have a log.
    pub(crate) fn channels(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".log")) {
                if crate::service::valid_channel(n) {
                    names.push(n.to_owned());
                }
            }
        }
        Ok(names)
    }

    /// Reads a channel's log: its events in id order (a torn last record dropped).
    /// The log stays open for appending, its records counted.
    pub(crate) fn load(&self, channel: &str) -> io::Result<Vec<Arc<Event>>> {
        let mut bytes = Vec::new();
        let mut file = match OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.path(channel))
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.read_to_end(&mut bytes)?;
        let mut events = Vec::new();
        let mut at = 0;
        while let Some(head) = bytes.get(at..at + HEADER) {
            let id = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
            let time = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes")) as usize;
            let Some(data) = bytes.get(at + HEADER..at + HEADER + len) else {
                break; // cut short by a crash
            };
            events.push(Arc::new(Event::new(
                channel,
                id,
                time,
                Bytes::copy_from_slice(data),
            )));
            at += HEADER + len;
        }
        if at < bytes.len() {
            // Cut off, so that records appended later do not follow the torn one.
            tracing::warn!(channel, "hub log: dropped a record cut short");
            file.set_len(at as u64)?;
        }
        let records = events.len();
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.entry(channel.to_owned())
            .or_insert(Log { file, records });
        Ok(events)
    }

    /// Appends an event to its channel's log; once the log is long, rewrites it with
    /// `kept` (the history after this event).
    pub(crate) fn append(
        &self,
        channel: &str,
        event: &Event,
        kept: impl FnOnce() -> Vec<Arc<Event>>,
    ) -> io::Result<()> {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let log = match logs.entry(channel.to_owned()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // A channel new to the log (existing logs were loaded at start).
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path(channel))?;
                v.insert(Log { file, records: 0 })
            }
        };
        log.file.write_all(&record(event))?;
        log.records += 1;
        if log.records >= self.compact_at {
            let kept = kept();
            let tmp = self.dir.join(format!(".{channel}.log.tmp"));
            let mut out = File::create(&tmp)?;
            for e in &kept {
                out.write_all(&record(e))?;
            }
            out.sync_all()?;
            fs::rename(&tmp, self.path(channel))?;
            log.file = OpenOptions::new().append(true).open(self.path(channel))?;
            log.records = kept.len();
        }
        Ok(())
    }
}

fn record(e: &Event) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + e.data.len());
    v.extend_from_slice(&e.id.to_le_bytes());
    v.extend_from_slice(&e.time.to_le_bytes());
    v.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
    v.extend_from_slice(&e.data);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64) -> Event {
        Event::new("c", id, 1000 + id, Bytes::from(format!("m{id}")))
    }

    #[test]
    fn logs_read_back_and_drop_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100).unwrap();
        for id in 1..=3 {
            store.append("c", &event(id), Vec::new).unwrap();
        }
        let back = store.load("c").unwrap();
        assert_eq!(
            back.iter().map(|e| (e.id, e.time)).collect::<Vec<_>>(),
            [(1, 1001), (2, 1002), (3, 1003)]
        );
        assert_eq!(&back[2].data[..], b"m3");
        // A crash in the middle of a write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(store.path("c"))
            .unwrap();
        f.write_all(&record(&event(4))[..21]).unwrap();
        drop(store);
        let store = Store::open(dir.path(), 100).unwrap(); // a restart
        assert_eq!(store.load("c").unwrap().len(), 3);
        // What is appended after the torn record reads back.
        store.append("c", &event(4), Vec::new).unwrap();
        let ids: Vec<u64> = store.load("c").unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        assert_eq!(store.channels().unwrap(), ["c"]);
    }

    #[test]
    fn long_logs_are_compacted_to_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 10).unwrap(); // compacts at 64 records
        for id in 1..=64u64 {
            let kept = || (55..=id).map(|i| Arc::new(event(i))).collect();
            store.append("c", &event(id), kept).unwrap();
        }
        let back = store.load("c").unwrap();
        assert_eq!(back.first().map(|e| e.id), Some(55));
        assert_eq!(back.len(), 10);
        store.append("c", &event(65), Vec::new).unwrap();
        assert_eq!(store.load("c").unwrap().last().map(|e| e.id), Some(65));
    }
}
