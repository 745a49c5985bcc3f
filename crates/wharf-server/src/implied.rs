//! What a transport adds to a service's response head, as hyper does: `Date` when
//! the service gave none (RFC 9110 §6.6.1: an origin server with a clock MUST send
//! it; so must a proxy forwarding a response without one), and `Content-Length`
//! from the body's exact size. Services may leave both out (a file's response
//! carries its own `Date`, read with its `Last-Modified` and `Expires`, and no
//! `Content-Length`). HTTP/1.1 frames with the length itself ([`crate::h1`]);
//! HTTP/2 and HTTP/3 write [`content_length`] beside the service's fields.

use std::time::SystemTime;

use http::header::{CONTENT_LENGTH, DATE};
use http::{HeaderMap, Method, StatusCode};
use wharf_http::content::has_no_content;

/// Calls `f` with the `Date` value for now (formatted once a second per thread).
pub(crate) fn date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    wharf_http::date::with_field_value(SystemTime::now(), |v| f(v.as_bytes()))
}

/// Calls `send` with the fields (name, value) a transport adds to a final response
/// head with `fields`: `Date` unless the service gave one (the clock is read only
/// then), and `length` ([`content_length`]) as `Content-Length`.
pub(crate) fn added<R>(
    fields: &HeaderMap,
    length: Option<u64>,
    send: impl FnOnce(&[(&[u8], &[u8])]) -> R,
) -> R {
    let mut digits = itoa::Buffer::new();
    let length = length.map(|n| digits.format(n).as_bytes());
    let with = |date: Option<&[u8]>| {
        let added = [
            (&b"date"[..], date.unwrap_or_default()),
            (b"content-length", length.unwrap_or_default()),
        ];
        let some = match (date.is_some(), length.is_some()) {
            (true, true) => &added[..],
            (true, false) => &added[..1],
            (false, true) => &added[1..],
            (false, false) => &[],
        };
        send(some)
    };
    if fields.contains_key(DATE) {
        with(None)
    } else {
        date(|date| with(Some(date)))
    }
}

/// The `Content-Length` to add to the response to `method` with `status` and
/// `fields` whose body has `exact` bytes: none where the service gave one, where no
/// content is sent (1xx, 204, 304: RFC 9110 §8.6, §15.4.5), in a 2xx to CONNECT
/// (§8.6 MUST NOT: a tunnel follows), or for HEAD, whose empty stand-in body says
/// nothing of what a GET would get.
pub(crate) fn content_length(
    method: &Method,
    status: StatusCode,
    fields: &HeaderMap,
    exact: Option<u64>,
) -> Option<u64> {
    let tunnel = *method == Method::CONNECT && status.is_success();
    if tunnel || has_no_content(method, status) || fields.contains_key(CONTENT_LENGTH) {
        return None;
    }
    exact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_added_only_where_it_says_what_the_body_is() {
        let declared = {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_LENGTH, http::HeaderValue::from_static("7"));
            h
        };
        let none = HeaderMap::new();
        let (get, head, connect) = (Method::GET, Method::HEAD, Method::CONNECT);
        // (method, status, fields, exact, added)
        let table = [
            (&get, StatusCode::OK, &none, Some(5), Some(5)),
            (&get, StatusCode::OK, &none, Some(0), Some(0)),
            (&get, StatusCode::OK, &none, None, None), // unknown: the stream's end says
            (&get, StatusCode::OK, &declared, Some(7), None), // the service's stays
            (&head, StatusCode::OK, &none, Some(0), None), // a stand-in body
            (&connect, StatusCode::OK, &none, Some(0), None), // a tunnel follows
            (&connect, StatusCode::FORBIDDEN, &none, Some(9), Some(9)),
            (&get, StatusCode::NOT_MODIFIED, &none, Some(0), None), // §15.4.5
            (&get, StatusCode::NO_CONTENT, &none, Some(0), None),   // §8.6
            (&get, StatusCode::EARLY_HINTS, &none, Some(0), None),
            (&get, StatusCode::NOT_FOUND, &none, Some(12), Some(12)),
        ];
        for (method, status, fields, exact, want) in table {
            assert_eq!(
                content_length(method, status, fields, exact),
                want,
                "{method} {status} {exact:?}"
            );
        }
    }

    #[test]
    fn date_is_an_http_date_of_now() {
        let text = date(|d| String::from_utf8(d.to_vec()).unwrap());
        let parsed = wharf_http::date::parse_http_date(&text).expect("IMF-fixdate");
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() <= 2, "{text}");
    }
}
