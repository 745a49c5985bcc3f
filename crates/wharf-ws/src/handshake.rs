//! The opening handshake (RFC 6455 §4.2), and its HTTP/2 and HTTP/3 form, extended
//! CONNECT (RFC 8441 §4–§5, RFC 9220), as pure functions over `http` types.
//!
//! Over HTTP/1.1 a client sends `GET` with `Upgrade: websocket`, `Connection: Upgrade`,
//! `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` of 16 random bytes in base64;
//! the server answers `101` with `Sec-WebSocket-Accept`. Over HTTP/2 and HTTP/3 the
//! client sends `CONNECT` with `:protocol = websocket` and the server answers `200`
//! without keys. Either way: a version other than 13 gets `426` naming 13 (§4.4), a
//! bad key `400`, an origin not allowed `403`; subprotocols and permessage-deflate are
//! negotiated here.

use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use sha1::{Digest, Sha1};

use crate::deflate::{self, Agreed};

/// The GUID of RFC 6455 §1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Which pages may open a connection (their `Origin`, RFC 6455 §10.2). Requests
/// without `Origin` come from programs, not pages, and are always allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Pages served by the same host and port (the default: no other site's page can
    /// act with this site's cookies).
    Same,
    /// Any page.
    Any,
    /// Pages of these origins (`scheme://host[:port]`, compared without case).
    List(Vec<String>),
}

/// What an endpoint accepts in a handshake.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Subprotocols, in the server's order of preference.
    pub protocols: Vec<String>,
    /// Allowed origins.
    pub origins: Origins,
    /// Offer permessage-deflate.
    pub deflate: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            protocols: Vec::new(),
            origins: Origins::Same,
            deflate: true,
        }
    }
}

pub use wharf_http::conn::ConnectProtocol;

/// A handshake the server agrees to.
#[derive(Debug)]
pub struct Accepted {
    /// The answer: `101` over HTTP/1.1, `200` over HTTP/2 and HTTP/3.
    pub response: Response<()>,
    /// The subprotocol chosen.
    pub protocol: Option<String>,
    /// permessage-deflate, if agreed.
    pub deflate: Option<Agreed>,
}

/// A handshake refused: the status, fields to send with it, and why.
#[derive(Debug)]
pub struct Refused {
    /// The status code.
    pub status: StatusCode,
    /// Fields the RFC asks for with that status.
    pub headers: HeaderMap,
    /// A sentence for the body and the log.
    pub reason: &'static str,
}

impl Refused {
    fn new(status: StatusCode, reason: &'static str) -> Self {
        Refused {
            status,
            headers: HeaderMap::new(),
            reason,
        }
    }

    fn with(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }
}

/// Whether `req` asks for a WebSocket at all (an upgrade or an extended CONNECT).
pub fn is_websocket<B>(req: &Request<B>) -> bool {
    match req.method() {
        &Method::CONNECT => req
            .extensions()
            .get::<ConnectProtocol>()
            .is_some_and(|p| p.0.eq_ignore_ascii_case("websocket")),
        _ => has_token(req.headers(), header::UPGRADE, "websocket"),
    }
}

/// Checks a handshake against `policy`.
pub fn accept<B>(req: &Request<B>, policy: &Policy) -> Result<Accepted, Refused> {
    let h = req.headers();
    let extended = req.method() == Method::CONNECT;
    if extended {
        if !is_websocket(req) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "CONNECT without :protocol websocket",
            ));
        }
    } else {
        if req.version() != Version::HTTP_11 {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "WebSocket over HTTP/2 and HTTP/3 uses extended CONNECT, over HTTP/1.0 nothing",
            ));
        }
        if !has_token(h, header::UPGRADE, "websocket") {
            return Err(
                Refused::new(StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint")
                    .with(header::UPGRADE, "websocket")
                    .with(header::CONNECTION, "Upgrade"),
            );
        }
        if req.method() != Method::GET {
            return Err(Refused::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket handshake is a GET",
            )
            .with(header::ALLOW, "GET"));
        }
        if !has_token(h, header::CONNECTION, "upgrade") {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "Connection: Upgrade is missing",
            ));
        }
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Refused::new(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is spoken",
        )
        .with(header::SEC_WEBSOCKET_VERSION, "13"));
    }
    let key = if extended {
        None
    } else {
        match h.get(header::SEC_WEBSOCKET_KEY).map(HeaderValue::as_bytes) {
            Some(key) if is_valid_key(key) => Some(key),
            _ => {
                return Err(Refused::new(
                    StatusCode::BAD_REQUEST,
                    "Sec-WebSocket-Key must be 16 bytes in base64",
                ))
            }
        }
    };
    if !origin_allowed(req, &policy.origins) {
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            "this page's origin may not connect",
        ));
    }
    let protocol = choose_protocol(h, &policy.protocols);
    let deflate = if policy.deflate {
        deflate::negotiate(values(h, header::SEC_WEBSOCKET_EXTENSIONS))
    } else {
        None
    };
    let mut response = Response::new(());
    *response.status_mut() = match key {
        Some(_) => StatusCode::SWITCHING_PROTOCOLS,
        None => StatusCode::OK,
    };
    let fields = response.headers_mut();
    if let Some(key) = key {
        {
            fields.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            fields.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            let accept = accept_key(key);
            fields.insert(
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::try_from(accept).expect("base64"),
            );
        }
    }
    if let Some(p) = &protocol {
        fields.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::try_from(p.as_str()).expect("a token"),
        );
    }
    if let Some(d) = &deflate {
        fields.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::try_from(d.response()).expect("ASCII"),
        );
    }
    Ok(Accepted {
        response,
        protocol,
        deflate,
    })
}

/// `Sec-WebSocket-Accept` for a key (§4.2.2): base64 of the SHA-1 of key and GUID.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A key is the base64 of 16 bytes (§4.1): 24 characters, two of them padding.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

/// The field's comma-separated elements, across all its lines.
fn values(h: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    h.get_all(name).iter().filter_map(|v| v.to_str().ok())
}

fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    values(h, name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The server's most preferred subprotocol that the client offers.
fn choose_protocol(h: &HeaderMap, ours: &[String]) -> Option<String> {
    let offered: Vec<&str> = values(h, header::SEC_WEBSOCKET_PROTOCOL)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    ours.iter().find(|p| offered.contains(&p.as_str())).cloned()
}

fn origin_allowed<B>(req: &Request<B>, origins: &Origins) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    match origins {
        Origins::Any => true,
        Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        Origins::Same => {
            let host = req.uri().authority().map(|a| a.as_str()).or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
            });
            match (origin.split_once("://"), host) {
                (Some((scheme, authority)), Some(host)) => without_default_port(scheme, authority)
                    .eq_ignore_ascii_case(without_default_port(scheme, host)),
                _ => false, // "null" and other opaque origins
            }
        }
    }
}

/// `authority` without the scheme's default port.
fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => ":443",
        _ => ":80",
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade(extra: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get("/ws")
            .header("host", "example.com")
            .header("upgrade", "websocket")
            .header("connection", "keep-alive, Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", KEY);
        for (n, v) in extra {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_accept_key_of_rfc_6455_1_3() {
        assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_valid_handshake_gets_101() {
        let a = accept(&upgrade(&[]), &Policy::default()).unwrap();
        let r = &a.response;
        assert_eq!(r.status(), 101);
        assert_eq!(r.headers()["upgrade"], "websocket");
        assert_eq!(r.headers()["connection"], "Upgrade");
        assert_eq!(
            r.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(r.headers().get("sec-websocket-extensions").is_none());
    }

    #[test]
    fn bad_handshakes_get_the_rfc_status() {
        let policy = Policy::default();
        let status = |req: Request<()>| accept(&req, &policy).unwrap_err();
        let mut no_upgrade = upgrade(&[]);
        no_upgrade.headers_mut().remove("upgrade");
        let r = status(no_upgrade);
        assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(r.headers["upgrade"], "websocket");
        let mut post = upgrade(&[]);
        *post.method_mut() = Method::POST;
        assert_eq!(status(post).status, 405);
        let mut no_conn = upgrade(&[]);
        no_conn
            .headers_mut()
            .insert("connection", HeaderValue::from_static("keep-alive"));
        assert_eq!(status(no_conn).status, 400);
        let mut v8 = upgrade(&[]);
        v8.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("8"));
        let r = status(v8);
        assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(r.headers["sec-websocket-version"], "13");
        for key in [
            None,
            Some("abc"),
            Some("dGhlIHNhbXBsZSBub25jZQ"),
            Some("dGhlIHNhbXBsZSBub25jZSE="),
        ] {
            let mut r = upgrade(&[]);
            match key {
                Some(k) => r
                    .headers_mut()
                    .insert("sec-websocket-key", HeaderValue::from_static(k)),
                None => r.headers_mut().remove("sec-websocket-key"),
            };
            assert_eq!(status(r).status, 400, "{key:?}");
        }
        let mut h10 = upgrade(&[]);
        *h10.version_mut() = Version::HTTP_10;
        assert_eq!(status(h10).status, 400);
    }

    #[test]
    fn origins_are_checked_per_rfc_6455_10_2() {
        let table: [(Origins, Option<&str>, bool); 9] = [
            (Origins::Same, None, true),
            (Origins::Same, Some("http://example.com"), true),
            (Origins::Same, Some("https://EXAMPLE.com:443"), true),
            (Origins::Same, Some("http://example.com:8080"), false),
            (Origins::Same, Some("https://evil.test"), false),
            (Origins::Same, Some("null"), false),
            (Origins::Any, Some("https://evil.test"), true),
            (
                Origins::List(vec!["https://app.test".into()]),
                Some("https://app.test"),
                true,
            ),
            (
                Origins::List(vec!["https://app.test".into()]),
                Some("http://app.test"),
                false,
            ),
        ];
        for (origins, origin, ok) in table {
            let req = match origin {
                Some(o) => upgrade(&[("origin", o)]),
                None => upgrade(&[]),
            };
            let policy = Policy {
                origins: origins.clone(),
                ..Policy::default()
            };
            let got = accept(&req, &policy).map(|_| ()).map_err(|r| r.status);
            assert_eq!(got.is_ok(), ok, "{origins:?} {origin:?}");
            if !ok {
                assert_eq!(got.unwrap_err(), StatusCode::FORBIDDEN);
            }
        }
    }

    #[test]
    fn subprotocols_and_deflate_are_negotiated() {
        let policy = Policy {
            protocols: vec!["chat.v2".into(), "chat.v1".into()],
            ..Policy::default()
        };
        let req = upgrade(&[
            ("sec-websocket-protocol", "chat.v1, chat.v2"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ]);
        let a = accept(&req, &policy).unwrap();
        assert_eq!(a.protocol.as_deref(), Some("chat.v2"));
        assert_eq!(a.response.headers()["sec-websocket-protocol"], "chat.v2");
        assert_eq!(
            a.response.headers()["sec-websocket-extensions"],
            "permessage-deflate"
        );
        let none = accept(&upgrade(&[("sec-websocket-protocol", "other")]), &policy).unwrap();
        assert_eq!(none.protocol, None);
        assert!(none
            .response
            .headers()
            .get("sec-websocket-protocol")
            .is_none());
        let off = Policy {
            deflate: false,
            ..Policy::default()
        };
        let a = accept(
            &upgrade(&[("sec-websocket-extensions", "permessage-deflate")]),
            &off,
        )
        .unwrap();
        assert!(a.deflate.is_none());
    }

    #[test]
    fn extended_connect_gets_200_without_keys() {
        let mut req = Request::connect("https://example.com/ws")
            .version(Version::HTTP_2)
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectProtocol("websocket".into()));
        assert!(is_websocket(&req));
        let a = accept(&req, &Policy::default()).unwrap();
        assert_eq!(a.response.status(), 200);
        assert!(a.response.headers().get("sec-websocket-accept").is_none());
        let mut other = Request::connect("https://example.com/ws").body(()).unwrap();
        other
            .extensions_mut()
            .insert(ConnectProtocol("webtransport".into()));
        assert_eq!(accept(&other, &Policy::default()).unwrap_err().status, 400);
    }
}
