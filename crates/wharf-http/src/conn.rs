//! What a transport tells services about the connection that carried a request.
//!
//! Transports put these in the request extensions; services read them without knowing
//! which protocol or transport was used (TLS over TCP, or QUIC).

use std::net::SocketAddr;
use std::sync::Arc;

/// The addresses of the connection that carried a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
}

/// The TLS session of a request that arrived encrypted (HTTPS over TCP, or QUIC).
/// Its presence is what makes a request `https`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The server name the client asked for (SNI), if it sent one.
    pub server_name: Option<std::sync::Arc<str>>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The verified client certificate, when the client presented one.
    pub client: Option<Arc<ClientIdentity>>,
}

/// A client certificate that chained to a configured CA (mutual TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject distinguished name, as in RFC 4514 (`CN=alice, O=Example`).
    pub subject: String,
    /// Subject alternative names: `DNS:…`, `IP:…`, `email:…`, `URI:…`.
    pub sans: Vec<String>,
}

/// The `:protocol` of an extended CONNECT request (RFC 8441 §4, RFC 9220), which the
/// HTTP/2 and HTTP/3 transports put in the request's extensions: `websocket` asks for
/// a WebSocket over the request's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectProtocol(pub String);
