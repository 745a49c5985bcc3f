//! wharf's transports: TCP listeners, HTTP/1.1 connections, limits, access logs and
//! graceful shutdown.
//!
//! A [`Service`] maps an `http::Request` to an `http::Response`; this crate carries bytes
//! from a socket into that request and the response back out. It never knows which site,
//! file or route it serves, and services never learn which transport carried a request.
//!
//! Layout:
//! - [`limits`]: every transport limit and timeout, as one checked struct.
//! - [`listener`]: the accept loop, its connection cap and shutdown.
//! - `h1`: one HTTP/1.1 connection over hyper, plus the HTTP/1.1 framing checks
//!   (Host, URI length, requests per connection) that belong to RFC 9112.
//! - `socket`: the socket as hyper sees it, with writes corked so that a batch of
//!   pipelined responses leaves in one write.
//! - `watchdog`: idle, header-read and send timeouts measured on the socket itself.
//! - [`access_log`]: one line per request, written when the response body ends.
//! - [`shutdown`]: one token every task watches, and a tracker the binary waits on.
//!
//! Not here: TLS, HTTP/2 and HTTP/3 (later transports plug in beside `h1`), file
//! access, configuration files.

pub mod access_log;
mod h1;
pub mod limits;
pub mod listener;
mod service;
pub mod shutdown;
mod socket;
mod watchdog;

pub use access_log::{AccessLog, LogFormat};
pub use limits::Limits;
pub use listener::{serve, ConnInfo};
pub use service::{RequestBody, Service};
pub use shutdown::Shutdown;
