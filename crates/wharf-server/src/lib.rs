//! wharf's transports: TCP listeners, TLS, HTTP/1.1 and HTTP/2 connections, limits,
//! access logs and graceful shutdown.
//!
//! A [`Service`] maps an `http::Request` to an `http::Response`; this crate carries bytes
//! from a socket into that request and the response back out. It never knows which site,
//! file or route it serves, and services never learn which transport carried a request.
//!
//! Layout:
//! - [`limits`]: every transport limit and timeout, as one checked struct.
//! - [`listener`]: the accept loop, its connection cap and shutdown.
//! - [`loops`]: event loops, one per CPU, that accepted TCP connections live on.
//! - `conn`: one connection: cleartext sniffing (HTTP/1.1, h2c) or the TLS handshake
//!   and ALPN; per request the host rules, 421, redirect, and the connection facts
//!   handed to the service.
//! - `h1`: one HTTP/1.1 connection: wharf's own engine (request heads on `httparse`,
//!   buffers lent only while bytes move).
//! - `pool`: the per-thread read and write buffers HTTP/1.1 and HTTP/2 connections
//!   borrow while bytes move.
//! - `h2`: one HTTP/2 connection: the event loop around wharf's sans-IO codec
//!   (`wharf-h2`), request bodies, extended CONNECT tunnels, 103 and push, and the
//!   flood defenses.
//! - `h3`: HTTP/3 over QUIC (quinn + `wharf-h3`) on the UDP port of a TLS listener.
//! - `socket`: the socket as HTTP/2 sees it: the sniffed prefix first, the
//!   client's frames metered.
//! - `watchdog`: idle, header-read and send timeouts measured on the socket itself.
//! - [`access_log`]: one line per request, written when the response body ends.
//! - [`shutdown`]: one token every task watches, and a tracker the binary waits on.
//! - [`upgrade`]: HTTP/1.1 protocol upgrades (101), for WebSocket.
//!
//! Not here: certificates (`wharf-tls`), file access, configuration files.

pub mod access_log;
mod conn;
mod h1;
mod h2;
mod h3;
mod implied;
mod interim;
pub mod limits;
pub mod listener;
pub mod loops;
mod pool;
mod service;
pub mod shutdown;
mod socket;
pub mod upgrade;
mod watchdog;

/// Entry points for the cargo-fuzz targets in `fuzz/`; only under `cfg(fuzzing)`, so
/// the parsers stay private.
#[cfg(fuzzing)]
pub mod fuzz {
    /// Parses `data` as an HTTP/1.1 request head; a head found must not depend on
    /// the bytes after it. Panics on a broken property.
    pub fn h1_head(data: &[u8]) {
        crate::h1::fuzz_head(data)
    }
}

/// Locks a mutex of one connection's (its task and its request bodies take it, each
/// briefly); a panic elsewhere while it was held does not make it unusable.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use access_log::{AccessLog, LogFormat};
pub use conn::Mode;
pub use limits::{Http, Limits};
pub use listener::{serve, Listener};
pub use loops::Loops;
pub use service::{Exchange, RequestBody, Service};
pub use shutdown::Shutdown;
pub use wharf_http::conn::ConnInfo;
