//! One HTTP/2 connection over the h2 crate (RFC 9113).
//!
//! h2 does the framing, HPACK and flow control; this module accepts streams, runs each
//! request through `conn` and the service on its own task, and sends the response
//! body as the peer's flow-control window allows. Connection-specific header fields
//! (RFC 9113 §8.2.2) are dropped from responses. A connection closes with GOAWAY
//! after `max_requests_per_connection` streams, on shutdown, and when idle.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use h2::server::{SendPushedResponse, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::header::{
    ACCEPT_ENCODING, ACCEPT_LANGUAGE, CONNECTION, TRANSFER_ENCODING, UPGRADE, USER_AGENT,
};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use wharf_http::conn::ConnectProtocol;
use wharf_http::interim::{EarlyHints, Push};

pub(crate) mod flood;
mod tunnel;

use crate::conn::ConnCtx;
use crate::interim::{Hinted, Next};
use crate::socket::{Cork, Socket};
use crate::watchdog::Expiry;
use crate::{Limits, RequestBody, Service, Shutdown};

/// Streams the client may reset before the server has seen them (h2's
/// `max_pending_accept_reset_streams`).
const MAX_PENDING_RESETS: usize = 20;

/// How long a flooding client has to read its GOAWAY before the socket closes.
const ABUSER_GRACE: Duration = Duration::from_secs(1);

/// The h2 settings of every connection.
pub(crate) fn builder(limits: &Limits) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(limits.max_concurrent_streams)
        .initial_window_size(limits.stream_window)
        .initial_connection_window_size(limits.connection_window)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_send_buffer_size(256 * 1024)
        .enable_connect_protocol(); // RFC 8441: WebSocket over HTTP/2
    b
}

/// Serves one HTTP/2 connection; `prefix` holds bytes already read from `read`.
pub(crate) async fn serve<S, R, W>(
    read: R,
    write: W,
    prefix: Bytes,
    ctx: Arc<ConnCtx<S>>,
    shutdown: Shutdown,
) where
    S: Service,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let peer = ctx.info.peer;
    let dog = ctx.dog.clone();
    let cork = Cork::new(write, dog.clone());
    let io = Socket::new(read, cork.clone())
        .with_prefix(prefix)
        .with_meter(flood::Meter::new(tokio::time::Instant::now()));
    let handshake = ctx.shared.h2.handshake::<_, Bytes>(io);
    let wait = ctx.shared.limits.header_read_timeout;
    let mut conn = match tokio::time::timeout(wait, drive(handshake, &cork)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed"),
        Err(_) => return tracing::debug!(%peer, "HTTP/2 handshake timed out"),
    };
    // Streams run inside this task, as an event loop would run them: no task per
    // request, no wake-up of another thread to answer one.
    let mut streams = FuturesUnordered::new();
    let mut accepted = 0u64;
    let max_requests = ctx.shared.limits.max_requests_per_connection;
    let expired = dog.expired();
    tokio::pin!(expired);
    let mut stop = shutdown.stop();
    let mut draining = false;
    let mut cutoff: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut finished: Option<Result<(), h2::Error>> = None;
    let end = std::future::poll_fn(|cx| {
        if !draining && (stop.poll(cx) || accepted >= max_requests) {
            draining = true;
            conn.graceful_shutdown();
        }
        if let Some(cutoff) = &mut cutoff {
            // An abuser that does not read its GOAWAY is not waited for.
            if cutoff.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Expiry::Abuse));
            }
        } else {
            match expired.as_mut().poll(cx) {
                Poll::Ready(Expiry::Idle) if !draining => {
                    // Idle: say goodbye with GOAWAY rather than vanish.
                    draining = true;
                    conn.graceful_shutdown();
                }
                Poll::Ready(Expiry::Abuse) => {
                    tracing::warn!(%peer, reason = dog.abuse_reason(), "closing connection: GOAWAY ENHANCE_YOUR_CALM");
                    // GOAWAY (ENHANCE_YOUR_CALM), then close once it is written.
                    let mut sleep = Box::pin(tokio::time::sleep(ABUSER_GRACE));
                    let _ = sleep.as_mut().poll(cx);
                    cutoff = Some(sleep);
                    draining = true;
                    conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    streams.clear();
                }
                Poll::Ready(Expiry::Idle) => {}
                Poll::Ready(expiry) => return Poll::Ready(Err(expiry)),
                Poll::Pending => {}
            }
        }
        // New streams, then the streams' work, then once more the connection, which
        // writes the frames the streams queued.
        for _ in 0..2 {
            while finished.is_none() {
                match conn.poll_accept(cx) {
                    Poll::Ready(Some(Ok((req, respond)))) => {
                        accepted += 1;
                        streams.push(stream(ctx.clone(), req, respond));
                    }
                    Poll::Ready(Some(Err(e))) => finished = Some(Err(e)),
                    Poll::Ready(None) => finished = Some(Ok(())),
                    Poll::Pending => break,
                }
            }
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
        }
        match cork.poll_drain(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Ok(Err(e))),
            Poll::Ready(Ok(())) => match finished.take() {
                Some(r) => Poll::Ready(Ok(Ok(r))),
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match end {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::debug!(%peer, error = %e, "HTTP/2 connection error"),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended: write failed"),
        Err(expiry) => tracing::debug!(%peer, ?expiry, "closing connection: timeout"),
    }
}

/// Polls `fut` to completion, writing out what it corked after every poll.
async fn drive<F: Future, W: AsyncWrite + Unpin>(fut: F, cork: &Cork<W>) -> F::Output {
    tokio::pin!(fut);
    let mut out = None;
    std::future::poll_fn(|cx| {
        if out.is_none() {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                out = Some(v);
            }
        }
        // A failed write surfaces as the handshake's own error on its next read.
        let drained = cork.poll_drain(cx);
        match (drained, out.take()) {
            (Poll::Pending, v) => {
                out = v;
                Poll::Pending
            }
            (_, Some(v)) => Poll::Ready(v),
            (_, None) => Poll::Pending,
        }
    })
    .await
}

/// A `103 Early Hints` head with `fields` (HTTP/2 and HTTP/3).
pub(crate) fn early_hints(fields: http::HeaderMap) -> Response<()> {
    let mut early = Response::new(());
    *early.status_mut() = StatusCode::EARLY_HINTS;
    *early.headers_mut() = fields;
    early
}

/// One request: through `conn` and the service, then the response out, with its
/// early hints before it and its pushes beside it.
async fn stream<S: Service>(
    ctx: Arc<ConnCtx<S>>,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (mut parts, body) = req.into_parts();
    if let Some(protocol) = parts.extensions.remove::<h2::ext::Protocol>() {
        return connect(ctx, parts, protocol, body, respond).await;
    }
    if let Some(why) = malformed(&parts) {
        return refuse_malformed(respond, why);
    }
    let pushed_from = push_template(&parts);
    let mut req = Request::from_parts(parts, RequestBody::h2(body));
    let interim = crate::interim::attach(&mut req);
    let handled = ctx.handle(req);
    tokio::pin!(handled);
    let mut work = Hinted::new(handled, interim);
    let res = loop {
        match work.next().await {
            Next::Hint(fields) => {
                let _ = respond.send_informational(early_hints(fields));
            }
            Next::Done(res) => break res,
        }
    };
    let (mut head, body) = res.into_parts();
    if let Some(EarlyHints(fields)) = head.extensions.remove::<EarlyHints>() {
        let _ = respond.send_informational(early_hints(fields));
    }
    // Promises go before the response that references the pushed resources
    // (RFC 9113 §8.4); each pushed response is then served on its own task.
    if let Some(Push(paths)) = head.extensions.remove::<Push>() {
        for path in paths {
            let Some(req) = pushed_request(&pushed_from, &path) else {
                continue;
            };
            match respond.push_request(req) {
                Ok(promised) => {
                    tokio::spawn(pushed(ctx.clone(), pushed_from.clone(), path, promised));
                }
                Err(_) => break, // the client disabled pushes, or the stream is gone
            }
        }
    }
    let send_timeout = ctx.shared.limits.send_timeout;
    send(
        |res, end| respond.send_response(res, end),
        head,
        body,
        send_timeout,
    )
    .await;
}

/// Why a request is malformed (RFC 9113 §8.1.1), when it is, in ways the h2 crate
/// lets through: a field value that starts or ends with whitespace (§8.2.1), a `Host`
/// that differs from `:authority` (§8.3.1), a CONNECT without `:authority` (§8.5).
fn malformed(parts: &http::request::Parts) -> Option<&'static str> {
    let padded = |v: &[u8]| {
        matches!(v.first(), Some(b' ' | b'\t')) || matches!(v.last(), Some(b' ' | b'\t'))
    };
    if parts.headers.values().any(|v| padded(v.as_bytes())) {
        return Some("a field value starts or ends with whitespace");
    }
    if crate::conn::host_differs(&parts.headers, &parts.uri, parts.version) {
        return Some("Host differs from :authority");
    }
    if parts.method == http::Method::CONNECT && parts.uri.authority().is_none() {
        return Some("CONNECT without :authority");
    }
    None
}

/// Answers a malformed request as RFC 9113 §8.1.1 requires: "MUST be treated as a
/// stream error ... of type PROTOCOL_ERROR". (A 400 first, which the RFC allows,
/// would not reach the client: h2 drops what is queued on a stream it resets.)
fn refuse_malformed(mut respond: SendResponse<Bytes>, why: &'static str) {
    tracing::debug!(
        reason = why,
        "malformed HTTP/2 request: RST_STREAM PROTOCOL_ERROR"
    );
    respond.send_reset(Reason::PROTOCOL_ERROR);
}

/// An extended CONNECT (RFC 8441 §4): the service sees the `:protocol` as a
/// [`ConnectProtocol`] and an [`OnUpgrade`](crate::upgrade::OnUpgrade); when it answers
/// 2xx and awaits the upgrade, the stream becomes its byte stream, and this stream's
/// future lasts until the service drops it (so the connection, and shutdown, wait for
/// it). Any other answer is sent as usual and the stream ends.
async fn connect<S: Service>(
    ctx: Arc<ConnCtx<S>>,
    mut parts: http::request::Parts,
    protocol: h2::ext::Protocol,
    body: RecvStream,
    mut respond: SendResponse<Bytes>,
) {
    let (pending, on_upgrade) = crate::upgrade::pending();
    parts
        .extensions
        .insert(ConnectProtocol(protocol.as_str().to_owned()));
    parts.extensions.insert(on_upgrade);
    let req = Request::from_parts(parts, RequestBody::empty());
    let (head, res_body) = ctx.handle(req).await.into_parts();
    let send_timeout = ctx.shared.limits.send_timeout;
    if !head.status.is_success() {
        return send(
            |res, end| respond.send_response(res, end),
            head,
            res_body,
            send_timeout,
        )
        .await;
    }
    let mut res = Response::from_parts(head, ());
    strip_connection_fields(res.headers_mut());
    *res.extensions_mut() = http::Extensions::new();
    let Ok(send) = respond.send_response(res, false) else {
        return; // the client reset the stream
    };
    let (read, write) = tunnel::split(body, send);
    let (upgraded, closed) =
        crate::upgrade::Upgraded::new(Bytes::new(), Box::new(read), Box::new(write));
    if pending.fulfil(upgraded) {
        let _ = closed.await;
    }
}

/// A pushed response: the service answers a `GET` of `path` as if the client had asked.
async fn pushed<S: Service>(
    ctx: Arc<ConnCtx<S>>,
    from: http::request::Parts,
    path: String,
    mut promised: SendPushedResponse<Bytes>,
) {
    let Some(req) = pushed_request(&from, &path) else {
        return;
    };
    let req = req.map(|()| RequestBody::empty());
    let (head, body) = ctx.handle(req).await.into_parts();
    send(
        |res, end| promised.send_response(res, end),
        head,
        body,
        ctx.shared.limits.send_timeout,
    )
    .await;
}

/// Sends a response head and body through `start` (a stream's or a push's).
async fn send<B>(
    start: impl FnOnce(Response<()>, bool) -> Result<SendStream<Bytes>, h2::Error>,
    mut head: http::response::Parts,
    body: B,
    send_timeout: Duration,
) where
    B: Body<Data = Bytes, Error = io::Error> + Unpin,
{
    strip_connection_fields(&mut head.headers);
    head.extensions = http::Extensions::new();
    let end = body.is_end_stream();
    let Ok(stream) = start(Response::from_parts(head, ()), end) else {
        return; // the client reset the stream
    };
    if !end {
        send_body(body, stream, send_timeout).await;
    }
}

/// What pushed requests copy from the request that caused them: scheme, authority
/// and the fields that choose a representation.
fn push_template(parts: &http::request::Parts) -> http::request::Parts {
    let (mut t, ()) = Request::new(()).into_parts();
    t.uri = parts.uri.clone();
    t.version = parts.version;
    for name in [ACCEPT_ENCODING, ACCEPT_LANGUAGE, USER_AGENT] {
        if let Some(v) = parts.headers.get(&name) {
            t.headers.insert(name, v.clone());
        }
    }
    t
}

/// `GET path` on the template's origin; `None` for a path that is not a valid target.
fn pushed_request(from: &http::request::Parts, path: &str) -> Option<Request<()>> {
    let mut uri = http::uri::Parts::default();
    uri.scheme = from.uri.scheme().cloned();
    uri.authority = from.uri.authority().cloned();
    uri.path_and_query = Some(path.parse().ok()?);
    let mut req = Request::new(());
    *req.uri_mut() = http::Uri::from_parts(uri).ok()?;
    *req.version_mut() = from.version;
    *req.headers_mut() = from.headers.clone();
    Some(req)
}

/// RFC 9113 §8.2.2: fields that only mean something to one HTTP/1.1 connection.
pub(crate) fn strip_connection_fields(h: &mut HeaderMap) {
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        h.remove(name);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// Sends `body` as flow control allows. Each chunk is handed to h2 whole (h2 splits
/// it by the windows and holds what does not fit yet); the next chunk is read only
/// once h2 has room again, so a slow reader holds back the body, not memory. A peer
/// that opens no window for `send_timeout` has its stream reset.
async fn send_body<B>(mut body: B, mut send: SendStream<Bytes>, send_timeout: Duration)
where
    B: Body<Data = Bytes, Error = io::Error> + Unpin,
{
    loop {
        // Room for at least one more byte beyond what h2 still holds.
        send.reserve_capacity(1);
        if send.capacity() == 0 {
            let room = tokio::time::timeout(send_timeout, async {
                loop {
                    match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                        Some(Ok(0)) => continue,
                        Some(Ok(_)) => return true,
                        // Reset by the peer, or the connection is gone.
                        Some(Err(_)) | None => return false,
                    }
                }
            })
            .await;
            match room {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => return send.send_reset(Reason::CANCEL),
            }
        }
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let frame = match frame {
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed: stream reset");
                return send.send_reset(Reason::INTERNAL_ERROR);
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                let last = body.is_end_stream();
                if send.send_data(data, last).is_err() || last {
                    return;
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = send.send_trailers(trailers);
                }
                return;
            }
        }
    }
}
