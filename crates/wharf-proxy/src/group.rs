//! An upstream group: its members, how a request picks one, and which are healthy.
//!
//! Balancing policies:
//! - round robin, weighted (nginx's smooth weighted round robin: with weights 5, 1, 1
//!   the order is a a b a c a a, never five in a row);
//! - least outstanding requests, by the "power of two choices": two members drawn at
//!   random, the one with fewer requests in flight (per unit of weight) wins;
//! - consistent hashing of a header, a cookie or the path (rendezvous hashing: each
//!   key goes to the member with the highest hash of key and member, so adding or
//!   removing a member moves only the keys that go to or came from it);
//! - sticky sessions by cookie (see [`crate::sticky`]).
//!
//! Health: a member is left out while an active check says it is down, or while it
//! is ejected after `fails` consecutive failed exchanges (refused, reset, timed out,
//! malformed), for `eject`; then it is tried again, and one more failure ejects it
//! again at once. Changes are logged.
//!
//! Membership can change while requests run (service discovery, [`Group::update`]):
//! a request works on the snapshot it took ([`Group::members`]), so one in flight on
//! a member that has just been removed finishes there; members that stay keep their
//! connections and health. Each CPU takes its snapshots from a copy of its own
//! ([`crate::place`]), so taking one writes no lock or count the CPUs share.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName};

use crate::place::{self, Place};
use crate::pool::{Pool, PoolLimits};
use crate::sticky::Sticky;
use crate::upstream::Upstream;

/// What a consistent hash is computed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    /// A request field (e.g. `X-User`).
    Header(HeaderName),
    /// A cookie of the request.
    Cookie(String),
    /// The request path.
    Path,
    /// The client's address.
    ClientIp,
}

/// How a request picks a member.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    /// Round robin, weighted by the members' weights.
    #[default]
    RoundRobin,
    /// The fewer requests in flight of two members drawn at random.
    LeastRequests,
    /// Consistent hashing; requests without the key go round robin.
    Hash(HashOn),
    /// The member named by a signed cookie; round robin (and the cookie set) without
    /// a valid one.
    Sticky {
        /// The cookie's name.
        cookie: String,
    },
}

/// Passive health: failures in a row that eject a member, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passive {
    /// Consecutive failed exchanges that eject a member (0: never).
    pub fails: u32,
    /// How long an ejected member is left out.
    pub eject: Duration,
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            fails: 3,
            eject: Duration::from_secs(30),
        }
    }
}

/// Active health checks: a GET of `path` on every member every `interval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveCheck {
    /// The path (and query) asked for; a 2xx or 3xx passes.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Longest a check may take.
    pub timeout: Duration,
    /// Consecutive passes that bring a member that is down back.
    pub passes: u32,
    /// Consecutive failures that take a member down.
    pub fails: u32,
}

/// One group as configured.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Its name, for logs and explanations.
    pub name: String,
    /// Members and their weights (at least 1).
    pub members: Vec<(Upstream, u32)>,
    /// How requests pick a member.
    pub balance: Balance,
    /// Ejection after failures.
    pub passive: Passive,
    /// Active checks, if any.
    pub check: Option<ActiveCheck>,
    /// Where more members come from (the static ones serve until it answers).
    pub discovery: Option<crate::discovery::Discovery>,
}

impl GroupConfig {
    /// A group of equally weighted members, round robin, default passive health.
    pub fn new(name: impl Into<String>, members: Vec<Upstream>) -> GroupConfig {
        GroupConfig {
            name: name.into(),
            members: members.into_iter().map(|u| (u, 1)).collect(),
            balance: Balance::RoundRobin,
            passive: Passive::default(),
            check: None,
            discovery: None,
        }
    }
}

/// A member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) pool: Arc<Pool>,
    /// A hash of its URL: its identity for consistent hashing and sticky cookies,
    /// the same on every node and across restarts.
    pub(crate) id: u64,
    weight: u32,
    /// Lower first: a member is picked only while no member of a lower priority is
    /// available (DNS SRV, RFC 2782).
    priority: u16,
    /// Smooth weighted round robin's current weight (changed under `Group::wrr`).
    current: std::sync::atomic::AtomicI64,
    /// Requests sent and not yet answered (least-requests balancing).
    in_flight: AtomicUsize,
    /// Consecutive failed exchanges.
    fails: AtomicU32,
    /// Milliseconds since the group's epoch until which the member is ejected (0: not).
    ejected_until: AtomicU64,
    /// What the active checks say (true without checks).
    pub(crate) up: AtomicBool,
}

/// A group, ready to pick members.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    members: RwLock<Members>,
    /// Each CPU's copy of `members`, once taken (dropped by every change).
    copies: Box<[Place<Option<Members>>]>,
    balance: Balance,
    passive: Passive,
    pub(crate) check: Option<ActiveCheck>,
    pub(crate) sticky: Option<Sticky>,
    epoch: Instant,
    /// Round robin's and the random draws' counter.
    next: AtomicUsize,
    /// Held while smooth weighted round robin updates the members' weights.
    wrr: Mutex<()>,
    /// For members that join later.
    limits: PoolLimits,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A member as a discovery source lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) upstream: Upstream,
    pub(crate) weight: u32,
    pub(crate) priority: u16,
}

impl Listed {
    pub(crate) fn new(upstream: Upstream, weight: u32, priority: u16) -> Listed {
        Listed {
            upstream,
            weight,
            priority,
        }
    }
}

/// The members as one request sees them.
pub(crate) type Members = Arc<Vec<Arc<Member>>>;

/// Why a member was picked, for `explain`.
pub(crate) const PICKED_STICKY: &str = "sticky cookie";

impl Group {
    pub(crate) fn new(
        cfg: GroupConfig,
        limits: PoolLimits,
        sticky_key: &[u8],
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Group {
        let sticky = match &cfg.balance {
            Balance::Sticky { cookie } => Some(Sticky::new(cookie, sticky_key)),
            _ => None,
        };
        let members = cfg
            .members
            .into_iter()
            .map(|(u, w)| Arc::new(Member::new(u, w, 0, limits, tls.clone())))
            .collect();
        Group {
            name: cfg.name,
            members: RwLock::new(Arc::new(members)),
            copies: place::per_cpu(|| None),
            balance: cfg.balance,
            passive: cfg.passive,
            check: cfg.check,
            sticky,
            epoch: Instant::now(),
            next: AtomicUsize::new(0),
            wrr: Mutex::new(()),
            limits,
            tls,
        }
    }

    /// The members now, from this CPU's copy (made again after a change: taken
    /// under the copy's lock, which [`Group::update`] takes to drop it, a copy is
    /// never of a list already replaced).
    pub(crate) fn members(&self) -> Members {
        let own = place::own_index(self.copies.len()).unwrap_or_default();
        let mut copy = self.copies[own].lock().expect("members lock");
        copy.get_or_insert_with(|| {
            let now = self.members.read().expect("members lock");
            Arc::new(now.as_ref().clone())
        })
        .clone()
    }

    /// Replaces the members by `list` (from discovery): members whose URL and
    /// weight stay are kept, with their connections and health; the new ones are
    /// returned, for health checks to start on. An empty list is refused (the last
    /// one stays): a group with no member cannot serve.
    pub(crate) fn update(&self, list: &[Listed]) -> Vec<Weak<Member>> {
        if list.is_empty() {
            return Vec::new();
        }
        let mut members = self.members.write().expect("members lock");
        let mut added = Vec::new();
        let next: Vec<Arc<Member>> = list
            .iter()
            .map(|l| {
                members
                    .iter()
                    .find(|m| {
                        m.pool.upstream() == &l.upstream
                            && m.weight == l.weight.max(1)
                            && m.priority == l.priority
                    })
                    .cloned()
                    .unwrap_or_else(|| {
                        let m = Arc::new(Member::new(
                            l.upstream.clone(),
                            l.weight,
                            l.priority,
                            self.limits,
                            self.tls.clone(),
                        ));
                        added.push(Arc::downgrade(&m));
                        m
                    })
            })
            .collect();
        let changed = next.len() != members.len() || !added.is_empty();
        if changed {
            let urls: Vec<String> = next.iter().map(|m| m.pool.upstream().to_string()).collect();
            tracing::info!(target: "wharf::proxy", group = %self.name, members = %urls.join(", "), "upstream group changed");
        }
        *members = Arc::new(next);
        drop(members);
        // The CPUs' copies of the old list go now (after the lock: `members` takes a
        // copy's lock, then this one): kept, they would hold removed members and
        // their idle connections until each CPU's next request to the group.
        for copy in self.copies.iter() {
            *copy.lock().expect("members lock") = None;
        }
        added
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether `m` may take requests now. (A member never ejected costs no reading
    /// of the clock.)
    pub(crate) fn available(&self, m: &Member) -> bool {
        let until = m.ejected_until.load(Ordering::Acquire);
        m.up.load(Ordering::Acquire) && (until == 0 || until <= self.now_ms())
    }

    /// How long until an ejected member comes back (for `Retry-After`), if any is
    /// ejected and none is down by an active check alone.
    pub(crate) fn retry_after(&self) -> Duration {
        let now = self.now_ms();
        let soonest = self
            .members()
            .iter()
            .filter(|m| m.up.load(Ordering::Acquire))
            .map(|m| m.ejected_until.load(Ordering::Acquire).saturating_sub(now))
            .min();
        Duration::from_millis(soonest.unwrap_or(1000)).max(Duration::from_secs(1))
    }

    /// The member for a request, an index into `members` (the request's
    /// snapshot), among the available ones not in `tried`; `None` when there is none.
    pub(crate) fn pick(
        &self,
        members: &[Arc<Member>],
        headers: &HeaderMap,
        path: &str,
        client: IpAddr,
        tried: &[usize],
    ) -> Option<(usize, &'static str)> {
        let open = |i: usize| !tried.contains(&i) && self.available(&members[i]);
        // Members of a lower priority first, while any of them is available.
        let first = members.first()?.priority;
        let tier = match members.iter().all(|m| m.priority == first) {
            true => first,
            false => (0..members.len())
                .filter(|&i| open(i))
                .map(|i| members[i].priority)
                .min()?,
        };
        let ok = |i: usize| open(i) && members[i].priority == tier;
        if members.len() == 1 && self.sticky.is_none() {
            return ok(0).then_some((0, "the only member"));
        }
        let rr = |why| self.weighted_round_robin(members, ok).map(|i| (i, why));
        match &self.balance {
            Balance::RoundRobin => rr("round robin"),
            Balance::LeastRequests => self
                .least_requests(members, ok)
                .map(|i| (i, "least requests")),
            Balance::Hash(on) => match hash_key(on, headers, path, client) {
                Some(key) => rendezvous(members, &key, ok).map(|i| (i, "consistent hash")),
                None => rr("round robin (no hash key)"),
            },
            Balance::Sticky { .. } => {
                let named = self
                    .sticky
                    .as_ref()
                    .and_then(|s| s.member(headers, members));
                match named {
                    Some(i) if ok(i) => Some((i, PICKED_STICKY)),
                    _ => rr("round robin (new session)"),
                }
            }
        }
    }

    /// nginx's smooth weighted round robin over the members `ok` allows.
    fn weighted_round_robin(
        &self,
        members: &[Arc<Member>],
        ok: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let _turn = self.wrr.lock().expect("balancer lock");
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (i, m) in members.iter().enumerate().filter(|(i, _)| ok(*i)) {
            let w = i64::from(m.weight);
            let current = m.current.fetch_add(w, Ordering::Relaxed) + w;
            total += w;
            if best.is_none_or(|(_, c)| current > c) {
                best = Some((i, current));
            }
        }
        let (best, _) = best?;
        members[best].current.fetch_sub(total, Ordering::Relaxed);
        Some(best)
    }

    /// Power of two choices on requests in flight per unit of weight.
    fn least_requests(&self, members: &[Arc<Member>], ok: impl Fn(usize) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..members.len()).filter(|&i| ok(i)).collect();
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => {
                let draw = splitmix(self.next.fetch_add(1, Ordering::Relaxed) as u64);
                let a = candidates[(draw % n as u64) as usize];
                let mut b = candidates[((draw >> 32) % (n as u64 - 1)) as usize];
                if b == a {
                    b = candidates[n - 1];
                }
                let load = |i: usize| {
                    let m = &members[i];
                    m.in_flight.load(Ordering::Relaxed) as f64 / f64::from(m.weight)
                };
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }

    /// Counts a request in flight on `m` until the guard is dropped, where the
    /// balancing policy looks at the count (least requests): elsewhere it would be
    /// a shared counter written twice by every request for nothing.
    pub(crate) fn start<'m>(&self, m: &'m Member) -> InFlight<'m> {
        let counted = matches!(self.balance, Balance::LeastRequests).then(|| {
            m.in_flight.fetch_add(1, Ordering::Relaxed);
            m
        });
        InFlight(counted)
    }

    /// An exchange with `m` got a response. (The count of failures is read before
    /// it is written: it is nearly always zero, and a shared line written by every
    /// request moves between the cores' caches.)
    pub(crate) fn succeeded(&self, m: &Member) {
        if m.fails.load(Ordering::Acquire) == 0 {
            return;
        }
        if m.fails.swap(0, Ordering::AcqRel) >= self.passive.fails && self.passive.fails > 0 {
            tracing::info!(target: "wharf::proxy", group = %self.name, upstream = %m.pool.upstream(), "upstream back after ejection");
        }
    }

    /// An exchange with `m` failed (refused, reset, timed out, malformed). Past
    /// `passive.fails` in a row it is ejected, unless it is the group's only member
    /// (as nginx does): ejecting it would only turn every request into a 503 until
    /// the period ends, even once it answers again.
    pub(crate) fn failed(&self, m: &Member) {
        let fails = m.fails.fetch_add(1, Ordering::AcqRel) + 1;
        if self.passive.fails == 0 || fails < self.passive.fails || self.members().len() < 2 {
            return;
        }
        let until = self.now_ms() + self.passive.eject.as_millis() as u64;
        m.ejected_until.store(until, Ordering::Release);
        // The next failure after the ejection ends ejects it again at once.
        m.fails.store(self.passive.fails - 1, Ordering::Release);
        tracing::warn!(target: "wharf::proxy", group = %self.name, upstream = %m.pool.upstream(), failures = fails, eject = ?self.passive.eject, "upstream ejected");
    }
}

impl Member {
    fn new(
        upstream: Upstream,
        weight: u32,
        priority: u16,
        limits: PoolLimits,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Member {
        Member {
            id: xxhash_rust::xxh3::xxh3_64(upstream.to_string().as_bytes()),
            pool: Arc::new(Pool::new(upstream, limits, tls)),
            weight: weight.max(1),
            priority,
            current: std::sync::atomic::AtomicI64::new(0),
            in_flight: AtomicUsize::new(0),
            fails: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            up: AtomicBool::new(true),
        }
    }
}

/// Weighted rendezvous hashing: the member with the highest score for `key`.
fn rendezvous(members: &[Arc<Member>], key: &[u8], ok: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(f64, usize)> = None;
    for (i, m) in members.iter().enumerate().filter(|(i, _)| ok(*i)) {
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(key, m.id);
        // A uniform number in (0, 1), then weight / -ln(u) (weighted rendezvous).
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = f64::from(m.weight) / -u.ln();
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// A request in flight on a member (counted where the policy needs it).
pub(crate) struct InFlight<'a>(Option<&'a Member>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            m.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The bytes of a request that `on` names, if it has them: what its consistent hash
/// is computed on, or a cache key addition.
pub(crate) fn hash_key<'r>(
    on: &HashOn,
    headers: &'r HeaderMap,
    path: &'r str,
    client: IpAddr,
) -> Option<Cow<'r, [u8]>> {
    match on {
        HashOn::Header(name) => headers.get(name).map(|v| Cow::Borrowed(v.as_bytes())),
        HashOn::Cookie(name) => cookie(headers, name).map(|v| Cow::Borrowed(v.as_bytes())),
        HashOn::Path => Some(Cow::Borrowed(path.as_bytes())),
        HashOn::ClientIp => Some(Cow::Owned(client.to_canonical().to_string().into_bytes())),
    }
}

/// The value of cookie `name` in the request's `Cookie` fields (RFC 6265 §5.4).
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A well-mixed 64-bit number from a counter (SplitMix64).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client of every pick here.
    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn group(weights: &[u32], balance: Balance) -> Group {
        let members = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    Upstream::parse(&format!("http://10.0.0.{}:80", i + 1)).unwrap(),
                    *w,
                )
            })
            .collect();
        let cfg = GroupConfig {
            name: "g".into(),
            members,
            balance,
            passive: Passive {
                fails: 2,
                eject: Duration::from_secs(60),
            },
            check: None,
            discovery: None,
        };
        Group::new(cfg, PoolLimits::default(), b"key", None)
    }

    fn picks(g: &Group, n: usize) -> Vec<usize> {
        let members = g.members();
        (0..n)
            .map(|_| {
                g.pick(&members, &HeaderMap::new(), "/", CLIENT, &[])
                    .unwrap()
                    .0
            })
            .collect()
    }

    #[test]
    fn weighted_round_robin_is_smooth() {
        let g = group(&[5, 1, 1], Balance::RoundRobin);
        assert_eq!(
            picks(&g, 7),
            [0, 0, 1, 0, 2, 0, 0],
            "nginx's example: a a b a c a a"
        );
        let g = group(&[1, 1, 1], Balance::RoundRobin);
        assert_eq!(picks(&g, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn unavailable_and_tried_members_are_skipped() {
        let g = group(&[1, 1, 1], Balance::RoundRobin);
        let m = g.members();
        m[1].up.store(false, Ordering::Release);
        assert_eq!(picks(&g, 4), [0, 2, 0, 2]);
        let h = HeaderMap::new();
        assert_eq!(g.pick(&m, &h, "/", CLIENT, &[0, 2]), None);
        g.failed(&m[0]);
        assert!(g.available(&m[0]), "one failure of two");
        g.failed(&m[0]);
        assert!(!g.available(&m[0]), "ejected after two in a row");
        assert_eq!(picks(&g, 2), [2, 2]);
        g.failed(&m[2]);
        g.failed(&m[2]);
        assert_eq!(g.pick(&m, &h, "/", CLIENT, &[]), None, "none left");
        let after = g.retry_after();
        assert!(
            after > Duration::from_secs(50),
            "the soonest ejection's end: {after:?}"
        );
    }

    #[test]
    fn least_requests_prefers_the_idle_member() {
        let g = group(&[1, 1], Balance::LeastRequests);
        let m = g.members();
        let _busy = (g.start(&m[0]), g.start(&m[0]));
        for _ in 0..20 {
            assert_eq!(picks(&g, 1), [1]);
        }
    }

    #[test]
    fn consistent_hashing_moves_only_the_keys_of_a_removed_member() {
        let on = Balance::Hash(HashOn::Header(HeaderName::from_static("x-user")));
        let g = group(&[1, 1, 1, 1], on);
        let m = g.members();
        let pick = |user: usize, tried: &[usize]| {
            let mut h = HeaderMap::new();
            h.insert("x-user", user.to_string().parse().unwrap());
            g.pick(&m, &h, "/", CLIENT, tried).unwrap().0
        };
        let before: Vec<usize> = (0..400).map(|u| pick(u, &[])).collect();
        for m in 0..4 {
            let share = before.iter().filter(|&&b| b == m).count();
            assert!((60..140).contains(&share), "member {m} got {share} of 400");
        }
        for (u, was) in before.iter().enumerate() {
            let now = pick(u, &[2]);
            if *was != 2 {
                assert_eq!(now, *was, "user {u} moved though its member stayed");
            }
        }
        let mut h = HeaderMap::new();
        h.insert("x-user", "7".parse().unwrap());
        assert_eq!(
            g.pick(&m, &h, "/", CLIENT, &[]).unwrap().1,
            "consistent hash"
        );
        assert_eq!(
            g.pick(&m, &HeaderMap::new(), "/", CLIENT, &[]).unwrap().1,
            "round robin (no hash key)"
        );
    }

    #[test]
    fn updates_keep_the_members_that_stay() {
        let g = group(&[1, 1], Balance::RoundRobin);
        let before = g.members();
        // Every CPU has the list (as if each had served a request).
        for copy in g.copies.iter() {
            *copy.lock().unwrap() = Some(before.clone());
        }
        let url = |n: u8| Upstream::parse(&format!("http://10.0.0.{n}:80")).unwrap();
        let listed = |n: u8| Listed::new(url(n), 1, 0);
        let added = g.update(&[listed(2), listed(3)]);
        let after = g.members();
        assert_eq!(added.len(), 1, "10.0.0.3 is new");
        assert!(
            Arc::ptr_eq(&before[1], &after[0]),
            "10.0.0.2 kept, with its pool"
        );
        assert_eq!(after[1].pool.upstream(), &url(3));
        assert_eq!(before.len(), 2, "a request's snapshot does not change");
        let removed = Arc::downgrade(&before[0]);
        drop(before);
        assert!(
            removed.upgrade().is_none(),
            "a removed member goes with the last request's snapshot, not kept by a CPU's copy"
        );
        assert!(g.update(&[]).is_empty());
        assert_eq!(g.members().len(), 2, "an empty list is refused");
    }

    #[test]
    fn lower_priorities_serve_while_any_of_them_is_available() {
        let g = group(&[1], Balance::RoundRobin);
        let url = |n: u8| Upstream::parse(&format!("http://10.0.0.{n}:80")).unwrap();
        g.update(&[
            Listed::new(url(1), 3, 10),
            Listed::new(url(2), 1, 10),
            Listed::new(url(3), 5, 20),
        ]);
        assert_eq!(
            picks(&g, 8),
            [0, 0, 1, 0, 0, 0, 1, 0],
            "weights 3:1 in priority 10"
        );
        let m = g.members();
        let pick = |tried: &[usize]| g.pick(&m, &HeaderMap::new(), "/", CLIENT, tried);
        assert_eq!(pick(&[0, 1]).unwrap().0, 2, "priority 20 once 10 is spent");
        g.failed(&m[0]);
        g.failed(&m[0]);
        g.failed(&m[1]);
        g.failed(&m[1]);
        assert_eq!(pick(&[]).unwrap().0, 2, "priority 10 ejected");
        assert!(pick(&[2]).is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; sid=\"xyz\"".parse().unwrap());
        h.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&h, "sid"), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "s"), None);
    }
}
