//! The hub over HTTP, under its mount (`/hub/`):
//!
//! | request | answer |
//! |---|---|
//! | `GET /hub/` | the channels one may subscribe to, with last id and subscribers |
//! | `POST /hub/{channel}` (body: the message, UTF-8) | `{"id":…,"time":…}`; 413 over the size limit |
//! | `GET /hub/{channel}` with a WebSocket handshake | the messages as text frames; the client's text messages are published where it may publish |
//! | `GET /hub/{channel}` with `Accept: text/event-stream` | Server-Sent Events; resumes after `Last-Event-ID` |
//! | `GET /hub/{channel}?since=ID[&wait=S]` | long-poll: the messages after ID, waiting up to S seconds (default and maximum `long_poll_timeout`) for the first |
//! | `GET /hub/{channel}` (no `since`), or `wait=0` | poll: what there is now |
//!
//! Every message is the JSON object `{"id":…,"time":…,"channel":…,"data":…}`. Ids lost
//! from history before a client got them are reported, never skipped silently:
//! `"missed":{"from":…,"to":…}` in a poll answer, an event named `missed` in SSE, a
//! `{"missed":{…}}` text message over WebSocket. WebSocket and SSE also take `since`.
//! A token comes as `Authorization: Bearer …` or as `?token=…`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{Denied, Guard, Op};
use crate::channel::{Cursor, Step};
use crate::hub::{Hub, PublishError};
use crate::sse::{self, Events};
use wharf_ws::{Code, Message, Session};

/// Messages one poll answer carries at most.
const POLL_MAX: usize = 1000;

/// The hub's HTTP interface.
pub struct Service {
    hub: Arc<Hub>,
    guard: Guard,
    ws: wharf_ws::Endpoint,
}

/// A hub response body: a whole answer, or an event stream.
pub struct Body(Kind);

enum Kind {
    Full(Option<Bytes>),
    Events(Box<Events>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().0 {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Events(e) => e.poll_next(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Events(_) => SizeHint::default(),
        }
    }
}

impl Body {
    /// A whole body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        Body(Kind::Full(Some(b.into())))
    }

    /// No body.
    pub fn empty() -> Self {
        Body(Kind::Full(None))
    }
}

/// Channel names: 1–128 of ASCII letters, digits, `.`, `_`, `-`, not starting with
/// `.` (they name log files in `data_dir`).
pub fn valid_channel(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Service {
    /// The interface of `hub`; WebSocket subscribers get `ws`'s policy and settings.
    pub fn new(hub: Arc<Hub>, ws: wharf_ws::Endpoint) -> Result<Self, globset::Error> {
        let guard = Guard::new(&hub.config().access)?;
        Ok(Service { hub, guard, ws })
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Whether `path` is the hub's.
    pub fn handles(&self, path: &str) -> bool {
        let mount = &self.hub.config().mount;
        path.starts_with(mount.as_str()) || path == mount.trim_end_matches('/')
    }

    /// Answers one request; `upgrade` hands over the stream of an accepted WebSocket.
    pub async fn serve<B, U, S, E>(&self, req: Request<B>, upgrade: Option<U>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        U: Future<Output = Result<S, E>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mount = self.hub.config().mount.as_str();
        let name = req
            .uri()
            .path()
            .strip_prefix(mount)
            .unwrap_or("")
            .to_owned();
        let name = name.as_str();
        let query = Query::parse(req.uri().query());
        let token = bearer(&req).or(query.token.as_deref()).map(str::to_owned);
        if name.is_empty() {
            return match *req.method() {
                Method::GET | Method::HEAD => self.index(token.as_deref()),
                _ => not_allowed("GET"),
            };
        }
        if !valid_channel(name) {
            return error(
                StatusCode::NOT_FOUND,
                "channel names are 1-128 letters, digits, '.', '_' or '-'",
            );
        }
        let op = match *req.method() {
            Method::POST => Op::Publish,
            Method::GET | Method::HEAD => Op::Subscribe,
            // A WebSocket over HTTP/2 (RFC 8441).
            Method::CONNECT if wharf_ws::is_websocket(&req) => Op::Subscribe,
            Method::OPTIONS => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, POST, OPTIONS"),
                );
                return r;
            }
            _ => return not_allowed("GET, POST, OPTIONS"),
        };
        if let Err(d) = self.guard.check(token.as_deref(), op, name) {
            return denied(d);
        }
        if op == Op::Publish {
            return self.publish(name, req).await;
        }
        let since_param = query
            .since
            .as_ref()
            .map(|s| s.parse::<u64>().map_err(|_| ()));
        let since = match (since_param, last_event_id(&req)) {
            (_, Some(Err(()))) | (Some(Err(())), _) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "since and Last-Event-ID must be message ids",
                );
            }
            (_, Some(Ok(id))) | (Some(Ok(id)), None) => Some(id),
            (None, None) => None,
        };
        let Some(channel) = self.hub.channel(name).await else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub holds its maximum of channels",
            );
        };
        let from = since.map(|id| id.saturating_add(1));
        if wharf_ws::is_websocket(&req) {
            let may_publish = self
                .guard
                .check(token.as_deref(), Op::Publish, name)
                .is_ok();
            let cursor = channel.cursor(from).subscribe();
            let (hub, name) = (self.hub.clone(), name.to_owned());
            let run = move |session| subscriber(session, cursor, hub, name, may_publish);
            return match self.ws.accept(&req, upgrade, run) {
                Ok(r) => r.map(|()| Body::empty()),
                Err(refused) => error(refused.status, refused.reason),
            };
        }
        if accepts_event_stream(&req) {
            // Without a position, a stream starts with what is published next.
            let events = Events::new(
                channel.cursor(from).subscribe(),
                self.hub.config().sse_heartbeat,
                self.ws.shutdown.clone(),
            );
            let mut r = Response::new(Body(Kind::Events(Box::new(events))));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return r;
        }
        let limit = self.hub.config().long_poll_timeout;
        let wait = match query.wait.as_deref() {
            None if since.is_some() => limit,
            None => Duration::ZERO,
            Some(w) => match w.parse::<u64>() {
                Ok(s) => Duration::from_secs(s).min(limit),
                Err(_) => return error(StatusCode::BAD_REQUEST, "wait must be whole seconds"),
            },
        };
        // Without a position, a poll answers with the whole history.
        let cursor = channel.cursor(Some(from.unwrap_or_else(|| channel.first_id())));
        poll(cursor, wait, self.ws.shutdown.as_ref()).await
    }

    fn index(&self, token: Option<&str>) -> Response<Body> {
        let list: Vec<_> = self
            .hub
            .channels()
            .into_iter()
            .filter(|c| self.guard.check(token, Op::Subscribe, c.name()).is_ok())
            .map(|c| {
                serde_json::json!({
                    "channel": c.name(),
                    "last": c.next_id() - 1,
                    "subscribers": c.subscribers(),
                })
            })
            .collect();
        json(
            StatusCode::OK,
            serde_json::json!({ "channels": list }).to_string(),
        )
    }

    async fn publish<B>(&self, name: &str, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let max = self.hub.config().max_message_size;
        let body = match http_body_util::Limited::new(req.into_body(), max)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("a message is at most {max} bytes"),
                )
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the message: {e}"),
                )
            }
        };
        if std::str::from_utf8(&body).is_err() {
            return error(StatusCode::BAD_REQUEST, "a message is UTF-8 text");
        }
        match self.hub.publish(name, body).await {
            Ok(e) => json(
                StatusCode::OK,
                format!(
                    "{{\"channel\":\"{name}\",\"id\":{},\"time\":{}}}",
                    e.id, e.time
                ),
            ),
            Err(PublishError::TooManyChannels) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub holds its maximum of channels",
            ),
            Err(PublishError::Store(e)) => {
                tracing::error!(channel = name, error = %e, "hub: storing a message failed");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the message could not be stored",
                )
            }
            Err(PublishError::Redis(e)) => {
                tracing::error!(channel = name, error = %e, "hub: publishing through Redis failed");
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the hub's Redis is unreachable",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        }
    }
}

/// A poll: what is there after the cursor, waiting up to `wait` for something (a
/// shutdown answers at once, so that the client polls again elsewhere).
async fn poll(
    mut cursor: Cursor,
    wait: Duration,
    shutdown: Option<&tokio_util::sync::CancellationToken>,
) -> Response<Body> {
    let step = match cursor.try_next(POLL_MAX) {
        Some(step) => Some(step),
        None if wait.is_zero() => None,
        None => {
            let mut waiting = cursor.subscribe();
            let stopped = async {
                match shutdown {
                    Some(s) => s.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                step = tokio::time::timeout(wait, waiting.next(POLL_MAX)) => step.ok(),
                () = stopped => None,
            };
            cursor = waiting;
            step
        }
    };
    let channel = cursor.channel();
    let mut out = format!(
        "{{\"channel\":\"{}\",\"subscribers\":{},",
        channel.name(),
        channel.subscribers()
    );
    let events = match step {
        Some(Step::Missed(m)) => {
            out.push_str(&format!(
                "\"missed\":{{\"from\":{},\"to\":{}}},",
                m.from, m.to
            ));
            match cursor.try_next(POLL_MAX) {
                Some(Step::Events(e)) => e,
                _ => Vec::new(),
            }
        }
        Some(Step::Events(e)) => e,
        None => Vec::new(),
    };
    let last = events.last().map_or(cursor.position() - 1, |e| e.id);
    out.push_str(&format!("\"last\":{last},\"messages\":["));
    let mut body = out.into_bytes();
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&e.json);
    }
    body.extend_from_slice(b"]}");
    json(StatusCode::OK, body)
}

/// A WebSocket subscriber: messages out as they come; text in is published where
/// the client may publish.
async fn subscriber<S>(
    mut session: Session<S>,
    mut cursor: Cursor,
    hub: Arc<Hub>,
    name: String,
    may_publish: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            msg = session.recv() => match msg {
                None => break,
                Some(Message::Text(data)) if may_publish => {
                    if let Err(e) = hub.publish(&name, data).await {
                        tracing::warn!(channel = %name, error = ?e, "hub: a WebSocket publish failed");
                        session.close(wharf_ws::Close::new(Code::INTERNAL, "the message could not be published"));
                    }
                }
                Some(Message::Text(_)) => session.close(wharf_ws::Close::new(Code::POLICY, "this client may not publish here")),
                Some(Message::Binary(_)) => session.close(wharf_ws::Close::new(Code(1003), "messages are text")),
            },
            step = cursor.next(sse::BATCH) => {
                let sent = match step {
                    Step::Events(events) => events.iter().try_for_each(|e| session.send(&Message::Text(e.json.clone()))),
                    Step::Missed(m) => session.send(&Message::text(format!("{{\"missed\":{{\"from\":{},\"to\":{}}}}}", m.from, m.to))),
                };
                let _ = sent; // a closing session drops what comes; recv ends it
            }
        }
    }
}

/// The query parameters the hub reads.
#[derive(Default)]
struct Query {
    since: Option<String>,
    wait: Option<String>,
    token: Option<String>,
}

impl Query {
    fn parse(q: Option<&str>) -> Query {
        let mut out = Query::default();
        for pair in q.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "since" => out.since = Some(v),
                "wait" => out.wait = Some(v),
                "token" => out.token = Some(v),
                _ => {}
            }
        }
        out
    }
}

fn last_event_id<B>(req: &Request<B>) -> Option<Result<u64, ()>> {
    req.headers().get("last-event-id").map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(())
    })
}

fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn accepts_event_stream<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, reason: &str) -> Response<Body> {
    json(status, serde_json::json!({ "error": reason }).to_string())
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn denied(d: Denied) -> Response<Body> {
    let (status, challenge, reason) = match d {
        Denied::NoToken => (
            StatusCode::UNAUTHORIZED,
            Some("Bearer realm=\"wharf hub\""),
            "a token is required (Authorization: Bearer, or ?token=)",
        ),
        Denied::BadToken => (
            StatusCode::UNAUTHORIZED,
            Some("Bearer realm=\"wharf hub\", error=\"invalid_token\""),
            "unknown token",
        ),
        Denied::Forbidden => (StatusCode::FORBIDDEN, None, "not allowed on this channel"),
    };
    let mut r = error(status, reason);
    if let Some(c) = challenge {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    r
}
