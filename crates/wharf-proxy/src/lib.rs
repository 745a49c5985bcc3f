//! wharf's reverse proxy: forwards requests to upstream servers over pooled
//! HTTP/1.1 connections and streams the answers back.
//!
//! A service like the others: `http::Request` in, `http::Response` out, whichever
//! protocol carried the request; it never sees the client's connection, only the
//! facts the transport put in the request (`wharf_http::conn`). The rules an
//! intermediary applies to the messages (hop-by-hop fields, `Via`, `Forwarded`) are
//! `wharf_http::forward`'s; this crate does the I/O: choosing a member of an
//! upstream group (`group`: balancing, passive health; `health`: active checks;
//! `sticky`: signed session cookies), lending it a connection from its `pool`, the
//! timeouts, the retries that are safe, and the statuses of failure (502, 504, 503,
//! 413) with their reasons for `explain`.
//!
//! Bodies are streamed both ways, a frame at a time: memory does not grow with a
//! message's size.

mod body;
mod cache;
mod discovery;
mod disk;
mod group;
mod h1;
mod health;
mod place;
mod pool;
mod sticky;
mod tls;
mod tunnel;
mod upstream;

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use smallvec::SmallVec;
use wharf_http::conn::ConnInfo;
use wharf_http::forward;
use wharf_http::interim::Interim;
use wharf_http::Explain;

pub use body::Body;
use body::Incoming;
pub use cache::CacheConfig;
pub use discovery::{Discovery, Source};
pub use group::{ActiveCheck, Balance, GroupConfig, HashOn, Passive};
pub use pool::{CheckoutError, PoolLimits};
pub use tls::{client_config, UpstreamTls};
pub use upstream::{BadUpstream, Protocol, Upstream};

use group::Group;
use pool::Sender;

/// The body type of requests sent upstream.
pub(crate) type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, io::Error>;

/// The name this proxy gives itself in `Via` (RFC 9110 §7.6.3 allows a pseudonym in
/// place of the host name).
const VIA_NAME: &str = "wharf";

/// What the upstream is told the request's host is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HostHeader {
    /// The client's (as Caddy does): the upstream sees the name the client used.
    #[default]
    Keep,
    /// The upstream's own authority, from its URL (as nginx's default `$proxy_host`).
    Upstream,
}

/// A network of addresses, `10.0.0.0/8` or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u8) {
            match ip.to_canonical() {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (addr, addr_width)) = (bits(self.addr), bits(ip));
        if width != addr_width {
            return false;
        }
        // IPv4 sits in the top 32 bits, so a prefix counts from the top either way.
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        };
        (net ^ addr) & mask == 0
    }
}

/// How the proxy behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The upstream groups; a request is forwarded to one (`Proxy::serve`).
    pub groups: Vec<GroupConfig>,
    /// TLS to `https://` upstreams.
    pub tls: UpstreamTls,
    /// The shared cache (RFC 9111), when on.
    pub cache: Option<CacheConfig>,
    /// The key that signs sticky-session cookies (random when `None`: cookies then
    /// last as long as the process, and hold on this node only).
    pub sticky_key: Option<Vec<u8>>,
    /// Connections to each upstream.
    pub pool: PoolLimits,
    /// Longest wait for an upstream's response head once the request is sent (504).
    pub response_timeout: Duration,
    /// Longest wait for the next piece of an upstream's response body; then the
    /// response is cut short (the client sees an incomplete message).
    pub body_timeout: Duration,
    /// Largest request body forwarded (413 beyond).
    pub max_body: u64,
    /// Further attempts on another upstream, where that is safe: when nothing was
    /// sent (connecting failed), or for an idempotent request without a body.
    pub retries: u32,
    /// The `Host` sent upstream.
    pub host: HostHeader,
    /// Peers whose `Forwarded` and `X-Forwarded-*` fields are believed and extended;
    /// from anyone else they are replaced.
    pub trusted_proxies: Vec<Cidr>,
}

impl Config {
    /// The defaults, proxying to `upstreams` (one group, `default`, round robin).
    pub fn new(upstreams: Vec<Upstream>) -> Config {
        Config {
            groups: vec![GroupConfig::new("default", upstreams)],
            tls: UpstreamTls::default(),
            cache: None,
            sticky_key: None,
            pool: PoolLimits::default(),
            response_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_body: 1 << 30,
            retries: 1,
            host: HostHeader::Keep,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What the transport said of a client's connection, which the proxy passes on: its
/// addresses (for `Forwarded`, `X-Forwarded-For`, hashing and the purge check),
/// whether TLS carried it (the forwarded scheme), and where its `103`s go. An
/// argument rather than request extensions, which cost three allocations a request.
#[derive(Clone)]
pub struct Client {
    /// The connection's addresses.
    pub conn: ConnInfo,
    /// The request came over TLS (or QUIC).
    pub tls: bool,
    /// The transport's sender of `103 Early Hints`, where it has one.
    pub interim: Option<Interim>,
}

impl Client {
    /// The client's address.
    fn ip(&self) -> IpAddr {
        self.conn.peer.ip()
    }
}

/// The reverse proxy service (cheap to share: its state is behind one `Arc`, which
/// background revalidations hold too).
pub struct Proxy(Arc<Inner>);

struct Inner {
    cfg: Config,
    /// This proxy's `Via` entries.
    via: forward::Via,
    groups: Vec<Arc<Group>>,
    cache: Option<Arc<cache::Cache>>,
}

/// Marks a request the proxy makes itself to revalidate a stored response in the
/// background (RFC 5861 §3): the store does not answer it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refresh;

/// A failure, the status it gets and why.
struct Failure {
    status: StatusCode,
    reason: String,
    /// For a 503: when to try again.
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(status: StatusCode, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            reason: reason.into(),
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(Duration::from_secs(1)),
        }
    }
}

impl Proxy {
    /// A proxy to the groups of `cfg` (each with at least one member). Spawns the
    /// tasks that close idle connections past their time and run the health checks,
    /// so it is called within a tokio runtime.
    ///
    /// Fails when TLS to `https://` upstreams cannot be set up (see
    /// [`client_config`]).
    pub fn new(cfg: Config) -> Result<Proxy, String> {
        assert!(
            cfg.groups
                .iter()
                .all(|g| !g.members.is_empty() || g.discovery.is_some()),
            "every group needs members, or a discovery source"
        );
        let https = cfg.groups.iter().any(|g| {
            let listed = g.members.iter().any(|(u, _)| u.protocol() == Protocol::Tls);
            let found = match g.discovery.as_ref().map(|d| &d.source) {
                Some(Source::Dns { url, .. }) => url.protocol() == Protocol::Tls,
                Some(Source::Srv { protocol, .. }) => *protocol == Protocol::Tls,
                _ => false,
            };
            listed || found
        });
        // A file or a Redis set may list https:// members too: TLS is set up for them
        // when it can be, and they fail to connect (502, logged) when it cannot.
        let may_list = cfg.groups.iter().any(|g| {
            matches!(
                g.discovery.as_ref().map(|d| &d.source),
                Some(Source::File(_) | Source::Redis { .. })
            )
        });
        let tls = if https {
            Some(client_config(&cfg.tls).map_err(|e| format!("TLS to upstreams: {e}"))?)
        } else if may_list {
            client_config(&cfg.tls).ok()
        } else {
            None
        };
        let key = cfg.sticky_key.clone().unwrap_or_else(random_key);
        let groups: Vec<Arc<Group>> = cfg
            .groups
            .iter()
            .map(|g| Arc::new(Group::new(g.clone(), cfg.pool, &key, tls.clone())))
            .collect();
        groups.iter().for_each(health::spawn);
        for (g, c) in groups.iter().zip(&cfg.groups) {
            if let Some(d) = &c.discovery {
                discovery::spawn(g, d.clone());
            }
        }
        let weak: Vec<Weak<Group>> = groups.iter().map(Arc::downgrade).collect();
        let every = (cfg.pool.idle_timeout / 2).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let alive: Vec<Arc<Group>> = weak.iter().filter_map(Weak::upgrade).collect();
                if alive.is_empty() {
                    break;
                }
                for g in &alive {
                    g.members().iter().for_each(|m| m.pool.reap());
                }
            }
        });
        let cache = match cfg.cache.clone() {
            Some(c) => {
                let dir = c.dir.clone();
                let opened = cache::Cache::new(c).map_err(|e| {
                    let dir = dir.unwrap_or_default();
                    format!("the cache's disk tier {}: {e}", dir.display())
                })?;
                Some(Arc::new(opened))
            }
            None => None,
        };
        let via = forward::Via::new(VIA_NAME).map_err(|e| format!("Via: {e}"))?;
        Ok(Proxy(Arc::new(Inner {
            cfg,
            via,
            groups,
            cache,
        })))
    }

    /// Connections open to each member of group `group`, in configuration order.
    pub fn open_connections(&self, group: usize) -> Vec<usize> {
        self.0.groups[group]
            .members()
            .iter()
            .map(|m| m.pool.open_connections())
            .collect()
    }

    /// Forwards one request to a member of group `group` (an index into
    /// `Config::groups`) and answers with its response, or with the proxy's own when
    /// that fails. With `explain`, the reason is also sent as `Wharf-Explain` (it is
    /// always in the response's `Explain` extension, for the access log).
    ///
    /// `client` is what the transport said of the client's connection. `upgrade` is
    /// the transport's promise of the client's connection after a `101` (or a `200`
    /// to an extended CONNECT), for upgrades passed through to the upstream; without
    /// it, an HTTP/1.1 `Upgrade` is not passed on.
    pub fn serve<B, U, S, E>(
        &self,
        group: usize,
        req: Request<B>,
        client: Client,
        upgrade: Option<U>,
        explain: bool,
    ) -> impl Future<Output = Response<Body>> + Send + '_
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + Unpin + 'static,
        U: Future<Output = Result<S, E>> + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        E: Send + 'static,
    {
        let inner = &self.0;
        let forward = inner.forward(&inner.groups[group], req, client, upgrade, explain);
        // Not an `async fn`: the forwarding future is the whole of it, not kept beside
        // a copy of its arguments.
        forward.map(move |outcome| {
            let (mut res, why) = match outcome {
                Ok(answer) => answer,
                Err(f) => {
                    let (res, why) = inner.failure(f);
                    (res, Some(why))
                }
            };
            if let Some(why) = why {
                if explain {
                    if let Ok(v) = HeaderValue::from_str(&why) {
                        res.headers_mut().insert(wharf_http::explain::HEADER, v);
                    }
                }
                res.extensions_mut().insert(Explain(why));
            }
            res
        })
    }
}

impl Inner {
    /// Not an `async fn`: one would keep the request whole beside its parts, and its
    /// arguments twice, in the future every proxied request carries.
    fn forward<'a, B, U, S, E>(
        self: &'a Arc<Self>,
        group: &'a Arc<Group>,
        req: Request<B>,
        client: Client,
        client_upgrade: Option<U>,
        explain: bool,
    ) -> impl Future<Output = Result<(Response<Body>, Option<String>), Failure>> + Send + 'a
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + Unpin + 'static,
        U: Future<Output = Result<S, E>> + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        E: Send + 'static,
    {
        let (mut parts, body) = req.into_parts();
        async move {
            let client = &client;
            // Made once: the cache key and the upstream request both name it.
            let mut host = named_host(&parts);
            if let (Some(c), true) = (&self.cache, parts.method.as_str() == "PURGE") {
                return purge(c, &parts, host.as_ref(), client.ip())
                    .map(|(res, why)| (res, explain.then_some(why)));
            }
            // An upgrade is passed on only where the transport can hand over the client's
            // connection.
            let upgrade = client_upgrade.as_ref().and(tunnel::Upgrade::of(&parts));
            if parts.method == Method::CONNECT && upgrade.is_none() {
                return Err(Failure::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "405: CONNECT is not forwarded (only extended CONNECT for a WebSocket)",
                ));
            }
            // (A request without content, as most are, has no length to look up.)
            let declared = (!http_body::Body::is_end_stream(&body))
                .then(|| content_length(&parts.headers))
                .flatten();
            if let Some(len) = declared.filter(|l| *l > self.cfg.max_body) {
                return Err(Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "413: a body of {len} bytes, over the limit of {}",
                        self.cfg.max_body
                    ),
                ));
            }
            // The shared cache answers what it can; the rest goes upstream, revalidating
            // what is stored where that is needed.
            let mut lookup = None;
            let cacheable = matches!(parts.method, Method::GET | Method::HEAD) && upgrade.is_none();
            let key = self
                .cache
                .as_ref()
                .map(|_| cache_key(&parts, host.as_ref()));
            if let (Some(c), Some(key), true) = (&self.cache, &key, cacheable) {
                let extra = cache::extra(&c.cfg, &parts, client.ip());
                // A miss waits for the same target's fetch in flight, once; after that it
                // looks again and, still missing, goes upstream itself.
                let mut waited = false;
                c.load(key).await;
                loop {
                    let collapse = !waited && c.cfg.key.is_empty();
                    match cache::lookup(c, &parts, &extra, key, collapse, explain) {
                        cache::Found::Hit(mut res, why) => {
                            if waited {
                                let status = format!(
                                    "wharf; fwd=uri-miss; fwd-status={}; collapsed",
                                    res.status().as_u16()
                                );
                                if let Ok(v) = HeaderValue::from_str(&status) {
                                    res.headers_mut().insert(&cache::CACHE_STATUS, v);
                                }
                            }
                            return Ok((res, explain.then_some(why)));
                        }
                        cache::Found::OnlyIfCached => {
                            return Err(Failure::new(
                                StatusCode::GATEWAY_TIMEOUT,
                                "504: only-if-cached, and nothing usable is stored",
                            ))
                        }
                        cache::Found::Forward(l) => {
                            lookup = Some(l);
                            break;
                        }
                        cache::Found::Refresh(res, why, leader) => {
                            let refresh = refresh_request(&parts);
                            // Its 103s would reach nobody.
                            let client = Client {
                                conn: client.conn,
                                tls: client.tls,
                                interim: None,
                            };
                            tokio::spawn(self.clone().refresh(
                                group.clone(),
                                refresh,
                                client,
                                leader,
                            ));
                            return Ok((res, explain.then_some(why)));
                        }
                        cache::Found::Wait(progress) => {
                            tracing::debug!(target: "wharf::proxy", host = %key.0, target = %key.1, "collapsed: waiting for the same request in flight");
                            let patience = self.cfg.response_timeout;
                            // Boxed: rare, and every request's future would carry its room.
                            let wait = Box::pin(cache::wait(progress, &parts, &extra, patience));
                            if let Some(res) = wait.await {
                                let why = explain.then(|| "cache: collapsed into the request in flight, streamed as it arrives".to_owned());
                                return Ok((res, why));
                            }
                            waited = true;
                        }
                    }
                }
            }
            // What may answer if the upstream fails (RFC 5861 §4, stale-if-error).
            let fallback = match (&self.cache, &lookup) {
                (Some(c), Some(l)) => l.fallback(c),
                _ => None,
            };
            // The client's fields, for answering from the stored response after all.
            let client_fields = fallback
                .as_ref()
                .and(lookup.as_ref())
                .map(|l| l.request.clone());
            let outcome = async {
            let mut head = self.upstream_head(&mut parts, host.take(), client, upgrade.as_ref());
            if let Some(stale) = lookup.as_ref().and_then(|l| l.stale.as_ref()) {
                head.headers
                    .extend(wharf_http::cache::validators(&stale.headers));
            }
            let no_body = body.is_end_stream();
            // Safe to send again after a failure: nothing of it is lost, and doing it twice
            // means the same (RFC 9110 §9.2.2).
            let replayable = no_body && parts.method.is_idempotent();
            // Set when the body turns out longer than the limit (only a body can).
            let over = (!no_body).then(|| Arc::new(AtomicBool::new(false)));
            let mut body = Some(match &over {
                None => empty(),
                Some(over) => {
                    body::Limited::new(body, self.cfg.max_body, over.clone()).boxed_unsync()
                }
            });
            let members = group.members();
            // The members tried, in place for the usual few attempts.
            let mut tried: SmallVec<[usize; 4]> = SmallVec::new();
            // The failed attempts so far: their status and reason.
            let mut earlier: Vec<(StatusCode, String)> = Vec::new();
            for _ in 0..=self.cfg.retries {
                let Some((i, picked)) =
                    group.pick(&members, &head.headers, parts.uri.path(), client.ip(), &tried)
                else {
                    break;
                };
                tried.push(i);
                let member = &members[i];
                let pool = &member.pool;
                let upstream = pool.upstream();
                let conn = match pool.checkout().await {
                    Ok(c) => c,
                    Err(CheckoutError::Saturated(n)) => {
                        return Err(Failure::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("503: {upstream}: {n} requests already wait for a connection"),
                        ));
                    }
                    Err(e) => {
                        // Nothing was sent: another member may take it.
                        group.failed(member);
                        tracing::warn!(target: "wharf::proxy", group = %group.name, %upstream, error = %e, "upstream unreachable");
                        let status = match e {
                            CheckoutError::ConnectTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
                            _ => StatusCode::BAD_GATEWAY,
                        };
                        earlier.push((status, format!("{}: {upstream}: {e}", status.as_u16())));
                        continue;
                    }
                };
                let in_flight = group.start(member);
                let reused = conn.reused;
                let host = self.host(&head, upstream);
                let content = body.take().unwrap_or_else(empty);
                let (hints, home) = (client.interim.as_ref(), Some(pool.clone()));
                let limit = self.cfg.response_timeout;
                // Each protocol's exchange awaited where it is made: one future held
                // for both would be one more copy of it, made before it starts.
                let sent = match conn.sender {
                    // HTTP/1.1 writes the request from `head`, which stays as it is.
                    Sender::H1(c) => {
                        let exchange = c.forward(&head, host.as_deref(), content, hints, home);
                        tokio::time::timeout(limit, exchange).await
                    }
                    // HTTP/2 sends a map: the fields are copied where another attempt
                    // may need them.
                    h2 => {
                        let keep = tried.len() <= self.cfg.retries as usize;
                        let host = host.map(Cow::into_owned);
                        let req = self.h2_request(&mut head, keep, host, upstream, content);
                        tokio::time::timeout(limit, h2.send(req, hints, home)).await
                    }
                };
                let res = match sent {
                    Ok(Ok(res)) => res,
                    Err(_) => {
                        group.failed(member);
                        return Err(Failure::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            format!("504: {upstream}: no response within {limit:?}"),
                        ));
                    }
                    Ok(Err(e)) => {
                        if over.as_ref().is_some_and(|o| o.load(Ordering::Acquire)) {
                            return Err(Failure::new(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                format!("413: the body went over the limit of {}", self.cfg.max_body),
                            ));
                        }
                        let reason = format!("502: {upstream}: {}", e.reason);
                        // Refused before a byte was written (a closed keep-alive
                        // connection): the request is whole and can go elsewhere.
                        body = e.body;
                        if !e.unsent {
                            group.failed(member);
                            if !replayable {
                                return Err(Failure::new(StatusCode::BAD_GATEWAY, reason));
                            }
                        }
                        tracing::debug!(target: "wharf::proxy", %upstream, reused, %reason, "retrying");
                        earlier.push((StatusCode::BAD_GATEWAY, reason));
                        continue;
                    }
                };
                drop(in_flight);
                group.succeeded(member);
                // The client's fields are sent; the map is the thread's to reuse.
                wharf_http::maps::give(std::mem::take(&mut head.headers));
                if fallback.is_some() && res.status().is_server_error() {
                    // stale-if-error (RFC 5861 §4): the stored response answers instead.
                    return Err(Failure::new(
                        res.status(),
                        format!("{upstream} answered {}", res.status().as_u16()),
                    ));
                }
                if let (Some(up), true) = (&upgrade, res.status() == StatusCode::SWITCHING_PROTOCOLS) {
                    let res = self.switch(res, up, client_upgrade).map_err(|why| {
                        Failure::new(StatusCode::BAD_GATEWAY, format!("502: {upstream}: {why}"))
                    })?;
                    let why = explain
                        .then(|| format!("tunnel to {upstream} (group {}, {picked})", group.name));
                    return Ok((res, why));
                }
                // Reasons are formatted only for sites that send them.
                let why = explain.then(|| {
                    let mut why = format!(
                        "proxied to {upstream} (group {}, {picked}, {} connection)",
                        group.name,
                        if reused { "reused" } else { "new" }
                    );
                    if !earlier.is_empty() {
                        why.push_str("; after ");
                        why.push_str(&reasons(&earlier));
                    }
                    why
                });
                if let (Some(c), Some(l)) = (&self.cache, &lookup) {
                    if res.status() == StatusCode::NOT_MODIFIED && l.stale.is_some() {
                        let fresh = l.freshened(c, res.headers(), &parts);
                        // The 304 has no body: its connection goes back at once.
                        drop(self.downstream(res, None, &parts.method));
                        if let Some(fresh) = fresh {
                            let why =
                                why.map(|w| format!("{w}; cache: 304, the stored response freshened"));
                            return Ok((fresh, why));
                        }
                        // RFC 9111 §4.3.4: the 304 is about another representation than
                        // the stored one, which it may not update; the client gets the
                        // response itself, asked for again with the client's own fields.
                        c.remove(&l.key);
                        let again = refetch_request(&parts, &l.request);
                        drop(lookup.take()); // lets waiters for this target go
                        let (res, refetched) = self.clone().refetch(group.clone(), again, client.clone(), explain).await?;
                        let why = why.zip(refetched).map(|(w, r)| {
                            format!("{w}; cache: the 304 named another representation, asked again: {r}")
                        });
                        return Ok((res, why));
                    }
                }
                if let (Some(c), Some(key)) = (&self.cache, &key) {
                    let (host, _) = key;
                    let gone = wharf_http::cache::invalidates(
                        &parts.method,
                        res.status(),
                        res.headers(),
                        host,
                    );
                    if let Some(also) = gone {
                        c.remove(key);
                        for path in also {
                            c.remove(&(host.clone(), path));
                        }
                    }
                }
                let store = self.cache.clone().zip(lookup);
                let (mut res, cache_why) =
                    self.downstream(res, store, &parts.method);
                let why = why.map(|w| match cache_why {
                    Some(c) => format!("{w}; cache: {c}"),
                    None => w,
                });
                if picked != group::PICKED_STICKY {
                    if let Some(cookie) = group.sticky.as_ref().and_then(|s| s.set_cookie(member)) {
                        res.headers_mut().append(header::SET_COOKIE, cookie);
                    }
                }
                return Ok((res, why));
            }
            // Every attempt failed (the last one's status is the answer), or no member was
            // healthy to begin with.
            match earlier.last() {
                Some((status, _)) => Err(Failure::new(*status, reasons(&earlier))),
                None => Err(Failure {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    reason: format!("503: no healthy upstream in group {}", group.name),
                    retry_after: Some(group.retry_after()),
                }),
            }
        }
        .await;
            match (outcome, fallback) {
                (Err(f), Some(stale)) if f.status.is_server_error() => {
                    let status = format!("wharf; fwd=stale; fwd-status={}", f.status.as_u16());
                    let client =
                        cache::client_parts(&parts.method, &client_fields.unwrap_or_default());
                    let res = cache::respond(&stale, &client, stale.age(), &status);
                    tracing::warn!(target: "wharf::proxy", reason = %f.reason, "upstream failed: served stale (stale-if-error)");
                    let why =
                        explain.then(|| format!("stale-if-error: served stale after {}", f.reason));
                    Ok((res, why))
                }
                (outcome, _) => outcome,
            }
        }
    }

    /// The parts of the request to send upstream (without `Host`, set per upstream):
    /// the target in origin form, and the fields with what forwarding does to them
    /// decided (hop-by-hop ones left out; `Via` and the forwarding fields added).
    /// `host` is the one the client named ([`named_host`]). Takes the request's
    /// fields (`parts.headers` is left empty).
    fn upstream_head(
        &self,
        parts: &mut http::request::Parts,
        host: Option<HeaderValue>,
        client: &Client,
        upgrade: Option<&tunnel::Upgrade>,
    ) -> Head {
        let target = if parts.method == Method::OPTIONS && parts.uri.path() == "*" {
            PathAndQuery::from_static("*")
        } else {
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        };
        let mut headers = std::mem::take(&mut parts.headers);
        let peer = client.ip();
        let trusted = self.cfg.trusted_proxies.iter().any(|c| c.contains(peer));
        let hop = forward::Hop {
            client: peer,
            proto: if client.tls { "https" } else { "http" },
            host: host.as_ref(),
        };
        let mut forwarding = forward::forwarding(&mut headers, &hop, trusted, &LEFT_OUT);
        if let Some(up) = upgrade {
            // The upgrade's own fields are hop-by-hop ones: forwarding is done first.
            std::mem::take(&mut forwarding).apply(&mut headers);
            up.request_fields(&mut headers);
        }
        Head {
            method: upgrade.map_or_else(|| parts.method.clone(), |u| u.method(&parts.method)),
            target,
            host,
            headers,
            forwarding,
            via: self.via.entry(parts.version).clone(),
        }
    }

    /// The `Host` a request goes to `upstream` with: the client's borrowed, not
    /// cloned (a clone and its drop are two atomic operations).
    fn host<'h>(&self, head: &'h Head, upstream: &Upstream) -> Option<Cow<'h, HeaderValue>> {
        match (&self.cfg.host, &head.host) {
            (HostHeader::Keep, Some(h)) => Some(Cow::Borrowed(h)),
            _ => HeaderValue::from_str(upstream.authority().as_str())
                .ok()
                .map(Cow::Owned),
        }
    }

    /// The request for an HTTP/2 upstream: its fields as a map (see
    /// [`Head::forwarded_map`]), with the target in absolute form (`:scheme` and
    /// `:authority`, RFC 9113 §8.3.1) instead of `Host`. gRPC clients send `TE:
    /// trailers` and gRPC servers insist on it; TE is hop-by-hop, so the proxy says it
    /// again itself.
    fn h2_request(
        &self,
        head: &mut Head,
        keep: bool,
        host: Option<HeaderValue>,
        upstream: &Upstream,
        body: RequestBody,
    ) -> Request<RequestBody> {
        let mut req = Request::new(body);
        *req.headers_mut() = head.forwarded_map(keep);
        if head.forwarding.te_trailers() {
            req.headers_mut()
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        *req.method_mut() = head.method.clone();
        *req.uri_mut() = pool::absolute_uri(upstream, host.as_ref(), &head.target);
        *req.version_mut() = Version::HTTP_2;
        req
    }

    /// The upstream's response as the client gets it.
    /// With `store` (the cache and what it said of the request), the response is
    /// stored as it streams when RFC 9111 allows, and gets `Cache-Status`; the second
    /// value is the cache's reason.
    fn downstream(
        &self,
        res: Response<Incoming>,
        store: Option<(Arc<cache::Cache>, cache::Lookup)>,
        method: &Method,
    ) -> (Response<Body>, Option<String>) {
        let (mut parts, incoming) = res.into_parts();
        // Room for Via and Cache-Status, made once.
        parts.headers.reserve(2);
        // Hop-by-hop fields: the HTTP/1.1 client removed them as it read the head;
        // the h2 crate refuses an HTTP/2 response with any but `TE` (RFC 9113
        // §8.2.2).
        if let Incoming::H2(_) = incoming {
            parts.headers.remove(header::TE);
        }
        self.via.append(&mut parts.headers, parts.version);
        parts.version = Version::HTTP_11;
        let (fill, why) = match store {
            Some((c, lookup)) => {
                let tags = cache::take_tags(&mut parts.headers);
                let (fill, status, why) =
                    lookup.store(&c, method, parts.status, &parts.headers, tags);
                // The policy of this cache, not of the caches after it.
                parts.headers.remove(&wharf_http::cache::SURROGATE_CONTROL);
                if let Ok(v) = HeaderValue::from_str(&status) {
                    parts.headers.insert(&cache::CACHE_STATUS, v);
                }
                (fill, Some(why))
            }
            None => (None, None),
        };
        let mut fill = fill;
        // A GET's response of known length, being stored, is shared with the clients
        // that wait for it.
        let shared = fill
            .as_mut()
            .filter(|_| *method == Method::GET && !http_body::Body::is_end_stream(&incoming))
            .and_then(|f| {
                let length = content_length(&parts.headers).filter(|n| *n > 0)?;
                f.share(length, &parts.headers)
            });
        let body = Body::upstream(incoming, self.cfg.body_timeout, fill);
        let Some(shared) = shared else {
            return (Response::from_parts(parts, body), why);
        };
        // Shared: a task reads it into the store, whatever happens to this client;
        // this client, like the others, streams it from there.
        tokio::spawn(body.drain());
        let status = parts
            .headers
            .get(&cache::CACHE_STATUS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (shared.respond(&status), why)
    }

    /// The client's answer to an upgrade the upstream agreed to (`101`, or `200` to
    /// an extended CONNECT); the connections are then joined in a task.
    fn switch<U, S, E>(
        &self,
        res: Response<Incoming>,
        upgrade: &tunnel::Upgrade,
        client: Option<U>,
    ) -> Result<Response<Body>, String>
    where
        U: std::future::Future<Output = Result<S, E>> + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        E: Send + 'static,
    {
        let (mut parts, incoming) = res.into_parts();
        let upstream = incoming.upgrade().ok_or("no connection to take over")?;
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        forward::remove_hop_by_hop(&mut parts.headers);
        upgrade.answer(&mut parts.status, &mut parts.headers, protocol.as_ref())?;
        self.via.append(&mut parts.headers, parts.version);
        let client = client.ok_or("no connection to hand over")?;
        tunnel::splice(client, upstream);
        Ok(Response::from_parts(parts, Body::empty()))
    }

    /// The proxy's own answer to a failure, and its reason.
    fn failure(&self, f: Failure) -> (Response<Body>, String) {
        if f.status.is_server_error() {
            tracing::warn!(target: "wharf::proxy", reason = %f.reason, "upstream failure");
        }
        let text = format!("{}\n", f.status.canonical_reason().unwrap_or("Error"));
        let mut res = Response::new(Body::full(text));
        *res.status_mut() = f.status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(after) = f.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        (res, f.reason)
    }
}

/// The request as it goes to any upstream, but for `Host`: the client's fields
/// (`headers`), less those `forwarding` leaves out and with those it adds, then `Via`.
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) target: PathAndQuery,
    /// The host the client named (`Host`, or the target's authority).
    host: Option<HeaderValue>,
    pub(crate) headers: HeaderMap,
    forwarding: forward::Forwarding<'static>,
    via: HeaderValue,
}

/// Fields of the client's request that are not forwarded as they are: wharf
/// answered (or will answer) any `Expect: 100-continue` itself, when it first reads
/// the body to send it on; `Host` is set per upstream.
static LEFT_OUT: [&HeaderName; 2] = [&header::EXPECT, &HOST];
static HOST: HeaderName = header::HOST;
static VIA: HeaderName = header::VIA;

impl Head {
    /// The field lines to send, `host` first.
    pub(crate) fn fields<'a>(
        &'a self,
        host: Option<&'a HeaderValue>,
    ) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> {
        let host = host.map(|v| (&HOST, v));
        let kept = self
            .headers
            .iter()
            .filter(|(name, _)| !self.forwarding.leaves_out(name));
        let via = std::iter::once((&VIA, &self.via));
        host.into_iter()
            .chain(kept)
            .chain(self.forwarding.added())
            .chain(via)
    }

    /// The fields as one map, for a protocol that sends maps: the client's own
    /// (copied when `keep`, for another attempt; else taken) made forwarded.
    fn forwarded_map(&mut self, keep: bool) -> HeaderMap {
        let mut fields = match keep {
            true => self.headers.clone(),
            false => std::mem::take(&mut self.headers),
        };
        fields.reserve(5);
        self.forwarding.apply(&mut fields);
        fields.append(header::VIA, self.via.clone());
        fields
    }
}

/// A request the proxy makes itself on a client's behalf: `method` for the client's
/// target with `headers`, and `mark`.
fn own_request<M: Clone + Send + Sync + 'static>(
    parts: &http::request::Parts,
    method: Method,
    headers: HeaderMap,
    mark: M,
) -> Request<RequestBody> {
    let mut req = Request::new(empty());
    *req.method_mut() = method;
    *req.uri_mut() = parts.uri.clone();
    *req.headers_mut() = headers;
    req.extensions_mut().insert(mark);
    req
}

/// A copy of a request (GET, its fields) for a background revalidation.
fn refresh_request(parts: &http::request::Parts) -> Request<RequestBody> {
    own_request(parts, Method::GET, parts.headers.clone(), Refresh)
}

/// A request asked again without the cache's validators (after a `304` that matched
/// no stored response): the client's method, target and fields.
fn refetch_request(parts: &http::request::Parts, client: &HeaderMap) -> Request<RequestBody> {
    own_request(parts, parts.method.clone(), client.clone(), Refetch)
}

/// Marks a request asked again after a `304` that matched no stored response: the
/// store neither answers nor revalidates it, and it is not asked a third time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refetch;

impl Inner {
    /// [`Inner::forward`] of a request the proxy makes again itself. Boxed: it calls
    /// `forward`, which calls it.
    #[allow(clippy::type_complexity)]
    fn refetch(
        self: Arc<Self>,
        group: Arc<Group>,
        req: Request<RequestBody>,
        client: Client,
        explain: bool,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<(Response<Body>, Option<String>), Failure>>
                + Send,
        >,
    > {
        Box::pin(async move {
            type NoUpgrade = std::future::Ready<Result<tokio::io::DuplexStream, io::Error>>;
            self.forward(&group, req, client, None::<NoUpgrade>, explain)
                .await
        })
    }

    /// Revalidates a stored response in the background (RFC 5861 §3), reading the
    /// answer to its end so that it is stored; `leader` keeps other refreshes of the
    /// same target away until then. Boxed: it calls `forward`, which spawns it.
    fn refresh(
        self: Arc<Self>,
        group: Arc<Group>,
        req: Request<RequestBody>,
        client: Client,
        leader: cache::Leader,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            type NoUpgrade = std::future::Ready<Result<tokio::io::DuplexStream, io::Error>>;
            let target = req.uri().clone();
            match self
                .forward(&group, req, client, None::<NoUpgrade>, false)
                .await
            {
                Ok((res, _)) => {
                    let _ = res.into_body().collect().await;
                }
                Err(f) => {
                    tracing::warn!(target: "wharf::proxy", %target, reason = %f.reason, "background revalidation failed");
                }
            }
            drop(leader);
        })
    }
}

/// The request field that makes a `PURGE` soft when it says `soft`.
static PURGE_MODE: header::HeaderName = header::HeaderName::from_static("wharf-purge");

/// `PURGE` (the method Varnish and nginx's cache purge use), from an address in
/// `purge_from`: removes the target's stored responses or, when the request has
/// `Cache-Tag` or `Surrogate-Key` fields, every response tagged with one of theirs;
/// with `Wharf-Purge: soft`, marks them stale instead. `200` with the count, `404`
/// when nothing was stored.
fn purge(
    cache: &cache::Cache,
    parts: &http::request::Parts,
    host: Option<&HeaderValue>,
    client: IpAddr,
) -> Result<(Response<Body>, String), Failure> {
    if !cache.cfg.purge_from.iter().any(|n| n.contains(client)) {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            format!("403: purging is not allowed from {client} (see purge_from)"),
        ));
    }
    let soft = parts
        .headers
        .get(&PURGE_MODE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"soft"));
    let tags = cache::tags(&parts.headers);
    let (what, named) = if tags.is_empty() {
        let key = cache_key(parts, host);
        let named = format!("{}{}", key.0, key.1);
        (cache::Purge::Target(key), named)
    } else {
        let named = format!("tags {}", tags.join(" "));
        (cache::Purge::Tags(tags), named)
    };
    let n = cache.purge(&what, soft);
    let done = if soft { "marked stale" } else { "purged" };
    tracing::info!(target: "wharf::proxy", what = %named, count = n, soft, "cache purge");
    let (status, text) = match n {
        0 => (
            StatusCode::NOT_FOUND,
            format!("nothing stored for {named}\n"),
        ),
        n => (
            StatusCode::OK,
            format!("{done} {n} stored responses ({named})\n"),
        ),
    };
    let mut res = Response::new(Body::full(text.clone()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok((res, format!("purge: {}", text.trim_end())))
}

/// The host (with port) a request names: its target's authority (HTTP/2 and HTTP/3,
/// absolute form), else its `Host` field (shared with the request, not copied).
fn named_host(parts: &http::request::Parts) -> Option<HeaderValue> {
    match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    }
}

/// A request's cache key: the host it names ([`named_host`]), in lower case, and its
/// path with query.
fn cache_key(parts: &http::request::Parts, host: Option<&HeaderValue>) -> cache::Key {
    let host = host
        .and_then(|h| h.to_str().ok().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    (host, target)
}

/// The reasons of failed attempts, in order.
fn reasons(attempts: &[(StatusCode, String)]) -> String {
    let all: Vec<&str> = attempts.iter().map(|(_, r)| r.as_str()).collect();
    all.join("; ")
}

/// A random key for sticky cookies.
fn random_key() -> Vec<u8> {
    tunnel::random::<32>().to_vec()
}

/// An empty request body.
pub(crate) fn empty() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A single valid `Content-Length`, if any.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        let table = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("192.168.1.0/24", "::ffff:192.168.1.9", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "10.0.0.1", false),
        ];
        for (net, ip, want) in table {
            let cidr: Cidr = net.parse().unwrap();
            assert_eq!(cidr.contains(ip.parse().unwrap()), want, "{net} ∋ {ip}");
        }
        for bad in ["10.0.0.0/33", "x/8", "::1/129", "10.0.0.0/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
