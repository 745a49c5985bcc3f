//! An upstream server as configured: its URL, checked once, and what a request
//! forwarded to it needs (the address to connect to, the authority for `Host`).

use std::fmt;

use http::uri::{Authority, Scheme, Uri};

/// One upstream server, `http://HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    authority: Authority,
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
    /// Parses `http://HOST[:PORT]` (a trailing `/` allowed). A path, query, user
    /// information or another scheme is refused: requests keep their own targets.
    pub fn parse(url: &str) -> Result<Upstream, BadUpstream> {
        let bad = |why| BadUpstream {
            url: url.to_owned(),
            why,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => {}
            Some(_) => return Err(bad("only http:// upstreams are supported")),
            None => return Err(bad("give the scheme, e.g. http://127.0.0.1:3000")),
        }
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
        Ok(Upstream { authority })
    }

    /// `HOST:PORT` to connect to (port 80 when the URL has none).
    pub fn connect_to(&self) -> String {
        let host = self.authority.host();
        format!("{host}:{}", self.authority.port_u16().unwrap_or(80))
    }

    /// The authority as configured, for a `Host` rewritten to the upstream's.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
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
        ];
        for (url, addr) in ok {
            assert_eq!(Upstream::parse(url).unwrap().connect_to(), addr, "{url}");
        }
        let bad = [
            (
                "127.0.0.1:3000",
                "give the scheme, e.g. http://127.0.0.1:3000",
            ),
            ("ftp://a.test", "only http:// upstreams are supported"),
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
