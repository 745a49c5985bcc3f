//! A request's header section, checked as RFC 9113 §8 requires and turned into
//! `http::request::Parts`. HTTP/3 (RFC 9114 §4.2, §4.3) has the same rules, and
//! wharf's HTTP/3 layer (`wharf-h3`) checks its heads here too.
//!
//! Every rule broken here makes the request malformed (§8.1.1): the stream is reset
//! with PROTOCOL_ERROR and the connection goes on. A section larger than the limit is
//! still decoded to its end (HPACK's table must stay in step) but not kept.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Uri, Version};

use crate::hpack::Field;

/// The size of a field for SETTINGS_MAX_HEADER_LIST_SIZE (§6.5.2).
fn field_size(f: &Field) -> usize {
    f.name.len() + f.value.len() + 32
}

/// Collects the fields of one header block.
#[derive(Default)]
pub struct Collect {
    pseudo: Pseudo,
    headers: HeaderMap,
    regular_seen: bool,
    size: usize,
    limit: usize,
    /// Why the section is malformed (the first reason found).
    malformed: Option<&'static str>,
    content_length: Option<u64>,
    /// A `Host` field is among the regular fields.
    host: bool,
    trailers: bool,
    connect_protocol: bool,
}

#[derive(Default)]
struct Pseudo {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    protocol: Option<Bytes>,
}

/// A checked request head.
pub struct RequestHead {
    /// The method, target and regular fields (version HTTP/2).
    pub parts: http::request::Parts,
    /// The `:protocol` of an extended CONNECT (RFC 8441).
    pub protocol: Option<String>,
    /// The Content-Length field's value, when sent.
    pub content_length: Option<u64>,
    /// `:scheme` is `http` or `https`, whose targets have an authority: RFC 9114
    /// §4.3.1 (not RFC 9113) requires `:authority` or `Host` then, and HTTP/3
    /// checks it with [`RequestHead::names_authority`].
    pub authority_required: bool,
}

impl RequestHead {
    /// Whether the request names its authority where its scheme requires one: in
    /// `:authority` (which cannot be empty), or in a `Host` that is not empty.
    pub fn names_authority(&self) -> bool {
        let host = || self.parts.headers.get(HOST).is_some_and(|h| !h.is_empty());
        !self.authority_required || self.parts.uri.authority().is_some() || host()
    }
}

/// What a finished block is.
pub enum Outcome<T> {
    /// Well-formed.
    Ok(T),
    /// Malformed, and why.
    Malformed(&'static str),
    /// Larger than the limit.
    TooLarge,
}

impl Collect {
    /// For a request's head; `connect_protocol`: `:protocol` is allowed (RFC 8441).
    /// The fields go into one of the thread's reused maps (`wharf_http::maps`).
    pub fn request(limit: usize, connect_protocol: bool) -> Self {
        Collect {
            limit,
            connect_protocol,
            headers: wharf_http::maps::take(0),
            ..Collect::default()
        }
    }

    /// For trailers: regular fields only (§8.1).
    pub fn trailers(limit: usize) -> Self {
        Collect {
            limit,
            trailers: true,
            ..Collect::default()
        }
    }

    /// Takes one field: lent when it is an entry of HPACK's table, so only what is
    /// kept of it is cloned.
    pub fn field(&mut self, f: Cow<'_, Field>) {
        self.size += field_size(&f);
        if self.size > self.limit || self.malformed.is_some() {
            return;
        }
        if let Err(why) = self.take(f) {
            self.malformed = Some(why);
        }
    }

    fn take(&mut self, f: Cow<'_, Field>) -> Result<(), &'static str> {
        if f.name.first() == Some(&b':') {
            if self.regular_seen {
                return Err("a pseudo-header field after a regular field");
            }
            if self.trailers {
                return Err("a pseudo-header field in trailers");
            }
            let p = &mut self.pseudo;
            let slot = match &f.name[..] {
                b":method" => &mut p.method,
                b":scheme" => &mut p.scheme,
                b":authority" => &mut p.authority,
                b":path" => &mut p.path,
                b":protocol" if self.connect_protocol => &mut p.protocol,
                _ => return Err("an unknown or response pseudo-header field"),
            };
            let value = match f {
                Cow::Owned(f) => f.value,
                Cow::Borrowed(f) => f.value.clone(),
            };
            if slot.replace(value).is_some() {
                return Err("a repeated pseudo-header field");
            }
            return Ok(());
        }
        self.regular_seen = true;
        let sensitive = f.sensitive;
        let (name, mut value) = match f {
            Cow::Borrowed(Field {
                header: Some((name, value)),
                ..
            }) => (name.clone(), value.clone()),
            Cow::Borrowed(f) => crate::hpack::regular_field(&f.name, f.value.clone())?,
            Cow::Owned(Field {
                header: Some(header),
                ..
            }) => header,
            Cow::Owned(f) => crate::hpack::regular_field(&f.name, f.value)?,
        };
        if let Some(why) = wharf_http::fields::malformed_in_h2_h3_request(&name, &value) {
            return Err(why);
        }
        let padded = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t'));
        if padded(value.as_bytes().first()) || padded(value.as_bytes().last()) {
            return Err("a field value that starts or ends with whitespace");
        }
        self.host |= name == HOST;
        if name == CONTENT_LENGTH {
            let n = std::str::from_utf8(value.as_bytes())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("an invalid Content-Length")?;
            if self.content_length.replace(n).is_some_and(|m| m != n) {
                return Err("conflicting Content-Length values");
            }
        }
        value.set_sensitive(sensitive);
        self.headers.append(name, value);
        Ok(())
    }

    /// The trailers, once the block is complete.
    pub fn finish_trailers(self) -> Outcome<HeaderMap> {
        match (self.size > self.limit, self.malformed) {
            (true, _) => Outcome::TooLarge,
            (_, Some(why)) => Outcome::Malformed(why),
            _ => Outcome::Ok(self.headers),
        }
    }

    /// The request head, once the block is complete (§8.3.1, §8.5, RFC 8441 §4).
    /// `last` is the connection's last target, reused where this one is the same.
    pub fn finish_request(self, last: &mut LastTarget) -> Outcome<RequestHead> {
        if self.size > self.limit {
            return Outcome::TooLarge;
        }
        if let Some(why) = self.malformed {
            return Outcome::Malformed(why);
        }
        match self.build(last) {
            Ok(head) => Outcome::Ok(head),
            Err(why) => Outcome::Malformed(why),
        }
    }

    fn build(self, last: &mut LastTarget) -> Result<RequestHead, &'static str> {
        let p = self.pseudo;
        let method = p.method.ok_or("no :method")?;
        let method = Method::from_bytes(&method).map_err(|_| "an invalid :method")?;
        let connect = method == Method::CONNECT;
        if p.protocol.is_some() && !connect {
            return Err(":protocol without CONNECT");
        }
        let mut authority_required = false;
        let uri = if connect && p.protocol.is_none() {
            // §8.5: only :authority, which names the tunnel's far end.
            if p.scheme.is_some() || p.path.is_some() {
                return Err("CONNECT with :scheme or :path");
            }
            let authority = p.authority.as_ref().ok_or("CONNECT without :authority")?;
            let uri =
                Uri::from_maybe_shared(authority.clone()).map_err(|_| "an invalid :authority")?;
            if uri.authority().is_none() || uri.scheme().is_some() {
                return Err("an invalid :authority");
            }
            uri
        } else {
            let scheme = p.scheme.ok_or("no :scheme")?;
            authority_required = matches!(&scheme[..], b"http" | b"https");
            let path = p.path.ok_or("no :path")?;
            if path.is_empty() {
                return Err("an empty :path");
            }
            let invalid = |_| "an invalid :scheme, :authority or :path";
            let mut parts = http::uri::Parts::default();
            let path = reused(&path, &mut last.path, PathAndQuery::as_str, |b| {
                PathAndQuery::from_maybe_shared(b)
            });
            parts.path_and_query = Some(path.map_err(invalid)?);
            if let Some(a) = &p.authority {
                parts.scheme = Some(Scheme::try_from(&scheme[..]).map_err(invalid)?);
                let authority = reused(a, &mut last.authority, Authority::as_str, |b| {
                    Authority::from_maybe_shared(b)
                });
                parts.authority = Some(authority.map_err(invalid)?);
            }
            Uri::from_parts(parts).map_err(|_| "an invalid :scheme, :authority or :path")?
        };
        // (Looked up only when sent: a lookup costs a hash of the name.)
        let host = self.host.then(|| self.headers.get(HOST)).flatten();
        if let (Some(host), Some(authority)) = (host, &p.authority) {
            if !host.as_bytes().eq_ignore_ascii_case(authority) {
                return Err("Host differs from :authority");
            }
        }
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = Version::HTTP_2;
        parts.headers = self.headers;
        let protocol = match p.protocol {
            Some(v) => Some(String::from_utf8(v.to_vec()).map_err(|_| "an invalid :protocol")?),
            None => None,
        };
        Ok(RequestHead {
            parts,
            protocol,
            content_length: self.content_length,
            authority_required,
        })
    }
}

/// A connection's last request target, parsed: a client sends the requests of one
/// origin on a connection, often for the same resource, and parsing the authority
/// and the path was the costliest part of building a target.
#[derive(Debug, Default)]
pub struct LastTarget {
    authority: Option<Authority>,
    path: Option<PathAndQuery>,
}

/// `raw` parsed: `last` again when its text (`text`) is the same, else parsed from
/// its own copy (so that it keeps no header block alive) and remembered in `last`.
fn reused<T: Clone>(
    raw: &Bytes,
    last: &mut Option<T>,
    text: fn(&T) -> &str,
    parse: impl FnOnce(Bytes) -> Result<T, http::uri::InvalidUri>,
) -> Result<T, http::uri::InvalidUri> {
    if let Some(same) = last.as_ref().filter(|t| text(t).as_bytes() == &raw[..]) {
        return Ok(same.clone());
    }
    let parsed = parse(Bytes::copy_from_slice(raw))?;
    *last = Some(parsed.clone());
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, value: &str) -> Field {
        Field::new(
            Bytes::copy_from_slice(name.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
            false,
        )
    }

    fn request(fields: &[(&str, &str)]) -> Outcome<RequestHead> {
        request_after(fields, &mut LastTarget::default())
    }

    /// A request on a connection whose last target was `last`.
    fn request_after(fields: &[(&str, &str)], last: &mut LastTarget) -> Outcome<RequestHead> {
        let mut c = Collect::request(16 * 1024, true);
        for (n, v) in fields {
            c.field(Cow::Owned(f(n, v)));
        }
        c.finish_request(last)
    }

    /// A connection's requests each get their own `:authority` and `:path`, whether
    /// the last one's again (then reused: the same bytes) or not; an invalid one is
    /// refused either way and leaves the last one as it was.
    #[test]
    fn the_last_target_is_reused_only_when_the_same() {
        let mut last = LastTarget::default();
        let mut before: Option<(String, String, *const u8, *const u8)> = None;
        for (authority, path) in [
            ("example.com", "/"),
            ("example.com", "/"),
            ("example.com:8443", "/"),
            ("example.com:8443", "/a?b"),
            ("EXAMPLE.com", "/a?b"),
            ("EXAMPLE.com", "/A?b"),
            ("a b", "/A?b"),
            ("EXAMPLE.com", "/a b"),
        ] {
            let fields = [
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", authority),
                (":path", path),
            ];
            let kept = |l: &LastTarget| {
                let (a, p) = (l.authority.as_ref().unwrap(), l.path.as_ref().unwrap());
                (a.to_string(), p.to_string())
            };
            match request_after(&fields, &mut last) {
                Outcome::Ok(head) => {
                    let uri = head.parts.uri;
                    let (a, p) = (uri.authority().unwrap().as_str(), uri.path_and_query());
                    assert_eq!((a, p.unwrap().as_str()), (authority, path));
                    assert_eq!(kept(&last), (authority.to_string(), path.to_string()));
                    let (a_at, p_at) = (a.as_ptr(), p.unwrap().as_str().as_ptr());
                    if let Some((ba, bp, ba_at, bp_at)) = &before {
                        assert_eq!(ba == authority, *ba_at == a_at, "{authority} reused");
                        assert_eq!(bp == path, *bp_at == p_at, "{path} reused");
                    }
                    before = Some((authority.into(), path.into(), a_at, p_at));
                }
                Outcome::Malformed(_) => {
                    assert!(authority.contains(' ') || path.contains(' '));
                    assert_eq!(kept(&last), ("EXAMPLE.com".into(), "/A?b".into()));
                }
                Outcome::TooLarge => unreachable!(),
            }
        }
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/a?b"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        GET.iter().chain(extra).copied().collect()
    }

    #[test]
    fn a_valid_request() {
        let Outcome::Ok(head) = request(&with(&[("accept", "*/*"), ("content-length", "3")]))
        else {
            panic!("valid request refused")
        };
        assert_eq!(head.parts.method, Method::GET);
        assert_eq!(head.parts.uri, "https://example.com/a?b");
        assert_eq!(head.parts.headers["accept"], "*/*");
        assert_eq!(head.content_length, Some(3));
        assert_eq!(head.parts.version, Version::HTTP_2);
    }

    /// Each case is malformed under the RFC section named.
    #[test]
    fn malformed_requests() {
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("§8.3.1 no :method", GET[1..].to_vec()),
            ("§8.3.1 no :scheme", vec![GET[0], GET[2], GET[3]]),
            ("§8.3.1 no :path", GET[..3].to_vec()),
            (
                "§8.3.1 empty :path",
                vec![GET[0], GET[1], GET[2], (":path", "")],
            ),
            ("§8.3 repeated", with(&[(":path", "/")])),
            ("§8.3 unknown pseudo", with(&[(":foo", "x")])),
            ("§8.3 response pseudo", with(&[(":status", "200")])),
            ("§8.3 pseudo after regular", {
                let mut v = vec![("accept", "*/*")];
                v.extend(GET);
                v
            }),
            ("§8.2 uppercase", with(&[("Accept", "*/*")])),
            ("§8.2.2 connection", with(&[("connection", "close")])),
            ("§8.2.2 keep-alive", with(&[("keep-alive", "1")])),
            (
                "§8.2.2 transfer-encoding",
                with(&[("transfer-encoding", "chunked")]),
            ),
            ("§8.2.2 te", with(&[("te", "gzip")])),
            ("§8.2.1 leading space", with(&[("accept", " */*")])),
            ("§8.2.1 trailing tab", with(&[("accept", "*/*\t")])),
            ("§8.2.1 LF", with(&[("accept", "a\nb")])),
            ("§8.2.1 NUL", with(&[("accept", "a\0b")])),
            ("§8.3.1 Host", with(&[("host", "other.example")])),
            ("§8.1.1 content-length", with(&[("content-length", "1x")])),
            (
                "§8.1.1 two content-lengths",
                with(&[("content-length", "1"), ("content-length", "2")]),
            ),
            (
                "§8.5 CONNECT without :authority",
                vec![(":method", "CONNECT")],
            ),
            (
                "§8.5 CONNECT with :path",
                vec![
                    (":method", "CONNECT"),
                    (":authority", "a:1"),
                    (":path", "/"),
                ],
            ),
            (
                "RFC 8441 :protocol without CONNECT",
                with(&[(":protocol", "websocket")]),
            ),
        ];
        for (rule, fields) in cases {
            assert!(
                matches!(request(&fields), Outcome::Malformed(_)),
                "{rule} accepted"
            );
        }
        assert!(matches!(
            request(&with(&[("te", "trailers"), ("host", "EXAMPLE.com")])),
            Outcome::Ok(_)
        ));
    }

    #[test]
    fn connect_forms() {
        let Outcome::Ok(h) = request(&[(":method", "CONNECT"), (":authority", "a.example:443")])
        else {
            panic!("CONNECT refused")
        };
        assert_eq!(h.parts.uri.authority().unwrap(), "a.example:443");
        let Outcome::Ok(h) = request(&[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":authority", "a.example"),
            (":path", "/chat"),
        ]) else {
            panic!("extended CONNECT refused")
        };
        assert_eq!(h.protocol.as_deref(), Some("websocket"));
        assert_eq!(h.parts.uri.path(), "/chat");
    }

    #[test]
    fn limits_and_trailers() {
        let mut c = Collect::request(100, false);
        for (n, v) in GET {
            c.field(Cow::Owned(f(n, v)));
        }
        c.field(Cow::Owned(f("x", &"a".repeat(100))));
        assert!(matches!(
            c.finish_request(&mut LastTarget::default()),
            Outcome::TooLarge
        ));

        let mut t = Collect::trailers(1000);
        t.field(Cow::Owned(f(":path", "/")));
        assert!(matches!(t.finish_trailers(), Outcome::Malformed(_)));
        let mut t = Collect::trailers(1000);
        t.field(Cow::Owned(f("grpc-status", "0")));
        assert!(matches!(t.finish_trailers(), Outcome::Ok(h) if h["grpc-status"] == "0"));
    }

    /// A field from the decoder's dynamic table comes with its `http` types made when
    /// the entry was added: the rules of §8.2 still apply each time it is referred
    /// to, as to the literal that added it.
    #[test]
    fn fields_from_the_dynamic_table_are_checked_each_time() {
        use crate::hpack::Decoder;
        // :method GET, :scheme https, :path /, :authority "a" (not indexed).
        const PSEUDO: [u8; 6] = [0x82, 0x87, 0x84, 0x01, 0x01, b'a'];
        let cases: [(&str, &str, bool); 6] = [
            ("x-a", "1", true),
            ("te", "trailers", true),
            ("te", "gzip", false),
            ("connection", "close", false),
            ("X-Up", "1", false),
            ("x-pad", " 1", false),
        ];
        for (name, value, ok) in cases {
            let mut d = Decoder::new(4096);
            // The literal, added to the table (§6.2.1); then the same field by index.
            let mut first = PSEUDO.to_vec();
            first.extend([0x40, name.len() as u8]);
            first.extend(name.as_bytes());
            first.push(value.len() as u8);
            first.extend(value.as_bytes());
            let mut again = PSEUDO.to_vec();
            again.push(0x80 | 62);
            for (i, block) in [first, again].into_iter().enumerate() {
                let mut c = Collect::request(16 * 1024, false);
                d.decode(&Bytes::from(block), |f| c.field(f)).unwrap();
                match c.finish_request(&mut LastTarget::default()) {
                    Outcome::Ok(head) => {
                        assert!(ok, "{name}: {value} accepted (block {i})");
                        assert_eq!(head.parts.headers[name], value);
                    }
                    Outcome::Malformed(_) => assert!(!ok, "{name}: {value} refused (block {i})"),
                    Outcome::TooLarge => panic!("{name}: too large"),
                }
            }
        }
    }
}
