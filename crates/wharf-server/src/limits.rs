//! Transport limits and timeouts. Every wait and every buffer is bounded; each field
//! has a safe default and a test that hits it.

use std::time::Duration;

/// Limits applied to every connection of a listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent connections; the excess is answered 503 and closed.
    pub max_connections: usize,
    /// How long a keep-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's header section, from its first byte.
    pub header_read_timeout: Duration,
    /// How long a response may stay blocked on a client that does not read.
    pub send_timeout: Duration,
    /// Requests served on one connection before it is closed (`Connection: close`).
    pub max_requests_per_connection: u64,
    /// Bytes of request line plus header section; beyond it, 431.
    pub max_header_bytes: usize,
    /// Number of request header fields; beyond it, 431.
    pub max_headers: usize,
    /// Length of the request target; beyond it, 414.
    pub max_uri_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            max_requests_per_connection: 1000,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_len: 8 * 1024,
        }
    }
}
