//! HTTP/1.1 message framing (RFC 9112), sans-IO, for both ends of a connection.
//!
//! wharf's HTTP/1.1 server (`wharf-server`'s `h1`) and its client to upstreams
//! (`wharf-proxy`) read and write the same syntax: how long a body is (§6.3), the
//! chunked coding and its trailer section (§7.1), which fields say the connection
//! persists (§9.3). Those rules live here once, without I/O, so that both ends agree
//! on where a message ends, which is what request smuggling exploits when they do
//! not.
//!
//! # Modules
//! - [`framing`] — `Content-Length` lists, `Transfer-Encoding` codings, connection
//!   options, field sections from `httparse`.
//! - [`chunked`] — the chunked coding: a decoder that points into the caller's
//!   buffer, trailer sections as fields, and the encoder's chunk lines.
//! - [`client`] — the client's side: request heads written, response heads parsed
//!   with the body's framing decided by the request method and status.

/// Test support, for this crate's tests and, through the `arbitrary` feature,
/// `wharf-server`'s; not in production builds.
#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;
pub mod chunked;
pub mod client;
pub mod framing;
