//! Upgrades through the proxy (RFC 9110 §7.8): an HTTP/1.1 `Upgrade` request (a
//! WebSocket, or any protocol the upstream agrees to) is passed on with its `Upgrade`
//! field, which the hop-by-hop rules would otherwise drop; a WebSocket opened with an
//! extended CONNECT (RFC 8441 over HTTP/2, RFC 9220 over HTTP/3) becomes an HTTP/1.1
//! WebSocket handshake with the upstream, with a key of the proxy's own whose answer
//! it checks, and the client gets `200`. Once the upstream has answered `101`, bytes
//! are copied both ways until either side closes; the connection never returns to
//! its pool.

use std::future::Future;

use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use wharf_http::conn::ConnectProtocol;

use crate::h1::Upgraded;

/// What kind of upgrade a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// HTTP/1.1 `Upgrade` with these protocols, passed on as they are.
    Http1(HeaderValue),
    /// An extended CONNECT for a WebSocket; the key sent upstream.
    WebSocketConnect { key: String },
}

impl Upgrade {
    /// The upgrade `parts` asks for, if any.
    pub(crate) fn of(parts: &http::request::Parts) -> Option<Upgrade> {
        if parts.method == Method::CONNECT {
            let proto = parts.extensions.get::<ConnectProtocol>()?;
            return proto.0.eq_ignore_ascii_case("websocket").then(|| {
                let key: [u8; 16] = random();
                Upgrade::WebSocketConnect {
                    key: base64::engine::general_purpose::STANDARD.encode(key),
                }
            });
        }
        let protocols = parts.headers.get(header::UPGRADE)?;
        wharf_http::fields::has_token(&parts.headers, header::CONNECTION, "upgrade")
            .then(|| Upgrade::Http1(protocols.clone()))
    }

    /// The request method upstream: an extended CONNECT becomes the GET of RFC 6455.
    pub(crate) fn method(&self, method: &Method) -> Method {
        match self {
            Upgrade::Http1(_) => method.clone(),
            Upgrade::WebSocketConnect { .. } => Method::GET,
        }
    }

    /// Puts the upgrade's fields back into the request going upstream (after the
    /// hop-by-hop fields were removed).
    pub(crate) fn request_fields(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        match self {
            Upgrade::Http1(protocols) => {
                headers.insert(header::UPGRADE, protocols.clone());
            }
            Upgrade::WebSocketConnect { key } => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                if let Ok(v) = HeaderValue::from_str(key) {
                    headers.insert(header::SEC_WEBSOCKET_KEY, v);
                }
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
        }
    }

    /// Turns the upstream's `101` into the client's answer: `101` with the upgrade's
    /// fields for HTTP/1.1, `200` for an extended CONNECT once the upstream's
    /// `Sec-WebSocket-Accept` matches the proxy's key. An error is the reason the
    /// upstream's answer cannot be used (502).
    pub(crate) fn answer(
        &self,
        status: &mut StatusCode,
        headers: &mut HeaderMap,
        upgrade: Option<&HeaderValue>,
    ) -> Result<(), String> {
        match self {
            Upgrade::Http1(_) => {
                let Some(protocol) = upgrade else {
                    return Err("101 without Upgrade".into());
                };
                headers.insert(header::UPGRADE, protocol.clone());
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            Upgrade::WebSocketConnect { key } => {
                let want = wharf_ws::handshake::accept_key(key.as_bytes());
                let got = headers.remove(header::SEC_WEBSOCKET_ACCEPT);
                if got.as_ref().and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
                    return Err("the upstream's Sec-WebSocket-Accept does not match the key".into());
                }
                *status = StatusCode::OK;
            }
        }
        Ok(())
    }
}

/// Copies bytes both ways between the client's upgraded connection (once the
/// transport hands it over) and the upstream's, in a task of its own; what the
/// upstream sent with its `101` goes first.
pub(crate) fn splice<U, S, E>(client: U, upstream: Upgraded)
where
    U: Future<Output = Result<S, E>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: Send + 'static,
{
    tokio::spawn(async move {
        // The client gone before the switch: dropping the upstream closes it.
        let Ok(mut client) = client.await else { return };
        let Upgraded { early, mut io } = upstream;
        let copied = async {
            client.write_all(&early).await?;
            tokio::io::copy_bidirectional(&mut client, &mut io).await
        };
        if let Err(e) = copied.await {
            tracing::debug!(target: "wharf::proxy", error = %e, "tunnel ended");
        }
    });
}

/// Random bytes from the system's source (ring).
pub(crate) fn random<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn upgrades_are_recognised() {
        let ws = parts(
            http::Request::get("/")
                .header("connection", "keep-alive, Upgrade")
                .header("upgrade", "websocket")
                .body(())
                .unwrap(),
        );
        assert_eq!(
            Upgrade::of(&ws),
            Some(Upgrade::Http1(HeaderValue::from_static("websocket")))
        );
        let no_option = parts(
            http::Request::get("/")
                .header("upgrade", "websocket")
                .body(())
                .unwrap(),
        );
        assert_eq!(
            Upgrade::of(&no_option),
            None,
            "RFC 9110 §7.8: Upgrade needs the connection option"
        );
        let mut connect = http::Request::connect("/chat").body(()).unwrap();
        connect
            .extensions_mut()
            .insert(ConnectProtocol("websocket".into()));
        let Some(Upgrade::WebSocketConnect { key }) = Upgrade::of(&parts(connect)) else {
            panic!("an extended CONNECT for a WebSocket");
        };
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .unwrap()
                .len(),
            16
        );
        let plain = parts(http::Request::connect("a.test:443").body(()).unwrap());
        assert_eq!(Upgrade::of(&plain), None);
    }

    #[test]
    fn an_extended_connect_gets_200_only_for_the_right_accept() {
        let up = Upgrade::WebSocketConnect {
            key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
        };
        let mut status = StatusCode::SWITCHING_PROTOCOLS;
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        up.answer(&mut status, &mut h, None).unwrap();
        assert_eq!(status, StatusCode::OK, "RFC 8441 §5: 200 to the CONNECT");
        assert!(h.is_empty());
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("bm9wZQ=="),
        );
        assert!(up.answer(&mut status, &mut h, None).is_err());
    }
}
