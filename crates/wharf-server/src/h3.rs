//! HTTP/3 (RFC 9114) over QUIC (RFC 9000), with quinn and h3, on the UDP port of a
//! TLS listener.
//!
//! quinn does QUIC: anti-amplification (RFC 9000 §8), path validation when a client's
//! address changes (connection migration, §9), UDP GSO/GRO where the kernel has them,
//! the idle timeout. This module accepts connections under the same connection cap as
//! TCP, validates client addresses with a Retry first when `quic_retry` is on, and
//! runs every request through `conn` and the service like HTTP/1.1 and HTTP/2 do.
//!
//! 0-RTT: a resumed client may send requests before the handshake completes. They
//! are replayable (RFC 8470), so only safe methods are served from early data; any
//! other method gets 425 Too Early and the client retries after the handshake.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use h3::server::RequestStream;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wharf_http::conn::TlsInfo;
use wharf_http::interim::EarlyHints;

use crate::interim::{Hinted, Next};
use wharf_tls::{Acceptor, ClientAuth};

use crate::conn::{ConnCtx, EarlyData, Tls};
use crate::listener::Shared;
use crate::watchdog::Watchdog;
use crate::{ConnInfo, RequestBody, Service, Shutdown};

type SendSide = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;
type RecvSide = RequestStream<h3_quinn::RecvStream, Bytes>;

/// Unidirectional streams a client may have open: HTTP/3 needs three (control and
/// the two QPACK streams, RFC 9114 §6.2), and a few more leave room for reserved
/// types. quinn keeps a table entry per allowed stream from the start (100 by
/// default), which made an idle connection's tables twice as large.
const UNI_STREAMS: u8 = 8;

/// The quinn endpoint for `socket`, serving `acceptor`'s certificates, and its
/// settings (for [`accept_loop`] to renew the TLS part after reloads).
pub(crate) fn endpoint(
    socket: std::net::UdpSocket,
    acceptor: &Arc<Acceptor>,
    limits: &crate::Limits,
) -> io::Result<(quinn::Endpoint, quinn::ServerConfig)> {
    let mut config = quinn::ServerConfig::with_crypto(crypto(acceptor)?);
    let mut transport = wharf_quic::transport();
    transport
        .max_concurrent_bidi_streams(limits.max_concurrent_streams.into())
        .max_concurrent_uni_streams(UNI_STREAMS.into())
        .max_idle_timeout(Some(
            limits.idle_timeout.try_into().map_err(io::Error::other)?,
        ))
        .stream_receive_window(limits.stream_window.into())
        .receive_window(limits.connection_window.into());
    config.transport_config(Arc::new(transport)).migration(true);
    Ok((wharf_quic::endpoint(socket, Some(config.clone()))?, config))
}

/// QUIC's TLS settings from `acceptor`'s current material.
fn crypto(acceptor: &Arc<Acceptor>) -> io::Result<Arc<quinn::crypto::rustls::QuicServerConfig>> {
    let tls = acceptor.quic_config().map_err(io::Error::other)?;
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(io::Error::other)?;
    Ok(Arc::new(crypto))
}

/// Accepts QUIC connections on `endpoint` until shutdown.
pub(crate) async fn accept_loop<S: Service>(
    endpoint: quinn::Endpoint,
    mut config: quinn::ServerConfig,
    acceptor: Arc<Acceptor>,
    shared: Arc<Shared<S>>,
    permits: Arc<Semaphore>,
    shutdown: Shutdown,
) {
    let local = endpoint.local_addr().ok();
    let mut generation = acceptor.generation();
    loop {
        let incoming = tokio::select! {
            _ = shutdown.triggered() => break,
            i = endpoint.accept() => i,
        };
        let Some(incoming) = incoming else { break };
        if acceptor.generation() != generation {
            // Reloaded: new client CAs apply from this handshake on. Only the TLS
            // part changes: the key of address-validation tokens already sent stays.
            generation = acceptor.generation();
            match crypto(&acceptor) {
                Ok(crypto) => {
                    config.crypto = crypto;
                    endpoint.set_server_config(Some(config.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "QUIC keeps its previous TLS settings"),
            }
        }
        if shared.http.quic_retry && !incoming.remote_address_validated() {
            // Address validation (RFC 9000 §8.1): the client proves it receives at
            // its address before any handshake work is done for it.
            let _ = incoming.retry();
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(peer = %incoming.remote_address(), "refusing QUIC connection: connection limit reached");
            incoming.refuse();
            continue;
        };
        shutdown.tracker().spawn(connection(
            incoming,
            acceptor.clone(),
            shared.clone(),
            shutdown.clone(),
            permit,
        ));
    }
    // Connections in flight finish in their own tasks (tracked by `shutdown`).
    tracing::info!(?local, "QUIC listener stopped accepting");
}

/// One QUIC connection: its handshake (0-RTT allowed), then its requests.
async fn connection<S: Service>(
    incoming: quinn::Incoming,
    acceptor: Arc<Acceptor>,
    shared: Arc<Shared<S>>,
    shutdown: Shutdown,
    _permit: OwnedSemaphorePermit,
) {
    let peer = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => return tracing::debug!(%peer, error = %e, "QUIC connection refused"),
    };
    // Until the handshake completes, requests are early data (0-RTT); where clients
    // must authenticate, requests wait for their verified certificate.
    let early_data = matches!(acceptor.quic_client_auth(), Some(ClientAuth::Off));
    let attempt = match early_data {
        true => connecting.into_0rtt(),
        false => Err(connecting),
    };
    let (conn, mut handshake) = match attempt {
        Ok((conn, accepted)) => (conn, Some(accepted)),
        Err(connecting) => {
            let timed = tokio::time::timeout(shared.limits.tls_handshake_timeout, connecting);
            match Box::pin(timed).await {
                Ok(Ok(conn)) => (conn, None),
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "QUIC handshake failed"),
                Err(_) => return tracing::debug!(%peer, "QUIC handshake timed out"),
            }
        }
    };
    let server_name: Option<Arc<str>> = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name.map(Arc::from));
    let local = conn
        .local_ip()
        .map(|ip| std::net::SocketAddr::new(ip, 0))
        .unwrap_or(peer);
    let l = &shared.limits;
    let group = acceptor.group_for_server_name(server_name.as_deref());
    let ctx = Arc::new(ConnCtx::new(
        shared.clone(),
        ConnInfo { peer, local },
        Some(Tls {
            info: TlsInfo {
                server_name,
                version: "TLSv1.3",
                client: Acceptor::quic_client_identity(conn.peer_identity()).map(Arc::new),
            },
            group,
            acceptor,
        }),
        None,
        Watchdog::new(l.idle_timeout, l.idle_timeout, l.send_timeout),
    ));
    let mut h3 = match Box::pin(
        h3::server::builder()
            .max_field_section_size(l.max_header_bytes as u64)
            .build::<_, Bytes>(h3_quinn::Connection::new(conn.clone())),
    )
    .await
    {
        Ok(h3) => h3,
        Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 setup failed"),
    };
    let mut served = 0u64;
    // Requests run inside this task, as HTTP/2 streams do: no task per request.
    let mut requests = FuturesUnordered::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.triggered() => break,
            Some(()) = requests.next(), if !requests.is_empty() => continue,
            r = h3.accept() => r,
        };
        match next {
            Ok(Some(resolver)) => {
                served += 1;
                // Opened before the handshake completed: the request is early data.
                // quinn's driver completes the handshake before it opens streams that
                // came after the client's Finished, so asking now is exact.
                let early = handshake.as_mut().is_some_and(|h| !completed(h));
                if !early {
                    handshake = None;
                }
                requests.push(Box::pin(resolve(ctx.clone(), resolver, early)));
                if served >= l.max_requests_per_connection {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "HTTP/3 connection ended");
                break;
            }
        }
    }
    // GOAWAY: no new requests; those in flight finish, then the connection closes
    // (H3_NO_ERROR) rather than waiting for the idle timeout.
    let _ = h3.shutdown(0).await;
    while requests.next().await.is_some() {}
    conn.close(0x100u32.into(), b"");
    let stats = conn.stats();
    tracing::debug!(
        %peer,
        mtu = stats.path.current_mtu,
        rtt = ?stats.path.rtt,
        sent_packets = stats.path.sent_packets,
        lost_packets = stats.path.lost_packets,
        congestion_events = stats.path.congestion_events,
        black_holes = stats.path.black_holes_detected,
        mtu_probes = stats.path.sent_plpmtud_probes,
        mtu_probes_lost = stats.path.lost_plpmtud_probes,
        "QUIC connection closed"
    );
}

/// Reads a request's head, then answers it.
async fn resolve<S: Service>(
    ctx: Arc<ConnCtx<S>>,
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    early: bool,
) {
    match resolver.resolve_request().await {
        Ok((req, stream)) => request(ctx, req, stream, early).await,
        Err(e) => tracing::debug!(error = %e, "HTTP/3 request head failed"),
    }
}

/// Whether the handshake has completed, without waiting.
fn completed(handshake: &mut quinn::ZeroRttAccepted) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    std::future::Future::poll(Pin::new(handshake), &mut cx).is_ready()
}

/// One request stream.
async fn request<S: Service>(
    ctx: Arc<ConnCtx<S>>,
    req: Request<()>,
    stream: RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    early: bool,
) {
    let (mut send, mut recv) = stream.split();
    let declared = match declared_length(req.headers()) {
        Ok(declared) => declared,
        Err(why) => {
            tracing::debug!(reason = why, "malformed HTTP/3 request: H3_MESSAGE_ERROR");
            recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
            return send.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
        }
    };
    let (body, malformed) = request_body(recv, declared);
    let mut req = req.map(|()| body);
    if early {
        req.extensions_mut().insert(EarlyData);
    }
    let method = req.method().clone();
    let (interim, hints) = crate::interim::channel();
    let handled = ctx.handle(req, Some(interim));
    tokio::pin!(handled);
    let mut work = Hinted::new(handled, hints);
    let res = loop {
        match work.next().await {
            Next::Hint(fields) => {
                let _ = send.send_response(early_hints(fields)).await;
            }
            Next::Done(res) => break res,
        }
    };
    // RFC 9114 §4.1.2: a malformed request is a stream error, whatever the service
    // made of the body's failure.
    if malformed.is_some_and(|m| m.load(Ordering::Relaxed)) {
        tracing::debug!("malformed HTTP/3 request body: H3_MESSAGE_ERROR");
        return send.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
    }
    let (mut head, body) = res.into_parts();
    if let Some(EarlyHints(fields)) = head.extensions.remove::<EarlyHints>() {
        let _ = send.send_response(early_hints(fields)).await;
    }
    strip_connection_fields(&mut head.headers);
    let exact = body.size_hint().exact();
    add_implied(&mut head, &method, exact);
    head.extensions = http::Extensions::new();
    if send
        .send_response(Response::from_parts(head, ()))
        .await
        .is_err()
    {
        return;
    }
    send_body(body, &mut send, ctx.shared.limits.send_timeout).await;
}

/// Adds what the transport adds to a final response head ([`crate::implied`]); the h3
/// crate takes the head as a map.
fn add_implied(head: &mut http::response::Parts, method: &http::Method, exact: Option<u64>) {
    if let Some(n) = crate::implied::content_length(method, head.status, &head.headers, exact) {
        head.headers.insert(http::header::CONTENT_LENGTH, n.into());
    }
    if !head.headers.contains_key(http::header::DATE) {
        let date = wharf_http::date::field_value(std::time::SystemTime::now());
        head.headers.insert(http::header::DATE, date);
    }
}

/// Sends the body frame by frame; a client that takes nothing for `send_timeout`
/// has its stream stopped.
async fn send_body<B>(mut body: B, send: &mut SendSide, send_timeout: Duration)
where
    B: Body<Data = Bytes, Error = io::Error> + Unpin,
{
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let frame = match frame {
            None => break,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed: stream reset");
                return send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
            }
            Some(Ok(frame)) => frame,
        };
        let sent = match frame.into_data() {
            Ok(data) => tokio::time::timeout(send_timeout, send.send_data(data)).await,
            Err(frame) => match frame.into_trailers() {
                Ok(t) => tokio::time::timeout(send_timeout, send.send_trailers(t)).await,
                Err(_) => continue,
            },
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return, // the client stopped the stream
            Err(_) => return send.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED),
        }
    }
    let _ = send.finish().await;
}

/// A request's body: the stream's receiving side, the frame [`request_body`] found
/// there before the service was called, its length as declared and as received,
/// and how far it is read.
pub(crate) struct Incoming {
    recv: RecvSide,
    first: Option<io::Result<Frame<Bytes>>>,
    declared: Option<u64>,
    received: u64,
    read: Read,
    /// The body turned out malformed (its length, its trailers).
    malformed: bool,
    /// Tells the request's task so, once the body has gone to the service.
    told: Option<Arc<AtomicBool>>,
    /// A read of the stream is under way (its last poll was pending): h3-quinn
    /// (0.0.10) has lent the stream to that read, and its `stop_sending` would then
    /// panic on the stream it does not hold.
    reading: bool,
}

/// How far a request stream is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    Data,
    /// The DATA frames are over; trailers may follow.
    Trailers,
    Done,
}

impl Incoming {
    /// Reads the body's next frame: DATA, then trailers if the client sent some.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        if self.read == Read::Data {
            let next = poll_recv(&mut self.recv, cx);
            self.reading = next.is_pending();
            let next = std::task::ready!(next);
            match self.count(next) {
                Some(Ok(chunk)) => return Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Some(Err(e)) => {
                    self.read = Read::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.read = Read::Trailers,
            }
        }
        if self.read == Read::Done {
            return Poll::Ready(None);
        }
        let trailers = self.recv.poll_recv_trailers(cx);
        self.reading = trailers.is_pending();
        let trailers = std::task::ready!(trailers);
        self.read = Read::Done;
        Poll::Ready(match trailers {
            Ok(None) => None,
            Ok(Some(fields)) => Some(self.checked_trailers(fields)),
            Err(e) => Some(Err(io::Error::other(e))),
        })
    }

    /// RFC 9114 §4.2: connection-specific fields make trailers malformed as they do
    /// a head (H3_MESSAGE_ERROR). (The h3 crate drops pseudo-header fields from
    /// trailers, which §4.3 calls malformed, instead of reporting them.)
    fn checked_trailers(&mut self, fields: http::HeaderMap) -> io::Result<Frame<Bytes>> {
        let malformed = fields
            .keys()
            .any(|n| wharf_http::fields::is_connection_specific(n.as_str()));
        if malformed {
            self.mark_malformed();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a connection-specific field in the request's trailers",
            ));
        }
        Ok(Frame::trailers(fields))
    }

    /// RFC 9114 §4.1.2: a request whose DATA does not add up to its Content-Length is
    /// malformed (H3_MESSAGE_ERROR). The excess is never handed on: a proxy frames the
    /// request upstream by its Content-Length, and what went past it would reach the
    /// upstream as a request of its own.
    fn count(&mut self, next: Option<io::Result<Bytes>>) -> Option<io::Result<Bytes>> {
        let Some(declared) = self.declared else {
            return next;
        };
        match next {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if self.received <= declared {
                    return Some(Ok(chunk));
                }
                self.mark_malformed();
                Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request body longer than its Content-Length",
                )))
            }
            None if self.received != declared => {
                self.mark_malformed();
                Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request body shorter than its Content-Length",
                )))
            }
            other => other,
        }
    }

    /// The client is asked to stop sending, and the request's task will reset the
    /// stream (both with H3_MESSAGE_ERROR).
    fn mark_malformed(&mut self) {
        self.recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
        self.malformed = true;
        if let Some(told) = &self.told {
            told.store(true, Ordering::Relaxed);
        }
    }

    /// Asks the client to stop sending (a response sent before the request's end);
    /// nothing is sent when the whole request has arrived. While a read is under way
    /// the stream's drop asks instead, with quinn's code 0 (which RFC 9114 §9 has
    /// the client take as H3_NO_ERROR).
    pub(crate) fn stop_sending(&mut self, code: h3::error::Code) {
        if !self.reading {
            self.recv.stop_sending(code);
        }
    }
}

/// The body of a request whose head has arrived, declared `declared` bytes long. A
/// request without content (a `GET`) usually ends in the packet that brought its
/// head, and a look without waiting tells so: its body is then known to be empty,
/// and a proxy sends none upstream rather than an empty chunked one. With a body
/// comes the flag that says it turned out malformed.
fn request_body(recv: RecvSide, declared: Option<u64>) -> (RequestBody, Option<Arc<AtomicBool>>) {
    let mut body = Incoming {
        recv,
        first: None,
        declared,
        received: 0,
        read: Read::Data,
        malformed: false,
        told: None,
        reading: false,
    };
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match body.poll_frame(&mut cx) {
        Poll::Ready(None) => {
            // The end. Should the stream still be open, the client is asked to stop
            // with H3_NO_ERROR, not with the code quinn would send as it is dropped.
            body.stop_sending(h3::error::Code::H3_NO_ERROR);
            return (RequestBody::empty(), None);
        }
        Poll::Ready(Some(first)) => body.first = Some(first),
        Poll::Pending => {}
    }
    let told = Arc::new(AtomicBool::new(body.malformed));
    body.told = Some(told.clone());
    (RequestBody::h3(body), Some(told))
}

/// A request head's declared length, or why the head is malformed in HTTP/3 (RFC 9114
/// §4.2, §4.1.2): a field HTTP/3 does not carry, or a Content-Length that is not one
/// number.
fn declared_length(headers: &http::HeaderMap) -> Result<Option<u64>, &'static str> {
    let malformed = headers
        .iter()
        .find_map(|(name, value)| wharf_http::fields::malformed_in_h2_h3_request(name, value));
    match malformed {
        Some(why) => Err(why),
        None => wharf_h1::framing::content_length(headers),
    }
}

/// Reads the stream's next DATA.
fn poll_recv(recv: &mut RecvSide, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
    match recv.poll_recv_data(cx) {
        Poll::Ready(Ok(Some(mut buf))) => Poll::Ready(Some(Ok(buf.copy_to_bytes(buf.remaining())))),
        Poll::Ready(Ok(None)) => Poll::Ready(None),
        Poll::Ready(Err(e)) => Poll::Ready(Some(Err(io::Error::other(e)))),
        Poll::Pending => Poll::Pending,
    }
}

/// A `103 Early Hints` head with `fields`.
fn early_hints(fields: http::HeaderMap) -> Response<()> {
    let mut early = Response::new(());
    *early.status_mut() = StatusCode::EARLY_HINTS;
    *early.headers_mut() = fields;
    early
}

/// RFC 9114 §4.2: fields that only mean something to one HTTP/1.1 connection go.
fn strip_connection_fields(h: &mut http::HeaderMap) {
    let specific = |n: &&http::HeaderName| wharf_http::fields::is_connection_specific(n.as_str());
    // (Empty, so no allocation, for the responses that have none.)
    let names: Vec<http::HeaderName> = h.keys().filter(specific).cloned().collect();
    for name in names {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9114 §4.2: a response's connection-specific fields go, the rest stay.
    #[test]
    fn connection_specific_fields_are_stripped() {
        let table: &[(&[&str], &[&str])] = &[
            (&["etag", "date"], &["etag", "date"]),
            (&["connection", "etag"], &["etag"]),
            (&["keep-alive", "transfer-encoding", "upgrade"], &[]),
            (&["proxy-connection", "vary"], &["vary"]),
            (&[], &[]),
        ];
        for (names, kept) in table {
            let mut h = http::HeaderMap::new();
            for n in *names {
                h.insert(
                    http::HeaderName::from_static(n),
                    http::HeaderValue::from_static("x"),
                );
            }
            strip_connection_fields(&mut h);
            let left: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
            assert_eq!(left, *kept, "{names:?}");
        }
    }
}
