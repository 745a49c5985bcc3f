//! Which responses carry content (RFC 9110 §6.4.1): one rule for the server's
//! framing, the client's, and the lengths transports and services add.

use http::{Method, StatusCode};

/// Whether a response with `status` has no content whatever the request: 1xx, 204
/// and 304 (RFC 9110 §15.2, §15.3.5, §15.4.5).
pub fn status_has_no_content(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Whether the response with `status` to `method` has no content: a response to
/// HEAD, or one of [`status_has_no_content`] (RFC 9110 §6.4.1). (A 2xx to CONNECT
/// is followed by a tunnel instead, which its callers decide for themselves.)
pub fn has_no_content(method: &Method, status: StatusCode) -> bool {
    *method == Method::HEAD || status_has_no_content(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_without_content() {
        // (method, status, no content) — RFC 9110 §6.4.1
        let table = [
            (Method::GET, StatusCode::OK, false),
            (Method::GET, StatusCode::NOT_FOUND, false),
            (Method::HEAD, StatusCode::OK, true),
            (Method::GET, StatusCode::CONTINUE, true),
            (Method::GET, StatusCode::EARLY_HINTS, true),
            (Method::GET, StatusCode::NO_CONTENT, true),
            (Method::GET, StatusCode::RESET_CONTENT, false),
            (Method::GET, StatusCode::NOT_MODIFIED, true),
            (Method::POST, StatusCode::CREATED, false),
        ];
        for (method, status, want) in table {
            assert_eq!(has_no_content(&method, status), want, "{method} {status}");
        }
    }
}
