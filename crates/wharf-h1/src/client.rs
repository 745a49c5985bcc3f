//! The client's side of HTTP/1.1: request heads written (RFC 9112 §3, §6.2) and
//! response heads parsed, with the response body's framing decided as §6.3 says a
//! client must (the request method and the status first, then `Transfer-Encoding`,
//! then `Content-Length`, else the connection's close).
//!
//! A response whose framing cannot be trusted is an error, never a guess: an
//! intermediary that guessed could forward a body cut at the wrong place, or keep a
//! connection whose next response is really the tail of this one.

use std::mem::MaybeUninit;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use crate::framing::{
    content_length, declared_length, header_map, persists, transfer_coding, Coding, Present,
    RequestFraming, Section,
};

/// The framing of a request with `fields` (whose `Content-Length`, when valid, is
/// kept) and a body that is known to be empty or not. §6.2: a request whose method
/// gives content a meaning says `Content-Length: 0` when it has none, which
/// [`request_head`] adds.
pub fn request_framing(fields: &HeaderMap, body_empty: bool) -> RequestFraming {
    match content_length(fields) {
        Ok(Some(n)) => RequestFraming::Length(n),
        _ if body_empty => RequestFraming::Empty,
        _ => RequestFraming::Chunked,
    }
}

/// Writes the request line and fields; the framing fields are the ones `framing`
/// needs (any `Transfer-Encoding` in `fields` is left out: it is hop-by-hop, and the
/// coding is this client's to choose).
pub fn request_head<'f>(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    fields: impl IntoIterator<Item = (&'f HeaderName, &'f HeaderValue)>,
    framing: RequestFraming,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in fields {
        if name == TRANSFER_ENCODING
            || (name == CONTENT_LENGTH && !matches!(framing, RequestFraming::Length(_)))
        {
            continue;
        }
        crate::framing::field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    match framing {
        RequestFraming::Chunked => crate::framing::field(out, b"transfer-encoding", b"chunked"),
        RequestFraming::Empty if matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
            crate::framing::field(out, b"content-length", b"0")
        }
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Nothing follows the head (and, for a `101`, the new protocol does).
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and fields (the reason phrase is dropped).
    pub parts: http::response::Parts,
    /// Bytes of the head, up to and with its empty line.
    pub len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after this response (§9.3).
    pub keep_alive: bool,
    /// Which framing and hop-by-hop fields the head has.
    pub present: Present,
}

/// The response is not one this client can trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The most fields a response head may have.
pub const MAX_FIELDS: usize = 256;

/// Parses a response head from the start of `buf`, the answer to a `method` request:
/// `None` until the whole head has arrived. At most `max_fields` fields (and never
/// more than [`MAX_FIELDS`]).
pub fn response_head(
    buf: &[u8],
    method: &Method,
    max_fields: usize,
) -> Result<Option<ResponseHead>, Malformed> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let fields = &mut fields[..max_fields.clamp(1, MAX_FIELDS)];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, fields)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Malformed("too many header fields")),
        Err(_) => return Err(Malformed("malformed response head")),
    };
    let (Some(code), Some(minor)) = (res.code, res.version) else {
        return Err(Malformed("malformed status line"));
    };
    let status = StatusCode::from_u16(code).map_err(|_| Malformed("invalid status code"))?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Each rule below reads its field only when the response has it.
    let (headers, present) =
        header_map(res.headers, &Section::new(&buf[..len])).map_err(Malformed)?;
    let framing = framing(method, status, version, &headers, present)?;
    let keep_alive = framing != Framing::UntilClose
        && persists(&headers, present, version)
        // §6.1: a response with both was framed by Transfer-Encoding, and the
        // connection "ought to be closed" after it.
        && !(present.hop_by_hop.transfer_encoding && present.content_length);
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(ResponseHead {
        parts,
        len,
        framing,
        keep_alive,
        present,
    }))
}

/// RFC 9112 §6.3 for a response to `method`.
fn framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    h: &HeaderMap,
    present: Present,
) -> Result<Framing, Malformed> {
    // Item 1: HEAD, 1xx, 204 and 304 end at their head. (Item 2, a 2xx to CONNECT,
    // does not arise: this client sends no CONNECT.)
    if wharf_http::content::has_no_content(method, status) {
        return Ok(Framing::Empty);
    }
    if let Some(coding) = present
        .hop_by_hop
        .transfer_encoding
        .then(|| transfer_coding(h))
        .flatten()
    {
        // §6.1: Transfer-Encoding in an HTTP/1.0 message means the framing is faulty.
        if version == Version::HTTP_10 {
            return Err(Malformed("Transfer-Encoding in an HTTP/1.0 response"));
        }
        // Item 4: chunked last is chunked; another final coding reads until close,
        // but this client can only pass on bodies whose coding it removed, so those
        // are refused rather than forwarded still coded.
        return match coding.map_err(Malformed)? {
            Coding::Chunked => Ok(Framing::Chunked),
            Coding::ChunkedAfterOthers | Coding::NotChunked => {
                Err(Malformed("transfer codings other than chunked"))
            }
        };
    }
    // Item 5: an invalid or conflicting Content-Length is unrecoverable.
    let length = declared_length(h, present).map_err(Malformed)?;
    match length {
        Some(0) => Ok(Framing::Empty),
        Some(n) => Ok(Framing::Length(n)),
        // Item 8: no length at all reads until the server closes.
        None => Ok(Framing::UntilClose),
    }
}

/// The fuzz target's entry: any bytes never panic, and a response head found in
/// `data` is the same head when the bytes after it are cut off.
#[cfg(fuzzing)]
pub fn fuzz(data: &[u8]) {
    for method in [Method::GET, Method::HEAD] {
        if let Ok(Some(head)) = response_head(data, &method, 32) {
            assert!(head.len <= data.len());
            let alone = response_head(&data[..head.len], &method, 32)
                .expect("the head alone parses")
                .expect("the head alone is complete");
            assert_eq!(
                (
                    alone.len,
                    alone.framing,
                    alone.keep_alive,
                    alone.parts.status
                ),
                (head.len, head.framing, head.keep_alive, head.parts.status)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, Malformed> {
        response_head(text.as_bytes(), &method, 16)
    }

    #[test]
    fn response_framing() {
        use Framing::*;
        // (response head, request method, framing, keep-alive) — RFC 9112 §6.3, §9.3
        type Want = Result<(Framing, bool), &'static str>;
        let table: &[(&str, Method, Want)] = &[
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                Method::GET,
                Ok((Length(5), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                Method::GET,
                Ok((Empty, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n",
                Method::GET,
                Ok((Length(5), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                Method::HEAD,
                Ok((Empty, true)),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
                Method::GET,
                Ok((Empty, true)),
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                Method::GET,
                Ok((Empty, true)),
            ),
            (
                "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
                Method::GET,
                Ok((Empty, true)),
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
                Method::GET,
                Ok((Empty, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Method::GET,
                Ok((Chunked, true)),
            ),
            // §6.1: both fields: Transfer-Encoding wins, and the connection closes after.
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n",
                Method::GET,
                Ok((Chunked, false)),
            ),
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                Method::GET,
                Ok((UntilClose, false)),
            ),
            (
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
                Method::GET,
                Ok((Length(1), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                Method::GET,
                Ok((Length(1), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n",
                Method::GET,
                Ok((Length(1), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
                Method::GET,
                Err("conflicting Content-Length values"),
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n",
                Method::GET,
                Err("invalid Content-Length"),
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
                Method::GET,
                Err("transfer codings other than chunked"),
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, chunked\r\n\r\n",
                Method::GET,
                Err("chunked applied more than once"),
            ),
            (
                "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Method::GET,
                Err("Transfer-Encoding in an HTTP/1.0 response"),
            ),
            (
                "HTTP/1.1 2000 OK\r\n\r\n",
                Method::GET,
                Err("malformed response head"),
            ),
            (
                "HTTP/1.1 099 Low\r\n\r\n",
                Method::GET,
                Err("invalid status code"),
            ),
            (
                "HTTP/2 200 OK\r\n\r\n",
                Method::GET,
                Err("malformed response head"),
            ),
            (
                "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
                Method::GET,
                Err("malformed response head"),
            ),
            (
                "HTTP/1.1 200 OK\r\nx: a\r\n folded\r\n\r\n",
                Method::GET,
                Err("malformed response head"),
            ),
        ];
        for (text, method, want) in table {
            let got = parse(text, method.clone())
                .map(|h| h.map(|h| (h.framing, h.keep_alive)).expect("complete"))
                .map_err(|m| m.0);
            assert_eq!(got, *want, "{text:?} to {method}");
        }
    }

    #[test]
    fn response_heads_wait_for_their_end_and_say_their_length() {
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: b\r\n\r\nhi";
        for cut in 0..text.len() - 2 {
            assert!(parse(&text[..cut], Method::GET).unwrap().is_none(), "{cut}");
        }
        let head = parse(text, Method::GET).unwrap().unwrap();
        assert_eq!(head.len, text.len() - 2);
        assert_eq!(head.parts.status, StatusCode::OK);
        assert_eq!(head.parts.headers["x-a"], "b");
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "a: b\r\n".repeat(17));
        assert_eq!(
            parse(&many, Method::GET).unwrap_err().0,
            "too many header fields"
        );
    }

    #[test]
    fn property_arbitrary_responses_never_panic_and_heads_stay_in_bounds() {
        use crate::arbitrary::{Rng, TCHAR, VCHAR};
        let statuses = [
            "200 OK",
            "204 No",
            "304 Not",
            "103 Early",
            "101 Up",
            "999 X",
            "500 E",
        ];
        let framing = [
            "content-length: 5",
            "content-length: 5, 5",
            "content-length: 5, 6",
            "transfer-encoding: chunked",
            "transfer-encoding: gzip, chunked",
            "connection: close",
            "",
        ];
        for seed in 0..5000 {
            let mut rng = Rng::new(seed);
            // Half noise, half well-formed heads with random fields, cut anywhere.
            let input = if rng.below(2) == 0 {
                let len = rng.below(200);
                rng.noise(len)
            } else {
                let mut head = format!("HTTP/1.{} {}\r\n", rng.below(2), rng.pick(&statuses));
                for _ in 0..rng.below(6) {
                    let name_len = 1 + rng.below(10);
                    let name = String::from_utf8(rng.string(TCHAR, name_len)).unwrap();
                    let value_len = rng.below(20);
                    let value = String::from_utf8(rng.string(VCHAR, value_len)).unwrap();
                    head.push_str(&format!("{name}: {}\r\n", value.trim()));
                }
                let f = rng.pick(&framing);
                if !f.is_empty() {
                    head.push_str(f);
                    head.push_str("\r\n");
                }
                head.push_str("\r\nbody");
                let cut = rng.below(head.len() + 1);
                head.into_bytes()[..cut].to_vec()
            };
            let method = if rng.below(4) == 0 {
                Method::HEAD
            } else {
                Method::GET
            };
            if let Ok(Some(head)) = response_head(&input, &method, 16) {
                assert!(head.len <= input.len(), "seed {seed}");
                let whole = &input[..head.len];
                // The head ends with its empty line (CRLF, or a bare LF, RFC 9112 §2.2).
                assert!(
                    whole.ends_with(b"\n\r\n") || whole.ends_with(b"\n\n"),
                    "seed {seed}"
                );
                if method == Method::HEAD {
                    assert_eq!(head.framing, Framing::Empty, "seed {seed}: RFC 9112 §6.3");
                }
            }
        }
    }

    #[test]
    fn request_heads() {
        let mut fields = HeaderMap::new();
        fields.insert("host", "up.test".parse().unwrap());
        fields.insert("transfer-encoding", "gzip".parse().unwrap());
        // (method, fields' Content-Length, body empty, framing, head) — RFC 9112 §6.2
        let table: &[(Method, Option<&str>, bool, RequestFraming, &str)] = &[
            (
                Method::GET,
                None,
                true,
                RequestFraming::Empty,
                "GET /p?q HTTP/1.1\r\nhost: up.test\r\n\r\n",
            ),
            (
                Method::POST,
                None,
                true,
                RequestFraming::Empty,
                "POST /p?q HTTP/1.1\r\nhost: up.test\r\ncontent-length: 0\r\n\r\n",
            ),
            (
                Method::POST,
                Some("3"),
                false,
                RequestFraming::Length(3),
                "POST /p?q HTTP/1.1\r\nhost: up.test\r\ncontent-length: 3\r\n\r\n",
            ),
            (
                Method::PUT,
                None,
                false,
                RequestFraming::Chunked,
                "PUT /p?q HTTP/1.1\r\nhost: up.test\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
            (
                Method::POST,
                Some("x"),
                false,
                RequestFraming::Chunked,
                "POST /p?q HTTP/1.1\r\nhost: up.test\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
        ];
        for (method, length, empty, framing, head) in table {
            let mut f = fields.clone();
            if let Some(l) = length {
                f.insert("content-length", l.parse().unwrap());
            }
            assert_eq!(request_framing(&f, *empty), *framing, "{method} {length:?}");
            let mut out = Vec::new();
            request_head(&mut out, method, "/p?q", &f, *framing);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                *head,
                "{method} {length:?}"
            );
        }
    }
}
