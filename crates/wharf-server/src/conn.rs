//! One accepted connection: which protocol it speaks, and what every request on it
//! goes through before the service sees it.
//!
//! A cleartext connection is told apart by its first bytes: the HTTP/2 connection
//! preface means HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3), a TLS record means
//! a client that meant the TLS port (closed without a reply it could not read), and
//! anything else is HTTP/1.1. A TLS connection speaks what ALPN agreed: `h2` or
//! HTTP/1.1; plaintext sent to a TLS port is answered in plaintext, 400.
//!
//! Every request, whatever its version, is then admitted here: RFC 9112/9113 host
//! rules, target length, the TLS name check (421), the cleartext-to-HTTPS redirect;
//! and goes to the service with its [`Exchange`]: the connection's addresses, its
//! [`TlsInfo`] and the transport's way to send `103`s.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ALT_SVC, CONNECTION, CONTENT_TYPE, HOST, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use wharf_http::conn::TlsInfo;
use wharf_http::interim::Interim;
use wharf_tls::{AcceptError, Acceptor};

use crate::access_log::{Entry, LoggedBody};
use crate::listener::Shared;
use crate::watchdog::Watchdog;
use crate::{ConnInfo, Exchange, RequestBody, Service, Shutdown};

/// What a listener speaks.
#[derive(Clone)]
pub enum Mode {
    /// HTTP/1.1 and h2c. With `redirect`, every request is answered 308 to the same
    /// host and path over HTTPS on that port.
    Cleartext {
        /// The HTTPS port to redirect to, if redirecting.
        redirect: Option<u16>,
    },
    /// TLS: HTTP/1.1 or HTTP/2 as ALPN agrees.
    Tls {
        /// Certificates and handshakes.
        acceptor: Arc<Acceptor>,
        /// `Alt-Svc` advertising HTTP/3 on the same port, when it is served.
        alt_svc: Option<HeaderValue>,
    },
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The answer to plaintext on a TLS port, as nginx gives one.
fn plain_on_tls() -> String {
    let text = "400 Bad Request: this port speaks TLS; use https:// to reach it\n";
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

/// What the first bytes of a cleartext connection say it speaks.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    H1,
    H2,
    Tls,
    /// Not enough bytes yet.
    More,
}

fn sniff(first: &[u8]) -> Sniffed {
    match first {
        [] => Sniffed::More,
        [0x16, ..] => Sniffed::Tls,
        _ if first.starts_with(PREFACE) => Sniffed::H2,
        _ if PREFACE.starts_with(first) => Sniffed::More,
        _ => Sniffed::H1,
    }
}

/// Serves one accepted connection until it closes.
///
/// Each protocol's future is boxed: a task holds the largest variant of its future,
/// and an idle HTTP/1.1 connection should not carry the room of a TLS handshake or
/// of an HTTP/2 connection (memory per idle connection is a target, bench/run f).
/// Each box is bound before it is awaited: a temporary in the awaited expression
/// would keep the unboxed future's room in the caller's state after all.
pub(crate) async fn serve<S: Service>(
    stream: TcpStream,
    mode: Mode,
    info: ConnInfo,
    shared: Arc<Shared<S>>,
    shutdown: Shutdown,
    _permit: OwnedSemaphorePermit,
) {
    match mode {
        Mode::Cleartext { redirect } => {
            let fut = Box::pin(cleartext(stream, redirect, info, shared, shutdown));
            fut.await
        }
        Mode::Tls { acceptor, alt_svc } => {
            let fut = Box::pin(tls(stream, acceptor, alt_svc, info, shared, shutdown));
            fut.await
        }
    }
}

/// What the requests of a connection share, with its watchdog.
fn conn_ctx<S: Service>(
    shared: &Arc<Shared<S>>,
    info: ConnInfo,
    tls: Option<Tls>,
    redirect: Option<u16>,
    h2: bool,
) -> ConnCtx<S> {
    let l = &shared.limits;
    // HTTP/2 has no request heads to time between streams: a byte on an idle
    // connection (PING, WINDOW_UPDATE) only starts another idle period.
    let header = if h2 {
        l.idle_timeout
    } else {
        l.header_read_timeout
    };
    let dog = Watchdog::new(l.idle_timeout, header, l.send_timeout);
    ConnCtx::new(shared.clone(), info, tls, redirect, dog)
}

/// A cleartext connection: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
async fn cleartext<S: Service>(
    mut stream: TcpStream,
    redirect: Option<u16>,
    info: ConnInfo,
    shared: Arc<Shared<S>>,
    shutdown: Shutdown,
) {
    let l = &shared.limits;
    // Boxed too: its timers would otherwise stay in this future's room for good.
    let first = tokio::select! {
        _ = shutdown.triggered() => return,
        r = Box::pin(first_bytes(&mut stream, l.idle_timeout, l.header_read_timeout)) => r,
    };
    let Some((kind, prefix)) = first else { return };
    let (read, write) = stream.into_split();
    match kind {
        Sniffed::H2 => {
            let ctx = Arc::new(conn_ctx(&shared, info, None, redirect, true));
            let fut = Box::pin(crate::h2::serve(read, write, prefix, ctx, shutdown));
            fut.await
        }
        Sniffed::H1 => {
            let ctx = Arc::new(conn_ctx(&shared, info, None, redirect, false));
            let fut = Box::pin(crate::h1::serve(read, write, prefix, ctx, shutdown));
            fut.await
        }
        _ => tracing::debug!(peer = %info.peer, "TLS handshake on a cleartext port: closed"),
    }
}

/// A connection on a TLS listener: the handshake, then HTTP/2 or HTTP/1.1 by ALPN.
async fn tls<S: Service>(
    stream: TcpStream,
    acceptor: Arc<Acceptor>,
    alt_svc: Option<HeaderValue>,
    info: ConnInfo,
    shared: Arc<Shared<S>>,
    shutdown: Shutdown,
) {
    let accepted = tokio::select! {
        _ = shutdown.triggered() => return,
        r = Box::pin(acceptor.accept(stream)) => r,
    };
    let a = match accepted {
        Ok(a) => a,
        Err(AcceptError::NotTls(mut tcp)) => {
            tracing::debug!(peer = %info.peer, "plaintext on a TLS port: 400");
            let _ = tcp.write_all(plain_on_tls().as_bytes()).await;
            let _ = tcp.shutdown().await;
            return;
        }
        Err(e) => {
            tracing::debug!(peer = %info.peer, error = ?e, "TLS handshake failed");
            return;
        }
    };
    let h2 = a.alpn.as_deref() == Some(b"h2");
    let tls = Tls {
        info: a.info,
        group: a.group,
        acceptor,
    };
    let mut ctx = conn_ctx(&shared, info, Some(tls), None, h2);
    ctx.alt_svc = alt_svc;
    let ctx = Arc::new(ctx);
    let (read, write) = tokio::io::split(a.stream);
    if h2 {
        let fut = Box::pin(crate::h2::serve(read, write, Bytes::new(), ctx, shutdown));
        fut.await
    } else {
        let fut = Box::pin(crate::h1::serve(read, write, Bytes::new(), ctx, shutdown));
        fut.await
    }
}

/// The protocol of a cleartext connection, from its first bytes. They are peeked,
/// not read, so HTTP/1.1 and HTTP/2 parsers start on the untouched socket; only an
/// HTTP/2 preface that arrives in pieces is read here, and handed on as a prefix.
async fn first_bytes(
    stream: &mut TcpStream,
    idle: Duration,
    header: Duration,
) -> Option<(Sniffed, Bytes)> {
    let mut peeked = [0u8; PREFACE.len()];
    let n = match tokio::time::timeout(idle, stream.peek(&mut peeked)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return None,
    };
    match sniff(&peeked[..n]) {
        Sniffed::More => read_preface(stream, idle, header).await,
        kind => Some((kind, Bytes::new())),
    }
}

/// Reads until the protocol is known: the first byte within `idle`, the rest of an
/// HTTP/2 preface within `header`. `None` when the client left or was too slow.
async fn read_preface<R: AsyncRead + Unpin>(
    io: &mut R,
    idle: Duration,
    header: Duration,
) -> Option<(Sniffed, Bytes)> {
    let mut buf = BytesMut::with_capacity(PREFACE.len());
    loop {
        let wait = if buf.is_empty() { idle } else { header };
        let room = PREFACE.len() - buf.len().min(PREFACE.len());
        let mut chunk = [0u8; PREFACE.len()];
        match tokio::time::timeout(wait, io.read(&mut chunk[..room.max(1)])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        match sniff(&buf) {
            Sniffed::More => continue,
            kind => return Some((kind, buf.freeze())),
        }
    }
}

/// The TLS session of a connection.
pub(crate) struct Tls {
    pub(crate) info: TlsInfo,
    pub(crate) group: usize,
    pub(crate) acceptor: Arc<Acceptor>,
}

/// Marks a request that arrived in TLS early data (0-RTT): replayable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EarlyData;

/// What the requests of one connection share.
pub(crate) struct ConnCtx<S> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) info: ConnInfo,
    tls: Option<Tls>,
    redirect: Option<u16>,
    /// Added to every response (HTTP/3 on the same port).
    alt_svc: Option<HeaderValue>,
    pub(crate) dog: Arc<Watchdog>,
    served: AtomicU64,
}

impl<S: Service> ConnCtx<S> {
    pub(crate) fn new(
        shared: Arc<Shared<S>>,
        info: ConnInfo,
        tls: Option<Tls>,
        redirect: Option<u16>,
        dog: Arc<Watchdog>,
    ) -> Self {
        ConnCtx {
            shared,
            info,
            tls,
            redirect,
            alt_svc: None,
            dog,
            served: AtomicU64::new(0),
        }
    }

    /// Counts a request; true once the connection has served its share
    /// (`limits.max_requests_per_connection`).
    pub(crate) fn count_request(&self) -> bool {
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        n >= self.shared.limits.max_requests_per_connection
    }

    /// Admits one request and answers it: the service's response, or the transport's.
    ///
    /// Admission happens here, before the returned future is polled; the future holds
    /// only the service's work and what the response needs, not the request besides
    /// (an `async fn` would keep room for both, and transports box this future per
    /// request).
    pub(crate) fn handle(
        &self,
        req: Request<RequestBody>,
        interim: Option<Interim>,
    ) -> Handling<'_, S, impl Future<Output = Response<S::Body>> + Send + '_> {
        self.dog.request_started();
        // HTTP/2 drops the work of a stream the client resets: the request is over
        // then too (otherwise the response body's end says so).
        let in_flight = InFlight(&self.dog);
        let logging = self.shared.log.format != crate::LogFormat::Off;
        let entry = logging.then(|| Box::new(Entry::new(self.info.peer, &req, self.tls_info())));
        let work = match self.admit(&req) {
            Some(res) => Work::Answered { res: Some(res) },
            None => {
                let exchange = Exchange {
                    conn: self.info,
                    tls: self.tls_info(),
                    interim,
                };
                Work::Service {
                    h1: req.version() < Version::HTTP_2,
                    call: self.shared.service.call(req, exchange),
                }
            }
        };
        Handling {
            ctx: self,
            in_flight: Some(in_flight),
            entry,
            work,
        }
    }

    fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls.as_ref().map(|t| &t.info)
    }

    /// The transport's own answer to `req`, if it has one.
    fn admit<B, T>(&self, req: &Request<B>) -> Option<Response<ResBody<T>>> {
        if let Some(res) = check_head(req, self.shared.limits.max_uri_len) {
            return Some(res);
        }
        // RFC 8470 §5.2: requests in replayable early data must be safe.
        if req.extensions().get::<EarlyData>().is_some() && !req.method().is_safe() {
            return Some(error(
                StatusCode::TOO_EARLY,
                "425 Too Early: repeat this request after the handshake\n",
            ));
        }
        if let Some(tls) = &self.tls {
            if tls.acceptor.group_count() > 1 {
                let host = wharf_http::host::request_host(req);
                let group = tls.acceptor.group_for_host(host.as_deref());
                if group.is_some_and(|g| g != tls.group) {
                    return Some(error(
                        StatusCode::MISDIRECTED_REQUEST,
                        "421 Misdirected Request: this connection was set up for another site; open a new one\n",
                    ));
                }
            }
        }
        self.redirect
            .map(|port| redirect(req, port, self.info.local))
    }
}

/// RFC 9112 §3.2 / RFC 9113 §8.3.1 host rules and the target length limit.
fn check_head<B, T>(req: &Request<B>, max_uri_len: usize) -> Option<Response<ResBody<T>>> {
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field and to any request message
    // that contains more than one Host header field line or a Host header field with an
    // invalid field value."
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() || (host.is_none() && req.version() == Version::HTTP_11) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: exactly one Host header field is required\n",
        ));
    }
    if let Some(host) = host {
        let Ok(h) = host.to_str() else {
            return Some(bad_host());
        };
        if !wharf_http::host::is_valid_host(h) {
            return Some(bad_host());
        }
        // RFC 9113 §8.3.1: a Host that differs from :authority makes the request malformed.
        if host_differs(req.headers(), req.uri(), req.version()) {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: Host differs from :authority\n",
            ));
        }
    }
    if target_len(req.uri()) > max_uri_len {
        return Some(error(StatusCode::URI_TOO_LONG, "414 URI Too Long\n"));
    }
    None
}

/// Whether an HTTP/2 or HTTP/3 request's `Host` names another authority than its
/// `:authority` (RFC 9113 §8.3.1: the request is malformed).
pub(crate) fn host_differs(headers: &http::HeaderMap, uri: &http::Uri, version: Version) -> bool {
    if version < Version::HTTP_2 {
        return false;
    }
    let (Some(host), Some(authority)) = (headers.get(HOST), uri.authority()) else {
        return false;
    };
    !authority
        .as_str()
        .as_bytes()
        .eq_ignore_ascii_case(host.as_bytes())
}

fn bad_host<T>() -> Response<ResBody<T>> {
    error(
        StatusCode::BAD_REQUEST,
        "400 Bad Request: invalid Host header field\n",
    )
}

fn target_len(uri: &http::Uri) -> usize {
    let pq = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let auth = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    pq + auth + scheme
}

/// 308 to the same host and target over HTTPS on `port`.
fn redirect<B, T>(req: &Request<B>, port: u16, local: SocketAddr) -> Response<ResBody<T>> {
    let host = wharf_http::host::request_host(req)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| match local {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        });
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = match port {
        443 => format!("https://{host}{target}"),
        p => format!("https://{host}:{p}{target}"),
    };
    let mut res = Response::new(ResBody::Text(Some(Bytes::from(format!(
        "308 Permanent Redirect: {location}\n"
    )))));
    *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::try_from(location) {
        h.insert(LOCATION, v);
    }
    res
}

/// A transport-level error response; the connection closes after it.
fn error<T>(status: StatusCode, text: &'static str) -> Response<ResBody<T>> {
    let mut res = Response::new(ResBody::Text(Some(Bytes::from_static(text.as_bytes()))));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status != StatusCode::MISDIRECTED_REQUEST {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

pin_project_lite::pin_project! {
    /// [`ConnCtx::handle`]'s answer to one admitted request.
    pub(crate) struct Handling<'a, S: Service, F> {
        ctx: &'a ConnCtx<S>,
        in_flight: Option<InFlight<'a>>,
        entry: Option<Box<Entry>>,
        #[pin]
        work: Work<S::Body, F>,
    }
}

pin_project_lite::pin_project! {
    #[project = WorkProj]
    enum Work<B, F> {
        /// The transport's own answer (admission refused the request).
        Answered { res: Option<Response<ResBody<B>>> },
        /// The service's.
        Service { #[pin] call: F, h1: bool },
    }
}

impl<S, F> Future for Handling<'_, S, F>
where
    S: Service,
    F: Future<Output = Response<S::Body>>,
{
    type Output = Response<LoggedBody<ResBody<S::Body>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let ctx = *this.ctx;
        let mut res = match this.work.project() {
            WorkProj::Answered { res } => res.take().expect("polled after its response"),
            WorkProj::Service { call, h1 } => {
                let mut res = ready!(call.poll(cx)).map(ResBody::Service);
                // HTTP/2 counts streams in its driver and ends with GOAWAY instead.
                if *h1 && ctx.count_request() {
                    res.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                res
            }
        };
        if let Some(v) = &ctx.alt_svc {
            res.headers_mut().insert(ALT_SVC, v.clone());
        }
        // The response exists: its body's end finishes the request from now on.
        std::mem::forget(this.in_flight.take());
        let entry = this.entry.take();
        Poll::Ready(LoggedBody::wrap(
            res,
            entry,
            ctx.shared.log,
            ctx.dog.clone(),
        ))
    }
}

/// A request whose response does not exist yet: dropped with its work, it ends the
/// request for the watchdog.
struct InFlight<'a>(&'a Watchdog);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body: the service's, or a transport message.
pub(crate) enum ResBody<B> {
    Service(B),
    Text(Option<Bytes>),
}

impl<B> Body for ResBody<B>
where
    B: Body<Data = Bytes, Error = std::io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResBody::Service(b) => Pin::new(b).poll_frame(cx),
            ResBody::Text(t) => Poll::Ready(t.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Service(b) => b.is_end_stream(),
            ResBody::Text(t) => t.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Service(b) => b.size_hint(),
            ResBody::Text(t) => SizeHint::with_exact(t.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// The context of a connection from 127.0.0.1:1 to `service` under `limits`, access
/// log off, for the transports' tests.
#[cfg(test)]
pub(crate) fn test_ctx<S: Service>(service: S, limits: crate::Limits) -> Arc<ConnCtx<S>> {
    let shared = Arc::new(Shared {
        service: Arc::new(service),
        h2: crate::h2::config(&limits),
        limits,
        http: crate::Http::default(),
        log: crate::AccessLog {
            format: crate::LogFormat::Off,
        },
    });
    let addr = "127.0.0.1:1".parse().unwrap();
    let info = ConnInfo {
        peer: addr,
        local: addr,
    };
    let dog = Watchdog::new(
        Duration::from_secs(60),
        Duration::from_secs(10),
        Duration::from_secs(60),
    );
    Arc::new(ConnCtx::new(shared, info, None, None, dog))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(version: Version, hosts: &[&str], target: &str) -> Option<StatusCode> {
        let mut b = Request::builder().version(version).uri(target);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        check_head::<_, ()>(&b.body(()).unwrap(), 64).map(|r| r.status())
    }

    #[test]
    fn host_and_target_rules() {
        use Version as V;
        const BAD: Option<StatusCode> = Some(StatusCode::BAD_REQUEST);
        let long = format!("/{}", "x".repeat(64));
        let fits = format!("/{}", "x".repeat(63));
        // (version, Host lines, target, expected) — RFC 9112 §3.2 and §3, RFC 9113 §8.3.1
        let table: &[(Version, &[&str], &str, Option<StatusCode>)] = &[
            (V::HTTP_11, &["a.test"], "/", None),
            (V::HTTP_11, &[], "/", BAD),         // §3.2 lacks Host
            (V::HTTP_10, &[], "/", None),        // 1.0 may omit it
            (V::HTTP_11, &["a", "b"], "/", BAD), // §3.2 two lines
            (V::HTTP_10, &["a", "b"], "/", BAD),
            (V::HTTP_11, &["a b"], "/", BAD), // invalid value
            (V::HTTP_11, &["a.test:8080"], "/", None),
            (V::HTTP_11, &[""], "/", None), // §3.2.2 empty Host allowed without authority
            (V::HTTP_11, &["a"], &long, Some(StatusCode::URI_TOO_LONG)),
            (V::HTTP_11, &["a"], &fits, None),
            (V::HTTP_2, &[], "https://a.test/", None), // :authority only
            (V::HTTP_2, &["A.test"], "https://a.test/", None),
            (V::HTTP_2, &["b.test"], "https://a.test/", BAD), // RFC 9113 §8.3.1
        ];
        for (v, hosts, target, want) in table {
            assert_eq!(check(*v, hosts, target), *want, "{v:?} {hosts:?} {target}");
        }
    }

    #[test]
    fn first_bytes_choose_the_protocol() {
        let table: &[(&[u8], Sniffed)] = &[
            (b"", Sniffed::More),
            (b"GET / HTTP/1.1\r\n", Sniffed::H1),
            (b"P", Sniffed::More),
            (b"PRI * HTTP/2.0\r\n", Sniffed::More),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0", Sniffed::H2),
            (b"POST / HTTP/1.1", Sniffed::H1),
            (b"PRI * HTTP/1.1\r\n", Sniffed::H1),
            (b"\x16\x03\x01\x02\x00", Sniffed::Tls),
        ];
        for (bytes, want) in table {
            assert_eq!(&sniff(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn redirects_keep_host_and_target() {
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let go = |host: Option<&str>, target: &str, port| {
            let mut b = Request::builder().uri(target);
            if let Some(h) = host {
                b = b.header(HOST, h);
            }
            let res = redirect::<_, ()>(&b.body(()).unwrap(), port, local);
            assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
            res.headers()[LOCATION].to_str().unwrap().to_owned()
        };
        assert_eq!(
            go(Some("a.test:8080"), "/x?y=1", 8443),
            "https://a.test:8443/x?y=1"
        );
        assert_eq!(go(Some("a.test"), "/", 443), "https://a.test/");
        assert_eq!(go(None, "/p", 443), "https://127.0.0.1/p");
        assert_eq!(go(Some("[::1]:80"), "/", 8443), "https://[::1]:8443/");
    }
}
