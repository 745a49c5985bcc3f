//! HPACK (RFC 7541): the header compression of HTTP/2.
//!
//! The decoder reads a complete header block (a HEADERS frame and its CONTINUATIONs)
//! and hands out each field; literal strings that are not Huffman-coded are slices of
//! the block, not copies. Every error is a COMPRESSION_ERROR of the connection (RFC
//! 9113 §4.3), since the two ends' dynamic tables no longer agree.
//!
//! The encoder writes response fields. It indexes fields in its dynamic table unless
//! they are sensitive (`HeaderValue::is_sensitive`, sent never-indexed) or too large to
//! keep, so the fields repeated on every response of a connection (content type,
//! cache control, dates within the same second) cost a byte or two after the first.
//! It finds them in the table through two small hash indexes (of name and value, and
//! of name) rather than by scanning it and the static table for every field.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher as _;
use std::ops::Range;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use rustc_hash::{FxBuildHasher, FxHasher};

use crate::huffman;

/// RFC 7541 Appendix A: the static table; index 1 is the first entry.
pub(crate) const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The size of an entry beyond its name and value (§4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Why a header block cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer longer than 32 bits.
    IntegerOverflow,
    /// An index into neither table.
    BadIndex,
    /// A Huffman string with EOS or invalid padding (§5.2).
    Huffman,
    /// A dynamic table size update above the limit, or after the first field (§4.2).
    TableSizeUpdate,
}

/// One decoded field.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name, as sent (HTTP/2 requires lowercase; the caller checks).
    pub name: Bytes,
    /// The value, as sent.
    pub value: Bytes,
    /// Sent as never-indexed (§6.2.3): an intermediary must keep it so.
    pub sensitive: bool,
    /// The field as `http` types, when it came from the dynamic table and `http`
    /// takes both parts as they are (a lowercase regular name): made once, when the
    /// entry was added, rather than for every request that refers to it.
    pub header: Option<(HeaderName, HeaderValue)>,
}

impl Field {
    /// A field as sent, not yet in `http` types.
    pub fn new(name: Bytes, value: Bytes, sensitive: bool) -> Self {
        Field {
            name,
            value,
            sensitive,
            header: None,
        }
    }
}

/// Fields are equal as sent; `header` is only a cache of the same.
impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.value, self.sensitive) == (&other.name, &other.value, other.sensitive)
    }
}

impl Eq for Field {}

/// The dynamic table as the decoder keeps it, newest entry first, each entry with
/// its field in `http` types where it has one ([`Field::header`]).
#[derive(Debug, Default)]
struct Table {
    entries: VecDeque<Field>,
    size: usize,
    max: usize,
}

impl Table {
    /// The field at `index`: a static one made (its bytes are static), a dynamic
    /// entry lent, so that the caller clones only what it keeps of it.
    fn get(&self, index: usize) -> Result<Cow<'_, Field>, HpackError> {
        match index {
            0 => Err(HpackError::BadIndex),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok(Cow::Owned(Field::new(
                    Bytes::from_static(n.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                    false,
                )))
            }
            _ => self
                .entries
                .get(index - 62)
                .map(Cow::Borrowed)
                .ok_or(HpackError::BadIndex),
        }
    }

    /// Adds an entry, evicting the oldest to make room; an entry larger than the
    /// whole table empties it (§4.4). Returns the entry's field in `http` types.
    fn insert(&mut self, name: Bytes, value: Bytes) -> Option<(HeaderName, HeaderValue)> {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        self.evict_to(self.max.saturating_sub(size));
        let header = regular_field(&name, value.clone()).ok();
        if size <= self.max {
            self.size += size;
            self.entries.push_front(Field {
                name,
                value,
                sensitive: false,
                header: header.clone(),
            });
        }
        header
    }

    fn set_max(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            let e = self.entries.pop_back().expect("size counts entries");
            self.size -= e.name.len() + e.value.len() + ENTRY_OVERHEAD;
        }
    }
}

/// A regular field as `http` types, or why RFC 9113 §8.2 refuses it: an uppercase
/// name, or a name (a pseudo-header's among them) or value `http` does not take. The
/// caller checks the rest of §8.2.
pub(crate) fn regular_field(
    name: &[u8],
    value: Bytes,
) -> Result<(HeaderName, HeaderValue), &'static str> {
    if name.iter().any(u8::is_ascii_uppercase) {
        return Err("an uppercase field name");
    }
    let name = HeaderName::from_bytes(name).map_err(|_| "an invalid field name")?;
    let value = HeaderValue::from_maybe_shared(value).map_err(|_| "an invalid field value")?;
    Ok((name, value))
}

/// Decodes the header blocks of one direction of a connection.
#[derive(Debug)]
pub struct Decoder {
    table: Table,
    /// The table size this end announced (SETTINGS_HEADER_TABLE_SIZE).
    limit: usize,
    /// The last Huffman-coded value of a literal field that is not indexed.
    last_coded: Option<Coded>,
}

/// A short Huffman-coded value as sent, and its decoding. A client that never
/// indexes a field (nghttp2, and so curl and h2load, never index `:path`) sends the
/// same coded bytes on every request for the same resource: decoded once, the value
/// is then a reference count, not a decoding and an allocation per request.
#[derive(Debug)]
struct Coded {
    coded: [u8; CODED_MAX],
    len: u8,
    decoded: Bytes,
}

/// The longest coded value remembered (a path of about 60 characters).
const CODED_MAX: usize = 48;

impl Decoder {
    /// A decoder for a peer told that the table may hold `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Decoder {
            table: Table {
                max: limit,
                ..Table::default()
            },
            limit,
            last_coded: None,
        }
    }

    /// Decodes `block`, giving each field to `field` in order: a field of the
    /// dynamic table is lent (cloning all of it, for a caller that keeps part, cost
    /// reference counts both ways). On error the decoder is unusable (the
    /// connection must end).
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(Cow<'_, Field>),
    ) -> Result<(), HpackError> {
        let mut pos = 0;
        let mut first = true;
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                // Indexed field (§6.1).
                field(self.table.get(integer(block, &mut pos, 7)?)?);
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3): only before the first field.
                let size = integer(block, &mut pos, 5)?;
                if !first || size > self.limit {
                    return Err(HpackError::TableSizeUpdate);
                }
                self.table.set_max(size);
                continue;
            } else {
                // Literals (§6.2): with incremental indexing (01), never indexed
                // (0001), or without indexing (0000).
                let (prefix, indexing, sensitive) = match b & 0xf0 {
                    0x40..=0x70 => (6, true, false),
                    0x10 => (4, false, true),
                    _ => (4, false, false),
                };
                let index = integer(block, &mut pos, prefix)?;
                let name = if index == 0 {
                    string(block, &mut pos)?
                } else {
                    match self.table.get(index)? {
                        Cow::Owned(f) => f.name,
                        Cow::Borrowed(f) => f.name.clone(),
                    }
                };
                let value = if indexing || sensitive {
                    string(block, &mut pos)?
                } else {
                    self.unindexed_value(block, &mut pos)?
                };
                let mut f = Field::new(name, value, sensitive);
                if indexing {
                    // (Strings are copied out of the block as they are read, so an
                    // entry keeps no block alive.)
                    f.header = self.table.insert(f.name.clone(), f.value.clone());
                }
                field(Cow::Owned(f));
            }
            first = false;
        }
        Ok(())
    }
}

impl Decoder {
    /// The value of a literal without indexing (§6.2.2) at `pos`: the last one
    /// again if it is the same short Huffman-coded bytes ([`Coded`]).
    fn unindexed_value(&mut self, block: &[u8], pos: &mut usize) -> Result<Bytes, HpackError> {
        let (huffman, span) = string_at(block, pos)?;
        if !huffman {
            return Ok(Bytes::copy_from_slice(&block[span]));
        }
        let coded = &block[span];
        if let Some(last) = self.last_coded.as_ref().filter(|c| c.coded() == coded) {
            return Ok(last.decoded.clone());
        }
        let decoded = huffman_decoded(coded)?;
        self.last_coded = Coded::of(coded, &decoded);
        Ok(decoded)
    }
}

impl Coded {
    /// `coded` and its decoding, if short enough to keep.
    fn of(coded: &[u8], decoded: &Bytes) -> Option<Coded> {
        let mut c = Coded {
            coded: [0; CODED_MAX],
            len: u8::try_from(coded.len()).ok()?,
            decoded: decoded.clone(),
        };
        c.coded.get_mut(..coded.len())?.copy_from_slice(coded);
        Some(c)
    }

    fn coded(&self) -> &[u8] {
        &self.coded[..usize::from(self.len)]
    }
}

/// Reads an integer with an N-bit prefix (§5.1; N up to 8, as QPACK's Required
/// Insert Count has), at most 32 bits.
pub fn integer(buf: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = ((1u16 << prefix) - 1) as u8;
    let first = buf.get(*pos).ok_or(HpackError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = u64::from(mask);
    for shift in (0..35).step_by(7) {
        let b = *buf.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return usize::try_from(value)
                .ok()
                .filter(|&v| v <= u32::MAX as usize)
                .ok_or(HpackError::IntegerOverflow);
        }
    }
    Err(HpackError::IntegerOverflow)
}

/// Reads a string literal (§5.2): its bytes, or their Huffman decoding, copied out
/// of the block (a field may outlive the buffer the block was read into).
fn string(block: &[u8], pos: &mut usize) -> Result<Bytes, HpackError> {
    let (huffman, span) = string_at(block, pos)?;
    if huffman {
        huffman_decoded(&block[span])
    } else {
        Ok(Bytes::copy_from_slice(&block[span]))
    }
}

/// The string literal at `pos` (§5.2): whether it is Huffman-coded, and where its
/// bytes are; `pos` moves past it.
fn string_at(block: &[u8], pos: &mut usize) -> Result<(bool, Range<usize>), HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len).filter(|&e| e <= block.len());
    let end = end.ok_or(HpackError::Truncated)?;
    let span = *pos..end;
    *pos = end;
    Ok((huffman, span))
}

/// `raw` Huffman-decoded (§5.2), in the thread's scratch buffer and copied out at
/// its length ([`wharf_http::spares::with_scratch`]).
pub fn huffman_decoded(raw: &[u8]) -> Result<Bytes, HpackError> {
    wharf_http::spares::with_scratch(|out| {
        out.reserve(raw.len() + raw.len() / 2);
        huffman::decode(raw, out)
            .map(|()| Bytes::copy_from_slice(out))
            .map_err(|_| HpackError::Huffman)
    })
}

/// The static table's first index for `name`.
const fn static_name(name: &[u8]) -> Option<usize> {
    Some(match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    })
}

/// The static table's index for `name: value`, for the pairs in it; `first` is
/// [`static_name`]'s index for `name`.
fn static_pair(first: usize, name: &[u8], value: &[u8]) -> Option<usize> {
    (first..=61)
        .take_while(|&i| STATIC[i - 1].0.as_bytes() == name)
        .find(|&i| STATIC[i - 1].1.as_bytes() == value)
}

/// An entry of the encoder's dynamic table.
#[derive(Debug)]
struct Entry {
    name: Box<[u8]>,
    value: Box<[u8]>,
    /// Its keys in the encoder's indexes.
    name_key: u64,
    pair_key: u64,
}

/// Encodes the header blocks of one direction of a connection.
#[derive(Debug)]
pub struct Encoder {
    /// Newest first.
    entries: VecDeque<Entry>,
    /// Entries ever inserted: the newest has id `inserted - 1`, and an entry's table
    /// index follows from its id.
    inserted: u64,
    /// The id of the newest entry per hash of a name and value, and per hash of a
    /// name: a field is found without scanning the table. Two fields may share a
    /// hash; the entry found is compared, and a field whose hash another took is only
    /// sent as a literal (the table holds at most 128 entries).
    by_pair: HashMap<u64, u64, FxBuildHasher>,
    by_name: HashMap<u64, u64, FxBuildHasher>,
    size: usize,
    max: usize,
    /// Table size updates to announce at the start of the next block: the smallest
    /// size since the last block, then the current one (§4.2).
    update: Option<(usize, usize)>,
    /// The id of the entry each field of the last block was sent as, by its place
    /// in the block (`NO_ENTRY` where it was sent otherwise): a block like the last
    /// (the same kind of response again) finds each field by one comparison with
    /// that entry instead of hashing it.
    recent: Vec<u64>,
    /// The place of the next field in the current block.
    place: usize,
}

/// Places in a block that `Encoder::recent` remembers.
const RECENT_PLACES: usize = 32;
/// In `Encoder::recent`: the field at that place was not sent as an entry.
const NO_ENTRY: u64 = u64::MAX;

/// The largest table the encoder uses, whatever the peer allows (the default).
const ENCODER_MAX: usize = 4096;

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            entries: VecDeque::new(),
            inserted: 0,
            by_pair: HashMap::default(),
            by_name: HashMap::default(),
            size: 0,
            max: ENCODER_MAX,
            update: None,
            recent: Vec::new(),
            place: 0,
        }
    }
}

impl Encoder {
    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed to `size`.
    pub fn set_peer_limit(&mut self, size: usize) {
        let max = size.min(ENCODER_MAX);
        if max == self.max {
            return;
        }
        let smallest = self.update.map_or(max, |(s, _)| s.min(max));
        self.update = Some((smallest, max));
        self.max = max;
        self.evict_to(max);
    }

    /// Starts a header block: the pending table size updates, if any.
    pub fn begin(&mut self, dst: &mut Vec<u8>) {
        self.place = 0;
        if let Some((smallest, max)) = self.update.take() {
            if smallest != max {
                put_integer(dst, 0x20, 5, smallest);
            }
            put_integer(dst, 0x20, 5, max);
        }
    }

    /// Appends a response's `:status`: the seven codes of the static table (§A:
    /// 200, 204, 206, 304, 400, 404, 500) as their index, found there without
    /// hashing; any other as [`field`](Self::field) writes it.
    pub fn status(&mut self, status: http::StatusCode, dst: &mut Vec<u8>) {
        const STATUS: usize = match static_name(b":status") {
            Some(first) => first,
            None => panic!("the static table has :status"),
        };
        let (name, code) = (b":status", status.as_str().as_bytes());
        match static_pair(STATUS, name, code) {
            Some(index) => put_integer(dst, 0x80, 7, index),
            None => self.field(name, code, false, dst),
        }
    }

    /// Appends one field to the block being written. The dynamic table is looked at
    /// first: after a connection's first response, most fields are found there.
    pub fn field(&mut self, name: &[u8], value: &[u8], sensitive: bool, dst: &mut Vec<u8>) {
        let place = self.place;
        self.place += 1;
        if !sensitive {
            if let Some(i) = self.recent_entry(place, name, value) {
                return put_integer(dst, 0x80, 7, 62 + i);
            }
        }
        let entry = self.encode(name, value, sensitive, dst);
        if place < RECENT_PLACES {
            if self.recent.len() <= place {
                self.recent.resize(place + 1, NO_ENTRY);
            }
            self.recent[place] = entry.unwrap_or(NO_ENTRY);
        }
    }

    /// The position of the entry the last block's field at `place` was sent as, if
    /// that entry is still in the table and is this field.
    fn recent_entry(&self, place: usize, name: &[u8], value: &[u8]) -> Option<usize> {
        let id = *self.recent.get(place)?;
        self.position(id, |e| *e.value == *value && *e.name == *name)
    }

    /// Writes one field, looking for it in the tables; the id of the dynamic entry
    /// it was sent as or added as, if any.
    fn encode(
        &mut self,
        name: &[u8],
        value: &[u8],
        sensitive: bool,
        dst: &mut Vec<u8>,
    ) -> Option<u64> {
        let pair_key = key(&[name, value]);
        let static_name = if sensitive {
            static_name(name)
        } else {
            let held = self.find(&self.by_pair, pair_key, |e| {
                *e.name == *name && *e.value == *value
            });
            if let Some(i) = held {
                put_integer(dst, 0x80, 7, 62 + i);
                return Some(self.inserted - 1 - i as u64);
            }
            let static_name = static_name(name);
            if let Some(i) = static_name.and_then(|first| static_pair(first, name, value)) {
                put_integer(dst, 0x80, 7, i);
                return None;
            }
            static_name
        };
        let name_key = key(&[name]);
        let name_index = static_name.or_else(|| {
            self.find(&self.by_name, name_key, |e| *e.name == *name)
                .map(|i| 62 + i)
        });
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        let index = !sensitive && size <= self.max / 2;
        let (flags, prefix) = match (index, sensitive) {
            (true, _) => (0x40, 6),
            (false, true) => (0x10, 4),
            (false, false) => (0x00, 4),
        };
        match name_index {
            Some(i) => put_integer(dst, flags, prefix, i),
            None => {
                dst.push(flags);
                put_string(dst, name);
            }
        }
        put_string(dst, value);
        if index {
            self.evict_to(self.max - size);
            self.size += size;
            let id = self.inserted;
            self.inserted += 1;
            self.by_pair.insert(pair_key, id);
            self.by_name.insert(name_key, id);
            self.entries.push_front(Entry {
                name: name.into(),
                value: value.into(),
                name_key,
                pair_key,
            });
            return Some(id);
        }
        None
    }

    /// The position (0 = newest) of the entry `index` names under `key`, if it is
    /// still in the table and `is` it.
    fn find(
        &self,
        index: &HashMap<u64, u64, FxBuildHasher>,
        key: u64,
        is: impl Fn(&Entry) -> bool,
    ) -> Option<usize> {
        self.position(*index.get(&key)?, is)
    }

    /// The position (0 = newest) of the entry with id `id`, if it is still in the
    /// table and `is` it.
    fn position(&self, id: u64, is: impl Fn(&Entry) -> bool) -> Option<usize> {
        let newest = self.inserted.checked_sub(1)?;
        let position = usize::try_from(newest.checked_sub(id)?).ok()?;
        self.entries
            .get(position)
            .filter(|e| is(e))
            .map(|_| position)
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            let e = self.entries.pop_back().expect("size counts entries");
            self.size -= e.name.len() + e.value.len() + ENTRY_OVERHEAD;
            let id = self.inserted - 1 - self.entries.len() as u64;
            for (index, key) in [
                (&mut self.by_pair, e.pair_key),
                (&mut self.by_name, e.name_key),
            ] {
                if index.get(&key) == Some(&id) {
                    index.remove(&key);
                }
            }
        }
    }
}

/// The index key of a name, or of a name and value.
fn key(parts: &[&[u8]]) -> u64 {
    let mut h = FxHasher::default();
    for p in parts {
        h.write(p);
        h.write_usize(p.len());
    }
    h.finish()
}

/// Writes `value` with an N-bit prefix after `flags` (§5.1). Inlined for its
/// common case, a value that fits the prefix (an index into the
/// tables, which most fields of a repeated head are); longer ones go out of line.
#[inline]
pub fn put_integer(dst: &mut Vec<u8>, flags: u8, prefix: u8, value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        dst.push(flags | value as u8);
    } else {
        put_long_integer(dst, flags, mask, value);
    }
}

/// `value` past the prefix's `mask`: the prefix full, then 7 bits a byte.
fn put_long_integer(dst: &mut Vec<u8>, flags: u8, mask: usize, value: usize) {
    dst.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        dst.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    dst.push(rest as u8);
}

/// Writes a string literal, Huffman-coded unless that is longer (§5.2).
fn put_string(dst: &mut Vec<u8>, s: &[u8]) {
    let coded = huffman::encoded_len(s);
    if coded <= s.len() {
        put_integer(dst, 0x80, 7, coded);
        huffman::encode(s, dst);
    } else {
        put_integer(dst, 0x00, 7, s.len());
        dst.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .into()
    }

    fn decode_all(d: &mut Decoder, block: &str) -> Result<Vec<(String, String)>, HpackError> {
        let mut out = Vec::new();
        d.decode(&hex(block), |f| {
            let f = f.into_owned();
            out.push((
                String::from_utf8(f.name.to_vec()).unwrap(),
                String::from_utf8(f.value.to_vec()).unwrap(),
            ))
        })?;
        Ok(out)
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// A status written by `status` is what `field` writes for it, twice over (the
    /// second time after whatever the first inserted), and decodes to itself: one
    /// static index byte for the seven codes of Appendix A.
    #[test]
    fn statuses_match_the_general_path() {
        for code in [
            200, 204, 206, 304, 400, 404, 500, 103, 201, 302, 431, 503, 599,
        ] {
            let status = http::StatusCode::from_u16(code).unwrap();
            let (mut quick, mut general) = (Encoder::default(), Encoder::default());
            let mut d = Decoder::new(4096);
            for round in 0..2 {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                quick.status(status, &mut a);
                general.field(b":status", status.as_str().as_bytes(), false, &mut b);
                assert_eq!(a, b, "{code}, round {round}");
                let mut got = Vec::new();
                d.decode(&Bytes::from(a.clone()), |f| got.push(f.value.to_vec()))
                    .unwrap();
                assert_eq!(got, [status.as_str().as_bytes()], "{code}");
                let in_static = [200, 204, 206, 304, 400, 404, 500].contains(&code);
                assert_eq!(
                    a.len() == 1,
                    in_static || round == 1,
                    "{code}, round {round}"
                );
            }
        }
    }

    /// Blocks that repeat the last one's fields at the same places, change some,
    /// reorder them, mark one sensitive, or outgrow a small table: each decodes to
    /// its fields, and a block sent again unchanged is one index byte per field.
    #[test]
    fn blocks_like_the_last_are_found_by_place() {
        let field = |n: &'static str, v: &str| {
            Field::new(
                Bytes::from_static(n.as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
                false,
            )
        };
        let head = |etag: &str, date: &str| {
            vec![
                field("content-type", "text/html"),
                field("etag", etag),
                field("cache-control", "max-age=3600"),
                field("date", date),
                field("content-length", "1024"),
            ]
        };
        let mut reordered = head("\"a\"", "d1");
        reordered.reverse();
        let mut secret = head("\"a\"", "d1");
        secret[1].sensitive = true;
        let blocks = [
            head("\"a\"", "d1"),
            head("\"a\"", "d1"),
            head("\"b\"", "d1"),
            head("\"a\"", "d2"),
            reordered.clone(),
            reordered,
            secret,
            head("\"a\"", "d1"),
            head("\"a\"", "d1")[..2].to_vec(),
        ];
        for limit in [4096, 150, 0] {
            let mut e = Encoder::default();
            e.set_peer_limit(limit);
            let mut d = Decoder::new(4096);
            let mut last: Vec<Field> = Vec::new();
            for (i, fields) in blocks.iter().enumerate() {
                let mut block = Vec::new();
                e.begin(&mut block);
                let start = block.len();
                for f in fields {
                    e.field(&f.name, &f.value, f.sensitive, &mut block);
                }
                let mut decoded = Vec::new();
                d.decode(&Bytes::from(block.clone()), |f| {
                    decoded.push(f.into_owned())
                })
                .unwrap();
                assert_eq!(decoded, *fields, "block {i}, table {limit}");
                if limit == 4096 && *fields == last {
                    assert_eq!(block.len() - start, fields.len(), "block {i} again");
                }
                last = fields.clone();
            }
        }
    }

    /// RFC 7541 C.3 (requests without Huffman) and C.4 (the same with Huffman): three
    /// blocks through one decoder, the table growing as the examples say.
    #[test]
    fn rfc_request_examples() {
        let blocks = [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 8925 a849 e95b b8e8 b4bf",
            ],
        ];
        let want = [
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ]),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]),
        ];
        for set in blocks {
            let mut d = Decoder::new(4096);
            let sizes = [57, 110, 164];
            for ((block, want), size) in set.iter().zip(&want).zip(sizes) {
                assert_eq!(&decode_all(&mut d, block).unwrap(), want);
                assert_eq!(d.table.size, size);
            }
        }
    }

    fn responses() -> [Vec<(&'static str, &'static str)>; 3] {
        let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
        let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
        let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
        [
            vec![
                (":status", "302"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", "https://www.example.com"),
            ],
            vec![
                (":status", "307"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", "https://www.example.com"),
            ],
            vec![
                (":status", "200"),
                ("cache-control", "private"),
                ("date", date2),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                ("set-cookie", cookie),
            ],
        ]
    }

    /// RFC 7541 C.6: responses with Huffman and a 256-byte table, which evicts. The
    /// encoder writes the RFC's bytes exactly; the decoder reads them back.
    #[test]
    fn rfc_response_examples() {
        let want = [
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ];
        let mut e = Encoder {
            max: 256,
            ..Encoder::default()
        };
        let mut d = Decoder::new(256);
        for (fields, want) in responses().iter().zip(want) {
            let mut block = Vec::new();
            e.begin(&mut block);
            for (n, v) in fields {
                e.field(n.as_bytes(), v.as_bytes(), false, &mut block);
            }
            assert_eq!(Bytes::from(block), hex(want));
            assert_eq!(decode_all(&mut d, want).unwrap(), pairs(fields));
            assert_eq!(d.table.size, e.size);
        }
    }

    /// Fields from a small vocabulary, one per block, with tables small enough to
    /// evict often: each decodes to itself, and one whose name and value the table
    /// holds (the decoder's, which mirrors the encoder's) goes out as its index.
    #[test]
    fn fields_in_the_table_are_sent_as_indexes_through_evictions() {
        let names = [
            "date",
            "etag",
            "x-a",
            "x-b",
            "content-type",
            "x-a-much-longer-name",
        ];
        let values = [
            "1",
            "two",
            "three three",
            "\"d2c49278c1781d34\"",
            "text/plain",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for max in [64, 256, 4096] {
            let mut e = Encoder {
                max,
                ..Encoder::default()
            };
            let mut d = Decoder::new(max);
            for _ in 0..2000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let name = names[(seed % 6) as usize];
                let value = values[((seed >> 8) % 5) as usize];
                let sensitive = (seed >> 16).is_multiple_of(11);
                let held = d
                    .table
                    .entries
                    .iter()
                    .any(|e| *e.name == *name.as_bytes() && *e.value == *value.as_bytes());
                let mut block = Vec::new();
                e.begin(&mut block);
                e.field(name.as_bytes(), value.as_bytes(), sensitive, &mut block);
                let mut got = Vec::new();
                d.decode(&Bytes::from(block.clone()), |f| {
                    got.push((f.name.clone(), f.value.clone()))
                })
                .unwrap();
                assert_eq!(got, [(Bytes::from(name), Bytes::from(value))]);
                assert_eq!(
                    block[0] & 0x80 != 0,
                    held && !sensitive,
                    "{max}: {name}: {value}"
                );
                assert_eq!(d.table.size, e.size);
            }
        }
    }

    /// Representations that must fail (§5.1, §5.2, §4.2, §2.3.3).
    #[test]
    fn invalid_blocks() {
        let cases = [
            ("80", HpackError::BadIndex), // index 0
            ("be", HpackError::BadIndex), // 62 with an empty table
            ("ff80 8080 8080 01", HpackError::IntegerOverflow),
            ("ff", HpackError::Truncated), // integer continues past the end
            ("4003 6162", HpackError::Truncated), // name shorter than its length
            ("4081 ff81 00", HpackError::Huffman), // name is 8 bits of padding
            ("3fe2 1f", HpackError::TableSizeUpdate), // 4097 > 4096
            ("823f e11f", HpackError::TableSizeUpdate), // after a field
        ];
        for (block, err) in cases {
            let mut d = Decoder::new(4096);
            assert_eq!(decode_all(&mut d, block), Err(err), "{block}");
        }
    }

    /// A literal without indexing (§6.2.2) whose Huffman-coded value is the last
    /// one's again decodes to the same bytes, shared rather than decoded again; a
    /// different value, a plain one, a never-indexed one and invalid coding decode as
    /// they would without the memo, and a value too long to keep is decoded each time.
    #[test]
    fn repeated_coded_values_are_decoded_once() {
        // `:path` (static name 4) without indexing (0x04) or never indexed (0x14).
        let block = |prefix: u8, value: &[u8], coded: bool| {
            let mut b = vec![prefix];
            if coded {
                let mut v = Vec::new();
                huffman::encode(value, &mut v);
                b.push(0x80 | u8::try_from(v.len()).unwrap());
                b.extend(v);
            } else {
                b.push(u8::try_from(value.len()).unwrap());
                b.extend(value);
            }
            Bytes::from(b)
        };
        let mut d = Decoder::new(4096);
        let mut value_of = |b: Bytes| {
            let mut v = Vec::new();
            d.decode(&b, |f| v.push(f.into_owned().value))
                .map(|()| v.remove(0))
        };
        let first = value_of(block(0x04, b"/1k.bin", true)).unwrap();
        let again = value_of(block(0x04, b"/1k.bin", true)).unwrap();
        assert_eq!((&first[..], &again[..]), (&b"/1k.bin"[..], &b"/1k.bin"[..]));
        assert_eq!(first.as_ptr(), again.as_ptr(), "shared, not decoded again");
        let other = value_of(block(0x04, b"/2k.bin", true)).unwrap();
        assert_eq!(&other[..], b"/2k.bin");
        assert_eq!(
            &value_of(block(0x04, b"/1k.bin", false)).unwrap()[..],
            b"/1k.bin"
        );
        let secret = value_of(block(0x14, b"/2k.bin", true)).unwrap();
        assert_eq!(&secret[..], b"/2k.bin");
        assert_ne!(
            secret.as_ptr(),
            other.as_ptr(),
            "never-indexed values are not kept"
        );
        let long = "/a".repeat(40);
        let once = value_of(block(0x04, long.as_bytes(), true)).unwrap();
        let twice = value_of(block(0x04, long.as_bytes(), true)).unwrap();
        assert_eq!((&once[..], &twice[..]), (long.as_bytes(), long.as_bytes()));
        assert_ne!(once.as_ptr(), twice.as_ptr());
        // Eight bits of padding (§5.2) stay an error after a kept value.
        value_of(block(0x04, b"/1k.bin", true)).unwrap();
        assert_eq!(value_of(hex("0481 ff")), Err(HpackError::Huffman));
    }

    /// Size updates at the start of a block shrink the table (§4.2, §6.3); the
    /// encoder announces the smallest size since its last block first.
    #[test]
    fn table_size_updates() {
        let mut d = Decoder::new(4096);
        decode_all(&mut d, "4003 6162 6301 78").unwrap(); // abc: x, indexed
        assert_eq!(d.table.size, 36);
        assert_eq!(decode_all(&mut d, "be").unwrap(), pairs(&[("abc", "x")]));
        // Down to 0 (emptied), back to 4096: index 62 is gone.
        assert_eq!(
            decode_all(&mut d, "20 3fe1 1f be"),
            Err(HpackError::BadIndex)
        );

        let mut e = Encoder::default();
        e.set_peer_limit(0);
        e.set_peer_limit(1000);
        let mut block = Vec::new();
        e.begin(&mut block);
        assert_eq!(Bytes::from(block), hex("20 3fc9 07"));
        let mut block = Vec::new();
        e.begin(&mut block);
        assert!(block.is_empty(), "announced once");
    }
}
