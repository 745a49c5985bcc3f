//! Choosing the site for a request or a TLS server name (name-based virtual hosting).
//!
//! One table serves both the file service (by request host) and the TLS acceptor (by
//! SNI), so a certificate and the site it belongs to are always chosen alike.
//!
//! The host is the request target's authority when it has one (absolute form, or
//! HTTP/2 and HTTP/3 `:authority`; RFC 9112 §3.2.2: it wins over `Host`), else the
//! `Host` field; compared case-insensitively, without port or trailing dot. An exact
//! name wins over a wildcard, a longer wildcard over a shorter one, and the default
//! site takes the rest.

use std::collections::HashMap;

use http::header::HOST;
use http::Request;

use crate::util::{ByteSet, UNRESERVED_OR_SUB_DELIM};

/// Site indices by name.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, usize>,
    /// (suffix including the leading dot, site), longest suffix first.
    wildcards: Vec<(String, usize)>,
    default: Option<usize>,
}

/// Why no site was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoSite(pub String);

impl Router {
    /// Adds `site`'s names; returns the name already taken, if any.
    pub fn add(&mut self, site: usize, names: &[String], default: bool) -> Result<(), String> {
        for name in names {
            if let Some(suffix) = name.strip_prefix('*') {
                if self.wildcards.iter().any(|(s, _)| s == suffix) {
                    return Err(name.clone());
                }
                self.wildcards.push((suffix.to_owned(), site));
            } else if self.exact.insert(name.clone(), site).is_some() {
                return Err(name.clone());
            }
        }
        self.wildcards
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        if default {
            if self.default.is_some() {
                return Err("default".into());
            }
            self.default = Some(site);
        }
        Ok(())
    }

    /// Whether any site has a name (else every request goes to the default site).
    pub fn has_names(&self) -> bool {
        !(self.exact.is_empty() && self.wildcards.is_empty())
    }

    /// The site for `req`: by the target's authority, else the `Host` field.
    pub fn route<B>(&self, req: &Request<B>) -> Result<usize, NoSite> {
        if let (false, Some(site)) = (self.has_names(), self.default) {
            return Ok(site); // no names to compare: nothing to parse
        }
        self.find(request_host(req).as_deref())
    }

    /// The site for a host name (no port), or for none: the default site.
    pub fn find(&self, host: Option<&str>) -> Result<usize, NoSite> {
        let host = host.map(|h| h.trim_end_matches('.').to_ascii_lowercase());
        if let Some(h) = host.as_deref() {
            if let Some(&i) = self.exact.get(h) {
                return Ok(i);
            }
            if let Some((_, i)) = self
                .wildcards
                .iter()
                .find(|(suffix, _)| h.len() > suffix.len() && h.ends_with(suffix.as_str()))
            {
                return Ok(*i);
            }
        }
        self.default.ok_or_else(|| NoSite(host.unwrap_or_default()))
    }
}

/// The host a request names: its target's authority (absolute form, `:authority`),
/// else its `Host` field; without the port.
pub fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.uri().host().map(str::to_owned).or_else(|| {
        req.headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_of)
    })
}

/// The host part of a `Host` value: `[::1]:8080` → `[::1]`, `a.test:80` → `a.test`.
pub fn host_of(value: &str) -> String {
    split_port(value.trim()).0.to_owned()
}

/// `uri-host [ ":" port ]` split before the port: `[::1]:80` → (`[::1]`, `:80`),
/// `a.test:80` → (`a.test`, `:80`), `a.test` → (`a.test`, ``).
fn split_port(v: &str) -> (&str, &str) {
    let end = if v.starts_with('[') {
        v.find(']').map_or(v.len(), |i| i + 1)
    } else {
        v.bytes().rposition(|b| b == b':').unwrap_or(v.len())
    };
    v.split_at(end)
}

/// RFC 3986 §3.2.2: what an IP literal holds between its brackets.
const IP_LITERAL: ByteSet = UNRESERVED_OR_SUB_DELIM.with(b":");

/// Whether a `Host` field value is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986
/// §3.2.2–§3.2.3), checked without allocating: an IP literal in brackets, or a
/// reg-name of unreserved characters, sub-delims and percent-encodings; the port all
/// digits. The empty value is allowed (RFC 9112 §3.2: a target without authority).
pub fn is_valid_host(value: &str) -> bool {
    let (host, rest) = split_port(value);
    let (host, rest) = (host.as_bytes(), rest.as_bytes());
    let port_ok = match rest {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty() && inner.iter().all(|&b| IP_LITERAL.contains(b))
        }
        // The two hex digits of a pct-encoding are unreserved characters themselves.
        _ => host.iter().enumerate().all(|(i, &b)| {
            UNRESERVED_OR_SUB_DELIM.contains(b)
                || (b == b'%'
                    && host
                        .get(i + 1..i + 3)
                        .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)))
        }),
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_field_values() {
        // RFC 9110 §7.2: Host = uri-host [ ":" port ]; RFC 3986 §3.2.2 host forms.
        let table = [
            ("a.test", true),
            ("a.test:8080", true),
            ("a.test:", true), // port = *DIGIT
            ("", true),
            ("127.0.0.1:80", true),
            ("[::1]", true),
            ("[::1]:8443", true),
            ("[v1.fe80::a+en1]", true),
            ("xn--bcher-kva.test", true),
            ("a%20b", true),
            ("a b", false),
            ("a%2", false),
            ("a%zz", false),
            ("user@a.test", false),
            ("a.test:80x", false),
            ("a.test:80:90", false),
            ("[::1", false),
            ("[]", false),
            ("[::1]x", false),
            ("a/b", false),
            ("a\\b", false),
        ];
        for (value, want) in table {
            assert_eq!(is_valid_host(value), want, "{value:?}");
        }
    }

    fn router() -> Router {
        let mut r = Router::default();
        r.add(0, &["example.test".into(), "*.example.test".into()], false)
            .unwrap();
        r.add(1, &["*.api.example.test".into(), "[::1]".into()], false)
            .unwrap();
        r.add(2, &["www.example.test".into()], true).unwrap();
        r
    }

    fn route(host: Option<&str>, target: &str) -> Result<usize, NoSite> {
        let mut b = Request::builder().uri(target);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        router().route(&b.body(()).unwrap())
    }

    #[test]
    fn routing_table() {
        // (Host, request target, site) — RFC 9110 §7.2, RFC 9112 §3.2.2
        let table: &[(Option<&str>, &str, Result<usize, NoSite>)] = &[
            (Some("example.test"), "/", Ok(0)),
            (Some("EXAMPLE.Test:8080"), "/", Ok(0)),
            (Some("example.test."), "/", Ok(0)),
            (Some("a.example.test"), "/", Ok(0)),
            (Some("a.b.example.test"), "/", Ok(0)),
            (Some("www.example.test"), "/", Ok(2)), // exact beats wildcard
            (Some("x.api.example.test"), "/", Ok(1)), // longer wildcard wins
            (Some("[::1]:8080"), "/", Ok(1)),
            (Some("other.test"), "/", Ok(2)), // default
            (Some("other.test"), "http://example.test/", Ok(0)), // absolute form wins
            (None, "/", Ok(2)),
        ];
        for (host, target, want) in table {
            assert_eq!(&route(*host, target), want, "{host:?} {target}");
        }
    }

    #[test]
    fn no_default_gives_the_host() {
        let mut r = Router::default();
        r.add(0, &["a.test".into()], false).unwrap();
        let req = Request::builder().header(HOST, "B.test").body(()).unwrap();
        assert_eq!(r.route(&req), Err(NoSite("b.test".into())));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = Router::default();
        r.add(0, &["a.test".into()], true).unwrap();
        assert_eq!(r.add(1, &["a.test".into()], false), Err("a.test".into()));
        assert_eq!(r.add(1, &[], true), Err("default".into()));
    }
}
