//! Request heads: the request line and header section (RFC 9112 §2–§5), and how the
//! body that follows is framed (§6).
//!
//! Sans-IO: [`parse`] looks at the bytes read so far and says "need more", "here is a
//! head and its length", or "reject with this status". The tokenising is `httparse`'s;
//! what a server must refuse is decided here, each rule citing its section:
//!
//! - a target longer than `max_uri_len` is 414, checked on the request line alone
//!   before the header section is complete, so it wins over the 431 of a long head;
//! - a head over `max_header_bytes`, or with more than `max_headers` fields, is 431;
//! - a version other than HTTP/1.0 and HTTP/1.1 is 505 when it reads as a later major
//!   version, else 400;
//! - framing that cannot be trusted (RFC 9112 §6.1, §6.3) is 400: `Transfer-Encoding`
//!   in HTTP/1.0, `Transfer-Encoding` with `Content-Length`, chunked not last, a
//!   `Content-Length` that is not one number; a coding other than chunked is 501.

use std::mem::MaybeUninit;

use http::header::{CONNECTION, EXPECT};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use wharf_h1::framing::{
    declared_length, header_map, persists, transfer_coding, Coding, Present, Section,
};

/// More header fields than this are never parsed, whatever `max_headers` says.
pub(crate) const MAX_HEADERS: usize = 256;

/// The limits a head is checked against (from `[limits]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    pub(crate) max_uri_len: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
}

pub(crate) use wharf_h1::framing::RequestFraming as Framing;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) parts: http::request::Parts,
    pub(crate) framing: Framing,
    /// Whether the client lets the connection persist after this exchange (RFC 9112 §9.3).
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client (RFC 9110 §10.1.1).
    pub(crate) expect_continue: bool,
    /// An HTTP/1.1 client offers another protocol (RFC 9110 §7.8): `Upgrade`, named
    /// in `Connection`.
    pub(crate) upgrade: bool,
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Not a whole head yet; within the limits.
    Partial,
    /// A head, and how many bytes of the buffer it took.
    Head(Box<Head>, usize),
}

/// A head the server refuses, with the status to answer (the connection then closes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

const fn reject(status: StatusCode, reason: &'static str) -> Reject {
    Reject { status, reason }
}

const BAD: StatusCode = StatusCode::BAD_REQUEST;

/// Parses the head at the start of `buf`.
pub(crate) fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Parsed, Reject> {
    check_target_len(buf, limits.max_uri_len)?;
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let fields = &mut fields[..limits.max_headers.clamp(1, MAX_HEADERS)];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
            return Err(too_large());
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(reject(BAD, "malformed request head")),
    };
    if len > limits.max_header_bytes {
        return Err(too_large());
    }
    let head = build(&req, &buf[..len])?;
    Ok(Parsed::Head(Box::new(head), len))
}

fn too_large() -> Reject {
    reject(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request header section too large",
    )
}

/// RFC 9112 §3: the request target, even of an incomplete request line, is held to
/// `max_uri_len` first, so that a long target is 414 whatever follows (RFC 9110 §15.5.15).
fn check_target_len(buf: &[u8], max: usize) -> Result<(), Reject> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n');
    let Some(line) = start.map(|s| &buf[s..]) else {
        return Ok(());
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return Ok(());
    };
    let rest = &line[sp + 1..];
    let target = rest.split(|&b| b == b' ').next().unwrap_or(rest);
    if target.len() > max {
        return Err(reject(StatusCode::URI_TOO_LONG, "request target too long"));
    }
    Ok(())
}

/// RFC 9110 §15.6.6: 505 for a major version the server does not speak.
fn version_error(buf: &[u8]) -> Reject {
    let line = buf
        .split(|&b| b == b'\n')
        .find(|l| !l.trim_ascii().is_empty());
    let version = line
        .and_then(|l| l.trim_ascii_end().rsplit(|&b| b == b' ').next())
        .unwrap_or_default();
    match version.strip_prefix(b"HTTP/") {
        Some([major, b'.', _]) if major.is_ascii_digit() && *major >= b'2' => reject(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "HTTP/1.1 and HTTP/1.0 only on this connection",
        ),
        _ => reject(BAD, "malformed request line"),
    }
}

fn build(req: &httparse::Request<'_, '_>, section: &[u8]) -> Result<Head, Reject> {
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(reject(BAD, "malformed request line"));
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| reject(BAD, "invalid method"))?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let section = Section::new(section);
    let uri = target_uri(&method, target, &section)?;
    // Each rule below reads its field only when the request has it.
    let (headers, present) = header_map(req.headers, &section).map_err(|why| reject(BAD, why))?;
    let framing = if present.content_length || present.hop_by_hop.transfer_encoding {
        framing(&headers, present, version)?
    } else {
        Framing::Empty
    };
    let keep_alive = persists(&headers, present, version);
    let expect_continue = present.expect && expect_continue(&headers, version)?;
    let upgrade = version == Version::HTTP_11
        && present.hop_by_hop.upgrade
        && present.hop_by_hop.connection
        && wharf_http::fields::has_token(&headers, CONNECTION, "upgrade");
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Head {
        parts,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    })
}

/// RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT only) and
/// asterisk-form (OPTIONS only).
fn target_uri(method: &Method, target: &str, section: &Section<'_>) -> Result<Uri, Reject> {
    let uri = Uri::from_maybe_shared(section.share(target.as_bytes()))
        .map_err(|_| reject(BAD, "invalid request target"))?;
    let asterisk = target == "*";
    let authority_form = uri.scheme().is_none() && uri.authority().is_some();
    let ok = if method == Method::CONNECT {
        authority_form
    } else if asterisk {
        method == Method::OPTIONS
    } else {
        target.starts_with('/') || uri.scheme().is_some()
    };
    if ok {
        Ok(uri)
    } else {
        Err(reject(BAD, "request target not allowed for this method"))
    }
}

/// RFC 9112 §6.1 and §6.3: how the body is delimited, or why it cannot be trusted.
fn framing(h: &HeaderMap, present: Present, version: Version) -> Result<Framing, Reject> {
    if let Some(coding) = transfer_coding(h) {
        // §6.1: "A server or client that receives an HTTP/1.0 message containing a
        // Transfer-Encoding header field MUST treat the message as if the framing is
        // faulty".
        if version == Version::HTTP_10 {
            return Err(reject(BAD, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        // §6.1: a server "MAY reject a request that contains both Content-Length and
        // Transfer-Encoding" — the request-smuggling shape; wharf does, as nginx does.
        if present.content_length {
            return Err(reject(BAD, "both Transfer-Encoding and Content-Length"));
        }
        return match coding.map_err(|why| reject(BAD, why))? {
            Coding::Chunked => Ok(Framing::Chunked),
            // §6.3 item 4: chunked must be the final coding of a request.
            Coding::NotChunked => Err(reject(BAD, "chunked is not the final coding")),
            // §6.1: "A server that receives a request message with a transfer coding it
            // does not understand SHOULD respond with 501".
            Coding::ChunkedAfterOthers => Err(reject(
                StatusCode::NOT_IMPLEMENTED,
                "transfer codings other than chunked",
            )),
        };
    }
    Ok(
        match declared_length(h, present).map_err(|why| reject(BAD, why))? {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        },
    )
}

/// RFC 9110 §10.1.1: `100-continue` is the only expectation; others may get 417.
/// An HTTP/1.0 client cannot take a 100 and its expectation is ignored.
fn expect_continue(h: &HeaderMap, version: Version) -> Result<bool, Reject> {
    let Some(v) = h.get(EXPECT) else {
        return Ok(false);
    };
    if !v
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"100-continue")
    {
        return Err(reject(
            StatusCode::EXPECTATION_FAILED,
            "only the 100-continue expectation is supported",
        ));
    }
    Ok(version == Version::HTTP_11)
}

/// The `[limits]` defaults, for the fuzz target and the tests.
#[cfg(any(test, fuzzing))]
const DEFAULT_LIMITS: HeadLimits = HeadLimits {
    max_uri_len: 8192,
    max_header_bytes: 16384,
    max_headers: 100,
};

/// The fuzz target's property, also checked by the property tests: a head found is
/// within the input and does not depend on what follows it.
#[cfg(any(test, fuzzing))]
fn parse_checked(data: &[u8], limits: &HeadLimits) -> Result<Parsed, Reject> {
    let parsed = parse(data, limits);
    if let Ok(Parsed::Head(_, len)) = parsed {
        assert!(len <= data.len(), "{data:?}");
        assert!(
            matches!(parse(&data[..len], limits), Ok(Parsed::Head(_, l)) if l == len),
            "a head does not depend on what follows it: {data:?}"
        );
    }
    parsed
}

#[cfg(fuzzing)]
pub(crate) fn fuzz(data: &[u8]) {
    let _ = parse_checked(data, &DEFAULT_LIMITS);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_uri_len: 64,
        max_header_bytes: 256,
        max_headers: 8,
    };

    /// The outcome of parsing `text`: `Ok(None)` for partial, the framing of a head,
    /// or the refusal's status.
    fn check(text: &str) -> Result<Option<Framing>, u16> {
        match parse(text.as_bytes(), &LIMITS) {
            Ok(Parsed::Partial) => Ok(None),
            Ok(Parsed::Head(h, len)) => {
                assert!(len <= text.len());
                Ok(Some(h.framing))
            }
            Err(r) => Err(r.status.as_u16()),
        }
    }

    #[test]
    fn heads_and_refusals() {
        use Framing::*;
        let long = format!("GET /{} HTTP/1.1\r\n", "x".repeat(64));
        let long_partial = format!("GET /{}", "x".repeat(64));
        let big = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "v".repeat(300));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(9));
        let table: &[(&str, Result<Option<Framing>, u16>)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(Some(Empty))),
            ("GET / HTTP/1.1\r\nHost: a\r\n", Ok(None)),
            ("GET / HTT", Ok(None)),
            ("\r\nGET / HTTP/1.1\r\n\r\n", Ok(Some(Empty))), // §2.2 leading CRLF ignored
            ("GET / HTTP/1.0\n\n", Ok(Some(Empty))),         // §2.2 bare LF line ends
            // §3 and RFC 9110 §15.5.15: the target limit wins over the head limit.
            (&long, Err(414)),
            (&long_partial, Err(414)),
            (&big, Err(431)),
            (&many, Err(431)),
            ("GET / HTTP/2.0\r\n\r\n", Err(505)), // RFC 9110 §15.6.6
            ("GET / HTTP/1.2x\r\n\r\n", Err(400)),
            ("GET / FTP/1.1\r\n\r\n", Err(400)),
            ("GET  / HTTP/1.1\r\n\r\n", Err(400)),
            ("GET / HTTP/1.1\r\nA : b\r\n\r\n", Err(400)), // RFC 9112 §5.1 space before colon
            ("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", Err(400)), // §5.2 obs-fold
            ("GET / HTTP/1.1\r\nA: \x01\r\n\r\n", Err(400)),
            ("G@T / HTTP/1.1\r\n\r\n", Err(400)),
            // §3.2 target forms
            ("GET x HTTP/1.1\r\n\r\n", Err(400)),
            ("GET * HTTP/1.1\r\n\r\n", Err(400)),
            ("OPTIONS * HTTP/1.1\r\n\r\n", Ok(Some(Empty))),
            ("GET http://a.test/x HTTP/1.1\r\n\r\n", Ok(Some(Empty))),
            ("CONNECT a.test:443 HTTP/1.1\r\n\r\n", Ok(Some(Empty))),
            ("CONNECT /x HTTP/1.1\r\n\r\n", Err(400)),
            ("GET a.test:443 HTTP/1.1\r\n\r\n", Err(400)),
            // §6.3 framing
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                Ok(Some(Length(5))),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                Ok(Some(Empty)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
                Ok(Some(Length(5))),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Ok(Some(Length(5))),
            ),
            ("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", Err(400)),
            ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", Err(400)),
            ("POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", Err(400)),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(Some(Chunked)),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
                Ok(Some(Chunked)),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Err(501),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                Err(400),
            ),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", Err(400)),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(400),
            ),
            // RFC 9110 §10.1.1
            (
                "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
                Ok(Some(Empty)),
            ),
            ("PUT / HTTP/1.1\r\nExpect: teapot\r\n\r\n", Err(417)),
        ];
        for (text, want) in table {
            assert_eq!(check(text), *want, "{text:?}");
        }
    }

    fn head(text: &str) -> Head {
        match parse(text.as_bytes(), &LIMITS) {
            Ok(Parsed::Head(h, _)) => *h,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn persistence_and_expectations() {
        // (request, keep_alive, expect_continue) — RFC 9112 §9.3, RFC 9110 §10.1.1
        let table = [
            ("GET / HTTP/1.1\r\n\r\n", true, false),
            ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, false),
            (
                "GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n",
                false,
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false, false),
            (
                "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                true,
                false,
            ),
            ("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n", true, true),
            (
                "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
                false,
                false,
            ),
        ];
        for (text, keep, expect) in table {
            let h = head(text);
            assert_eq!(
                (h.keep_alive, h.expect_continue),
                (keep, expect),
                "{text:?}"
            );
        }
    }

    #[test]
    fn head_length_and_fields() {
        let text = "POST /a?b HTTP/1.1\r\nHost: x\r\nA: 1\r\nA: 2\r\nContent-Length: 3\r\n\r\nabc";
        let Ok(Parsed::Head(h, len)) = parse(text.as_bytes(), &LIMITS) else {
            panic!()
        };
        assert_eq!(&text[len..], "abc");
        assert_eq!(h.parts.method, Method::POST);
        assert_eq!(h.parts.uri, "/a?b");
        assert_eq!(h.parts.version, Version::HTTP_11);
        let a: Vec<_> = h.parts.headers.get_all("a").iter().collect();
        assert_eq!(a, ["1", "2"]);
    }

    use wharf_h1::arbitrary::{Rng, PCHAR, TCHAR, VCHAR};

    const ROOMY: HeadLimits = DEFAULT_LIMITS;

    /// A well-formed request head and what it holds.
    fn valid_head(rng: &mut Rng) -> (Vec<u8>, Method, String, Version, Vec<(String, String)>) {
        let method = rng
            .pick(&["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
            .to_string();
        let target_len = rng.below(60);
        let target = format!(
            "/{}",
            String::from_utf8(rng.string(PCHAR, target_len)).unwrap()
        );
        let version = if rng.below(4) == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let mut fields = Vec::new();
        for _ in 0..rng.below(12) {
            let name_len = 1 + rng.below(20);
            let name = String::from_utf8(rng.string(TCHAR, name_len)).unwrap();
            if [
                "content-length",
                "transfer-encoding",
                "expect",
                "connection",
            ]
            .contains(&name.to_ascii_lowercase().as_str())
            {
                continue;
            }
            let value_len = rng.below(40);
            let value = String::from_utf8(rng.string(VCHAR, value_len)).unwrap();
            fields.push((name, value.trim().to_owned()));
        }
        let mut text = format!(
            "{}{method} {target} {}\r\n",
            if rng.below(8) == 0 { "\r\n" } else { "" },
            if version == Version::HTTP_10 {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            }
        );
        for (n, v) in &fields {
            let ows = if rng.below(3) == 0 { " \t" } else { " " };
            text.push_str(&format!(
                "{n}:{ows}{v}{}\r\n",
                if rng.below(5) == 0 { " " } else { "" }
            ));
        }
        text.push_str("\r\n");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        (text.into_bytes(), method, target, version, fields)
    }

    #[test]
    fn property_valid_heads_parse_whole_and_never_fail_in_pieces() {
        for seed in 0..3000 {
            let mut rng = Rng::new(seed);
            let (bytes, method, target, version, fields) = valid_head(&mut rng);
            // Every proper prefix is "need more", never a refusal (incremental parsing).
            for end in 0..bytes.len() {
                assert!(
                    matches!(parse(&bytes[..end], &ROOMY), Ok(Parsed::Partial)),
                    "seed {seed}: prefix of {end} bytes"
                );
            }
            // The whole head parses to what was written, whatever follows it.
            let mut with_more = bytes.clone();
            with_more.extend_from_slice(&rng.noise(20));
            let Ok(Parsed::Head(h, len)) = parse(&with_more, &ROOMY) else {
                panic!("seed {seed}: {:?}", String::from_utf8_lossy(&bytes));
            };
            assert_eq!(len, bytes.len(), "seed {seed}");
            assert_eq!(h.parts.method, method, "seed {seed}");
            assert_eq!(h.parts.uri, target.as_str(), "seed {seed}");
            assert_eq!(h.parts.version, version, "seed {seed}");
            let got: Vec<(String, String)> = h
                .parts
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            let mut want: Vec<(String, String)> = fields
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            want.sort();
            assert_eq!(got_sorted, want, "seed {seed}");
            assert_eq!(h.framing, Framing::Empty, "seed {seed}");
        }
    }

    #[test]
    fn property_arbitrary_bytes_never_panic_and_heads_are_self_contained() {
        for seed in 0..20000 {
            let mut rng = Rng::new(seed);
            let mut input = Vec::new();
            if rng.below(2) == 0 {
                input = valid_head(&mut rng).0;
                // Damage it somewhere.
                for _ in 0..1 + rng.below(3) {
                    if input.is_empty() {
                        break;
                    }
                    let at = rng.below(input.len());
                    input[at] = rng.next_u64() as u8;
                }
            }
            let noise_len = rng.below(200);
            input.extend_from_slice(&rng.noise(noise_len));
            match parse_checked(&input, &LIMITS) {
                Ok(Parsed::Head(..)) => {}
                Ok(Parsed::Partial) => {
                    assert!(input.len() <= LIMITS.max_header_bytes, "seed {seed}")
                }
                Err(r) => assert!(
                    r.status.is_client_error() || r.status.is_server_error(),
                    "seed {seed}"
                ),
            }
        }
    }
}
