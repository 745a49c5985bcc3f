//! Extended CONNECT over HTTP/3 (RFC 9220): a request stream's DATA frames, both
//! ways, as the byte stream of an upgraded connection (a WebSocket's).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wharf_h3::{Code, ConnError, Item};
use wharf_http::conn::ConnectProtocol;

use super::body::{ReadFailed, Reading};
use super::request::{final_head, send_body, write};
use super::{close, code};
use crate::conn::ConnCtx;
use crate::upgrade::Upgraded;
use crate::{RequestBody, Service};

/// An extended CONNECT (RFC 9220, as RFC 8441 §4 over HTTP/2): the service sees
/// the protocol and an `OnUpgrade`; a 2xx answer turns the stream's DATA both ways
/// into the tunnel's bytes (a WebSocket's frames), another answer is sent as it is.
/// The request's future lasts as long as the tunnel, so shutdown waits for it.
pub(super) async fn tunnel<S: Service>(
    ctx: &ConnCtx<S>,
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    reading: Reading,
    mut parts: http::request::Parts,
    protocol: String,
) -> Option<quinn::SendStream> {
    let (pending, on_upgrade) = crate::upgrade::pending();
    parts.extensions.insert(ConnectProtocol(protocol));
    parts.extensions.insert(on_upgrade);
    let method = parts.method.clone();
    let res = ctx
        .handle(Request::from_parts(parts, RequestBody::empty()), None)
        .await;
    let (mut head, body) = res.into_parts();
    let out = final_head(&mut head, &method, &body);
    let send_timeout = ctx.shared.limits.send_timeout;
    if !head.status.is_success() {
        let finished = send_body(body, out, &mut send, send_timeout).await;
        return finished.then_some(send);
    }
    drop(body); // logged; the tunnel is the stream's body from here
    if !write(&mut send, &mut [Bytes::from(out)], send_timeout).await {
        return None;
    }
    let reader = TunnelRead {
        reading,
        conn: conn.clone(),
        chunk: Bytes::new(),
        ended: false,
    };
    let writer = TunnelWrite {
        send,
        pending: Bytes::new(),
    };
    let (upgraded, closed) = Upgraded::new(Bytes::new(), Box::new(reader), Box::new(writer));
    if pending.fulfil(upgraded) {
        let _ = closed.await;
    }
    None
}

/// The largest DATA frame a tunnel writes.
const TUNNEL_FRAME: usize = 16 * 1024;

/// A tunnel's incoming bytes: the payloads of the stream's DATA frames.
struct TunnelRead {
    reading: Reading,
    conn: quinn::Connection,
    chunk: Bytes,
    ended: bool,
}

impl AsyncRead for TunnelRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.chunk.is_empty() && !this.ended {
            let failed = match std::task::ready!(this.reading.poll_item(cx)) {
                Ok(Some(Item::Data(data))) => {
                    this.chunk = data;
                    continue;
                }
                Ok(None) => {
                    this.ended = true;
                    continue;
                }
                // RFC 9114 §4.4 (RFC 9220 §3): only DATA once the tunnel is open.
                Ok(Some(_)) => {
                    ReadFailed::Conn(ConnError::new(Code::FrameUnexpected, "HEADERS in a tunnel"))
                }
                Err(failed) => failed,
            };
            this.ended = true;
            return Poll::Ready(Err(match failed {
                ReadFailed::Conn(e) => io::Error::other(close(&this.conn, e)),
                ReadFailed::Stream(e) => e.into(),
            }));
        }
        let n = this.chunk.len().min(buf.remaining());
        buf.put_slice(&this.chunk.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// A tunnel's outgoing bytes, each write one DATA frame (the frame being sent is
/// kept until it is all out).
struct TunnelWrite {
    send: quinn::SendStream,
    pending: Bytes,
}

/// A tunnel put down with a frame half sent is reset (H3_CONNECT_ERROR, §4.4): its
/// end would cut the frame, a connection error for the client (§7.1). Otherwise
/// quinn ends the stream as it is dropped.
impl Drop for TunnelWrite {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.send.reset(code(Code::ConnectError));
        }
    }
}

impl TunnelWrite {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.send).poll_write(cx, &self.pending))?;
            self.pending = self.pending.slice(n..);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TunnelWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(TUNNEL_FRAME);
        let mut frame = Vec::with_capacity(n + 9);
        wharf_h3::data_head(n as u64, &mut frame);
        frame.extend_from_slice(&buf[..n]);
        self.pending = frame.into();
        // Sent now as far as the stream takes it; the rest goes with the next write
        // or flush.
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_drain(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        let _ = self.send.finish();
        Poll::Ready(Ok(()))
    }
}
