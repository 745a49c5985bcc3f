//! List-valued fields (RFC 9110 §5.6.1) read for one token: whether `Connection`
//! names an option, `Upgrade` offers a protocol. Shared by the HTTP/1.1 engine, its
//! client and the forwarding rules, so that all read a list the same way. And the
//! fields HTTP/2 and HTTP/3 do not carry, one rule for both.

use http::header::{HeaderMap, HeaderName, HeaderValue, TE};

/// The elements of every `name` field line, trimmed of whitespace, empty ones left
/// out (§5.6.1), as they are written.
pub fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &[u8]> {
    headers.get_all(name).iter().flat_map(line_tokens)
}

/// The elements of one field line's comma-separated list, trimmed, empty ones
/// skipped (what [`tokens`] yields for each line).
pub fn line_tokens(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether a `name` field lists `token`, in any case.
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|line| line_has_token(line, token))
}

/// Whether one field line's list holds `token`, in any case.
pub fn line_has_token(value: &HeaderValue, token: &str) -> bool {
    line_tokens(value).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the field named `name` (lowercase, as `HeaderName::as_str` gives it) is
/// connection-specific, which HTTP/2 and HTTP/3 do not carry (RFC 9113 §8.2.2, RFC
/// 9114 §4.2).
pub fn is_connection_specific(name: &str) -> bool {
    matches!(
        name,
        "connection" | "transfer-encoding" | "upgrade" | "keep-alive" | "proxy-connection"
    )
}

/// Why a request field makes an HTTP/2 or HTTP/3 request malformed, if it does: it is
/// connection-specific, or it is `TE` with another value than `trailers` (RFC 9113
/// §8.2.2, RFC 9114 §4.2).
pub fn malformed_in_h2_h3_request(name: &HeaderName, value: &HeaderValue) -> Option<&'static str> {
    if is_connection_specific(name.as_str()) {
        return Some("a connection-specific field");
    }
    (name == TE && value != "trailers").then_some("TE other than \"trailers\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_headers as headers;
    use http::header::CONNECTION;

    #[test]
    fn lists_are_read_across_lines_in_any_case() {
        let h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("connection", " , close"),
        ]);
        assert!(has_token(&h, CONNECTION, "upgrade"));
        assert!(has_token(&h, CONNECTION, "close"));
        assert!(!has_token(&h, CONNECTION, "keep"));
        let all: Vec<&[u8]> = tokens(&h, CONNECTION).collect();
        assert_eq!(all, [&b"keep-alive"[..], b"Upgrade", b"close"]);
    }

    /// RFC 9113 §8.2.2, RFC 9114 §4.2.
    #[test]
    fn fields_http2_and_http3_requests_do_not_carry() {
        let table: &[(&str, &str, Option<&str>)] = &[
            ("connection", "close", Some("a connection-specific field")),
            (
                "transfer-encoding",
                "chunked",
                Some("a connection-specific field"),
            ),
            ("upgrade", "websocket", Some("a connection-specific field")),
            (
                "keep-alive",
                "timeout=5",
                Some("a connection-specific field"),
            ),
            (
                "proxy-connection",
                "close",
                Some("a connection-specific field"),
            ),
            ("te", "gzip", Some("TE other than \"trailers\"")),
            ("te", "trailers", None),
            ("accept", "*/*", None),
        ];
        for &(name, value, want) in table {
            let name = HeaderName::from_static(name);
            let value = HeaderValue::from_static(value);
            assert_eq!(
                malformed_in_h2_h3_request(&name, &value),
                want,
                "{name}: {value:?}"
            );
            let specific = want == Some("a connection-specific field");
            assert_eq!(is_connection_specific(name.as_str()), specific, "{name}");
        }
    }
}
