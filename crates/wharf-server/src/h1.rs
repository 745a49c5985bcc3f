//! One HTTP/1.1 connection: hyper does the wire format (RFC 9112 parsing, keep-alive,
//! pipelining, 400/414/431 on malformed heads); this module adds what hyper leaves to
//! the server: the Host rule of RFC 9112 §3.2, a configurable target length, a cap on
//! requests per connection, wharf's timeouts and the access log.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::access_log::{Entry, LoggedBody};
use crate::listener::{ConnInfo, Shared};
use crate::socket::{Cork, Socket};
use crate::watchdog::Watchdog;
use crate::{RequestBody, Service, Shutdown};

/// The hyper settings for every connection of a listener.
pub(crate) fn builder(limits: &crate::Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.keep_alive(true)
        .half_close(false)
        .header_read_timeout(None) // wharf's watchdog measures it from the first byte
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes);
    // Not `pipeline_flush`: hyper then skips flushing while unparsed bytes remain, so
    // the 400/431 for a malformed head, or a last response before `Connection: close`
    // with pipelined requests behind it, would never be written.
    b
}

/// Serves one accepted TCP connection until it closes, times out or shutdown drains it.
pub(crate) async fn serve<S: Service>(
    stream: TcpStream,
    info: ConnInfo,
    shared: Arc<Shared<S>>,
    shutdown: Shutdown,
    _permit: OwnedSemaphorePermit,
) {
    let l = &shared.limits;
    let dog = Watchdog::new(l.idle_timeout, l.header_read_timeout, l.send_timeout);
    let (read, write) = stream.into_split();
    let cork = Cork::new(write, dog.clone());
    let io = TokioIo::new(Socket::new(read, cork.clone()));
    let conn_ctx = Arc::new(ConnCtx {
        shared: shared.clone(),
        info,
        dog: dog.clone(),
        served: AtomicU64::new(0),
    });
    let svc = service_fn(move |req| {
        let ctx = conn_ctx.clone();
        async move { Ok::<_, Infallible>(ctx.handle(req).await) }
    });
    let conn = shared.builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let expired = dog.expired();
    tokio::pin!(expired);
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    let mut draining = false;
    let mut finished: Option<Result<(), hyper::Error>> = None;
    let end = std::future::poll_fn(|cx| {
        if !draining && stop.as_mut().poll(cx).is_ready() {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(expiry) = expired.as_mut().poll(cx) {
            return Poll::Ready(End::Timeout(expiry));
        }
        if finished.is_none() {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                finished = Some(r);
            }
        }
        // Whatever hyper wrote in this poll goes out now, in one write.
        match cork.poll_drain(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(End::Write(e)),
            Poll::Ready(Ok(())) => match finished.take() {
                Some(Ok(())) => Poll::Ready(End::Done),
                Some(Err(e)) => Poll::Ready(End::Http(e)),
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match end {
        End::Done => {}
        End::Http(e) => {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error")
        }
        End::Write(e) => {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended: write failed")
        }
        End::Timeout(expiry) => {
            tracing::debug!(peer = %info.peer, ?expiry, "closing connection: timeout")
        }
    }
}

/// Why a connection ended.
enum End {
    Done,
    Http(hyper::Error),
    Write(std::io::Error),
    Timeout(crate::watchdog::Expiry),
}

/// Per-connection state shared by its requests.
struct ConnCtx<S> {
    shared: Arc<Shared<S>>,
    info: ConnInfo,
    dog: Arc<Watchdog>,
    served: AtomicU64,
}

impl<S: Service> ConnCtx<S> {
    async fn handle(&self, mut req: Request<RequestBody>) -> Response<LoggedBody<H1Body<S::Body>>> {
        self.dog.request_started();
        let logging = self.shared.log.format != crate::LogFormat::Off;
        let entry = logging.then(|| Entry::new(self.info.peer, &req));
        let limits = &self.shared.limits;
        let res = if let Some(res) = check_head(&req, limits.max_uri_len) {
            res
        } else {
            req.extensions_mut().insert(self.info);
            let mut res = self.shared.service.call(req).await.map(H1Body::Service);
            let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= limits.max_requests_per_connection {
                res.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            res
        };
        LoggedBody::wrap(res, entry, self.shared.log, self.dog.clone())
    }
}

/// RFC 9112 checks hyper leaves to the server. Returns the error response, if any.
fn check_head<B, T>(req: &Request<B>, max_uri_len: usize) -> Option<Response<H1Body<T>>> {
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field and to any request message
    // that contains more than one Host header field line or a Host header field with an
    // invalid field value."
    let hosts = req.headers().get_all(HOST).iter().count();
    if hosts > 1 || (hosts == 0 && req.version() == Version::HTTP_11) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: exactly one Host header field is required\n",
        ));
    }
    if let Some(host) = req.headers().get(HOST) {
        if host.to_str().map_or(true, |h| {
            h.parse::<http::uri::Authority>().is_err() && !h.is_empty()
        }) {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: invalid Host header field\n",
            ));
        }
    }
    if target_len(req.uri()) > max_uri_len {
        return Some(error(StatusCode::URI_TOO_LONG, "414 URI Too Long\n"));
    }
    None
}

fn target_len(uri: &http::Uri) -> usize {
    let pq = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let auth = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    pq + auth + scheme
}

/// A transport-level error response; the connection closes after it.
fn error<T>(status: StatusCode, text: &'static str) -> Response<H1Body<T>> {
    let mut res = Response::new(H1Body::Text(Some(Bytes::from_static(text.as_bytes()))));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The body of an HTTP/1.1 response: the service's, or a transport error text.
pub(crate) enum H1Body<B> {
    Service(B),
    Text(Option<Bytes>),
}

impl<B> Body for H1Body<B>
where
    B: Body<Data = Bytes, Error = std::io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            H1Body::Service(b) => Pin::new(b).poll_frame(cx),
            H1Body::Text(t) => Poll::Ready(t.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            H1Body::Service(b) => b.is_end_stream(),
            H1Body::Text(t) => t.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            H1Body::Service(b) => b.size_hint(),
            H1Body::Text(t) => SizeHint::with_exact(t.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(version: Version, hosts: &[&str], target: &str) -> Option<StatusCode> {
        let mut b = Request::builder().version(version).uri(target);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        check_head::<_, ()>(&b.body(()).unwrap(), 64).map(|r| r.status())
    }

    #[test]
    fn host_and_target_rules() {
        // (version, Host lines, target, expected) — RFC 9112 §3.2 and §3
        let table: &[(Version, &[&str], &str, Option<StatusCode>)] = &[
            (Version::HTTP_11, &["a.test"], "/", None),
            (Version::HTTP_11, &[], "/", Some(StatusCode::BAD_REQUEST)), // §3.2 lacks Host
            (Version::HTTP_10, &[], "/", None),                          // 1.0 may omit it
            (
                Version::HTTP_11,
                &["a", "b"],
                "/",
                Some(StatusCode::BAD_REQUEST),
            ), // §3.2 two lines
            (
                Version::HTTP_10,
                &["a", "b"],
                "/",
                Some(StatusCode::BAD_REQUEST),
            ),
            (
                Version::HTTP_11,
                &["a b"],
                "/",
                Some(StatusCode::BAD_REQUEST),
            ), // invalid value
            (Version::HTTP_11, &["a.test:8080"], "/", None),
            (Version::HTTP_11, &[""], "/", None), // §3.2.2 empty Host allowed without authority
            (
                Version::HTTP_11,
                &["a"],
                &format!("/{}", "x".repeat(64)),
                Some(StatusCode::URI_TOO_LONG),
            ),
            (
                Version::HTTP_11,
                &["a"],
                &format!("/{}", "x".repeat(63)),
                None,
            ),
        ];
        for (v, hosts, target, want) in table {
            assert_eq!(check(*v, hosts, target), *want, "{v:?} {hosts:?} {target}");
        }
    }
}
