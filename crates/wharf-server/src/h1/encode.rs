//! Response heads and body framing on the wire (RFC 9112 §4, §6, §7.1).
//!
//! [`framing`] decides how a response body is delimited: no body (HEAD, 1xx, 204,
//! 304), `Content-Length` (set by the service, or known from the body's exact size),
//! chunked for HTTP/1.1 when the length is unknown, else the connection's close.
//! [`head`] writes the status line and fields into the connection's write buffer,
//! adding `Date` when the service did not, and `Connection` as persistence requires;
//! it reads what the service's fields say of framing and persistence as it writes
//! them, so a response costs one pass over its fields and no lookups.

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
pub(crate) use wharf_h1::chunked::{chunk_start, last_chunk};
use wharf_h1::framing::{all_fields, field};
use wharf_http::fields::line_has_token;

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
/// is framed; `declared` is the service's `Content-Length` (when it is one number),
/// `exact` the body's size when it is known.
pub(crate) fn framing(
    method: &Method,
    version: Version,
    status: StatusCode,
    declared: Option<u64>,
    exact: Option<u64>,
) -> Framing {
    if wharf_http::content::has_no_content(method, status) {
        return Framing::None;
    }
    match (declared.or(exact), version) {
        (Some(n), _) => Framing::Length(n),
        (None, Version::HTTP_11) => Framing::Chunked,
        (None, _) => Framing::Close,
    }
}

/// The response a head is written for.
pub(crate) struct Response<'a> {
    pub(crate) method: &'a Method,
    /// The request's version: the response's framing and persistence follow it.
    pub(crate) version: Version,
    pub(crate) status: StatusCode,
    /// The service's fields.
    pub(crate) fields: &'a HeaderMap,
    /// The body's size, when it is known.
    pub(crate) exact: Option<u64>,
}

/// Writes the response head into `out` and returns how its body is framed and
/// whether the connection persists after it: when `keep_alive` (the caller's
/// wish, from both sides) and the framing allow it, and the service did not say
/// `Connection: close`. What the service's fields say of these (`Content-Length`,
/// `Connection`, `Date`) is read as they are written, in one pass over them.
pub(crate) fn head(out: &mut Vec<u8>, res: &Response<'_>, keep_alive: bool) -> (Framing, bool) {
    let status = res.status;
    // RFC 9110 §6.2: a server sends the highest version it conforms to.
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut declared: Option<&HeaderValue> = None;
    let mut close = false;
    let mut date = false;
    for (name, value) in res.fields {
        // wharf frames the body and manages persistence itself; the service's
        // Content-Length is written below, where it frames this body.
        if name == CONTENT_LENGTH {
            declared = declared.or(Some(value));
        } else if name == CONNECTION {
            close |= line_has_token(value, "close");
        } else if name != TRANSFER_ENCODING {
            date |= name == DATE;
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    // The service's Content-Length, if it is one number (`1*DIGIT`, RFC 9110 §8.6).
    let length = declared.and_then(|v| wharf_h1::framing::decimal(v.as_bytes()));
    let framing = framing(res.method, res.version, status, length, res.exact);
    // It goes out only where it frames this body, or (bodiless responses: HEAD, 304)
    // says what a GET would get; never beside chunked (RFC 9112 §6.1) and never
    // malformed.
    let keep_declared = length.is_some()
        && match framing {
            Framing::Length(n) => length == Some(n),
            Framing::None => status != StatusCode::NO_CONTENT,
            Framing::Chunked | Framing::Close => false,
        };
    match declared {
        Some(v) if keep_declared => field(out, b"content-length", v.as_bytes()),
        _ => {
            let written = match framing {
                Framing::Length(n) => Some(n),
                // RFC 9110 §8.6: a HEAD response may carry the length a GET would
                // have (an empty stand-in body says nothing of it).
                Framing::None if !status.is_informational() && status != StatusCode::NO_CONTENT => {
                    res.exact
                        .filter(|&n| status != StatusCode::NOT_MODIFIED && n > 0)
                }
                _ => None,
            };
            if let Some(n) = written {
                field(
                    out,
                    b"content-length",
                    itoa::Buffer::new().format(n).as_bytes(),
                );
            }
        }
    }
    if framing == Framing::Chunked {
        field(out, b"transfer-encoding", b"chunked");
    }
    if !date {
        crate::implied::date(|d| field(out, b"date", d));
    }
    let keep_alive = keep_alive && framing != Framing::Close && !close;
    // RFC 9112 §9.6: "close" when this is the last response; §9.3 HTTP/1.0 needs
    // "keep-alive" to persist.
    if !keep_alive {
        field(out, b"connection", b"close");
    } else if res.version == Version::HTTP_10 {
        field(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    (framing, keep_alive)
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
    let res = Response {
        method: &Method::GET,
        version: Version::HTTP_11,
        status,
        fields: &fields,
        exact: Some(text.len() as u64),
    };
    head(out, &res, false);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing() {
        use Framing as F;
        let (get, head) = (Method::GET, Method::HEAD);
        let (v11, v10) = (Version::HTTP_11, Version::HTTP_10);
        let ok = StatusCode::OK;
        // (method, version, status, declared, exact size, framing) — RFC 9112 §6.3, RFC 9110 §6.4.1
        let table = [
            (&get, v11, ok, Some(7), None, F::Length(7)),
            (&get, v11, ok, None, Some(3), F::Length(3)),
            (&get, v11, ok, None, None, F::Chunked),
            (&get, v10, ok, None, None, F::Close),
            (&head, v11, ok, None, None, F::None),
            (&get, v11, StatusCode::NO_CONTENT, None, Some(0), F::None),
            (&get, v11, StatusCode::NOT_MODIFIED, Some(7), None, F::None),
            (&get, v11, StatusCode::CONTINUE, None, None, F::None),
        ];
        for (m, v, s, declared, exact, want) in table {
            assert_eq!(framing(m, v, s, declared, exact), want, "{m} {v:?} {s}");
        }
    }

    /// The head written for a response with `fields`, its framing and whether the
    /// connection persists.
    fn written(
        method: &Method,
        version: Version,
        status: StatusCode,
        fields: &[(&'static str, &'static str)],
        exact: Option<u64>,
        keep: bool,
    ) -> (String, Framing, bool) {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(*name, HeaderValue::from_static(value));
        }
        let res = Response {
            method,
            version,
            status,
            fields: &map,
            exact,
        };
        let mut out = Vec::new();
        let (framing, keep) = head(&mut out, &res, keep);
        (String::from_utf8(out).unwrap(), framing, keep)
    }

    #[test]
    fn heads() {
        let (get, head) = (Method::GET, Method::HEAD);
        let (v11, v10) = (Version::HTTP_11, Version::HTTP_10);
        let (ok, date) = (StatusCode::OK, [("date", "x")]);
        assert_eq!(
            written(&get, v11, ok, &date, Some(5), true),
            (
                "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 5\r\n\r\n".into(),
                Framing::Length(5),
                true
            )
        );
        assert_eq!(
            written(&get, v11, ok, &date, None, false),
            (
                "HTTP/1.1 200 OK\r\ndate: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    .into(),
                Framing::Chunked,
                false
            )
        );
        assert_eq!(
            written(&head, v10, ok, &date, Some(5), true),
            (
                "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n"
                    .into(),
                Framing::None,
                true
            ),
            "RFC 9110 §8.6: a HEAD response says what a GET would get"
        );
        assert_eq!(
            written(&get, v11, StatusCode::NOT_MODIFIED, &date, None, true),
            (
                "HTTP/1.1 304 Not Modified\r\ndate: x\r\n\r\n".into(),
                Framing::None,
                true
            )
        );
        // The service's own Connection is not copied; its close ends the connection.
        let fields = [("date", "x"), ("connection", "keep-alive, Close")];
        assert_eq!(
            written(&get, v11, ok, &fields, Some(5), true),
            (
                "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
                    .into(),
                Framing::Length(5),
                false
            )
        );
        // Without a Date of the service's, the transport's own.
        let (text, _, _) = written(&get, v11, ok, &[], Some(0), true);
        assert!(text.contains("\r\ndate: "), "{text}");
    }

    #[test]
    fn service_lengths_never_contradict_the_framing() {
        // RFC 9112 §6.1, RFC 9110 §8.6: (declared, method, version, framing,
        // content-length written)
        let (get, head) = (Method::GET, Method::HEAD);
        let (v11, v10) = (Version::HTTP_11, Version::HTTP_10);
        let table: &[(&str, &Method, Version, Framing, Option<&str>)] = &[
            ("5", &get, v11, Framing::Length(5), Some("5")),
            ("007", &get, v11, Framing::Length(7), Some("007")),
            ("5, 5", &get, v11, Framing::Chunked, None),
            ("+5", &get, v11, Framing::Chunked, None),
            ("abc", &get, v10, Framing::Close, None),
            ("7", &head, v11, Framing::None, Some("7")), // what a GET would get
        ];
        for (declared, method, version, want_framing, want) in table {
            let fields = [("content-length", *declared)];
            let (text, framing, _) = written(method, *version, StatusCode::OK, &fields, None, true);
            let lengths: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("content-length: "))
                .collect();
            assert_eq!(framing, *want_framing, "{declared}");
            assert_eq!(
                lengths,
                want.iter().copied().collect::<Vec<_>>(),
                "{declared} {framing:?}"
            );
        }
    }
}
