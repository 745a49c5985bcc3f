//! wharf's reverse proxy: forwards requests to upstream servers over pooled
//! HTTP/1.1 connections and streams the answers back.
//!
//! A service like the others: `http::Request` in, `http::Response` out, whichever
//! protocol carried the request; it never sees the client's connection, only the
//! facts the transport put in the request (`wharf_http::conn`). The rules an
//! intermediary applies to the messages (hop-by-hop fields, `Via`, `Forwarded`) are
//! `wharf_http::forward`'s; this crate does the I/O: choosing an upstream (round
//! robin), lending it a connection from its [`pool`], the timeouts, the retries that
//! are safe, and the statuses of failure (502, 504, 503, 413) with their reasons for
//! `explain`.
//!
//! Bodies are streamed both ways, a frame at a time: memory does not grow with a
//! message's size.

mod body;
mod pool;
mod upstream;

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty};
use wharf_http::conn::{ConnInfo, TlsInfo};
use wharf_http::forward;
use wharf_http::Explain;

pub use body::Body;
pub use pool::{CheckoutError, PoolLimits};
pub use upstream::{BadUpstream, Upstream};

use pool::Pool;

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
    /// The upstream servers, chosen round robin.
    pub upstreams: Vec<Upstream>,
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
    /// Send the reason for each response as `Wharf-Explain`.
    pub explain: bool,
}

impl Config {
    /// The defaults, proxying to `upstreams`.
    pub fn new(upstreams: Vec<Upstream>) -> Config {
        Config {
            upstreams,
            pool: PoolLimits::default(),
            response_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_body: 1 << 30,
            retries: 1,
            host: HostHeader::Keep,
            trusted_proxies: Vec::new(),
            explain: false,
        }
    }
}

/// The reverse proxy service.
pub struct Proxy {
    cfg: Config,
    pools: Vec<Arc<Pool>>,
    next: AtomicUsize,
}

/// A failure, the status it gets and why.
struct Failure {
    status: StatusCode,
    reason: String,
}

impl Failure {
    fn new(status: StatusCode, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            reason: reason.into(),
        }
    }
}

impl Proxy {
    /// A proxy to `cfg.upstreams` (at least one). Spawns the task that closes idle
    /// connections past their time, so it is called within a tokio runtime.
    pub fn new(cfg: Config) -> Proxy {
        assert!(!cfg.upstreams.is_empty(), "a proxy needs an upstream");
        let pools: Vec<Arc<Pool>> = cfg
            .upstreams
            .iter()
            .map(|u| Arc::new(Pool::new(u.clone(), cfg.pool)))
            .collect();
        let weak: Vec<Weak<Pool>> = pools.iter().map(Arc::downgrade).collect();
        let every = (cfg.pool.idle_timeout / 2).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let mut alive = false;
                for pool in weak.iter().filter_map(Weak::upgrade) {
                    pool.reap();
                    alive = true;
                }
                if !alive {
                    break;
                }
            }
        });
        Proxy {
            cfg,
            pools,
            next: AtomicUsize::new(0),
        }
    }

    /// Connections open to each upstream, in configuration order.
    pub fn open_connections(&self) -> Vec<usize> {
        self.pools.iter().map(|p| p.open_connections()).collect()
    }

    /// Forwards one request and answers with the upstream's response, or with the
    /// proxy's own when that fails.
    pub async fn serve<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + Unpin + 'static,
    {
        match self.forward(req).await {
            Ok(res) => res,
            Err(f) => self.failure(f),
        }
    }

    async fn forward<B>(&self, req: Request<B>) -> Result<Response<Body>, Failure>
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + Unpin + 'static,
    {
        let (parts, body) = req.into_parts();
        if parts.method == Method::CONNECT {
            return Err(Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "405: CONNECT is not forwarded",
            ));
        }
        if let Some(len) = content_length(&parts.headers).filter(|l| *l > self.cfg.max_body) {
            return Err(Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "413: a body of {len} bytes, over the limit of {}",
                    self.cfg.max_body
                ),
            ));
        }
        let head = self.upstream_head(&parts);
        let no_body = body.is_end_stream();
        // Safe to send again after a failure: nothing of it is lost, and doing it twice
        // means the same (RFC 9110 §9.2.2).
        let replayable = no_body && parts.method.is_idempotent();
        let over = Arc::new(AtomicBool::new(false));
        let mut body = Some(if no_body {
            empty()
        } else {
            body::Limited::new(body, self.cfg.max_body, over.clone()).boxed_unsync()
        });
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..=self.cfg.retries as usize {
            let pool = &self.pools[(start + attempt) % self.pools.len()];
            let upstream = pool.upstream();
            let mut conn = match pool.checkout().await {
                Ok(c) => c,
                Err(CheckoutError::Saturated(n)) => {
                    return Err(Failure::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("503: {upstream}: {n} requests already wait for a connection"),
                    ));
                }
                Err(e) => {
                    // Nothing was sent: another upstream may take it.
                    let status = match e {
                        CheckoutError::ConnectTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
                        _ => StatusCode::BAD_GATEWAY,
                    };
                    tracing::warn!(target: "wharf::proxy", %upstream, error = %e, "upstream unreachable");
                    last = Some(Failure::new(
                        status,
                        format!("{}: {upstream}: {e}", status.as_u16()),
                    ));
                    continue;
                }
            };
            let req = self.upstream_request(&head, upstream, body.take().unwrap_or_else(empty));
            let sent = conn.sender.try_send_request(req);
            let res = match tokio::time::timeout(self.cfg.response_timeout, sent).await {
                Ok(Ok(res)) => res,
                Err(_) => {
                    return Err(Failure::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "504: {upstream}: no response within {:?}",
                            self.cfg.response_timeout
                        ),
                    ));
                }
                Ok(Err(mut e)) => {
                    if over.load(Ordering::Acquire) {
                        return Err(Failure::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("413: the body went over the limit of {}", self.cfg.max_body),
                        ));
                    }
                    let failure = Failure::new(
                        StatusCode::BAD_GATEWAY,
                        format!("502: {upstream}: {}", describe(e.error())),
                    );
                    if let Some(unsent) = e.take_message() {
                        // Refused before a byte was written (a closed keep-alive
                        // connection): the request is whole and can go elsewhere.
                        body = Some(unsent.into_body());
                    } else if !replayable {
                        return Err(failure);
                    }
                    tracing::debug!(target: "wharf::proxy", %upstream, reused = conn.reused, reason = %failure.reason, "retrying");
                    last = Some(failure);
                    continue;
                }
            };
            let why = if conn.reused {
                "reused connection"
            } else {
                "new connection"
            };
            return Ok(self.downstream(
                res,
                conn.sender,
                pool,
                format!("proxied to {upstream} ({why})"),
            ));
        }
        Err(last.expect("at least one attempt"))
    }

    /// The parts of the request to send upstream (without `Host`, set per upstream):
    /// the target in origin form, the fields less hop-by-hop ones, with `Via` and the
    /// forwarding fields.
    fn upstream_head(&self, parts: &http::request::Parts) -> Head {
        let target = if parts.method == Method::OPTIONS && parts.uri.path() == "*" {
            PathAndQuery::from_static("*")
        } else {
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        };
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let mut headers = parts.headers.clone();
        forward::remove_hop_by_hop(&mut headers);
        // wharf answered (or will answer) any `Expect: 100-continue` itself, when it
        // first reads the body to send it on.
        headers.remove(header::EXPECT);
        headers.remove(header::HOST);
        let conn = parts.extensions.get::<ConnInfo>();
        if let Some(conn) = conn {
            let trusted = self
                .cfg
                .trusted_proxies
                .iter()
                .any(|c| c.contains(conn.peer.ip()));
            let hop = forward::Hop {
                client: conn.peer.ip(),
                proto: if parts.extensions.get::<TlsInfo>().is_some() {
                    "https"
                } else {
                    "http"
                },
                host: host.as_deref(),
            };
            forward::set_forwarded(&mut headers, &hop, trusted);
        }
        forward::append_via(&mut headers, parts.version, VIA_NAME);
        Head {
            method: parts.method.clone(),
            target,
            host,
            headers,
        }
    }

    fn upstream_request(
        &self,
        head: &Head,
        upstream: &Upstream,
        body: RequestBody,
    ) -> Request<RequestBody> {
        let mut req = Request::new(body);
        *req.method_mut() = head.method.clone();
        *req.uri_mut() = Uri::from(head.target.clone());
        *req.version_mut() = Version::HTTP_11;
        let mut headers = head.headers.clone();
        let host = match (&self.cfg.host, &head.host) {
            (HostHeader::Keep, Some(h)) => h.as_str(),
            _ => upstream.authority().as_str(),
        };
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, v);
        }
        *req.headers_mut() = headers;
        req
    }

    /// The upstream's response as the client gets it.
    fn downstream(
        &self,
        res: Response<hyper::body::Incoming>,
        sender: hyper::client::conn::http1::SendRequest<RequestBody>,
        pool: &Arc<Pool>,
        why: String,
    ) -> Response<Body> {
        let (mut parts, incoming) = res.into_parts();
        forward::remove_hop_by_hop(&mut parts.headers);
        forward::append_via(&mut parts.headers, parts.version, VIA_NAME);
        parts.version = Version::HTTP_11;
        let body = Body::upstream(incoming, sender, pool.clone(), self.cfg.body_timeout);
        let mut res = Response::from_parts(parts, body);
        self.explain(&mut res, why);
        res
    }

    /// The proxy's own answer to a failure.
    fn failure(&self, f: Failure) -> Response<Body> {
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
        if f.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        self.explain(&mut res, f.reason);
        res
    }

    fn explain(&self, res: &mut Response<Body>, reason: String) {
        if self.cfg.explain {
            if let Ok(v) = HeaderValue::from_str(&reason) {
                res.headers_mut().insert(wharf_http::explain::HEADER, v);
            }
        }
        res.extensions_mut().insert(Explain(reason));
    }
}

/// The request as it goes to any upstream, but for `Host`.
struct Head {
    method: Method,
    target: PathAndQuery,
    /// The host the client named (`Host`, or the target's authority).
    host: Option<String>,
    headers: HeaderMap,
}

fn empty() -> RequestBody {
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

/// What went wrong with an exchange, in words for the log and `explain`.
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
