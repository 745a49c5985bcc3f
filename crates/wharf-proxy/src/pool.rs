//! Connections to one upstream, reused across requests: keep-alive HTTP/1.1
//! connections (wharf's own client, [`crate::h1`]) lent to one exchange at a time,
//! or HTTP/2 connections shared by all (their streams multiplexed by hyper, within
//! the upstream's stream limit): one per thread that needed one, each thread's
//! requests on its own first. hyper drives an HTTP/2 connection from a task of its
//! own and hands every request to it; one connection shared by all threads made
//! each exchange a wake-up across threads and a lock passed between CPUs, which
//! cost gRPC half again its CPU per call whenever the kernel spread the threads
//! (bench/RESULTS.md, issue 12).
//!
//! An HTTP/1.1 connection is lent to one exchange at a time and comes back only once its
//! response has been read to the end (the response body gives it back); a response
//! dropped half way closes its connection, so a connection is never reused after an
//! incomplete exchange. Idle connections are kept newest first (the oldest are the
//! likeliest to have been closed by the upstream), at most `max_idle` of them, each
//! for at most `idle_timeout`; one the upstream closed while it idled is dropped when
//! it is next looked at. They idle in one place per CPU, each in the place of the
//! thread that opened it: a thread takes its own first and opens a new one rather
//! than take another thread's (on the server's event loops, that thread's `epoll`
//! watches its socket, and every read would wake it to wake this one); only at
//! `max_connections` does it take another's. With the server's event loops (one per
//! CPU, `wharf_server::Loops`) this keeps a request and its upstream connection on
//! one thread, as an nginx worker keeps its own `keepalive` connections.
//!
//! `max_connections` bounds the connections open to the upstream (idle, busy and
//! being opened). At the bound a request waits for one to come free, but only while
//! fewer than `max_pending` requests wait: beyond that it fails at once (circuit
//! breaking), so an overloaded upstream does not queue requests without end.
//! Waiting requests are counted, and a connection that comes free signals only while
//! some wait: an exchange that finds an idle connection touches nothing of the pool
//! but its place's lock, on cache lines of its own ([`crate::place`]), and the count
//! of idle connections.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::Either;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use wharf_http::interim::Interim;

use crate::body::Incoming;
use crate::h1::{self, Failed};
use crate::place::{self, own_index, Place};
use crate::upstream::{Protocol, Upstream};
use crate::RequestBody;

/// The limits of one upstream's pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Idle connections kept for reuse.
    pub max_idle: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Connections open at once (0: no limit).
    pub max_connections: usize,
    /// Requests waiting for a connection at once, beyond which requests fail at once.
    pub max_pending: usize,
    /// How long to wait for the TCP connection to be established.
    pub connect_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_idle: 32,
            idle_timeout: Duration::from_secs(60),
            max_connections: 0,
            max_pending: 1024,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Connecting failed (refused, unreachable, name not resolved).
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// Connecting took longer than `connect_timeout`.
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The TLS handshake or the HTTP/2 preface failed.
    #[error("{0}")]
    Handshake(String),
    /// `max_connections` are open and `max_pending` requests already wait.
    #[error("too many requests waiting for a connection ({0})")]
    Saturated(usize),
}

/// The pool of one upstream.
#[derive(Debug)]
pub(crate) struct Pool {
    upstream: Upstream,
    limits: PoolLimits,
    /// Idle connections, oldest first, in one place per CPU (a connection in the
    /// place of the thread that opened it).
    idle: Box<[Place<Vec<Idle>>]>,
    /// How many connections idle in all places (never fewer than are there).
    idle_count: AtomicUsize,
    /// Connections open or being opened.
    open: Arc<AtomicUsize>,
    /// Requests waiting for a connection (read by whoever frees one, so that no one
    /// signals `freed` while nobody waits).
    waiting: Arc<AtomicUsize>,
    /// Signalled when a connection goes idle or closes.
    freed: Arc<Notify>,
    /// The HTTP/2 connections requests share, once there are: one place per CPU
    /// (a thread's: [`Pool::own_place`]), none for an upstream that is never HTTP/2.
    shared: Box<[Place<Option<http2::SendRequest<RequestBody>>>]>,
    /// For `https://` upstreams.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The sending half of a connection.
#[derive(Debug)]
pub(crate) enum Sender {
    H1(h1::Conn),
    H2(http2::SendRequest<RequestBody>),
}

impl Sender {
    /// Sends a request; a request refused before anything of it was written comes
    /// back in the error. `hints` gets the upstream's `103`s; an HTTP/1.1
    /// connection goes back to `home` once the response body has been read whole.
    ///
    /// Not an `async fn`: one would keep its own copy of the request and of the
    /// connection beside the exchange's, in a future that every proxied request's
    /// carries.
    pub(crate) fn send<'a>(
        self,
        req: Request<RequestBody>,
        hints: Option<&'a Interim>,
        home: Option<Arc<Pool>>,
    ) -> impl Future<Output = Result<Response<Incoming>, Failed>> + Send + 'a {
        match self {
            Sender::H1(conn) => Either::Left(conn.send(req, hints, home)),
            // HTTP/2 upstreams' 103s are not surfaced by hyper's client (the h2
            // crate drops interim responses).
            Sender::H2(mut s) => Either::Right(async move {
                match s.try_send_request(req).await {
                    Ok(res) => Ok(res.map(Incoming::H2)),
                    Err(mut e) => {
                        let body = e.take_message().map(Request::into_body);
                        Err(Failed {
                            reason: describe(e.error()),
                            unsent: body.is_some(),
                            body,
                        })
                    }
                }
            }),
        }
    }

    /// Whether requests go out as HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }

    /// Puts a request with an origin-form target and a `Host` field into the form
    /// its protocol sends: unchanged for HTTP/1.1; for HTTP/2 the target becomes
    /// absolute (`:scheme` and `:authority`, RFC 9113 §8.3.1) and `Host` goes.
    pub(crate) fn shape<B>(&self, req: &mut Request<B>, upstream: &Upstream) {
        if !self.is_h2() {
            return;
        }
        let host = req.headers_mut().remove(http::header::HOST);
        let target = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = absolute_uri(upstream, host.as_ref(), &target);
        *req.version_mut() = http::Version::HTTP_2;
    }
}

/// The absolute form of `target` on `upstream` (for HTTP/2's `:scheme` and
/// `:authority`), naming `host` where it is given and valid, else the upstream.
pub(crate) fn absolute_uri(
    upstream: &Upstream,
    host: Option<&HeaderValue>,
    target: &PathAndQuery,
) -> Uri {
    let scheme = if upstream.protocol() == Protocol::Tls {
        "https"
    } else {
        "http"
    };
    let host = host
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| upstream.authority().to_string(), str::to_owned);
    format!("{scheme}://{host}{target}")
        .parse()
        .unwrap_or_else(|_| Uri::from(target.clone()))
}

#[derive(Debug)]
struct Idle {
    conn: h1::Conn,
    since: Instant,
}

/// A connection lent to one exchange.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) sender: Sender,
    /// Whether it served an earlier request (a failure to send on it may be the
    /// upstream having closed it meanwhile, and worth one more try).
    pub(crate) reused: bool,
}

/// Counts one open connection until dropped (when the connection's task ends, or
/// when connecting fails).
pub(crate) struct OpenSlot {
    open: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
    freed: Arc<Notify>,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        signal(&self.waiting, &self.freed);
    }
}

/// The first open HTTP/2 connection among `places`.
fn take_shared(places: &[Place<Option<http2::SendRequest<RequestBody>>>]) -> Option<Sender> {
    places.iter().find_map(|place| {
        let shared = place.lock().expect("pool lock");
        shared
            .as_ref()
            .filter(|s| !s.is_closed())
            .map(|s| Sender::H2(s.clone()))
    })
}

/// Wakes one request waiting for a connection, if any waits. A waiter counts itself
/// in `waiting` before it looks for a connection for the last time, and whoever
/// frees one reads `waiting` after freeing it: one of the two sees the other.
fn signal(waiting: &AtomicUsize, freed: &Notify) {
    if waiting.load(Ordering::SeqCst) > 0 {
        freed.notify_one();
    }
}

impl Pool {
    /// A pool for `upstream`; `tls` is required for `https://` upstreams.
    pub(crate) fn new(
        upstream: Upstream,
        limits: PoolLimits,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Pool {
        let shared = match upstream.protocol() {
            Protocol::Http1 => Box::default(),
            _ => place::per_cpu(|| None),
        };
        Pool {
            upstream,
            limits,
            idle: place::per_cpu(Vec::new),
            idle_count: AtomicUsize::new(0),
            open: Arc::new(AtomicUsize::new(0)),
            waiting: Arc::new(AtomicUsize::new(0)),
            freed: Arc::new(Notify::new()),
            shared,
            tls,
        }
    }

    pub(crate) fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Connections open to this upstream (idle, busy or being opened).
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// An idle connection if one is usable, else a new one, else (at
    /// `max_connections`) the first to come free.
    pub(crate) async fn checkout(&self) -> Result<Conn, CheckoutError> {
        // Once at the bound, a request waits for a connection to come free: counted and
        // listening before it looks again, so that one freed meanwhile is not missed.
        // Until then it neither counts nor listens.
        let mut at_bound = false;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            let _counted = if at_bound {
                freed.as_mut().enable();
                let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
                let counted = Waiting(&self.waiting);
                if waiting >= self.limits.max_pending {
                    return Err(CheckoutError::Saturated(waiting));
                }
                Some(counted)
            } else {
                None
            };
            if let Some(conn) = self.ready() {
                return Ok(conn);
            }
            if let Some(slot) = self.reserve() {
                return self.open_new(slot).await;
            }
            // Another thread's connection rather than none.
            if let Some(conn) = self.idle.iter().find_map(|place| self.take_idle(place)) {
                return Ok(Conn {
                    sender: Sender::H1(conn),
                    reused: true,
                });
            }
            if let Some(sender) = take_shared(&self.shared) {
                return Ok(Conn {
                    sender,
                    reused: true,
                });
            }
            if at_bound {
                freed.await;
            }
            at_bound = true;
        }
    }

    /// This thread's HTTP/2 connection or one of its idle HTTP/1.1 ones, if one is
    /// usable.
    fn ready(&self) -> Option<Conn> {
        let sender = self
            .own_place()
            .and_then(|place| take_shared(std::slice::from_ref(place)))
            .or_else(|| self.take_idle(&self.idle[self.own_idle()]).map(Sender::H1))?;
        Some(Conn {
            sender,
            reused: true,
        })
    }

    /// A new connection, counted by `slot`.
    async fn open_new(&self, slot: OpenSlot) -> Result<Conn, CheckoutError> {
        // Boxed: connecting (a TLS handshake at worst) is a 9 KB future, and every
        // request's future would otherwise carry room for it.
        let sender = Box::pin(self.connect(Some(slot))).await?;
        if let (Sender::H2(s), Some(place)) = (&sender, self.own_place()) {
            *place.lock().expect("pool lock") = Some(s.clone());
        }
        Ok(Conn {
            sender,
            reused: false,
        })
    }

    /// This thread's place for a shared HTTP/2 connection, unless the upstream is
    /// never HTTP/2.
    fn own_place(&self) -> Option<&Place<Option<http2::SendRequest<RequestBody>>>> {
        self.shared.get(own_index(self.shared.len())?)
    }

    /// Where this thread's idle HTTP/1.1 connections are.
    fn own_idle(&self) -> usize {
        own_index(self.idle.len()).unwrap_or_default()
    }

    /// The newest connection idling in `place` that is still open and not expired;
    /// the expired and closed ones met on the way are dropped (which closes them).
    fn take_idle(&self, place: &Place<Vec<Idle>>) -> Option<h1::Conn> {
        let mut idle = place.lock().expect("pool lock");
        let now = Instant::now();
        while let Some(mut i) = idle.pop() {
            self.idle_count.fetch_sub(1, Ordering::AcqRel);
            if now.duration_since(i.since) < self.limits.idle_timeout && !i.conn.is_closed() {
                return Some(i.conn);
            }
        }
        None
    }

    /// Room for one more connection, unless `max_connections` are open.
    fn reserve(&self) -> Option<OpenSlot> {
        let max = self.limits.max_connections;
        let mut open = self.open.load(Ordering::SeqCst);
        loop {
            if max != 0 && open >= max {
                return None;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Some(OpenSlot {
                        open: self.open.clone(),
                        waiting: self.waiting.clone(),
                        freed: self.freed.clone(),
                    })
                }
                Err(now) => open = now,
            }
        }
    }

    /// A new connection (for checks, without a slot: it does not count against
    /// `max_connections`), by the upstream's protocol; over TLS, ALPN decides.
    pub(crate) async fn connect(&self, slot: Option<OpenSlot>) -> Result<Sender, CheckoutError> {
        let limit = self.limits.connect_timeout;
        let tcp = match tokio::time::timeout(limit, TcpStream::connect(self.upstream.connect_to()))
            .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(CheckoutError::Connect(e)),
            Err(_) => return Err(CheckoutError::ConnectTimeout(limit)),
        };
        let _ = tcp.set_nodelay(true);
        match self.upstream.protocol() {
            Protocol::Http1 => self.start(tcp, false, slot).await,
            Protocol::H2c => self.start(tcp, true, slot).await,
            Protocol::Tls => {
                let cfg = self.tls.clone().ok_or_else(|| {
                    CheckoutError::Handshake("TLS to upstreams could not be set up".into())
                })?;
                let name =
                    rustls::pki_types::ServerName::try_from(self.upstream.tls_name().to_owned())
                        .map_err(|e| CheckoutError::Handshake(format!("server name: {e}")))?;
                let handshake = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp);
                let tls = match tokio::time::timeout(limit, handshake).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return Err(CheckoutError::Handshake(format!("TLS: {e}"))),
                    Err(_) => return Err(CheckoutError::ConnectTimeout(limit)),
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                self.start(tls, h2, slot).await
            }
        }
    }

    /// HTTP/1.1 (wharf's client, holding `slot` while the connection lives) or
    /// HTTP/2 (hyper's, driven by a task of its own that holds `slot` until the
    /// connection ends) on a connected stream.
    async fn start<T: h1::Io>(
        &self,
        io: T,
        h2: bool,
        slot: Option<OpenSlot>,
    ) -> Result<Sender, CheckoutError> {
        if !h2 {
            return Ok(Sender::H1(h1::Conn::new(io, slot, self.own_idle())));
        }
        let upstream = self.upstream.clone();
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| CheckoutError::Handshake(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "wharf::proxy", %upstream, error = %e, "upstream connection ended");
            }
            drop(slot);
        });
        Ok(Sender::H2(sender))
    }

    /// Drops idle connections that have been idle too long (which closes them).
    pub(crate) fn reap(&self) {
        let now = Instant::now();
        for place in &self.idle {
            let mut idle = place.lock().expect("pool lock");
            let before = idle.len();
            idle.retain(|i| now.duration_since(i.since) < self.limits.idle_timeout);
            self.idle_count
                .fetch_sub(before - idle.len(), Ordering::AcqRel);
        }
    }

    /// Takes back a connection whose exchange ended whole, for the next request, into
    /// its place. At `max_idle` the oldest of that place goes to make room (the
    /// newest is the likeliest still to be open upstream), or the oldest of another
    /// place if this one has none, so that one place's connections cannot keep the
    /// others from keeping any; with `max_idle = 0` it is closed.
    pub(crate) fn release(&self, conn: h1::Conn) {
        if self.limits.max_idle == 0 {
            // Closing it frees its slot, which signals a waiter.
            return drop(conn);
        }
        let home = &self.idle[conn.place % self.idle.len()];
        let counted = self
            .idle_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limits.max_idle).then_some(n + 1)
            })
            .is_ok();
        // Uncounted, it takes the place of one that goes: the count stays.
        if !counted && !self.evict_oldest(home) {
            let mut elsewhere = self.idle.iter().filter(|p| !std::ptr::eq(*p, home));
            if !elsewhere.any(|place| self.evict_oldest(place)) {
                return drop(conn);
            }
        }
        home.lock().expect("pool lock").push(Idle {
            conn,
            since: Instant::now(),
        });
        signal(&self.waiting, &self.freed);
    }

    /// Closes the oldest connection idling in `place`, if there is one.
    fn evict_oldest(&self, place: &Place<Vec<Idle>>) -> bool {
        let mut idle = place.lock().expect("pool lock");
        let evicted = !idle.is_empty();
        if evicted {
            idle.remove(0);
        }
        evicted
    }
}

/// Counts a request waiting for a connection while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What went wrong with an exchange over HTTP/2, in words for the log and `explain`.
fn describe(e: &hyper::Error) -> String {
    if e.is_parse() || e.is_parse_status() {
        format!("malformed response ({e})")
    } else if e.is_incomplete_message() {
        "the connection closed before a complete response".to_owned()
    } else if e.is_body_write_aborted() || e.is_user() {
        format!("the request could not be sent whole ({e})")
    } else {
        let source = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        format!("{e}{source}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool for an upstream on 127.0.0.1 that accepts connections and keeps them
    /// open (reading nothing) until the returned listener task is dropped.
    async fn pool(limits: PoolLimits) -> (Arc<Pool>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepting = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                kept.push(s);
            }
        });
        let upstream = Upstream::parse(&url).unwrap();
        (Arc::new(Pool::new(upstream, limits, None)), accepting)
    }

    fn h1(conn: Conn) -> h1::Conn {
        match conn.sender {
            Sender::H1(c) => c,
            Sender::H2(_) => panic!("an HTTP/1.1 upstream"),
        }
    }

    fn idle(pool: &Pool) -> usize {
        pool.idle.iter().map(|p| p.lock().unwrap().len()).sum()
    }

    /// A pool of at most one connection, with room for `max_pending` waiters.
    async fn one_connection(max_pending: usize) -> (Arc<Pool>, tokio::task::JoinHandle<()>) {
        pool(PoolLimits {
            max_connections: 1,
            max_pending,
            ..PoolLimits::default()
        })
        .await
    }

    /// A pool of at most one connection to an h2c upstream on 127.0.0.1 that answers
    /// every request with an empty 200.
    async fn one_h2_connection() -> Arc<Pool> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("h2c://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let ok = hyper::service::service_fn(|_| async {
                    Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<
                        bytes::Bytes,
                    >::new()))
                });
                let server = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                tokio::spawn(server.serve_connection(TokioIo::new(s), ok));
            }
        });
        let limits = PoolLimits {
            max_connections: 1,
            ..PoolLimits::default()
        };
        Arc::new(Pool::new(Upstream::parse(&url).unwrap(), limits, None))
    }

    /// Each thread has its own place for an HTTP/2 connection; at `max_connections`
    /// a thread without one shares another thread's instead of waiting for a
    /// connection that never comes free.
    #[tokio::test]
    async fn a_thread_without_its_own_http2_connection_shares_another() {
        let pool = one_h2_connection().await;
        let first = pool.checkout().await.unwrap();
        assert!(matches!(first.sender, Sender::H2(_)) && !first.reused);
        let other = pool.clone();
        let elsewhere = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), other.checkout()).await
            })
        });
        // This runtime drives the connection while the other thread asks.
        let second = tokio::task::spawn_blocking(move || elsewhere.join().unwrap())
            .await
            .unwrap()
            .expect("not left waiting for a connection")
            .unwrap();
        assert!(matches!(second.sender, Sender::H2(_)) && second.reused);
        assert_eq!(pool.open_connections(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_waiting_at_max_connections_gets_the_one_released() {
        let (pool, _up) = one_connection(8).await;
        let first = pool.checkout().await.unwrap();
        assert!(!first.reused);
        // Several wait; each gets the one connection in turn, none is left waiting.
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let c = pool.checkout().await.unwrap();
                    assert!(c.reused, "the connection released, not a new one");
                    pool.release(h1(c));
                })
            })
            .collect();
        pool.release(h1(first));
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("a waiter was never woken")
                .unwrap();
        }
        assert_eq!(pool.open_connections(), 1);
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_max_pending_a_request_fails_at_once() {
        let (pool, _up) = one_connection(1).await;
        let held = pool.checkout().await.unwrap();
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.checkout().await.map(|c| c.reused) })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.waiting.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the first waiter never waited");
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            pool.checkout().await,
            Err(CheckoutError::Saturated(1))
        ));
        drop(held); // closes the connection, which frees its slot
        let reused = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter was never woken")
            .unwrap()
            .unwrap();
        assert!(!reused, "a closed connection's slot goes to a new one");
    }

    /// Checks a connection out and back in, as if another thread had opened it
    /// (into another place, where there are several).
    async fn idle_elsewhere(pool: &Pool) {
        let mut conn = h1(pool.checkout().await.unwrap());
        conn.place = pool.own_idle() + 1;
        pool.release(conn);
        assert_eq!(idle(pool), 1);
    }

    #[tokio::test]
    async fn a_thread_opens_its_own_connection_rather_than_take_another_threads() {
        let (pool, _up) = pool(PoolLimits::default()).await;
        idle_elsewhere(&pool).await;
        let next = pool.checkout().await.unwrap();
        // On one CPU there is one place, and the idle connection is this thread's.
        assert_eq!(next.reused, pool.idle.len() == 1);
    }

    #[tokio::test]
    async fn at_max_connections_a_thread_takes_another_threads_idle_connection() {
        let (pool, _up) = one_connection(1).await;
        idle_elsewhere(&pool).await;
        let next = tokio::time::timeout(Duration::from_secs(5), pool.checkout())
            .await
            .expect("not left waiting")
            .unwrap();
        assert!(next.reused);
        assert_eq!(idle(&pool), 0);
    }

    #[tokio::test]
    async fn at_max_idle_a_connection_takes_the_room_of_one_idling_elsewhere() {
        let (pool, _up) = pool(PoolLimits {
            max_idle: 1,
            ..PoolLimits::default()
        })
        .await;
        idle_elsewhere(&pool).await;
        let mine = pool.checkout().await.unwrap();
        pool.release(h1(mine));
        assert_eq!(idle(&pool), 1);
        let own = pool.idle[pool.own_idle()].lock().unwrap().len();
        assert_eq!(own, 1, "kept in this thread's place");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_max_idle_are_kept() {
        // 0 keeps none (each connection closes after its exchange).
        for max_idle in [0, 1, 3, 8] {
            let limits = PoolLimits {
                max_idle,
                ..PoolLimits::default()
            };
            let (pool, _up) = pool(limits).await;
            let mut conns = Vec::new();
            for _ in 0..10 {
                conns.push(pool.checkout().await.unwrap());
            }
            for c in conns {
                pool.release(h1(c));
            }
            assert_eq!(idle(&pool), max_idle.min(10), "max_idle {max_idle}");
            for _ in 0..max_idle {
                assert!(pool.checkout().await.unwrap().reused);
            }
            assert_eq!(idle(&pool), 0);
        }
    }
}
