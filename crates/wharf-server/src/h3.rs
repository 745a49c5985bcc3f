//! HTTP/3 (RFC 9114) over QUIC (RFC 9000), with quinn and wharf's own HTTP/3 layer
//! (`wharf-h3`), on the UDP port of a TLS listener.
//!
//! quinn does QUIC: anti-amplification (RFC 9000 §8), path validation when a client's
//! address changes (connection migration, §9), UDP GSO/GRO where the kernel has them,
//! the idle timeout. This module accepts connections under the same connection cap as
//! TCP, validates client addresses with a Retry first when `quic_retry` is on, and
//! runs every request through `conn` and the service like HTTP/1.1 and HTTP/2 do.
//!
//! HTTP/3 itself is `wharf-h3`'s: this module opens wharf's control stream, reads the
//! client's control and QPACK streams, and on each request stream feeds the frames
//! it reads to `wharf_h3::Frames` and writes the frames it makes. A response head
//! is one HEADERS frame encoded straight from the service's fields with QPACK's
//! static table; a small response leaves in one write with its body. Errors of the
//! connection close it with the code RFC 9114 names; errors of a request reset its
//! stream.
//!
//! 0-RTT: a resumed client may send requests before the handshake completes. They
//! are replayable (RFC 8470), so only safe methods are served from early data; any
//! other method gets 425 Too Early and the client retries after the handshake.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use http::{HeaderMap, Request, StatusCode, Version};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wharf_h2::head::{Collect, LastTarget, Outcome};
use wharf_h3::{qpack, stream_type, varint, Code, ConnError, Frames, Item, Settings};
use wharf_http::conn::{ConnectProtocol, TlsInfo};
use wharf_http::interim::EarlyHints;

use crate::interim::{Hinted, Next};
use wharf_tls::{Acceptor, ClientAuth};

use crate::conn::{ConnCtx, EarlyData, Tls};
use crate::listener::Shared;
use crate::upgrade::Upgraded;
use crate::watchdog::Watchdog;
use crate::{ConnInfo, RequestBody, Service, Shutdown};

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

/// A QUIC error code for an HTTP/3 one.
fn code(c: Code) -> quinn::VarInt {
    quinn::VarInt::from_u64(c.value()).expect("HTTP/3 codes fit")
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
        true => connecting.into_0rtt().map(|(conn, _)| conn),
        false => Err(connecting),
    };
    let conn = match attempt {
        Ok(conn) => conn,
        Err(connecting) => {
            let timed = tokio::time::timeout(shared.limits.tls_handshake_timeout, connecting);
            match Box::pin(timed).await {
                Ok(Ok(conn)) => conn,
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
    let settings = Settings {
        max_field_section_size: Some(l.max_header_bytes as u64),
        // Extended CONNECT (RFC 9220): WebSocket over HTTP/3.
        enable_connect_protocol: true,
        ..Settings::default()
    };
    let opened = tokio::time::timeout(l.tls_handshake_timeout, open_control(&conn, &settings));
    // Kept open while the connection lives: its end would be an error (§6.2.1).
    let mut control = match Box::pin(opened).await {
        Ok(Ok(control)) => control,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "HTTP/3 setup failed"),
        Err(_) => return tracing::debug!(%peer, "HTTP/3 setup timed out"),
    };
    if let Err(e) = serve(&conn, &ctx, &mut control, &shutdown).await {
        return tracing::debug!(%peer, error = %e, "HTTP/3 connection error");
    }
    // Rather than waiting for the idle timeout.
    conn.close(code(Code::NoError), b"");
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

/// Opens wharf's control stream and sends its SETTINGS (§6.2.1).
async fn open_control(
    conn: &quinn::Connection,
    settings: &Settings,
) -> io::Result<quinn::SendStream> {
    let mut control = conn.open_uni().await.map_err(io::Error::other)?;
    let mut preface = Vec::new();
    varint::put(stream_type::CONTROL, &mut preface);
    preface.extend_from_slice(&settings.frame());
    control
        .write_all(&preface)
        .await
        .map_err(io::Error::other)?;
    Ok(control)
}

/// The client's streams, until shutdown, the request limit, the client's close or a
/// connection error (the connection closed with its code, and returned). Requests
/// run inside the connection's task, as HTTP/2 streams do: no task per request. At
/// the end, GOAWAY (§5.2) on `control` tells the client which requests were not
/// served (it may send them again elsewhere), and those accepted are answered.
async fn serve<S: Service>(
    conn: &quinn::Connection,
    ctx: &Arc<ConnCtx<S>>,
    control: &mut quinn::SendStream,
    shutdown: &Shutdown,
) -> Result<(), ConnError> {
    let limit = ctx.shared.limits.max_requests_per_connection;
    let mut served = 0u64;
    let mut next_id = 0u64;
    let heads = std::sync::Mutex::new(Heads::default());
    let mut requests = FuturesUnordered::new();
    let mut streams: FuturesUnordered<Pin<Box<dyn Future<Output = Uni> + Send>>> =
        FuturesUnordered::new();
    let mut peer = PeerStreams::default();
    let mut recent = Recent::default();
    // Made once: a wait made anew for every turn of the loop cost 2 % of a request.
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    let failed = loop {
        tokio::select! {
            biased;
            _ = &mut stop => break None,
            Some(done) = requests.next(), if !requests.is_empty() => match done {
                Ok(Some(send)) => recent.keep(send),
                Ok(None) => {}
                Err(e) => break Some(e),
            },
            Some(uni) = streams.next(), if !streams.is_empty() => match uni {
                Uni::Typed(kind, recv, rest) => match peer.take(kind) {
                    Ok(true) => streams.push(Box::pin(critical(kind, recv, rest))),
                    Ok(false) => {}
                    Err(e) => break Some(e),
                },
                Uni::Failed(e) => break Some(e),
                Uni::Gone => {}
            },
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    served += 1;
                    next_id = u64::from(recv.id()) + 4;
                    // Opened in 0-RTT: the request is early data.
                    let early = recv.is_0rtt();
                    let req = request(ctx, conn, &heads, send, recv, early);
                    requests.push(Box::pin(req));
                    if served >= limit {
                        break None;
                    }
                }
                Err(_) => break None,
            },
            uni = conn.accept_uni() => match uni {
                Ok(recv) => streams.push(Box::pin(stream_kind(recv))),
                Err(_) => break None,
            },
        }
    };
    if let Some(e) = failed {
        // Closed before the requests in flight are dropped: their streams would end
        // as they go, and a client could take a cut response for a whole one.
        conn.close(code(e.code), e.reason.as_bytes());
        return Err(e);
    }
    let goaway = wharf_h3::frame::goaway(next_id);
    let sent = control.write_all(&goaway);
    let _ = tokio::time::timeout(ctx.shared.limits.send_timeout, sent).await;
    while let Some(done) = requests.next().await {
        match done {
            Ok(Some(send)) => recent.keep(send),
            Ok(None) => {}
            Err(e) => {
                conn.close(code(e.code), e.reason.as_bytes());
                return Err(e);
            }
        }
    }
    let acked = futures_util::future::join_all(recent.0.iter().map(quinn::SendStream::stopped));
    let _ = tokio::time::timeout(ctx.shared.limits.send_timeout, acked).await;
    Ok(())
}

/// The streams of the responses sent last. Closing a QUIC connection drops what the
/// peer has not acknowledged, so before a graceful close wharf waits for these (the
/// drain's, and those finished just before it) to be acknowledged.
#[derive(Default)]
struct Recent(std::collections::VecDeque<quinn::SendStream>);

impl Recent {
    /// How many are kept: responses older than this many are long acknowledged.
    const KEPT: usize = 32;

    fn keep(&mut self, send: quinn::SendStream) {
        if self.0.len() == Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back(send);
    }
}

/// What a connection remembers of the request heads it read: a client sends the
/// requests of one origin on a connection, often for one resource, with the same
/// fields in every head (no dynamic table: see `wharf_h3::qpack`).
#[derive(Default)]
struct Heads {
    /// The last target, parsed.
    last: LastTarget,
    /// The Huffman strings decoded last.
    decoder: qpack::Decoder,
}

/// Which of the client's unidirectional streams with a role have been opened: each
/// at most once (§6.2.1, RFC 9204 §4.2).
#[derive(Default)]
struct PeerStreams {
    control: bool,
    encoder: bool,
    decoder: bool,
}

impl PeerStreams {
    /// Whether a stream of `kind` is to be read (its role's first); a second one, or
    /// a push stream (which only servers open), is H3_STREAM_CREATION_ERROR.
    fn take(&mut self, kind: u64) -> Result<bool, ConnError> {
        let seen = match kind {
            stream_type::CONTROL => &mut self.control,
            stream_type::ENCODER => &mut self.encoder,
            stream_type::DECODER => &mut self.decoder,
            stream_type::PUSH => {
                return Err(ConnError {
                    code: Code::StreamCreationError,
                    reason: "a push stream from a client",
                })
            }
            _ => return Ok(false),
        };
        if std::mem::replace(seen, true) {
            return Err(ConnError {
                code: Code::StreamCreationError,
                reason: "a second control or QPACK stream",
            });
        }
        Ok(true)
    }
}

/// What became of a unidirectional stream.
enum Uni {
    /// Its type was read; the rest of the chunk that held it follows.
    Typed(u64, quinn::RecvStream, Bytes),
    /// A connection error.
    Failed(ConnError),
    /// Over, or of a type wharf does not know (ignored, §6.2.3, §9).
    Gone,
}

/// Reads a unidirectional stream's type (§6.2). A stream of an unknown type is
/// asked to stop (H3_STREAM_CREATION_ERROR, §6.2).
async fn stream_kind(mut recv: quinn::RecvStream) -> Uni {
    let mut head = Vec::new();
    loop {
        let chunk = match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => chunk.bytes,
            _ => return Uni::Gone,
        };
        head.extend_from_slice(&chunk);
        let mut pos = 0;
        if let Some(kind) = varint::read(&head, &mut pos) {
            if !matches!(kind, 0..=3) {
                let _ = recv.stop(code(Code::StreamCreationError));
                return Uni::Gone;
            }
            return Uni::Typed(kind, recv, Bytes::from(head).slice(pos..));
        }
    }
}

/// Reads one of the client's critical streams to its end, which is an error (§6.2.1,
/// RFC 9204 §4.2): the control stream's frames checked, the QPACK streams'
/// instructions checked against a table of capacity 0.
async fn critical(kind: u64, mut recv: quinn::RecvStream, first: Bytes) -> Uni {
    let mut control = (kind == stream_type::CONTROL).then(Control::default);
    let mut decoder = qpack::DecoderStream::default();
    let mut chunk = first;
    loop {
        let checked = match (&mut control, kind) {
            (Some(c), _) => c.read(&mut chunk),
            (None, stream_type::ENCODER) => qpack::check_encoder_stream(&chunk),
            (None, _) => decoder.check(&chunk),
        };
        if let Err(e) = checked {
            return Uni::Failed(e);
        }
        chunk = match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(c)) => c.bytes,
            // A stream the connection's end took down is no error of the client's.
            Err(quinn::ReadError::ConnectionLost(_)) => return Uni::Gone,
            Ok(None) | Err(_) => {
                return Uni::Failed(ConnError {
                    code: Code::ClosedCriticalStream,
                    reason: "the client closed a control or QPACK stream",
                })
            }
        };
    }
}

/// The client's control stream: its frames and the ids they carry.
struct Control {
    frames: Frames,
    goaway: Option<u64>,
    max_push_id: Option<u64>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            frames: Frames::control(),
            goaway: None,
            max_push_id: None,
        }
    }
}

impl Control {
    /// Reads what `chunk` holds. wharf does not push (§4.6), so a CANCEL_PUSH names
    /// a push never promised (H3_ID_ERROR, §7.2.3); GOAWAY and MAX_PUSH_ID may not
    /// go back (§5.2, §7.2.7).
    fn read(&mut self, chunk: &mut Bytes) -> Result<(), ConnError> {
        let id_error = |reason| {
            Err(ConnError {
                code: Code::IdError,
                reason,
            })
        };
        while let Some(item) = self.frames.next(chunk)? {
            match item {
                Item::Goaway(id) if self.goaway.is_some_and(|g| id > g) => {
                    return id_error("a GOAWAY with a larger id than the last")
                }
                Item::Goaway(id) => self.goaway = Some(id),
                Item::MaxPushId(id) if self.max_push_id.is_some_and(|m| id < m) => {
                    return id_error("a MAX_PUSH_ID smaller than the last")
                }
                Item::MaxPushId(id) => self.max_push_id = Some(id),
                Item::CancelPush(_) => return id_error("CANCEL_PUSH of a push never promised"),
                // SETTINGS: wharf uses none of the client's (its QPACK encoder needs
                // no table; its heads stay under any sensible field section size).
                _ => {}
            }
        }
        Ok(())
    }
}

/// A request stream's reading side with its frames: what the head's chunk left, and
/// what comes after.
struct Reading {
    recv: quinn::RecvStream,
    frames: Frames,
    input: Bytes,
    /// The stream's end has been read.
    ended: bool,
}

impl Reading {
    fn new(recv: quinn::RecvStream, limit: usize) -> Self {
        Reading {
            recv,
            frames: Frames::request(limit),
            input: Bytes::new(),
            ended: false,
        }
    }

    /// The next item; `None` at the stream's end (checked to fall between frames).
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Item>, ReadFailed>> {
        loop {
            if let Some(item) = self.frames.next(&mut self.input)? {
                return Poll::Ready(Ok(Some(item)));
            }
            if self.ended {
                return Poll::Ready(Ok(None));
            }
            let read = std::pin::pin!(self.recv.read_chunk(usize::MAX, true));
            match std::task::ready!(read.poll(cx)) {
                Ok(Some(chunk)) => self.input = chunk.bytes,
                Ok(None) => {
                    self.ended = true;
                    return Poll::Ready(self.frames.end().map(|()| None).map_err(Into::into));
                }
                Err(e) => return Poll::Ready(Err(ReadFailed::Stream(e))),
            }
        }
    }

    /// Asks the client to stop sending with `c`, unless its end has been read.
    fn stop(&mut self, c: Code) {
        if !self.ended {
            let _ = self.recv.stop(code(c));
        }
    }
}

/// A stream put down before its end is read (the response went out first, or the
/// request failed) is stopped with H3_NO_ERROR (RFC 9114 §4.1), not with the code
/// 0 quinn would send as it is dropped. (A stop with another code comes first where
/// the request was malformed; quinn sends only the first.)
impl Drop for Reading {
    fn drop(&mut self) {
        self.stop(Code::NoError);
    }
}

/// Why a request stream could not be read on.
enum ReadFailed {
    /// An error of the connection.
    Conn(ConnError),
    /// The client reset the stream, or the connection is gone.
    Stream(quinn::ReadError),
}

impl From<ConnError> for ReadFailed {
    fn from(e: ConnError) -> Self {
        ReadFailed::Conn(e)
    }
}

/// Resets a request stream both ways with `c`.
fn reset(send: &mut quinn::SendStream, reading: &mut Reading, c: Code) {
    let _ = send.reset(code(c));
    reading.stop(c);
}

/// One request stream: its head read and checked, the service called, the response
/// sent. A connection error found on the way is returned.
async fn request<S: Service>(
    ctx: &ConnCtx<S>,
    conn: &quinn::Connection,
    heads: &std::sync::Mutex<Heads>,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    early: bool,
) -> Result<Option<quinn::SendStream>, ConnError> {
    let limits = &ctx.shared.limits;
    let mut reading = Reading::new(recv, limits.max_header_bytes);
    let head = std::future::poll_fn(|cx| reading.poll_item(cx));
    let block = match tokio::time::timeout(limits.header_read_timeout, head).await {
        Ok(Ok(Some(Item::Headers(block)))) => block,
        Ok(Ok(Some(_))) => {
            // Only HeadersTooLarge comes before a head (§4.2.2: 431 may answer it).
            return Ok(
                respond_bare(send, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, limits).await,
            );
        }
        Ok(Ok(None)) => {
            reset(&mut send, &mut reading, Code::RequestIncomplete);
            return Ok(None);
        }
        Ok(Err(ReadFailed::Conn(e))) => return Err(e),
        Ok(Err(ReadFailed::Stream(_))) => {
            // The client reset its request: no response either.
            let _ = send.reset(code(Code::RequestCancelled));
            return Ok(None);
        }
        Err(_) => {
            // Not processed, so the client may send it again (§4.1.1).
            tracing::debug!("HTTP/3 request head timed out: stream reset");
            reset(&mut send, &mut reading, Code::RequestRejected);
            return Ok(None);
        }
    };
    let finished = {
        let mut heads = heads.lock().unwrap_or_else(|p| p.into_inner());
        let mut collect = Collect::request(limits.max_header_bytes, true);
        heads.decoder.decode(&block, |f| collect.field(f))?;
        collect.finish_request(&mut heads.last)
    };
    let head = match finished {
        // §4.3.1: an http or https target names its authority.
        Outcome::Ok(head) if !head.names_authority() => {
            tracing::debug!("HTTP/3 request without :authority or Host: H3_MESSAGE_ERROR");
            reset(&mut send, &mut reading, Code::MessageError);
            return Ok(None);
        }
        Outcome::Ok(head) => head,
        Outcome::Malformed(why) => {
            tracing::debug!(reason = why, "malformed HTTP/3 request: H3_MESSAGE_ERROR");
            reset(&mut send, &mut reading, Code::MessageError);
            return Ok(None);
        }
        Outcome::TooLarge => {
            return Ok(
                respond_bare(send, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, limits).await,
            );
        }
    };
    let mut parts = head.parts;
    parts.version = Version::HTTP_3;
    if early {
        parts.extensions.insert(EarlyData);
    }
    if let Some(protocol) = head.protocol {
        return Ok(tunnel(ctx, conn, send, reading, parts, protocol).await);
    }
    let (body, malformed) = request_body(conn, reading, head.content_length, limits)?;
    let req = Request::from_parts(parts, body);
    let method = req.method().clone();
    let (interim, hints) = crate::interim::channel();
    let handled = ctx.handle(req, Some(interim));
    tokio::pin!(handled);
    let mut work = Hinted::new(handled, hints);
    let res = loop {
        match work.next().await {
            Next::Hint(fields) => send_hints(&mut send, &fields, limits.send_timeout).await,
            Next::Done(res) => break res,
        }
    };
    // RFC 9114 §4.1.2: a malformed request is a stream error, whatever the service
    // made of the body's failure.
    if malformed.is_some_and(|m| m.load(Ordering::Relaxed)) {
        tracing::debug!("malformed HTTP/3 request body: H3_MESSAGE_ERROR");
        let _ = send.reset(code(Code::MessageError));
        return Ok(None);
    }
    let (mut head, body) = res.into_parts();
    if let Some(EarlyHints(fields)) = head.extensions.remove::<EarlyHints>() {
        send_hints(&mut send, &fields, limits.send_timeout).await;
    }
    let out = final_head(&mut head, &method, &body);
    let finished = send_body(body, out, &mut send, limits.send_timeout).await;
    Ok(finished.then_some(send))
}

/// A final response head as wharf sends it: the implied fields added, encoded as a
/// HEADERS frame (the encoder leaves connection-specific fields out, RFC 9114
/// §4.2, in 103s and trailers too). The head's map goes back to the
/// thread's kept maps (`wharf_http::maps`) for the next request's head.
fn final_head<B: Body>(
    head: &mut http::response::Parts,
    method: &http::Method,
    body: &B,
) -> Vec<u8> {
    add_implied(head, method, body.size_hint().exact());
    let mut out = Vec::with_capacity(256);
    wharf_h3::headers_frame(Some(head.status), &head.headers, &mut out);
    wharf_http::maps::give(std::mem::take(&mut head.headers));
    out
}

/// An extended CONNECT (RFC 9220, as RFC 8441 §4 over HTTP/2): the service sees
/// the protocol and an `OnUpgrade`; a 2xx answer turns the stream's DATA both ways
/// into the tunnel's bytes (a WebSocket's frames), another answer is sent as it is.
/// The request's future lasts as long as the tunnel, so shutdown waits for it.
async fn tunnel<S: Service>(
    ctx: &ConnCtx<S>,
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    reading: Reading,
    mut parts: http::request::Parts,
    protocol: String,
) -> Option<quinn::SendStream> {
    let (pending, on_upgrade) = crate::upgrade::pending();
    parts.extensions.insert(ConnectProtocol(protocol));
    parts.extensions.insert(on_upgrade);
    let method = parts.method.clone();
    let res = ctx
        .handle(Request::from_parts(parts, RequestBody::empty()), None)
        .await;
    let (mut head, body) = res.into_parts();
    let out = final_head(&mut head, &method, &body);
    let send_timeout = ctx.shared.limits.send_timeout;
    if !head.status.is_success() {
        let finished = send_body(body, out, &mut send, send_timeout).await;
        return finished.then_some(send);
    }
    drop(body); // logged; the tunnel is the stream's body from here
    if !write(&mut send, &mut [Bytes::from(out)], send_timeout).await {
        return None;
    }
    let reader = TunnelRead {
        reading,
        conn: conn.clone(),
        chunk: Bytes::new(),
        ended: false,
    };
    let writer = TunnelWrite {
        send,
        pending: Bytes::new(),
    };
    let (upgraded, closed) = Upgraded::new(Bytes::new(), Box::new(reader), Box::new(writer));
    if pending.fulfil(upgraded) {
        let _ = closed.await;
    }
    None
}

/// The largest DATA frame a tunnel writes.
const TUNNEL_FRAME: usize = 16 * 1024;

/// A tunnel's incoming bytes: the payloads of the stream's DATA frames.
struct TunnelRead {
    reading: Reading,
    conn: quinn::Connection,
    chunk: Bytes,
    ended: bool,
}

impl AsyncRead for TunnelRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.chunk.is_empty() && !this.ended {
            match std::task::ready!(this.reading.poll_item(cx)) {
                Ok(Some(Item::Data(data))) => this.chunk = data,
                Ok(None) => this.ended = true,
                Ok(Some(_)) => {
                    // RFC 9114 §4.4 (RFC 9220 §3): only DATA once the tunnel is open.
                    this.ended = true;
                    let e = ConnError {
                        code: Code::FrameUnexpected,
                        reason: "HEADERS in a tunnel",
                    };
                    this.conn.close(code(e.code), e.reason.as_bytes());
                    return Poll::Ready(Err(io::Error::other(e)));
                }
                Err(ReadFailed::Conn(e)) => {
                    this.ended = true;
                    this.conn.close(code(e.code), e.reason.as_bytes());
                    return Poll::Ready(Err(io::Error::other(e)));
                }
                Err(ReadFailed::Stream(e)) => {
                    this.ended = true;
                    return Poll::Ready(Err(e.into()));
                }
            }
        }
        let n = this.chunk.len().min(buf.remaining());
        buf.put_slice(&this.chunk.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// A tunnel's outgoing bytes, each write one DATA frame (the frame being sent is
/// kept until it is all out).
struct TunnelWrite {
    send: quinn::SendStream,
    pending: Bytes,
}

/// A tunnel put down with a frame half sent is reset (H3_CONNECT_ERROR, §4.4): its
/// end would cut the frame, a connection error for the client (§7.1). Otherwise
/// quinn ends the stream as it is dropped.
impl Drop for TunnelWrite {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.send.reset(code(Code::ConnectError));
        }
    }
}

impl TunnelWrite {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.send).poll_write(cx, &self.pending))?;
            self.pending = self.pending.slice(n..);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TunnelWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(TUNNEL_FRAME);
        let mut frame = Vec::with_capacity(n + 9);
        wharf_h3::data_head(n as u64, &mut frame);
        frame.extend_from_slice(&buf[..n]);
        self.pending = frame.into();
        // Sent now as far as the stream takes it; the rest goes with the next write
        // or flush.
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_drain(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        let _ = self.send.finish();
        Poll::Ready(Ok(()))
    }
}

/// Sends a `103 Early Hints` head with `fields`.
async fn send_hints(send: &mut quinn::SendStream, fields: &HeaderMap, send_timeout: Duration) {
    let mut out = Vec::new();
    wharf_h3::headers_frame(Some(StatusCode::EARLY_HINTS), fields, &mut out);
    write(send, &mut [Bytes::from(out)], send_timeout).await;
}

/// Answers with `status` and no content, and ends the stream (returned once ended).
async fn respond_bare(
    mut send: quinn::SendStream,
    status: StatusCode,
    limits: &crate::Limits,
) -> Option<quinn::SendStream> {
    let mut fields = HeaderMap::new();
    fields.insert(http::header::CONTENT_LENGTH, 0.into());
    let mut out = Vec::new();
    wharf_h3::headers_frame(Some(status), &fields, &mut out);
    if !write(&mut send, &mut [Bytes::from(out)], limits.send_timeout).await {
        return None;
    }
    send.finish().ok()?;
    Some(send)
}

/// Adds what the transport adds to a final response head ([`crate::implied`]).
fn add_implied(head: &mut http::response::Parts, method: &http::Method, exact: Option<u64>) {
    if let Some(n) = crate::implied::content_length(method, head.status, &head.headers, exact) {
        head.headers.insert(http::header::CONTENT_LENGTH, n.into());
    }
    if !head.headers.contains_key(http::header::DATE) {
        let date = wharf_http::date::field_value(std::time::SystemTime::now());
        head.headers.insert(http::header::DATE, date);
    }
}

/// Sends the response: `head` (its HEADERS frame) goes with the body's first frame,
/// so that a small response leaves in one write; then DATA frame by frame, trailers,
/// and the stream's end (true once there). A client that takes nothing for
/// `send_timeout` has its stream reset.
async fn send_body<B>(
    mut body: B,
    head: Vec<u8>,
    send: &mut quinn::SendStream,
    send_timeout: Duration,
) -> bool
where
    B: Body<Data = Bytes, Error = io::Error> + Unpin,
{
    let mut out = head;
    loop {
        // The head waits for the body's first frame only while that frame is ready:
        // a body that waits (events, a long poll) has its head sent first.
        let step = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
        })
        .await;
        let mut chunks = match step {
            None => [Bytes::from(std::mem::take(&mut out)), Bytes::new()],
            Some(None) => break,
            Some(Some(Err(e))) => {
                tracing::debug!(error = %e, "response body failed: stream reset");
                let _ = send.reset(code(Code::InternalError));
                return false;
            }
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => {
                    wharf_h3::data_head(data.len() as u64, &mut out);
                    [Bytes::from(std::mem::take(&mut out)), data]
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        wharf_h3::headers_frame(None, &trailers, &mut out);
                        [Bytes::from(std::mem::take(&mut out)), Bytes::new()]
                    }
                    Err(_) => continue,
                },
            },
        };
        if !write(send, &mut chunks, send_timeout).await {
            return false;
        }
    }
    if !out.is_empty() && !write(send, &mut [Bytes::from(out)], send_timeout).await {
        return false; // (a head alone: no body frame came)
    }
    send.finish().is_ok()
}

/// Writes `chunks`; a client that takes nothing for `send_timeout` has the stream
/// reset. False when it did not all go (the client may have stopped the stream).
async fn write(send: &mut quinn::SendStream, chunks: &mut [Bytes], send_timeout: Duration) -> bool {
    match tokio::time::timeout(send_timeout, send.write_all_chunks(chunks)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            let _ = send.reset(code(Code::RequestCancelled));
            false
        }
    }
}

/// A request's body: the stream's frames, its length as declared and as received,
/// and how far it is read.
pub(crate) struct Incoming {
    reading: Reading,
    /// What [`request_body`] read before the service was called.
    first: Option<Result<Option<Item>, ReadFailed>>,
    /// To close the connection on an error of the connection's found in the body.
    conn: quinn::Connection,
    declared: Option<u64>,
    received: u64,
    /// The largest trailer section taken.
    limit: usize,
    /// How long the body may wait for the client ([`Incoming::poll_idle`]).
    idle: Duration,
    /// Armed once the body first waits; `moved`: something came since it was set.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    moved: bool,
    done: bool,
    /// The body turned out malformed (its length, its trailers).
    malformed: bool,
    /// Tells the request's task so, once the body has gone to the service.
    told: Option<Arc<AtomicBool>>,
}

impl Incoming {
    /// Reads the body's next frame: DATA, then trailers if the client sent some.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = match self.first.take() {
            Some(item) => item,
            None => match self.reading.poll_item(cx) {
                Poll::Ready(item) => {
                    self.moved = true;
                    item
                }
                Poll::Pending => return self.poll_idle(cx),
            },
        };
        let out = match item {
            Ok(Some(Item::Data(chunk))) => self.count(chunk).map(Frame::data),
            Ok(Some(Item::Headers(block))) => {
                self.done = true;
                self.at_end().and_then(|()| self.trailers(&block))
            }
            Ok(Some(_)) => {
                // Trailers too large (§4.2.2).
                self.done = true;
                Err(self.mark_malformed("trailers larger than the limit"))
            }
            Ok(None) => {
                self.done = true;
                return Poll::Ready(self.at_end().err().map(Err));
            }
            Err(ReadFailed::Conn(e)) => {
                self.done = true;
                self.conn.close(code(e.code), e.reason.as_bytes());
                Err(io::Error::other(e))
            }
            Err(ReadFailed::Stream(e)) => {
                self.done = true;
                Err(io::Error::other(e))
            }
        };
        if out.is_err() {
            self.done = true;
        }
        Poll::Ready(Some(out))
    }

    /// The body waits for the client: one that sends nothing more of it for the idle
    /// timeout has the stream stopped (H3_REQUEST_CANCELLED) and the body fails, as
    /// HTTP/1.1 and HTTP/2 bodies time out. (QUIC's own idle timeout does not come
    /// while the client keeps its connection alive.)
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.timer.is_none() || self.moved {
            let deadline = tokio::time::Instant::now() + self.idle;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.moved = false;
        }
        let timer = self.timer.as_mut().expect("armed above");
        std::task::ready!(timer.as_mut().poll(cx));
        self.done = true;
        self.reading.stop(Code::RequestCancelled);
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body timed out",
        ))))
    }

    /// RFC 9114 §4.1.2: a request whose DATA goes past its Content-Length is
    /// malformed (H3_MESSAGE_ERROR). The excess is never handed on: a proxy frames
    /// the request upstream by its Content-Length, and what went past it would reach
    /// the upstream as a request of its own.
    fn count(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        self.received += chunk.len() as u64;
        match self.declared {
            Some(declared) if self.received > declared => {
                Err(self.mark_malformed("request body longer than its Content-Length"))
            }
            _ => Ok(chunk),
        }
    }

    /// At the body's end: a body shorter than its Content-Length is malformed too.
    fn at_end(&mut self) -> io::Result<()> {
        match self.declared {
            Some(declared) if self.received != declared => {
                Err(self.mark_malformed("request body shorter than its Content-Length"))
            }
            _ => Ok(()),
        }
    }

    /// The trailers (RFC 9114 §4.1): regular fields only, and (§4.2) none of the
    /// connection-specific ones.
    fn trailers(&mut self, block: &Bytes) -> io::Result<Frame<Bytes>> {
        let mut collect = Collect::trailers(self.limit);
        if let Err(e) = qpack::decode(block, |f| collect.field(f)) {
            self.conn.close(code(e.code), e.reason.as_bytes());
            return Err(io::Error::other(e));
        }
        let fields = match collect.finish_trailers() {
            Outcome::Ok(fields) => fields,
            Outcome::Malformed(why) => return Err(self.mark_malformed(why)),
            Outcome::TooLarge => return Err(self.mark_malformed("trailers larger than the limit")),
        };
        let specific = fields
            .keys()
            .any(|n| wharf_http::fields::is_connection_specific(n.as_str()));
        if specific {
            return Err(self.mark_malformed("a connection-specific field in the trailers"));
        }
        Ok(Frame::trailers(fields))
    }

    /// The client is asked to stop sending, and the request's task will reset the
    /// stream (both with H3_MESSAGE_ERROR).
    fn mark_malformed(&mut self, why: &'static str) -> io::Error {
        self.reading.stop(Code::MessageError);
        self.malformed = true;
        if let Some(told) = &self.told {
            told.store(true, Ordering::Relaxed);
        }
        io::Error::new(io::ErrorKind::InvalidData, why)
    }
}

/// The body of a request whose head has arrived, declared `declared` bytes long. A
/// request without content (a `GET`) usually ends in the packet that brought its
/// head, and a look without waiting tells so: its body is then known to be empty,
/// and a proxy sends none upstream rather than an empty chunked one. With a body
/// comes the flag that says it turned out malformed.
fn request_body(
    conn: &quinn::Connection,
    mut reading: Reading,
    declared: Option<u64>,
    limits: &crate::Limits,
) -> Result<(RequestBody, Option<Arc<AtomicBool>>), ConnError> {
    // What has arrived after the head: often only the stream's end (after frames
    // of unknown types, which some clients send as grease).
    let mut first = None;
    if declared.unwrap_or(0) == 0 {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match reading.poll_item(&mut cx) {
            Poll::Ready(Ok(None)) => return Ok((RequestBody::empty(), None)),
            Poll::Ready(Err(ReadFailed::Conn(e))) => return Err(e),
            Poll::Ready(item) => first = Some(item),
            Poll::Pending => {}
        }
    }
    let told = Arc::new(AtomicBool::new(false));
    let body = Incoming {
        reading,
        first,
        conn: conn.clone(),
        declared,
        received: 0,
        limit: limits.max_header_bytes,
        idle: limits.idle_timeout,
        timer: None,
        moved: false,
        done: false,
        malformed: false,
        told: Some(told.clone()),
    };
    Ok((RequestBody::h3(body), Some(told)))
}
