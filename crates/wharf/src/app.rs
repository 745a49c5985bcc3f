//! The service wharf runs behind every transport: WebSocket endpoints by path, then
//! the file service.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use tokio_util::sync::CancellationToken;
use wharf_files::{Body, Files};
use wharf_server::upgrade::OnUpgrade;
use wharf_server::RequestBody;

use crate::config::{WebSocketConfig, WebSocketService};

/// Every service of a running wharf.
pub(crate) struct App {
    files: Files,
    websockets: Vec<Endpoint>,
    /// Fires on shutdown: WebSocket sessions then close with 1001.
    shutdown: CancellationToken,
}

/// A WebSocket endpoint, ready to accept.
struct Endpoint {
    path: String,
    serve: WebSocketService,
    policy: wharf_ws::Policy,
    settings: Arc<wharf_ws::Settings>,
}

impl App {
    pub(crate) fn new(
        files: Files,
        websockets: &[WebSocketConfig],
        shutdown: CancellationToken,
    ) -> Self {
        let websockets = websockets
            .iter()
            .map(|c| Endpoint {
                path: c.path.clone(),
                serve: c.serve,
                policy: c.policy(),
                settings: Arc::new(c.settings()),
            })
            .collect();
        App {
            files,
            websockets,
            shutdown,
        }
    }
}

impl wharf_server::Service for App {
    type Body = Body;

    async fn call(&self, mut req: Request<RequestBody>) -> Response<Body> {
        if let Some(ep) = self.websockets.iter().find(|e| e.path == req.uri().path()) {
            return self.websocket(ep, &mut req);
        }
        // Boxed (and bound first, so that this future keeps no room for it): moving a
        // box is a pointer copy, and transports move request futures into boxes and
        // slots, a memcpy of their whole size each time.
        let serve = Box::pin(self.files.serve(&req));
        serve.await
    }
}

impl App {
    /// Answers a WebSocket handshake and, once the transport hands the stream over,
    /// runs the session in a task of its own.
    fn websocket(&self, ep: &Endpoint, req: &mut Request<RequestBody>) -> Response<Body> {
        let accepted = match wharf_ws::accept(req, &ep.policy) {
            Ok(a) => a,
            Err(refused) => return refusal(refused),
        };
        let Some(upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
            let r = wharf_ws::Refused {
                status: http::StatusCode::NOT_IMPLEMENTED,
                headers: http::HeaderMap::new(),
                reason: "WebSocket is not available over this HTTP version yet",
            };
            return refusal(r);
        };
        let (settings, deflate, shutdown, serve) = (
            ep.settings.clone(),
            accepted.deflate,
            self.shutdown.clone(),
            ep.serve,
        );
        tokio::spawn(async move {
            let Ok(io) = upgrade.await else {
                return; // the 101 was not written: the client went away
            };
            let session = wharf_ws::Session::new(io, settings, deflate, Some(shutdown));
            let end = match serve {
                WebSocketService::Echo => wharf_ws::echo(session).await,
            };
            if let Some(end) = end {
                tracing::debug!(code = end.code.0, by_peer = end.by_peer, reason = %end.reason, "WebSocket closed");
            }
        });
        accepted.response.map(|()| Body::empty())
    }
}

/// A refused handshake: its status and fields, and the reason as text.
fn refusal(r: wharf_ws::Refused) -> Response<Body> {
    let mut resp = Response::new(Body::from_bytes(Bytes::from(format!("{}\n", r.reason))));
    *resp.status_mut() = r.status;
    *resp.headers_mut() = r.headers;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
