//! The shared cache's memory store: responses kept by target (host and path with
//! query), each target with its variants (`Vary`), bounded in bytes, least recently
//! used out first. The rules (what to store, for how long, when to revalidate) are
//! `wharf_http::cache`'s; this module keeps the bytes.
//!
//! A response is stored only once its body has arrived whole ([`Fill`] collects it
//! as it streams to the client): a fill cut short, or past `max_object`, leaves
//! nothing behind, so a torn entry is never served.
//!
//! Misses collapse (unless key additions are configured: they would split a target
//! between requests the collapsing cannot tell apart): while one request for a
//! target is forwarded (its [`Leader`]),
//! others for the same target wait for it instead of going upstream too. A storable
//! response of known length (at most `max_object`) is [`Shared`] as it arrives: a
//! task reads it from the upstream into the store, and the leader and every plain
//! GET waiting for it stream it from there, each at its own pace. Other waiters (and
//! all of them, when the response is not storable or fails) look again once the
//! leader is done. A stored response that must be revalidated is revalidated once
//! for everyone the same way.
//!
//! Purges remove a target's responses, or those tagged by the upstream (`Cache-Tag`,
//! `Surrogate-Key`); a soft purge only makes them stale from that moment, so the next
//! request revalidates (once, for everyone) and `stale-while-revalidate` and
//! `stale-if-error` still apply.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};
use http::StatusCode;
use wharf_http::cache::{self as rules, Reuse};
use wharf_http::cache_control::{initial_age, CacheControl};
use wharf_http::date::{parse_http_date, truncate_to_secs};
use wharf_http::etag::{EntityTag, EtagList};
use wharf_http::precondition::Validators;
use wharf_http::range::{self, ByteRange, RangeKind, RangeLimits};

use std::str::FromStr;

use std::net::IpAddr;

use crate::group::hash_key;
use crate::{Body, Cidr, HashOn};

/// The shared cache's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes kept in all (bodies and fields, roughly).
    pub max_bytes: u64,
    /// The largest response body stored.
    pub max_object: u64,
    /// The longest heuristic freshness (RFC 9111 §4.2.2), for responses with
    /// `Last-Modified` and no explicit expiry.
    pub heuristic_cap: Duration,
    /// Store responses that carry `Set-Cookie`.
    pub store_set_cookie: bool,
    /// The `stale-while-revalidate` a stored response gets when it names none
    /// (RFC 5861 §3; Varnish's grace): within it past its lifetime, a stale
    /// response answers at once while one request revalidates it. Zero: none.
    pub stale_while_revalidate: Duration,
    /// The `stale-if-error` a stored response gets when it names none (RFC 5861
    /// §4): within it past its lifetime, a stale response answers when the upstream
    /// fails. Zero: none.
    pub stale_if_error: Duration,
    /// Parts of the request added to the key (beside method, target and `Vary`): a
    /// stored response answers only requests that have the same values.
    pub key: Vec<HashOn>,
    /// The clients allowed to purge (`PURGE`); others get 403.
    pub purge_from: Vec<Cidr>,
    /// The disk tier's directory, when there is one.
    pub dir: Option<std::path::PathBuf>,
    /// Bytes of files the disk tier keeps (least recently used out first).
    pub disk_max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 256 << 20,
            max_object: 16 << 20,
            heuristic_cap: Duration::from_secs(86_400),
            store_set_cookie: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            key: Vec::new(),
            purge_from: vec![
                Cidr::from_str("127.0.0.0/8").expect("a network"),
                Cidr::from_str("::1").expect("an address"),
            ],
            dir: None,
            disk_max_bytes: 1 << 30,
        }
    }
}

/// A target: host (lower case) and path with query.
pub(crate) type Key = (String, String);

/// A stored response.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The request fields its `Vary` names, as the request that stored it had them.
    pub(crate) vary: Vec<(HeaderName, String)>,
    /// The configured key additions, as the request that stored it had them.
    pub(crate) extra: Extra,
    /// The upstream's tags for it (`Cache-Tag`, `Surrogate-Key`), for purges.
    pub(crate) tags: Vec<String>,
    /// Soft-purged: its age at that moment, beyond which it is stale.
    pub(crate) purged_at: Option<Duration>,
    /// Its fields as the cache's rules read them, when a targeted field
    /// (`CDN-Cache-Control`, `Surrogate-Control`) sets the policy (RFC 9213).
    pub(crate) targeted: Option<HeaderMap>,
    /// What the rules derive from its fields, once.
    pub(crate) memo: Memo,
    pub(crate) request_time: SystemTime,
    pub(crate) response_time: SystemTime,
}

/// What the cache's rules derive from a stored response's fields, computed on first
/// use rather than on every hit: the fields do not change (a freshened response is a
/// new entry).
#[derive(Clone, Debug, Default)]
pub(crate) struct Memo {
    /// Its age when it arrived (RFC 9111 §4.2.3 `corrected_initial_age`).
    initial_age: std::sync::OnceLock<Duration>,
    /// Its freshness lifetime (§4.2.1) and its `Cache-Control`.
    policy: std::sync::OnceLock<(Duration, CacheControl)>,
}

/// The values of the configured key additions in a request (`None` where it has
/// none).
pub(crate) type Extra = Vec<Option<Vec<u8>>>;

impl Entry {
    /// Bytes it holds, roughly: body, fields (twice with a targeted field), and keys.
    fn size(&self) -> u64 {
        let fields = |h: &HeaderMap| -> usize {
            h.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum()
        };
        let keys: usize = self
            .vary
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>()
            + self.extra.iter().flatten().map(Vec::len).sum::<usize>()
            + self.tags.iter().map(String::len).sum::<usize>();
        let targeted = self.targeted.as_ref().map_or(0, fields);
        (self.body.len() + fields(&self.headers) + targeted + keys + 256) as u64
    }

    /// Its fields as the cache's rules read them.
    pub(crate) fn policy(&self) -> &HeaderMap {
        self.targeted.as_ref().unwrap_or(&self.headers)
    }

    /// Its lifetime and `Cache-Control`, with the configured grace where the
    /// response names none (`must-revalidate` and the like still forbid going stale).
    fn memo_policy(&self, cfg: &CacheConfig) -> &(Duration, CacheControl) {
        self.memo.policy.get_or_init(|| {
            let fields = self.policy();
            let life = rules::lifetime(self.status, fields, true, cfg.heuristic_cap).duration();
            let mut cc = CacheControl::from_headers(fields);
            let grace = |d: Duration| (!d.is_zero()).then_some(d.as_secs());
            cc.stale_while_revalidate = cc
                .stale_while_revalidate
                .or(grace(cfg.stale_while_revalidate));
            cc.stale_if_error = cc.stale_if_error.or(grace(cfg.stale_if_error));
            (life, cc)
        })
    }

    /// How long it stays fresh (RFC 9111 §4.2.1), cut short by a soft purge.
    pub(crate) fn life(&self, cfg: &CacheConfig) -> Duration {
        let life = self.memo_policy(cfg).0;
        self.purged_at.map_or(life, |at| life.min(at))
    }

    /// Its `Cache-Control` (the targeted field's, where one applies).
    fn cache_control(&self, cfg: &CacheConfig) -> &CacheControl {
        &self.memo_policy(cfg).1
    }

    /// Its age at `now` (RFC 9111 §4.2.3).
    pub(crate) fn age_at(&self, now: SystemTime) -> Duration {
        let initial = *self
            .memo
            .initial_age
            .get_or_init(|| initial_age(&self.headers, self.request_time, self.response_time));
        let resident = now
            .duration_since(self.response_time)
            .unwrap_or(Duration::ZERO);
        initial.saturating_add(resident)
    }

    /// Whether it answers a request with these `Vary` fields and key additions.
    fn answers(&self, headers: &HeaderMap, extra: &Extra) -> bool {
        same_variant(&self.vary, &self.extra, headers, extra)
    }

    /// Whether a purge by these tags takes it.
    fn tagged(&self, tags: &[String]) -> bool {
        self.tags.iter().any(|t| tags.contains(t))
    }
}

/// Whether a request (its fields, its key additions) selects the response stored
/// with `vary` and `extra`: the same values of the fields `Vary` names (RFC 9111
/// §4.1) and of the key additions.
fn same_variant(
    vary: &[(HeaderName, String)],
    extra: &Extra,
    headers: &HeaderMap,
    request_extra: &Extra,
) -> bool {
    let names: Vec<HeaderName> = vary.iter().map(|(n, _)| n.clone()).collect();
    extra == request_extra && rules::vary_key(&names, headers) == vary
}

/// The fields in which an upstream tags a response for purges: `Cache-Tag` (a
/// comma-separated list) and `Surrogate-Key` (space-separated). They are the cache's,
/// not the client's: [`take_tags`] removes them from the response.
static TAG_FIELDS: [(HeaderName, char); 2] = [
    (HeaderName::from_static("cache-tag"), ','),
    (HeaderName::from_static("surrogate-key"), ' '),
];

/// The tags named by `Cache-Tag` and `Surrogate-Key` fields.
pub(crate) fn tags(headers: &HeaderMap) -> Vec<String> {
    let mut tags = Vec::new();
    for (name, sep) in &TAG_FIELDS {
        for v in headers.get_all(name) {
            let text = String::from_utf8_lossy(v.as_bytes());
            tags.extend(
                text.split(*sep)
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    tags
}

/// The tags of a response, whose tag fields are removed.
pub(crate) fn take_tags(headers: &mut HeaderMap) -> Vec<String> {
    let found = tags(headers);
    for (name, _) in &TAG_FIELDS {
        headers.remove(name);
    }
    found
}

/// The configured key additions of a request from `client`.
pub(crate) fn extra(cfg: &CacheConfig, parts: &http::request::Parts, client: IpAddr) -> Extra {
    cfg.key
        .iter()
        .map(|on| hash_key(on, &parts.headers, parts.uri.path(), client).map(|v| v.into_owned()))
        .collect()
}

/// What a purge takes.
#[derive(Debug)]
pub(crate) enum Purge {
    /// Every stored response of one target.
    Target(Key),
    /// Every stored response tagged with one of these.
    Tags(Vec<String>),
}

#[derive(Debug, Default)]
struct Slot {
    variants: Vec<Arc<Entry>>,
    /// Its place in the recency order.
    tick: u64,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Store {
    slots: HashMap<Key, Slot>,
    /// Recency: tick → key, oldest first.
    order: BTreeMap<u64, Key>,
    next_tick: u64,
    bytes: u64,
}

/// The memory store.
#[derive(Debug)]
pub(crate) struct Cache {
    pub(crate) cfg: CacheConfig,
    store: Mutex<Store>,
    /// Targets being fetched, and the signal their waiters wait for.
    inflight: Mutex<HashMap<Key, Progress>>,
    /// The disk tier, when configured.
    disk: Option<Arc<crate::disk::Disk>>,
    /// Targets being read back from the disk tier.
    loading: Mutex<HashMap<Key, tokio::sync::watch::Receiver<()>>>,
    /// Counts removals (invalidations, purges) by target: a fill, disk write or disk
    /// load of a target that began before one is not stored, so nothing removed
    /// comes back.
    removals: Arc<Removals>,
}

/// How many stripes [`Removals`] has (512 KiB of counters): enough that a removal
/// seldom touches the stripe of a target being filled at the same time.
const STRIPES: usize = 1 << 16;

/// Removal counts by target, in stripes (a hash of the target picks one; targets
/// sharing a stripe only cost each other a store now and then).
#[derive(Debug)]
pub(crate) struct Removals(Box<[std::sync::atomic::AtomicU64]>);

impl Removals {
    fn new() -> Removals {
        Removals(
            (0..STRIPES)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        )
    }

    fn stripe(&self, key: &Key) -> &std::sync::atomic::AtomicU64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(key.0.as_bytes());
        h.update(&[0]);
        h.update(key.1.as_bytes());
        &self.0[(h.digest() % STRIPES as u64) as usize]
    }

    /// The removals of `key`'s stripe so far.
    pub(crate) fn of(&self, key: &Key) -> u64 {
        self.stripe(key).load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self, key: &Key) {
        self.stripe(key)
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// What waiters for a target are told: the response being shared, once there is one.
pub(crate) type Progress = tokio::sync::watch::Receiver<Option<Arc<Shared>>>;

/// A read back from the disk tier in progress; its end (or the reading request's)
/// lets the requests waiting for it go.
struct Reading<'a> {
    cache: &'a Cache,
    key: &'a Key,
    _done: tokio::sync::watch::Sender<()>,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.cache
            .loading
            .lock()
            .expect("cache lock")
            .remove(self.key);
    }
}

/// The request that fetches a target for everyone: it publishes the response it
/// shares, and dropping it (the response stored, not storable, or failed) lets the
/// waiters go.
#[derive(Debug)]
pub(crate) struct Leader {
    cache: Arc<Cache>,
    key: Key,
    progress: tokio::sync::watch::Sender<Option<Arc<Shared>>>,
}

impl Leader {
    fn share(&self, shared: &Arc<Shared>) {
        self.progress.send_replace(Some(shared.clone()));
    }
}

/// A response on its way into the store, read by everyone who asked for it.
#[derive(Debug)]
pub(crate) struct Shared {
    status: StatusCode,
    /// Its fields as clients get them.
    headers: HeaderMap,
    length: u64,
    vary: Vec<(HeaderName, String)>,
    extra: Extra,
    state: Mutex<SharedState>,
}

#[derive(Debug, Default)]
struct SharedState {
    /// What has arrived, for readers that join late.
    parts: Vec<Bytes>,
    /// Readers still being fed.
    readers: Vec<tokio::sync::mpsc::UnboundedSender<Result<Bytes, ()>>>,
    /// The body has ended: whole (`Some(true)`) or cut short.
    ended: Option<bool>,
}

impl Shared {
    /// A new reader: what has arrived so far, then the rest as it comes.
    fn reader(&self) -> tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, ()>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut st = self.state.lock().expect("cache lock");
        for p in &st.parts {
            let _ = tx.send(Ok(p.clone()));
        }
        match st.ended {
            None => st.readers.push(tx),
            Some(true) => {}
            Some(false) => {
                let _ = tx.send(Err(()));
            }
        }
        rx
    }

    fn push(&self, data: &Bytes) {
        let mut st = self.state.lock().expect("cache lock");
        st.parts.push(data.clone());
        st.readers.retain(|r| r.send(Ok(data.clone())).is_ok());
    }

    fn end(&self, whole: bool) {
        let mut st = self.state.lock().expect("cache lock");
        st.ended = Some(whole);
        for r in st.readers.drain(..) {
            if !whole {
                let _ = r.send(Err(()));
            }
        }
    }

    /// The response for one of its readers, with `cache_status`.
    pub(crate) fn respond(&self, cache_status: &str) -> http::Response<Body> {
        let mut headers = self.headers.clone();
        if let Ok(v) = http::HeaderValue::from_str(cache_status) {
            headers.insert(&CACHE_STATUS, v);
        }
        let mut res = http::Response::new(Body::shared(self.reader(), self.length));
        *res.status_mut() = self.status;
        *res.headers_mut() = headers;
        res
    }

    /// Whether it answers a waiting request: a plain GET (conditions, ranges and
    /// HEAD are answered from the store once the response is whole) with the same
    /// `Vary` fields and key additions (`extra`, the request's).
    pub(crate) fn answers(&self, parts: &http::request::Parts, extra: &Extra) -> bool {
        use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
        let plain = parts.method == http::Method::GET
            && ![RANGE, IF_NONE_MATCH, IF_MODIFIED_SINCE]
                .iter()
                .any(|h| parts.headers.contains_key(h));
        plain && same_variant(&self.vary, &self.extra, &parts.headers, extra)
    }
}

/// The method and fields of a client's request, for [`respond`] once the request's
/// own fields have gone upstream.
pub(crate) fn client_parts(method: &http::Method, headers: &HeaderMap) -> http::request::Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method.clone();
    parts.headers = headers.clone();
    parts
}

/// Waits for the fetch of a target that another request leads: the response to
/// stream when it is shared and answers this request, else `None` once the leader is
/// done (or after `patience`), to look again.
pub(crate) async fn wait(
    mut progress: Progress,
    parts: &http::request::Parts,
    extra: &Extra,
    patience: Duration,
) -> Option<http::Response<Body>> {
    let waiting = async {
        loop {
            let shared = progress.borrow_and_update().clone();
            if let Some(shared) = shared.filter(|s| s.answers(parts, extra)) {
                let status = format!(
                    "wharf; fwd=uri-miss; fwd-status={}; collapsed",
                    shared.status.as_u16()
                );
                return Some(shared.respond(&status));
            }
            progress.changed().await.ok()?;
        }
    };
    tokio::time::timeout(patience, waiting).await.ok().flatten()
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.cache
            .inflight
            .lock()
            .expect("cache lock")
            .remove(&self.key);
    }
}

/// What a miss does: fetch for everyone, or wait for the request that does.
pub(crate) enum Role {
    Lead(Leader),
    Wait(Progress),
}

impl Cache {
    /// A cache with `cfg`; opening its disk tier can fail.
    pub(crate) fn new(cfg: CacheConfig) -> std::io::Result<Cache> {
        let removals = Arc::new(Removals::new());
        let disk = match &cfg.dir {
            Some(dir) => Some(Arc::new(crate::disk::Disk::open(
                dir,
                cfg.disk_max_bytes,
                removals.clone(),
            )?)),
            None => None,
        };
        Ok(Cache {
            cfg,
            store: Mutex::new(Store::default()),
            inflight: Mutex::new(HashMap::new()),
            disk,
            loading: Mutex::new(HashMap::new()),
            removals,
        })
    }

    /// The count of removals of `key` so far (see `removals`).
    pub(crate) fn epoch(&self, key: &Key) -> u64 {
        self.removals.of(key)
    }

    /// Brings the stored responses of `key` from the disk tier into memory, when
    /// memory has none and the disk does; requests for a key being read wait for that
    /// read instead of reading too.
    pub(crate) async fn load(&self, key: &Key) {
        let Some(disk) = &self.disk else { return };
        if self.in_memory(key) {
            return;
        }
        let reading = {
            let mut loading = self.loading.lock().expect("cache lock");
            match loading.get(key) {
                Some(rx) => Err(rx.clone()),
                None if !disk.has(key) => return,
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(());
                    loading.insert(key.clone(), rx);
                    Ok(tx)
                }
            }
        };
        match reading {
            Err(mut rx) => {
                // The sender goes when the read is over.
                let _ = rx.changed().await;
            }
            Ok(done) => {
                // Whatever becomes of this request, the others are let go.
                let _reading = Reading {
                    cache: self,
                    key,
                    _done: done,
                };
                // Boxed: rare, and every request's future would carry its room.
                Box::pin(self.read_back(disk, key)).await;
            }
        }
    }

    fn in_memory(&self, key: &Key) -> bool {
        self.store
            .lock()
            .expect("cache lock")
            .slots
            .contains_key(key)
    }

    async fn read_back(&self, disk: &Arc<crate::disk::Disk>, key: &Key) {
        if self.in_memory(key) || !disk.has(key) {
            return;
        }
        let epoch = self.epoch(key);
        let entries = disk.load(key).await;
        // Not over a removal, nor over what was stored in memory meanwhile.
        if self.epoch(key) != epoch || self.in_memory(key) {
            return;
        }
        for entry in entries {
            self.put(key.clone(), Arc::new(entry));
        }
    }

    /// Leads the fetch of `key`, or waits for the one in flight.
    pub(crate) fn join(self: &Arc<Self>, key: &Key) -> Role {
        let mut inflight = self.inflight.lock().expect("cache lock");
        if let Some(rx) = inflight.get(key) {
            return Role::Wait(rx.clone());
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        inflight.insert(key.clone(), rx);
        Role::Lead(Leader {
            cache: self.clone(),
            key: key.clone(),
            progress: tx,
        })
    }

    /// The stored variant of a target that `answers` picks, and whether the target
    /// has any; marks it used.
    fn select(&self, key: &Key, answers: impl Fn(&Entry) -> bool) -> (Option<Arc<Entry>>, bool) {
        let mut s = self.store.lock().expect("cache lock");
        let tick = s.next_tick;
        let Some(slot) = s.slots.get_mut(key) else {
            return (None, false);
        };
        let chosen = slot.variants.iter().find(|e| answers(e)).cloned();
        let old = slot.tick;
        slot.tick = tick;
        s.next_tick += 1;
        s.order.remove(&old);
        s.order.insert(tick, key.clone());
        (chosen, true)
    }

    /// The stored variants of a target (most recent first), marking it used.
    #[cfg(test)]
    pub(crate) fn variants(&self, key: &Key) -> Vec<Arc<Entry>> {
        let mut s = self.store.lock().expect("cache lock");
        let tick = s.next_tick;
        let Some(slot) = s.slots.get_mut(key) else {
            return Vec::new();
        };
        let (old, variants) = (slot.tick, slot.variants.clone());
        slot.tick = tick;
        s.next_tick += 1;
        s.order.remove(&old);
        s.order.insert(tick, key.clone());
        variants
    }

    /// Stores `entry` for `key` (in memory, and in the disk tier), replacing the
    /// variant with the same `Vary` values and key additions.
    pub(crate) fn insert(&self, key: Key, entry: Entry) {
        let entry = Arc::new(entry);
        if let Some(disk) = &self.disk {
            disk.save(&key, &entry, self.epoch(&key));
        }
        self.put(key, entry);
    }

    /// [`Cache::insert`] of a response whose fetch began at removal count `epoch`:
    /// skipped when a removal came since (the response may be what it removed).
    pub(crate) fn insert_since(&self, epoch: u64, key: Key, entry: Entry) {
        if self.epoch(&key) == epoch {
            self.insert(key, entry);
        }
    }

    /// [`Cache::insert`] in memory only, then evicts least recently used targets
    /// beyond `max_bytes` (they stay in the disk tier).
    fn put(&self, key: Key, entry: Arc<Entry>) {
        let size = entry.size();
        if size > self.cfg.max_bytes {
            return;
        }
        let mut s = self.store.lock().expect("cache lock");
        let tick = s.next_tick;
        s.next_tick += 1;
        let slot = s.slots.entry(key.clone()).or_default();
        let old_tick = slot.tick;
        slot.variants
            .retain(|v| v.vary != entry.vary || v.extra != entry.extra);
        slot.variants.insert(0, entry);
        let before = slot.bytes;
        slot.bytes = slot.variants.iter().map(|v| v.size()).sum();
        slot.tick = tick;
        let after = slot.bytes;
        s.bytes = s.bytes + after - before;
        s.order.remove(&old_tick);
        s.order.insert(tick, key);
        while s.bytes > self.cfg.max_bytes {
            let Some((_, oldest)) = s.order.pop_first() else {
                break;
            };
            if let Some(gone) = s.slots.remove(&oldest) {
                s.bytes -= gone.bytes;
            }
        }
    }

    /// Replaces a stored variant by its freshened copy (after a `304`).
    pub(crate) fn replace(&self, key: &Key, old: &Arc<Entry>, new: Entry) {
        let mut s = self.store.lock().expect("cache lock");
        let Some(slot) = s.slots.get_mut(key) else {
            return;
        };
        if let Some(v) = slot.variants.iter_mut().find(|v| Arc::ptr_eq(v, old)) {
            *v = Arc::new(new);
            if let Some(disk) = &self.disk {
                disk.save(key, v, self.removals.of(key));
            }
        }
        let before = slot.bytes;
        slot.bytes = slot.variants.iter().map(|v| v.size()).sum();
        let after = slot.bytes;
        s.bytes = s.bytes + after - before;
    }

    /// Forgets every variant of a target.
    pub(crate) fn remove(&self, key: &Key) {
        self.removals.bump(key);
        if let Some(disk) = &self.disk {
            disk.remove(key);
        }
        let mut s = self.store.lock().expect("cache lock");
        if let Some(gone) = s.slots.remove(key) {
            s.bytes -= gone.bytes;
            s.order.remove(&gone.tick);
        }
    }

    /// Purges what `what` names: removes it, or (`soft`) makes it stale from now on.
    /// Returns how many stored responses it took. A purge by tag looks at every
    /// stored response (purges are rare; lookups stay one hash away). The disk tier's
    /// copies are removed either way (a soft purge keeps the stale copy in memory
    /// only).
    pub(crate) fn purge(&self, what: &Purge, soft: bool) -> usize {
        if let Purge::Target(key) = what {
            self.removals.bump(key);
        }
        let on_disk = match (&self.disk, what) {
            (None, _) => Vec::new(),
            (Some(d), Purge::Target(key)) => match d.remove(key) {
                0 => Vec::new(),
                n => vec![(key.clone(), n)],
            },
            (Some(d), Purge::Tags(tags)) => {
                d.remove_tagged(tags).into_iter().map(|k| (k, 1)).collect()
            }
        };
        let mut s = self.store.lock().expect("cache lock");
        if let Purge::Tags(tags) = what {
            let in_memory = s
                .slots
                .iter()
                .filter(|(_, slot)| slot.variants.iter().any(|v| v.tagged(tags)))
                .map(|(k, _)| k);
            for key in in_memory.chain(on_disk.iter().map(|(k, _)| k)) {
                self.removals.bump(key);
            }
        }
        // What was only on disk counts too.
        let disk_only: usize = on_disk
            .iter()
            .filter(|(k, _)| !s.slots.contains_key(k))
            .map(|(_, n)| n)
            .sum();
        let s = &mut *s;
        let keys: Vec<Key> = match what {
            Purge::Target(key) => s
                .slots
                .contains_key(key)
                .then(|| key.clone())
                .into_iter()
                .collect(),
            Purge::Tags(tags) => s
                .slots
                .iter()
                .filter(|(_, slot)| slot.variants.iter().any(|v| v.tagged(tags)))
                .map(|(k, _)| k.clone())
                .collect(),
        };
        let takes = |v: &Entry| match what {
            Purge::Target(_) => true,
            Purge::Tags(tags) => v.tagged(tags),
        };
        let mut taken = 0;
        for key in keys {
            let Some(slot) = s.slots.get_mut(&key) else {
                continue;
            };
            let before = slot.bytes;
            if soft {
                for v in slot.variants.iter_mut().filter(|v| takes(v)) {
                    let mut stale = Entry::clone(v);
                    stale.purged_at = Some(v.age_at(SystemTime::now()));
                    *v = Arc::new(stale);
                    taken += 1;
                }
                continue;
            }
            let had = slot.variants.len();
            slot.variants.retain(|v| !takes(v));
            taken += had - slot.variants.len();
            slot.bytes = slot.variants.iter().map(|v| v.size()).sum();
            s.bytes = s.bytes + slot.bytes - before;
            if slot.variants.is_empty() {
                let tick = slot.tick;
                s.slots.remove(&key);
                s.order.remove(&tick);
            }
        }
        taken + disk_only
    }
}

/// A response body on its way to the client, collected to be stored once whole.
pub(crate) struct Fill {
    pub(crate) cache: Arc<Cache>,
    pub(crate) key: Key,
    /// Everything but the body.
    pub(crate) entry: Entry,
    pub(crate) parts: Vec<Bytes>,
    pub(crate) size: u64,
    /// Released once the response is stored (or the fill given up).
    pub(crate) leader: Option<Leader>,
    /// The response as its readers stream it, when shared.
    pub(crate) shared: Option<Arc<Shared>>,
    /// Already in the store.
    pub(crate) stored: bool,
    /// The cache's removal count when the fetch began.
    pub(crate) epoch: u64,
}

impl Fill {
    /// Takes one more piece; false once the body is too large to store.
    pub(crate) fn take(&mut self, data: &Bytes) -> bool {
        self.size += data.len() as u64;
        if self.size > self.cache.cfg.max_object {
            return false;
        }
        self.parts.push(data.clone());
        if let Some(s) = self.shared.clone() {
            // Stored before its last piece goes out: whoever has read it all then
            // finds it in the store.
            if self.size == s.length {
                self.store();
            }
            s.push(data);
        }
        true
    }

    fn store(&mut self) {
        if self.stored {
            return;
        }
        let mut body = bytes::BytesMut::with_capacity(self.size as usize);
        for p in &self.parts {
            body.extend_from_slice(p);
        }
        let entry = Entry {
            body: body.freeze(),
            ..self.entry.clone()
        };
        self.cache.insert_since(self.epoch, self.key.clone(), entry);
        self.stored = true;
    }

    /// The body arrived whole: store it.
    pub(crate) fn finish(mut self) {
        self.store();
        if let Some(s) = self.shared.take() {
            s.end(true);
        }
        // Waiters look again once the entry is there (on drop).
    }

    /// Shares the response with the requests waiting for it: from now on they
    /// stream it as it arrives. Only for a body of known length within
    /// `max_object`, which the share keeps until it is whole.
    pub(crate) fn share(&mut self, length: u64, headers: &HeaderMap) -> Option<Arc<Shared>> {
        let leader = self.leader.as_ref()?;
        if length > self.cache.cfg.max_object {
            return None;
        }
        let shared = Arc::new(Shared {
            status: self.entry.status,
            headers: headers.clone(),
            length,
            vary: self.entry.vary.clone(),
            extra: self.entry.extra.clone(),
            state: Mutex::default(),
        });
        leader.share(&shared);
        self.shared = Some(shared.clone());
        Some(shared)
    }
}

impl Drop for Fill {
    /// A fill given up (cut short, too large): its readers see the body fail.
    fn drop(&mut self) {
        if let Some(s) = self.shared.take() {
            s.end(false);
        }
    }
}

/// The header field of RFC 9211.
pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// What the cache said about a request that goes upstream anyway.
pub(crate) struct Lookup {
    pub(crate) key: Key,
    /// The client's request fields (for `Vary` and §3.5 when storing).
    pub(crate) request: HeaderMap,
    /// A stored response to revalidate, if any.
    pub(crate) stale: Option<Arc<Entry>>,
    /// Why it goes upstream: RFC 9211's `fwd` (`uri-miss`, `vary-miss`, `stale`,
    /// `request`).
    pub(crate) fwd: &'static str,
    pub(crate) request_time: SystemTime,
    /// This request fetches the target for others waiting.
    pub(crate) leader: Option<Leader>,
    /// The request's key additions.
    pub(crate) extra: Extra,
    /// The cache's removal count at the lookup.
    pub(crate) epoch: u64,
}

/// The answer to a request the cache handles.
pub(crate) enum Found {
    /// Served from the store (`hit`), with the reason.
    Hit(http::Response<Body>, String),
    /// Asks the upstream (revalidating `stale` when there is one).
    Forward(Lookup),
    /// `only-if-cached` and nothing usable stored: 504 (RFC 9111 §5.2.1.7).
    OnlyIfCached,
    /// The same target is being fetched: wait for it, then look again.
    Wait(Progress),
    /// Served stale from the store (within stale-while-revalidate); the request
    /// leads a revalidation in the background (RFC 5861 §3).
    Refresh(http::Response<Body>, String, Leader),
}

/// Looks a GET or HEAD up in the store. With `collapse`, a miss waits for the same
/// target's fetch in flight, or leads it.
/// Reasons are put into words only with `explain`.
pub(crate) fn lookup(
    cache: &Arc<Cache>,
    parts: &http::request::Parts,
    extra: &Extra,
    key: &Key,
    collapse: bool,
    explain: bool,
) -> Found {
    let now = SystemTime::now();
    let epoch = cache.epoch(key);
    let (chosen, any) = cache.select(key, |e| e.answers(&parts.headers, extra));
    let chosen = chosen.as_ref();
    let only_if_cached = CacheControl::from_headers(&parts.headers).only_if_cached;
    let refresh = parts.extensions.get::<crate::Refresh>().is_some();

    let forward = |stale: Option<Arc<Entry>>, fwd, leader| {
        if only_if_cached {
            return Found::OnlyIfCached;
        }
        Found::Forward(Lookup {
            key: key.clone(),
            request: parts.headers.clone(),
            stale,
            fwd,
            request_time: now,
            leader,
            extra: extra.clone(),
            epoch,
        })
    };
    if refresh {
        // The background revalidation of a stale-while-revalidate hit: it holds the
        // target's leader itself, so it never waits; it revalidates what is stored (if
        // it is still there).
        return forward(chosen.cloned(), "stale", None);
    }
    if parts.extensions.get::<crate::Refetch>().is_some() {
        // Asked again after a 304 that matched nothing stored: straight upstream.
        let fwd = if chosen.is_some() {
            "stale"
        } else {
            "uri-miss"
        };
        return forward(None, fwd, None);
    }
    let Some(entry) = chosen else {
        let fwd = if any { "vary-miss" } else { "uri-miss" };
        if !collapse || only_if_cached {
            return forward(None, fwd, None);
        }
        return match cache.join(key) {
            Role::Lead(leader) => forward(None, fwd, Some(leader)),
            Role::Wait(rx) => Found::Wait(rx),
        };
    };
    let life = entry.life(&cache.cfg);
    let age = entry.age_at(now);
    let why = |reuse: Reuse| match explain {
        true => format!("cache hit: {reuse} (age {}s)", age.as_secs()),
        false => String::new(),
    };
    match rules::reuse_with(
        &parts.headers,
        entry.cache_control(&cache.cfg),
        life,
        age,
        true,
    ) {
        reuse @ (Reuse::Fresh | Reuse::StaleAllowed) => {
            let ttl = life.as_secs() as i64 - age.as_secs() as i64;
            let status = format!("wharf; hit; ttl={ttl}");
            let res = respond(entry, parts, age, &status);
            Found::Hit(res, why(reuse))
        }
        Reuse::StaleWhileRevalidate => {
            let ttl = life.as_secs() as i64 - age.as_secs() as i64;
            let res = respond(entry, parts, age, &format!("wharf; hit; ttl={ttl}"));
            let why = why(Reuse::StaleWhileRevalidate);
            match cache.join(key) {
                Role::Lead(leader) => Found::Refresh(res, why, leader),
                // A revalidation is already under way.
                Role::Wait(_) => Found::Hit(res, why),
            }
        }
        Reuse::Revalidate(rules::REQUEST_NO_CACHE) => forward(Some(entry.clone()), "request", None),
        // One revalidation for everyone who finds it stale.
        _ if collapse && !only_if_cached => match cache.join(key) {
            Role::Lead(leader) => forward(Some(entry.clone()), "stale", Some(leader)),
            Role::Wait(rx) => Found::Wait(rx),
        },
        _ => forward(Some(entry.clone()), "stale", None),
    }
}

/// A stored response as the client gets it: `Age` (RFC 9111 §5.1), `Cache-Status`;
/// `304` to a client whose conditions it meets (RFC 9111 §4.3.2); the ranges asked
/// for (RFC 9110 §14); no body for HEAD.
pub(crate) fn respond(
    entry: &Entry,
    parts: &http::request::Parts,
    age: Duration,
    cache_status: &str,
) -> http::Response<Body> {
    let mut headers = entry.headers.clone();
    headers.remove(&rules::SURROGATE_CONTROL);
    headers.insert(http::header::AGE, rules::age_value(age));
    if let Ok(v) = http::HeaderValue::from_str(cache_status) {
        headers.insert(&CACHE_STATUS, v);
    }
    let (status, body) = if entry.status == StatusCode::OK && not_modified(parts, entry) {
        headers.remove(http::header::CONTENT_LENGTH);
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else if parts.method == http::Method::HEAD {
        (entry.status, Body::empty())
    } else if entry.status == StatusCode::OK && parts.headers.contains_key(http::header::RANGE) {
        ranges(entry, parts, &mut headers)
    } else {
        (entry.status, Body::full(entry.body.clone()))
    };
    let mut res = http::Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// A `Range` request answered from a stored `200` (RFC 9110 §14.2): one range, several
/// (`multipart/byteranges`), `416`, or the whole response when `Range` is ignored
/// (`If-Range` not matching, a syntax error).
fn ranges(
    entry: &Entry,
    parts: &http::request::Parts,
    headers: &mut HeaderMap,
) -> (StatusCode, Body) {
    use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
    let len = entry.body.len() as u64;
    let etag = stored_etag(entry);
    let validators = Validators {
        etag: etag.as_ref(),
        last_modified: strong_last_modified(&entry.headers),
    };
    let decision = range::evaluate(
        &parts.method,
        &parts.headers,
        len,
        &validators,
        &RangeLimits::default(),
    );
    let slice = |r: &ByteRange| entry.body.slice(r.start as usize..=r.end as usize);
    let value = |s: String| http::HeaderValue::from_str(&s).expect("a field value");
    headers.remove(CONTENT_LENGTH);
    match decision.kind {
        RangeKind::Full => (StatusCode::OK, Body::full(entry.body.clone())),
        RangeKind::Partial(r) if r.len() == 1 => {
            headers.insert(CONTENT_RANGE, value(range::content_range(&r[0], len)));
            (StatusCode::PARTIAL_CONTENT, Body::full(slice(&r[0])))
        }
        RangeKind::Partial(r) => {
            let boundary = format!(
                "wharf-{:016x}",
                u64::from_le_bytes(crate::tunnel::random::<8>())
            );
            let ct = headers
                .get(CONTENT_TYPE)
                .map_or("application/octet-stream".into(), |v| {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                });
            let mut body = bytes::BytesMut::new();
            for piece in range::multipart(&r, len, &boundary, &ct) {
                match piece {
                    range::Piece::Text(t) => body.extend_from_slice(t.as_bytes()),
                    range::Piece::Range(r) => body.extend_from_slice(&slice(&r)),
                }
            }
            headers.insert(CONTENT_TYPE, value(range::multipart_type(&boundary)));
            (StatusCode::PARTIAL_CONTENT, Body::full(body.freeze()))
        }
        RangeKind::Unsatisfiable => {
            headers.insert(CONTENT_RANGE, value(range::unsatisfied_range(len)));
            (StatusCode::RANGE_NOT_SATISFIABLE, Body::empty())
        }
    }
}

/// The stored response's entity tag.
fn stored_etag(entry: &Entry) -> Option<EntityTag> {
    entry
        .headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(EntityTag::parse)
}

/// `Last-Modified` when it is strong enough for `If-Range`: at least a second before
/// the response's `Date` (RFC 9110 §8.8.2.2).
fn strong_last_modified(headers: &HeaderMap) -> Option<SystemTime> {
    let date = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
    };
    let modified = date(http::header::LAST_MODIFIED)?;
    let sent = date(http::header::DATE)?;
    (modified + Duration::from_secs(1) <= sent).then_some(modified)
}

impl Entry {
    /// Its age now (RFC 9111 §4.2.3).
    pub(crate) fn age(&self) -> Duration {
        self.age_at(SystemTime::now())
    }
}

/// Whether a stored `200` meets the client's conditions (RFC 9111 §4.3.2): its
/// `If-None-Match` names the stored entity tag (weak comparison, RFC 9110 §13.1.2) or
/// is `*`; without `If-None-Match`, its `If-Modified-Since` is no earlier than the
/// stored `Last-Modified` (else `Date`). `If-Match` and `If-Unmodified-Since` are the
/// origin's, not a cache's.
fn not_modified(parts: &http::request::Parts, entry: &Entry) -> bool {
    let list = EtagList::parse_list(parts.headers.get_all(http::header::IF_NONE_MATCH));
    match (list, stored_etag(entry)) {
        (Some(EtagList::Any), _) => return true,
        (Some(EtagList::Tags(tags)), Some(etag)) => return tags.iter().any(|t| t.weak_eq(&etag)),
        (Some(_), None) => return false,
        (None, _) => {}
    }
    let date = |h: &HeaderMap, name| {
        h.get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .and_then(parse_http_date)
    };
    let Some(since) = date(&parts.headers, http::header::IF_MODIFIED_SINCE) else {
        return false;
    };
    let stored = date(&entry.headers, http::header::LAST_MODIFIED)
        .or_else(|| date(&entry.headers, http::header::DATE));
    stored.is_some_and(|m| truncate_to_secs(m) <= since)
}

impl Lookup {
    /// The stored response that may answer if the upstream fails (RFC 5861 §4).
    pub(crate) fn fallback(&self, cache: &Cache) -> Option<Arc<Entry>> {
        let stale = self.stale.as_ref()?;
        let life = stale.life(&cache.cfg);
        let cc = stale.cache_control(&cache.cfg);
        rules::stale_if_error_with(&self.request, cc, life, stale.age(), true)
            .then(|| stale.clone())
    }

    /// After a `304` to a revalidation: the stored response, freshened (RFC 9111
    /// §4.3.4), or `None` when the `304` does not match it.
    pub(crate) fn freshened(
        &self,
        cache: &Cache,
        fresh: &HeaderMap,
        parts: &http::request::Parts,
    ) -> Option<http::Response<Body>> {
        let stale = self.stale.as_ref()?;
        if !rules::freshens(&stale.headers, fresh) {
            return None;
        }
        let mut headers = stale.headers.clone();
        rules::freshen(&mut headers, fresh);
        let tags = Some(take_tags(&mut headers)).filter(|t| !t.is_empty());
        let targeted = rules::targeted(&headers);
        let now = SystemTime::now();
        let entry = Entry {
            status: stale.status,
            headers,
            body: stale.body.clone(),
            vary: stale.vary.clone(),
            extra: stale.extra.clone(),
            tags: tags.unwrap_or_else(|| stale.tags.clone()),
            purged_at: None,
            memo: Memo::default(),
            targeted,
            request_time: self.request_time,
            response_time: now,
        };
        let age = entry.age_at(now);
        let client = client_parts(&parts.method, &self.request);
        let res = respond(&entry, &client, age, "wharf; fwd=stale; fwd-status=304");
        cache.replace(&self.key, stale, entry);
        Some(res)
    }

    /// For an upstream response (its purge tags already taken from its fields): the
    /// fill that will store it (when RFC 9111 allows), and its `Cache-Status` and
    /// reason.
    pub(crate) fn store(
        self,
        cache: &Arc<Cache>,
        method: &http::Method,
        status: StatusCode,
        response: &HeaderMap,
        tags: Vec<String>,
    ) -> (Option<Fill>, String, String) {
        let policy = rules::StorePolicy {
            shared: true,
            store_set_cookie: cache.cfg.store_set_cookie,
        };
        let fwd = format!("wharf; fwd={}; fwd-status={}", self.fwd, status.as_u16());
        if *method != http::Method::GET {
            return (None, fwd, "not stored: HEAD (stored from GET only)".into());
        }
        let targeted = rules::targeted(response);
        let rules_see = targeted.as_ref().unwrap_or(response);
        if let Err(why) = rules::storable(method, &self.request, status, rules_see, policy) {
            return (None, fwd, why.to_string());
        }
        let length = response
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if length.is_some_and(|l| l > cache.cfg.max_object) {
            return (None, fwd, "not stored: larger than max_object".into());
        }
        let names = rules::vary_names(response).unwrap_or_default();
        let vary = rules::vary_key(&names, &self.request);
        let entry = Entry {
            status,
            headers: response.clone(),
            body: Bytes::new(),
            vary,
            extra: self.extra,
            tags,
            purged_at: None,
            memo: Memo::default(),
            targeted,
            request_time: self.request_time,
            response_time: SystemTime::now(),
        };
        let fill = Fill {
            cache: cache.clone(),
            key: self.key,
            entry,
            parts: Vec::new(),
            size: 0,
            leader: self.leader,
            shared: None,
            stored: false,
            epoch: self.epoch,
        };
        (Some(fill), format!("{fwd}; stored"), "stored".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &'static [u8], vary: &str) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
            vary: vec![(http::header::ACCEPT_ENCODING, vary.to_owned())],
            extra: Vec::new(),
            tags: Vec::new(),
            purged_at: None,
            memo: Memo::default(),
            targeted: None,
            request_time: SystemTime::UNIX_EPOCH,
            response_time: SystemTime::UNIX_EPOCH,
        }
    }

    fn key(path: &str) -> Key {
        ("a.test".into(), path.into())
    }

    #[test]
    fn variants_replace_their_own_kind_and_the_oldest_target_goes_first() {
        let cache = Cache::new(CacheConfig {
            // Room for three of the largest kind (a longer Vary value counts more).
            max_bytes: 3 * entry(&[0; 100], "gzip").size(),
            ..CacheConfig::default()
        })
        .unwrap();
        cache.insert(key("/a"), entry(&[0; 100], "gzip"));
        cache.insert(key("/a"), entry(&[1; 100], "br"));
        cache.insert(key("/a"), entry(&[2; 100], "gzip"));
        let a = cache.variants(&key("/a"));
        assert_eq!(a.len(), 2, "one per Vary value");
        assert_eq!(a[0].body[0], 2, "the newest first, replacing its kind");
        cache.insert(key("/b"), entry(&[3; 100], ""));
        cache.variants(&key("/a")); // /a used: /b is now the oldest
        cache.insert(key("/c"), entry(&[4; 100], ""));
        assert!(
            cache.variants(&key("/b")).is_empty(),
            "least recently used out"
        );
        assert_eq!(cache.variants(&key("/a")).len(), 2);
        cache.remove(&key("/a"));
        assert!(cache.variants(&key("/a")).is_empty());
    }

    #[test]
    fn a_fill_stores_only_a_whole_body_within_the_limit() {
        let cache = Arc::new(
            Cache::new(CacheConfig {
                max_object: 10,
                ..CacheConfig::default()
            })
            .unwrap(),
        );
        let fill = |path: &str| Fill {
            cache: cache.clone(),
            key: key(path),
            entry: entry(b"", ""),
            parts: Vec::new(),
            size: 0,
            leader: None,
            shared: None,
            stored: false,
            epoch: 0,
        };
        let mut whole = fill("/whole");
        assert!(whole.take(&Bytes::from_static(b"hello")));
        assert!(whole.take(&Bytes::from_static(b"!")));
        whole.finish();
        assert_eq!(&cache.variants(&key("/whole"))[0].body[..], b"hello!");
        let mut big = fill("/big");
        assert!(
            !big.take(&Bytes::from_static(b"0123456789ab")),
            "past max_object"
        );
        let mut cut = fill("/cut");
        cut.take(&Bytes::from_static(b"half"));
        drop(cut); // the upstream failed: nothing stored
        assert!(cache.variants(&key("/cut")).is_empty());
    }

    #[test]
    fn purges_take_targets_or_tags_and_soft_ones_only_age_them() {
        let cache = Cache::new(CacheConfig::default()).unwrap();
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", "max-age=3600".parse().unwrap());
        let tagged = |body: &'static [u8], tags: &[&str]| Entry {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            headers: headers.clone(),
            request_time: now,
            response_time: now,
            ..entry(body, "")
        };
        cache.insert(key("/a"), tagged(b"a", &["t1", "both"]));
        cache.insert(key("/b"), tagged(b"b", &["t2", "both"]));
        cache.insert(key("/c"), tagged(b"c", &[]));
        let soft = cache.purge(&Purge::Tags(vec!["both".into()]), true);
        assert_eq!(soft, 2);
        let a = &cache.variants(&key("/a"))[0];
        let at = a.purged_at.expect("kept, stale from now");
        assert!(at < Duration::from_secs(60), "{at:?}");
        assert_eq!(
            a.life(&CacheConfig::default()),
            at,
            "not the hour of max-age"
        );
        assert_eq!(cache.purge(&Purge::Tags(vec!["t2".into()]), false), 1);
        assert!(cache.variants(&key("/b")).is_empty());
        assert_eq!(cache.purge(&Purge::Target(key("/c")), false), 1);
        assert_eq!(cache.purge(&Purge::Target(key("/c")), false), 0);
        assert_eq!(cache.variants(&key("/a")).len(), 1);
        // A response fetched before a purge is not stored after it.
        let before = cache.epoch(&key("/d"));
        let other = cache.epoch(&key("/e"));
        cache.purge(&Purge::Target(key("/d")), false);
        cache.insert_since(before, key("/d"), tagged(b"d", &[]));
        assert!(cache.variants(&key("/d")).is_empty(), "the purge stands");
        cache.insert_since(other, key("/e"), tagged(b"e", &[]));
        assert_eq!(
            cache.variants(&key("/e")).len(),
            1,
            "other targets are stored"
        );
        cache.insert_since(cache.epoch(&key("/d")), key("/d"), tagged(b"d", &[]));
        assert_eq!(cache.variants(&key("/d")).len(), 1);
    }

    #[test]
    fn tags_come_from_both_fields_which_are_removed() {
        let mut h = HeaderMap::new();
        h.append("cache-tag", "a, b".parse().unwrap());
        h.append("cache-tag", "c".parse().unwrap());
        h.append("surrogate-key", "d  e".parse().unwrap());
        h.append("etag", "\"x\"".parse().unwrap());
        assert_eq!(take_tags(&mut h), ["a", "b", "c", "d", "e"]);
        assert_eq!(h.len(), 1, "only the tag fields go");
    }

    #[tokio::test]
    async fn a_shared_fill_feeds_readers_that_join_at_any_point() {
        let cache = Arc::new(Cache::new(CacheConfig::default()).unwrap());
        let Role::Lead(leader) = cache.join(&key("/s")) else {
            panic!("the first one leads")
        };
        let fill = |path: &str, leader| Fill {
            cache: cache.clone(),
            key: key(path),
            entry: entry(b"", ""),
            parts: Vec::new(),
            size: 0,
            leader: Some(leader),
            shared: None,
            stored: false,
            epoch: 0,
        };
        let mut f = fill("/s", leader);
        let shared = f.share(4, &HeaderMap::new()).expect("shared");
        let Role::Wait(progress) = cache.join(&key("/s")) else {
            panic!("the second one waits")
        };
        assert!(progress.borrow().is_some(), "waiters see the share");
        let mut early = shared.reader();
        f.take(&Bytes::from_static(b"ab"));
        let mut late = shared.reader();
        f.take(&Bytes::from_static(b"cd"));
        assert_eq!(
            cache.variants(&key("/s"))[0].body,
            "abcd",
            "stored before the last piece goes out"
        );
        f.finish();
        for r in [&mut early, &mut late] {
            let mut got = Vec::new();
            while let Some(piece) = r.recv().await {
                got.extend_from_slice(&piece.unwrap());
            }
            assert_eq!(got, b"abcd");
        }
        assert!(
            matches!(cache.join(&key("/s")), Role::Lead(_)),
            "the leader is gone"
        );

        // Cut short: readers see an error, nothing is stored.
        let Role::Lead(leader) = cache.join(&key("/t")) else {
            panic!()
        };
        let mut f = fill("/t", leader);
        let shared = f.share(4, &HeaderMap::new()).unwrap();
        let mut r = shared.reader();
        f.take(&Bytes::from_static(b"ab"));
        drop(f);
        assert_eq!(r.recv().await, Some(Ok(Bytes::from_static(b"ab"))));
        assert_eq!(r.recv().await, Some(Err(())));
        assert!(cache.variants(&key("/t")).is_empty());
    }

    #[test]
    fn a_background_revalidation_never_waits_for_itself() {
        let cache = Arc::new(Cache::new(CacheConfig::default()).unwrap());
        // The revalidation holds the target's leader; the entry went meanwhile.
        let Role::Lead(_leader) = cache.join(&key("/r")) else {
            panic!("leads")
        };
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.extensions.insert(crate::Refresh);
        match lookup(&cache, &parts, &Vec::new(), &key("/r"), true, false) {
            Found::Forward(l) => assert!(l.stale.is_none() && l.leader.is_none()),
            _ => panic!("a refresh goes upstream"),
        }
    }
}
