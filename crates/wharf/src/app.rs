//! The service wharf runs behind every transport: the hub under its mount, WebSocket
//! endpoints by path, then the file service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::FutureExt;
use http::{header, HeaderValue, Request, Response};
use http_body::{Frame, SizeHint};
use tokio_util::sync::CancellationToken;
use wharf_files::Files;
use wharf_server::upgrade::OnUpgrade;
use wharf_server::{Exchange, RequestBody};

use crate::config::{Config, Listen, WebSocketConfig, WebSocketService};

/// Every service of a running wharf.
pub(crate) struct App {
    pub(crate) files: Files,
    hub: Option<wharf_hub::Service>,
    websockets: Vec<Endpoint>,
    /// The reverse proxy, when upstream groups are configured.
    proxy: Option<wharf_proxy::Proxy>,
    /// Per site, its `[[site.proxy]]` routes: path prefix and group index.
    routes: Vec<Vec<(String, usize)>>,
    /// Every request goes to group 0 (`wharf proxy`).
    proxy_everything: bool,
}

/// A WebSocket endpoint, ready to accept.
struct Endpoint {
    path: String,
    /// The hosts it answers on (its only "site"; without names, every host).
    hosts: wharf_http::host::Router,
    serve: WebSocketService,
    ws: wharf_ws::Endpoint,
}

/// A response body of any of the services.
pub(crate) enum Body {
    Files(wharf_files::Body),
    Hub(wharf_hub::Body),
    Proxy(wharf_proxy::Body),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Files(b) => Pin::new(b).poll_frame(cx),
            Body::Hub(b) => Pin::new(b).poll_frame(cx),
            Body::Proxy(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Files(b) => b.is_end_stream(),
            Body::Hub(b) => b.is_end_stream(),
            Body::Proxy(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Files(b) => b.size_hint(),
            Body::Hub(b) => b.size_hint(),
            Body::Proxy(b) => b.size_hint(),
        }
    }
}

/// The WebSocket endpoint a `[[websocket]]` (or the hub's settings) describes.
fn endpoint(c: &WebSocketConfig, shutdown: &CancellationToken) -> wharf_ws::Endpoint {
    wharf_ws::Endpoint {
        policy: c.policy(),
        settings: Arc::new(c.settings()),
        shutdown: Some(shutdown.clone()),
    }
}

/// The startup line about the hub: where it is and who may use it.
pub(crate) fn hub_line(cfg: &Config) -> Option<String> {
    let h = &cfg.hub;
    if !h.enabled {
        return None;
    }
    let who = match (&h.anonymous, loopback_only(cfg)) {
        (Some(_), _) => "anonymous rights as configured",
        (None, true) => "anyone on this machine may publish and subscribe",
        (None, false) => "tokens only: a listener is not on loopback",
    };
    let nodes = if h.redis.is_some() {
        ", shared through Redis"
    } else {
        ""
    };
    Some(format!("hub at {} ({who}{nodes})", h.mount))
}

/// Whether every listener is on a loopback address.
fn loopback_only(cfg: &Config) -> bool {
    [&cfg.listen, &cfg.tls.listen].into_iter().all(|l| match l {
        Listen::Loopback(_) => true,
        Listen::Addrs(a) => a.iter().all(|a| a.ip().is_loopback()),
    })
}

impl App {
    pub(crate) async fn new(
        files: Files,
        cfg: &Config,
        shutdown: CancellationToken,
    ) -> Result<Self, String> {
        let websockets = cfg
            .websocket
            .iter()
            .map(|c| Endpoint {
                path: c.path.clone(),
                hosts: {
                    let mut r = wharf_http::host::Router::default();
                    let names: Vec<String> = c.hosts.iter().map(|n| n.to_string()).collect();
                    r.add(0, &names, names.is_empty())
                        .expect("distinct names of one endpoint");
                    r
                },
                serve: c.serve,
                ws: endpoint(c, &shutdown),
            })
            .collect();
        let hub = if cfg.hub.enabled {
            let hub = wharf_hub::Hub::open(cfg.hub.hub(loopback_only(cfg)))
                .await
                .map_err(|e| format!("hub: {e}"))?;
            let ws = endpoint(&cfg.hub.websocket(), &shutdown);
            Some(wharf_hub::Service::new(hub, ws).map_err(|e| format!("hub: {e}"))?)
        } else {
            None
        };
        Ok(App {
            files,
            hub,
            websockets,
            proxy: cfg.proxy.clone().map(wharf_proxy::Proxy::new).transpose()?,
            routes: routes(cfg),
            proxy_everything: cfg.proxy_everything,
        })
    }
}

/// The hub channel of file changes.
const FILE_EVENTS: &str = "_files";

impl App {
    /// Publishes every change the file service sees in sites with `file_events` on
    /// the hub's `_files` channel: `{"site","path","change","size","etag"}`, with the
    /// size and ETag a `GET` now gets (asked of the file service itself, so they are
    /// exactly what clients see). Bursts (an editor's create, write, rename) are
    /// coalesced: each path once per batch of queued changes.
    pub(crate) fn publish_file_events(app: &Arc<App>, cfg: &Config) {
        if app.hub.is_none() || !cfg.sites.iter().any(|s| s.file_events) {
            return;
        }
        let hosts: Vec<String> = cfg
            .sites
            .iter()
            .map(|s| {
                s.names
                    .first()
                    .map_or_else(|| "localhost".to_owned(), |n| n.to_string())
            })
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
        app.files.on_change(move |site, path| {
            let _ = tx.send((site, path.to_owned()));
        });
        let app = app.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    if !batch.contains(&more) {
                        batch.push(more);
                    }
                }
                for (site, path) in batch {
                    app.publish_file_event(&hosts[site], &path).await;
                }
            }
        });
    }

    async fn publish_file_event(&self, host: &str, path: &str) {
        let Some(hub) = &self.hub else { return };
        let uri = path
            .split('/')
            .map(|seg| {
                percent_encoding::utf8_percent_encode(seg, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("/");
        let Ok(req) = Request::head(uri).header(header::HOST, host).body(()) else {
            return;
        };
        let res = self.files.serve(&req, None).await;
        let h = res.headers();
        let field = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let event = serde_json::json!({
            "site": host,
            "path": path,
            "change": if res.status().is_success() { "modified" } else { "deleted" },
            "size": field(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()),
            "etag": field(header::ETAG),
        });
        if let Err(e) = hub
            .hub()
            .publish(FILE_EVENTS, Bytes::from(event.to_string()))
            .await
        {
            tracing::warn!(error = ?e, path, "file event not published");
        }
    }
}

impl wharf_server::Service for App {
    type Body = Body;

    /// Routes at once and returns the chosen service's work, boxed: one allocation per
    /// request whichever route, and a future of a few words, where an `async fn` would
    /// keep room for the request twice (its argument and its binding) beside the work;
    /// or, for a file answered at once ([`Files::serve_ready`]), the answer itself.
    fn call(
        &self,
        mut req: Request<RequestBody>,
        exchange: Exchange<'_>,
    ) -> impl Future<Output = Response<Body>> + Send {
        let work: Pin<Box<dyn Future<Output = Response<Body>> + Send + '_>> =
            if let (Some(proxy), Some((group, explain))) = (&self.proxy, self.proxied(&req)) {
                let upgrade = req.extensions_mut().remove::<OnUpgrade>();
                // The proxy forwards the client's address and scheme (Forwarded,
                // X-Forwarded-*) and its upstream's 103s.
                let client = wharf_proxy::Client {
                    conn: exchange.conn,
                    tls: exchange.tls.is_some(),
                    interim: exchange.interim,
                };
                // The proxy's future, kilobytes, is boxed as it is (an async block
                // around it would add a copy of the request and of its other
                // arguments).
                Box::pin(
                    proxy
                        .serve(group, req, client, upgrade, explain)
                        .map(|res| res.map(Body::Proxy)),
                )
            } else if let Some(hub) = self.hub.as_ref().filter(|h| h.handles(req.uri().path())) {
                let upgrade = req.extensions_mut().remove::<OnUpgrade>();
                Box::pin(async move { hub.serve(req, upgrade).await.map(Body::Hub) })
            } else if let Some(ep) = self
                .websockets
                .iter()
                .find(|e| e.path == req.uri().path() && e.hosts.route(&req).is_ok())
            {
                Box::pin(std::future::ready(self.websocket(ep, &mut req)))
            } else {
                let files = &self.files;
                // A file whose bytes are in memory is answered here, without a future.
                if let Some(res) = files.serve_ready(&req, exchange.tls) {
                    wharf_http::maps::give(req.into_parts().0.headers);
                    return Either::Left(std::future::ready(res.map(Body::Files)));
                }
                // Files never read a body: it goes now, and the box keeps only the head.
                let req = req.map(drop);
                // The boxed work borrows one lifetime, the app's: a copy of the session.
                let tls = exchange.tls.cloned();
                Box::pin(async move {
                    let res = files.serve(&req, tls.as_ref()).await;
                    wharf_http::maps::give(req.into_parts().0.headers);
                    res.map(Body::Files)
                })
            };
        Either::Right(work)
    }
}

/// Per site, its proxy routes with the index of the group each names (names checked
/// on load), longest prefix first.
fn routes(cfg: &Config) -> Vec<Vec<(String, usize)>> {
    let groups: Vec<&str> = cfg
        .proxy
        .iter()
        .flat_map(|p| &p.groups)
        .map(|g| g.name.as_str())
        .collect();
    cfg.sites
        .iter()
        .map(|site| {
            let mut r: Vec<(String, usize)> = site
                .proxy
                .iter()
                .filter_map(|route| {
                    let g = groups.iter().position(|n| *n == route.upstream)?;
                    Some((route.path.clone(), g))
                })
                .collect();
            r.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
            r
        })
        .collect()
}

impl App {
    /// The upstream group a request goes to, and whether its site explains.
    fn proxied<B>(&self, req: &Request<B>) -> Option<(usize, bool)> {
        if self.proxy_everything {
            return Some((0, self.files.explains(self.files.site_of(req))));
        }
        let site = self.files.site_of(req)?;
        let path = req.uri().path();
        self.routes[site]
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, g)| (*g, self.files.explains(Some(site))))
    }

    /// Answers a WebSocket handshake; the session runs in a task of its own.
    fn websocket(&self, ep: &Endpoint, req: &mut Request<RequestBody>) -> Response<Body> {
        let upgrade = req.extensions_mut().remove::<OnUpgrade>();
        let serve = ep.serve;
        let run = move |session| async move {
            let end = match serve {
                WebSocketService::Echo => wharf_ws::echo(session).await,
            };
            if let Some(end) = end {
                tracing::debug!(code = end.code.0, by_peer = end.by_peer, reason = %end.reason, "WebSocket closed");
            }
        };
        match ep.ws.accept(req, upgrade, run) {
            Ok(response) => response.map(|()| Body::Files(wharf_files::Body::empty())),
            Err(refused) => refusal(refused),
        }
    }
}

/// A refused handshake: its status and fields, and the reason as text.
fn refusal(r: wharf_ws::Refused) -> Response<Body> {
    let text = Bytes::from(format!("{}\n", r.reason));
    let mut resp = Response::new(Body::Files(wharf_files::Body::from_bytes(text)));
    *resp.status_mut() = r.status;
    *resp.headers_mut() = r.headers;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_line_says_who_may_use_it() {
        let mut cfg = Config::default();
        assert_eq!(
            hub_line(&cfg).as_deref(),
            Some("hub at /hub/ (anyone on this machine may publish and subscribe)")
        );
        cfg.listen = Listen::Addrs(vec!["0.0.0.0:80".parse().unwrap()]);
        assert_eq!(
            hub_line(&cfg).as_deref(),
            Some("hub at /hub/ (tokens only: a listener is not on loopback)")
        );
        cfg.hub.redis = Some("redis://127.0.0.1".into());
        cfg.hub.anonymous = Some(Default::default());
        assert_eq!(
            hub_line(&cfg).as_deref(),
            Some("hub at /hub/ (anonymous rights as configured, shared through Redis)")
        );
        cfg.hub.enabled = false;
        assert_eq!(hub_line(&cfg), None);
    }
}
