//! HTTP/3 (RFC 9114) over QUIC (RFC 9000), with quinn and wharf's own HTTP/3 layer
//! (`wharf-h3`), on the UDP port of a TLS listener.
//!
//! quinn does QUIC: anti-amplification (RFC 9000 §8), path validation when a client's
//! address changes (connection migration, §9), UDP GSO/GRO where the kernel has them,
//! the idle timeout. This module accepts connections under the same connection cap as
//! TCP, validates client addresses with a Retry first when `quic_retry` is on, and
//! runs every request through `conn` and the service like HTTP/1.1 and HTTP/2 do.
//!
//! HTTP/3 itself is `wharf-h3`'s: this module opens wharf's control stream and reads
//! the client's control and QPACK streams; on each request stream (`request`) the
//! frames read go to `wharf_h3::Frames` (`body`: the head, then the body services
//! read) and the frames made are written. A response head is one HEADERS frame
//! encoded straight from the service's fields with QPACK's static table; a small
//! response leaves in one write with its body. An extended CONNECT (RFC 9220,
//! `tunnel`) turns its stream into an upgraded connection, as for WebSocket over
//! HTTP/2. Errors of the connection close it with the code RFC 9114 names; errors
//! of a request reset its stream.
//!
//! 0-RTT: a resumed client may send requests before the handshake completes. They
//! are replayable (RFC 8470), so only safe methods are served from early data; any
//! other method gets 425 Too Early and the client retries after the handshake.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wharf_h2::head::LastTarget;
use wharf_h3::{qpack, stream_type, varint, Code, ConnError, Frames, Item, Settings};
use wharf_http::conn::TlsInfo;

use wharf_tls::{Acceptor, ClientAuth};

use crate::conn::{ConnCtx, Tls};
use crate::listener::Shared;
use crate::watchdog::Watchdog;
use crate::{ConnInfo, Service, Shutdown};

mod body;
mod request;
mod tunnel;

pub(crate) use body::Incoming;
use request::request;

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

/// Closes `conn` with the error's code and reason (RFC 9114 §8), and hands the error
/// back.
fn close(conn: &quinn::Connection, e: ConnError) -> ConnError {
    conn.close(code(e.code), e.reason.as_bytes());
    e
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
                Ok(sent) => recent.keep(sent),
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
        return Err(close(conn, e));
    }
    let goaway = wharf_h3::frame::goaway(next_id);
    let sent = control.write_all(&goaway);
    let _ = tokio::time::timeout(ctx.shared.limits.send_timeout, sent).await;
    while let Some(done) = requests.next().await {
        recent.keep(done.map_err(|e| close(conn, e))?);
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

    /// Keeps the stream of a response sent whole, if there is one.
    fn keep(&mut self, sent: Option<quinn::SendStream>) {
        let Some(send) = sent else { return };
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
            stream_type::PUSH => return Err(creation_error("a push stream from a client")),
            _ => return Ok(false),
        };
        if std::mem::replace(seen, true) {
            return Err(creation_error("a second control or QPACK stream"));
        }
        Ok(true)
    }
}

/// H3_STREAM_CREATION_ERROR, for `reason`.
fn creation_error(reason: &'static str) -> ConnError {
    ConnError::new(Code::StreamCreationError, reason)
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
    // The type's bytes so far: a type cut between chunks is rare, and only then
    // are chunks joined.
    let mut head = Bytes::new();
    loop {
        let chunk = match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => chunk.bytes,
            _ => return Uni::Gone,
        };
        head = match head.is_empty() {
            true => chunk,
            false => [&head[..], &chunk[..]].concat().into(),
        };
        let mut pos = 0;
        if let Some(kind) = varint::read(&head, &mut pos) {
            if !matches!(kind, 0..=3) {
                let _ = recv.stop(code(Code::StreamCreationError));
                return Uni::Gone;
            }
            return Uni::Typed(kind, recv, head.slice(pos..));
        }
    }
}

/// Reads one of the client's critical streams to its end, which is an error (§6.2.1,
/// RFC 9204 §4.2): the control stream's frames checked, the QPACK streams'
/// instructions checked against a table of capacity 0.
async fn critical(kind: u64, mut recv: quinn::RecvStream, first: Bytes) -> Uni {
    let mut reader = match kind {
        stream_type::CONTROL => Critical::Control(Control::default()),
        stream_type::ENCODER => Critical::Encoder,
        _ => Critical::Decoder(qpack::DecoderStream::default()),
    };
    let mut chunk = first;
    loop {
        let checked = match &mut reader {
            Critical::Control(c) => c.read(&mut chunk),
            Critical::Encoder => qpack::check_encoder_stream(&chunk),
            Critical::Decoder(d) => d.check(&chunk),
        };
        if let Err(e) = checked {
            return Uni::Failed(e);
        }
        // A chunk shares the whole datagram it came in: not held while the stream
        // waits, which on these streams is the connection's life.
        drop(chunk);
        chunk = match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(c)) => c.bytes,
            // A stream the connection's end took down is no error of the client's.
            Err(quinn::ReadError::ConnectionLost(_)) => return Uni::Gone,
            Ok(None) | Err(_) => {
                return Uni::Failed(ConnError::new(
                    Code::ClosedCriticalStream,
                    "the client closed a control or QPACK stream",
                ))
            }
        };
    }
}

/// What reads one of the client's critical streams.
enum Critical {
    Control(Control),
    /// QPACK's encoder stream: its bytes are checked alone.
    Encoder,
    Decoder(qpack::DecoderStream),
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
        let id_error = |reason| Err(ConnError::new(Code::IdError, reason));
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
