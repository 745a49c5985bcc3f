//! The accept loop: a connection cap that refuses the excess with 503 while existing
//! connections keep working, accept errors that back off instead of spinning, and a
//! shutdown token that stops accepting at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::{AccessLog, Limits, Service, Shutdown};

/// The addresses of the connection that carried a request; transports put it in the
/// request extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
}

/// What every connection of a listener shares.
pub(crate) struct Shared<S> {
    pub(crate) service: Arc<S>,
    pub(crate) limits: Limits,
    pub(crate) log: AccessLog,
    pub(crate) builder: hyper::server::conn::http1::Builder,
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 46\r\nRetry-After: 1\r\nConnection: close\r\n\r\n503 Service Unavailable: too many connections\n";

/// Serves HTTP/1.1 on `listeners` until `shutdown` is triggered. Connection tasks are
/// tracked by `shutdown`, so the caller waits for them with [`Shutdown::drained`].
///
/// The connection cap is shared by all `listeners`: `max_connections` is the limit
/// of the whole server, not of each address.
pub async fn serve<S: Service>(
    listeners: Vec<TcpListener>,
    service: Arc<S>,
    limits: Limits,
    log: AccessLog,
    shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let builder = crate::h1::builder(&limits);
    let shared = Arc::new(Shared {
        service,
        limits,
        log,
        builder,
    });
    let mut loops = tokio::task::JoinSet::new();
    for l in listeners {
        loops.spawn(accept_loop(
            l,
            shared.clone(),
            permits.clone(),
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
}

/// Accepts on one listener until shutdown.
async fn accept_loop<S: Service>(
    listener: TcpListener,
    shared: Arc<Shared<S>>,
    permits: Arc<Semaphore>,
    shutdown: Shutdown,
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
        shutdown.tracker().spawn(crate::h1::serve(
            stream,
            info,
            shared.clone(),
            shutdown.clone(),
            permit,
        ));
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
