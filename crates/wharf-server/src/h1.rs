//! One HTTP/1.1 connection: hyper does the wire format (RFC 9112 parsing, keep-alive,
//! pipelining, 400/431 on malformed heads); wharf adds its timeouts (`watchdog`), write
//! corking (`socket`) and, per request, what `conn` checks before the service.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderMap, Request, Version};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use wharf_http::interim::EarlyHints;

use crate::conn::ConnCtx;
use crate::socket::{Cork, Socket};
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

/// Serves one HTTP/1.1 connection until it closes, times out or shutdown drains it.
/// `prefix` holds bytes already read from `read`.
pub(crate) async fn serve<S, R, W>(
    read: R,
    write: W,
    prefix: Bytes,
    ctx: Arc<ConnCtx<S>>,
    shutdown: Shutdown,
) where
    S: Service,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let dog = ctx.dog.clone();
    let peer = ctx.info.peer;
    let cork = Cork::new(write, dog.clone());
    let io = TokioIo::new(Socket::new(read, cork.clone()).with_prefix(prefix));
    let builder = ctx.shared.h1.clone();
    let hints = ctx.shared.http.early_hints_http1.then(|| cork.clone());
    let svc = service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        let hints = hints.clone().filter(|_| req.version() == Version::HTTP_11);
        async move {
            let res = ctx.handle(req.map(RequestBody::h1)).await;
            if let (Some(cork), Some(EarlyHints(fields))) = (hints, res.extensions().get()) {
                // RFC 9110 §15.2: never to HTTP/1.0 clients (filtered above).
                cork.interject(&early_hints(fields));
            }
            Ok::<_, Infallible>(res)
        }
    });
    let conn = builder.serve_connection(io, svc);
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
            tracing::debug!(%peer, error = %e, "connection ended with an error")
        }
        End::Write(e) => {
            tracing::debug!(%peer, error = %e, "connection ended: write failed")
        }
        End::Timeout(expiry) => {
            tracing::debug!(%peer, ?expiry, "closing connection: timeout")
        }
    }
}

/// A `103 Early Hints` head in HTTP/1.1 wire format.
fn early_hints(fields: &HeaderMap) -> Vec<u8> {
    let mut out = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Why a connection ended.
enum End {
    Done,
    Http(hyper::Error),
    Write(std::io::Error),
    Timeout(crate::watchdog::Expiry),
}
