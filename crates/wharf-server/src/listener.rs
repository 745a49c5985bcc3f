//! The accept loop: a connection cap that refuses the excess with 503 while existing
//! connections keep working, accept errors that back off instead of spinning, a
//! shutdown token that stops accepting at once, and each accepted connection run
//! where it is to live: on the event loop whose turn it is ([`Loops`]), or where it
//! was accepted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::conn::Mode;
use crate::{AccessLog, ConnInfo, Http, Limits, Loops, Service, Shutdown};

/// A bound socket and what it speaks.
pub struct Listener {
    /// The bound TCP socket.
    pub tcp: TcpListener,
    /// Cleartext (HTTP/1.1, h2c, optionally redirecting) or TLS.
    pub mode: Mode,
    /// For a TLS listener: a UDP socket on the same address, to serve HTTP/3 on.
    pub quic: Option<std::net::UdpSocket>,
}

/// What every connection shares.
pub(crate) struct Shared<S> {
    pub(crate) service: Arc<S>,
    pub(crate) limits: Limits,
    pub(crate) http: Http,
    pub(crate) log: AccessLog,
    pub(crate) h2: wharf_h2::Config,
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 46\r\nRetry-After: 1\r\nConnection: close\r\n\r\n503 Service Unavailable: too many connections\n";

/// Serves HTTP on `listeners` until `shutdown` is triggered. Connection tasks are
/// tracked by `shutdown`, so the caller waits for them with [`Shutdown::drained`].
///
/// The connection cap is shared by all `listeners`: `max_connections` is the limit
/// of the whole server, not of each address. TCP connections run on `loops` when
/// given, else on the runtime that accepted them.
pub async fn serve<S: Service>(
    listeners: Vec<Listener>,
    service: Arc<S>,
    limits: Limits,
    http: Http,
    log: AccessLog,
    shutdown: Shutdown,
    loops: Option<Arc<Loops>>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let shared = Arc::new(Shared {
        service,
        h2: crate::h2::config(&limits),
        limits,
        http,
        log,
    });
    let mut accepting = tokio::task::JoinSet::new();
    for mut l in listeners {
        if let (Some(udp), Mode::Tls { acceptor, alt_svc }) = (l.quic.take(), &mut l.mode) {
            match quic(udp, acceptor, &shared) {
                Ok((endpoint, config, advert)) => {
                    *alt_svc = Some(advert);
                    accepting.spawn(crate::h3::accept_loop(
                        endpoint,
                        config,
                        acceptor.clone(),
                        shared.clone(),
                        permits.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "cannot serve HTTP/3; TCP only"),
            }
        }
        accepting.spawn(accept_loop(
            l,
            shared.clone(),
            permits.clone(),
            shutdown.clone(),
            loops.clone(),
        ));
    }
    while accepting.join_next().await.is_some() {}
}

/// The QUIC endpoint on `udp`, its settings, and the `Alt-Svc` value that announces it.
fn quic<S>(
    udp: std::net::UdpSocket,
    acceptor: &Arc<wharf_tls::Acceptor>,
    shared: &Shared<S>,
) -> std::io::Result<(quinn::Endpoint, quinn::ServerConfig, http::HeaderValue)> {
    let port = udp.local_addr()?.port();
    let (endpoint, config) = crate::h3::endpoint(udp, acceptor, &shared.limits)?;
    let advert = http::HeaderValue::try_from(format!("h3=\":{port}\"; ma=86400"))
        .map_err(std::io::Error::other)?;
    Ok((endpoint, config, advert))
}

/// Accepts on one listener until shutdown.
async fn accept_loop<S: Service>(
    Listener {
        tcp: listener,
        mode,
        ..
    }: Listener,
    shared: Arc<Shared<S>>,
    permits: Arc<Semaphore>,
    shutdown: Shutdown,
    loops: Option<Arc<Loops>>,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "listener has no local address");
            return;
        }
    };
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.triggered() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(5);
                x
            }
            Err(e) => {
                // EMFILE and friends: wait for descriptors to free up instead of spinning.
                tracing::warn!(error = %e, ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream, peer);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let info = ConnInfo { peer, local };
        let (mode, shared, stop) = (mode.clone(), shared.clone(), shutdown.clone());
        let Some(loops) = &loops else {
            shutdown
                .tracker()
                .spawn(crate::conn::serve(stream, mode, info, shared, stop, permit));
            continue;
        };
        // Watched from now on by the loop's own `epoll` instead of this runtime's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "cannot hand the connection to a loop");
                continue;
            }
        };
        loops
            .next()
            .spawn(shutdown.tracker().track_future(async move {
                match TcpStream::from_std(stream) {
                    Ok(stream) => {
                        crate::conn::serve(stream, mode, info, shared, stop, permit).await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %peer, "cannot hand the connection to a loop")
                    }
                }
            }));
    }
    tracing::info!(%local, "listener stopped accepting");
}

/// Answers a connection over the cap with 503 and closes it, without waiting on it.
fn refuse(stream: TcpStream, peer: SocketAddr) {
    tracing::warn!(%peer, "refusing connection: connection limit reached");
    let _ = stream.try_write(REFUSAL);
    if let Ok(std) = stream.into_std() {
        let _ = std.shutdown(std::net::Shutdown::Write);
    }
}
