//! Response heads and body framing on the wire (RFC 9112 §4, §6, §7.1).
//!
//! [`framing`] decides how a response body is delimited: no body (HEAD, 1xx, 204,
//! 304), `Content-Length` (set by the service, or known from the body's exact size),
//! chunked for HTTP/1.1 when the length is unknown, else the connection's close.
//! [`head`] writes the status line and fields into the connection's write buffer,
//! adding `Date` when the service did not, and `Connection` as persistence requires.

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};
pub(crate) use wharf_h1::chunked::{chunk_start, last_chunk};
use wharf_h1::framing::{all_fields, field};

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Nothing follows the head.
    None,
    /// Exactly this many bytes follow.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Bytes until the connection closes (HTTP/1.0 clients, unknown length).
    Close,
}

/// RFC 9112 §6.3 from the server's side: how the response to `method` with `status`
/// and `fields` is framed; `exact` is the body's size when it is known.
pub(crate) fn framing(
    method: &Method,
    version: Version,
    status: StatusCode,
    fields: &HeaderMap,
    exact: Option<u64>,
) -> Framing {
    if wharf_http::content::has_no_content(method, status) {
        return Framing::None;
    }
    let declared = declared_length(fields);
    match (declared.or(exact), version) {
        (Some(n), _) => Framing::Length(n),
        (None, Version::HTTP_11) => Framing::Chunked,
        (None, _) => Framing::Close,
    }
}

/// The service's `Content-Length`, if it is one number (`1*DIGIT`, RFC 9110 §8.6).
fn declared_length(fields: &HeaderMap) -> Option<u64> {
    wharf_h1::framing::decimal(fields.get(CONTENT_LENGTH)?.as_bytes())
}

/// Writes the response head into `out`. `keep_alive` says whether the connection
/// persists after this response (decided by the caller from both sides' wishes).
/// `exact` is the body's known size, written as `Content-Length` when the service
/// gave none and the framing (or a HEAD response) calls for it.
pub(crate) fn head(
    out: &mut Vec<u8>,
    status: StatusCode,
    version: Version,
    fields: &HeaderMap,
    framing: Framing,
    exact: Option<u64>,
    keep_alive: bool,
) {
    // RFC 9110 §6.2: a server sends the highest version it conforms to.
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // The service's Content-Length goes out only where it frames this body, or
    // (bodiless responses: HEAD, 304) says what a GET would get; never beside chunked
    // (RFC 9112 §6.1) and never malformed.
    let declared = declared_length(fields);
    let keep_declared = declared.is_some()
        && match framing {
            Framing::Length(n) => declared == Some(n),
            Framing::None => status != StatusCode::NO_CONTENT,
            Framing::Chunked | Framing::Close => false,
        };
    for (name, value) in fields {
        // wharf frames the body and manages persistence itself.
        if name == TRANSFER_ENCODING
            || name == CONNECTION
            || (name == CONTENT_LENGTH && !keep_declared)
        {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !keep_declared {
        let length = match framing {
            Framing::Length(n) => Some(n),
            // RFC 9110 §8.6: a HEAD response may carry the length a GET would have
            // (an empty stand-in body says nothing of it).
            Framing::None if !status.is_informational() && status != StatusCode::NO_CONTENT => {
                exact.filter(|&n| status != StatusCode::NOT_MODIFIED && n > 0)
            }
            _ => None,
        };
        if let Some(n) = length {
            field(
                out,
                b"content-length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
    }
    if framing == Framing::Chunked {
        field(out, b"transfer-encoding", b"chunked");
    }
    if !fields.contains_key(DATE) {
        crate::implied::date(|d| field(out, b"date", d));
    }
    // RFC 9112 §9.6: "close" when this is the last response; §9.3 HTTP/1.0 needs
    // "keep-alive" to persist.
    if !keep_alive {
        field(out, b"connection", b"close");
    } else if version == Version::HTTP_10 {
        field(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
}

/// A `101 Switching Protocols` head (RFC 9110 §15.2.2): the service's fields as they
/// are (`Upgrade`, `Connection: upgrade`), and `Date`; nothing about a body.
pub(crate) fn switching(out: &mut Vec<u8>, fields: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    all_fields(out, fields);
    if !fields.contains_key(DATE) {
        crate::implied::date(|d| field(out, b"date", d));
    }
    out.extend_from_slice(b"\r\n");
}

/// A `103 Early Hints` head (RFC 8297).
pub(crate) fn early_hints(out: &mut Vec<u8>, fields: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\n");
    all_fields(out, fields);
    out.extend_from_slice(b"\r\n");
}

/// A transport error answered before any service ran; the connection closes after it.
pub(crate) fn error(out: &mut Vec<u8>, status: StatusCode, reason: &str) {
    let text = format!(
        "{} {}: {reason}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    let mut fields = HeaderMap::new();
    fields.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let framing = Framing::Length(text.len() as u64);
    head(out, status, Version::HTTP_11, &fields, framing, None, false);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing() {
        use Framing as F;
        let with_length = {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_LENGTH, http::HeaderValue::from_static("7"));
            h
        };
        let none = HeaderMap::new();
        let (get, head) = (Method::GET, Method::HEAD);
        let (v11, v10) = (Version::HTTP_11, Version::HTTP_10);
        let ok = StatusCode::OK;
        // (method, version, status, fields, exact size, framing) — RFC 9112 §6.3, RFC 9110 §6.4.1
        let table = [
            (&get, v11, ok, &with_length, None, F::Length(7)),
            (&get, v11, ok, &none, Some(3), F::Length(3)),
            (&get, v11, ok, &none, None, F::Chunked),
            (&get, v10, ok, &none, None, F::Close),
            (&head, v11, ok, &none, None, F::None),
            (&get, v11, StatusCode::NO_CONTENT, &none, Some(0), F::None),
            (
                &get,
                v11,
                StatusCode::NOT_MODIFIED,
                &with_length,
                None,
                F::None,
            ),
            (&get, v11, StatusCode::CONTINUE, &none, None, F::None),
        ];
        for (m, v, s, f, exact, want) in table {
            assert_eq!(framing(m, v, s, f, exact), want, "{m} {v:?} {s}");
        }
    }

    fn text(status: StatusCode, version: Version, framing: Framing, keep: bool) -> String {
        let mut fields = HeaderMap::new();
        fields.insert(DATE, http::HeaderValue::from_static("x"));
        fields.insert(CONNECTION, http::HeaderValue::from_static("close"));
        let mut out = Vec::new();
        head(&mut out, status, version, &fields, framing, Some(5), keep);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn heads() {
        let ok = StatusCode::OK;
        assert_eq!(
            text(ok, Version::HTTP_11, Framing::Length(5), true),
            "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!(
            text(ok, Version::HTTP_11, Framing::Chunked, false),
            "HTTP/1.1 200 OK\r\ndate: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            text(ok, Version::HTTP_10, Framing::None, true),
            "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            text(
                StatusCode::NOT_MODIFIED,
                Version::HTTP_11,
                Framing::None,
                true
            ),
            "HTTP/1.1 304 Not Modified\r\ndate: x\r\n\r\n"
        );
    }

    #[test]
    fn service_lengths_never_contradict_the_framing() {
        // RFC 9112 §6.1, RFC 9110 §8.6: (declared, framing, content-length written)
        let table: &[(&str, Framing, Option<&str>)] = &[
            ("5", Framing::Length(5), Some("5")),
            ("5, 5", Framing::Chunked, None),
            ("+5", Framing::Chunked, None),
            ("abc", Framing::Close, None),
            ("5", Framing::Chunked, None),
            ("7", Framing::None, Some("7")), // HEAD: what a GET would get
        ];
        for (declared, framing, want) in table {
            let mut fields = HeaderMap::new();
            fields.insert(CONTENT_LENGTH, http::HeaderValue::from_static(declared));
            let mut out = Vec::new();
            head(
                &mut out,
                StatusCode::OK,
                Version::HTTP_11,
                &fields,
                *framing,
                None,
                true,
            );
            let text = String::from_utf8(out).unwrap();
            let lengths: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("content-length: "))
                .collect();
            assert_eq!(
                lengths,
                want.iter().copied().collect::<Vec<_>>(),
                "{declared} {framing:?}"
            );
        }
    }
}
