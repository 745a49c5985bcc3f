//! List-valued fields (RFC 9110 §5.6.1) read for one token: whether `Connection`
//! names an option, `Upgrade` offers a protocol. Shared by the HTTP/1.1 engine, its
//! client and the forwarding rules, so that all read a list the same way.

use http::header::{HeaderMap, HeaderName};

/// The elements of every `name` field line, trimmed of whitespace, empty ones left
/// out (§5.6.1), as they are written.
pub fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether a `name` field lists `token`, in any case.
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
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
}
