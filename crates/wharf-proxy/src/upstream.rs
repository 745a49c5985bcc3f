//! An upstream server as configured: its URL, checked once, and what a request
//! forwarded to it needs (the address to connect to, the authority for `Host`, the
//! protocol: `http://` HTTP/1.1, `h2c://` HTTP/2 with prior knowledge, `https://`
//! TLS with the protocol its ALPN picks, HTTP/2 or HTTP/1.1).
//!
//! A member found in DNS keeps the name it was found under (for `Host`, the TLS
//! server name and the certificate check) and connects to the address it resolved to.

use std::fmt;
use std::net::SocketAddr;

use http::uri::{Authority, Scheme, Uri};

/// One upstream server, `http://`, `h2c://` or `https://HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    authority: Authority,
    protocol: Protocol,
    /// Where to connect, when resolved by discovery (else the authority's host).
    address: Option<SocketAddr>,
}

/// How wharf talks to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 over TCP (`http://`).
    Http1,
    /// HTTP/2 over TCP with prior knowledge (`h2c://`, RFC 9113 §3.3).
    H2c,
    /// TLS, then HTTP/2 or HTTP/1.1 as ALPN decides (`https://`).
    Tls,
}

impl Protocol {
    /// Its URL scheme: `http`, `h2c` or `https`.
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http1 => "http",
            Protocol::H2c => "h2c",
            Protocol::Tls => "https",
        }
    }
}

/// A URL that cannot name an upstream, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("upstream {url}: {why}")]
pub struct BadUpstream {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Upstream {
    /// Parses `http://`, `h2c://` or `https://HOST[:PORT]` (a trailing `/` allowed).
    /// A path, query, user information or another scheme is refused: requests keep
    /// their own targets.
    pub fn parse(url: &str) -> Result<Upstream, BadUpstream> {
        let bad = |why| BadUpstream {
            url: url.to_owned(),
            why,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let protocol = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => Protocol::Http1,
            Some(s) if *s == Scheme::HTTPS => Protocol::Tls,
            Some(s) if s.as_str() == "h2c" => Protocol::H2c,
            Some(_) => return Err(bad("the scheme must be http://, h2c:// or https://")),
            None => return Err(bad("give the scheme, e.g. http://127.0.0.1:3000")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
        if authority.as_str().contains('@') {
            return Err(bad("user information is not allowed"));
        }
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(
                "a path or query is not allowed: requests keep their own",
            ));
        }
        Ok(Upstream {
            authority,
            protocol,
            address: None,
        })
    }

    /// The same upstream, reached at `address` (a resolved address of its host).
    pub fn at(&self, address: SocketAddr) -> Upstream {
        Upstream {
            address: Some(address),
            ..self.clone()
        }
    }

    /// The port of the authority (80, or 443 for `https://`, when it names none).
    pub fn port(&self) -> u16 {
        let default = if self.protocol == Protocol::Tls {
            443
        } else {
            80
        };
        self.authority.port_u16().unwrap_or(default)
    }

    /// `HOST:PORT` to connect to (port 80, or 443 for `https://`, when the URL has
    /// none).
    pub fn connect_to(&self) -> String {
        match self.address {
            Some(a) => a.to_string(),
            None => format!("{}:{}", self.authority.host(), self.port()),
        }
    }

    /// The name the upstream's certificate must carry (and the TLS server name):
    /// the host, without brackets for an IPv6 address.
    pub fn tls_name(&self) -> &str {
        self.authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }

    /// How wharf talks to it.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The authority as configured, for a `Host` rewritten to the upstream's.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.protocol.scheme(), self.authority)?;
        match self.address {
            Some(a) => write!(f, " ({a})"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let ok = [
            ("http://127.0.0.1:3000", "127.0.0.1:3000"),
            ("http://app.internal/", "app.internal:80"),
            ("http://[::1]:8080", "[::1]:8080"),
            ("https://app.internal", "app.internal:443"),
            ("h2c://127.0.0.1:50051", "127.0.0.1:50051"),
        ];
        for (url, addr) in ok {
            assert_eq!(Upstream::parse(url).unwrap().connect_to(), addr, "{url}");
        }
        let found = Upstream::parse("https://api.internal")
            .unwrap()
            .at("10.0.0.7:8443".parse().unwrap());
        assert_eq!(found.connect_to(), "10.0.0.7:8443");
        assert_eq!(
            found.tls_name(),
            "api.internal",
            "the name it was found under"
        );
        assert_eq!(found.to_string(), "https://api.internal (10.0.0.7:8443)");
        let bad = [
            (
                "127.0.0.1:3000",
                "give the scheme, e.g. http://127.0.0.1:3000",
            ),
            (
                "ftp://a.test",
                "the scheme must be http://, h2c:// or https://",
            ),
            ("http://u:p@a.test", "user information is not allowed"),
            (
                "http://a.test/api",
                "a path or query is not allowed: requests keep their own",
            ),
            (
                "http://a.test/?x=1",
                "a path or query is not allowed: requests keep their own",
            ),
            ("http:// a", "not a URL"),
        ];
        for (url, why) in bad {
            assert_eq!(Upstream::parse(url).unwrap_err().why, why, "{url}");
        }
    }
}
