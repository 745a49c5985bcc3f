//! Transport limits and timeouts. Every wait and every buffer is bounded; each field
//! has a safe default and a test that hits it.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Limits applied to every connection of a listener. In `wharf.toml` this is the
/// `[limits]` table; durations are written `"60s"`, `"500ms"`, `"2m"` or `"1h"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent connections; the excess is answered 503 and closed.
    pub max_connections: usize,
    /// How long a keep-alive connection may sit between requests.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's header section, from its first byte.
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// How long a response may stay blocked on a client that does not read.
    #[serde(deserialize_with = "duration")]
    pub send_timeout: Duration,
    /// Requests served on one connection before it is closed (`Connection: close`).
    pub max_requests_per_connection: u64,
    /// Bytes of request line plus header section; beyond it, 431.
    pub max_header_bytes: usize,
    /// Number of request header fields (at most 256); beyond it, 431.
    pub max_headers: usize,
    /// Length of the request target; beyond it, 414.
    pub max_uri_len: usize,
    /// HTTP/2 and HTTP/3 streams a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 flow-control window of each request body, in bytes.
    pub stream_window: u32,
    /// HTTP/2 flow-control window of a whole connection, in bytes.
    pub connection_window: u32,
    /// How long a TLS handshake may take, from the connection's acceptance.
    #[serde(deserialize_with = "duration")]
    pub tls_handshake_timeout: Duration,
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
            max_concurrent_streams: 128,
            stream_window: 256 * 1024,
            connection_window: 1024 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Protocol options (`[http]` in `wharf.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Send `103 Early Hints` over HTTP/1.1 too (HTTP/2 and HTTP/3 always send them).
    /// Browsers accept them; some old HTTP/1.1 clients and proxies do not.
    pub early_hints_http1: bool,
    /// Serve HTTP/3 (QUIC) on the UDP port of every TLS listener, announced with
    /// `Alt-Svc`.
    pub http3: bool,
    /// Validate a QUIC client's address with a Retry before its handshake (RFC 9000
    /// §8.1): one more round trip for new clients, no work for spoofed addresses.
    pub quic_retry: bool,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            early_hints_http1: false,
            http3: true,
            quic_retry: true,
        }
    }
}

/// Reads a duration written as a number and a unit: `ms`, `s`, `m` or `h`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: expected e.g. \"60s\", \"500ms\", \"2m\", \"1h\""
        ))
    })
}

/// Parses `"60s"`, `"500ms"`, `"2m"`, `"1h"`; zero and other forms are `None`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table = [
            ("60s", Some(Duration::from_secs(60))),
            ("500ms", Some(Duration::from_millis(500))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("0s", None),
            ("60", None),
            ("s", None),
            ("-1s", None),
            ("1.5s", None),
            ("1d", None),
            ("99999999999999999999h", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), want, "{text}");
        }
    }
}
