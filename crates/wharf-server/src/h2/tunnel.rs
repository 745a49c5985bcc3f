//! An HTTP/2 stream as a byte stream, for extended CONNECT (RFC 8441): once the
//! service answers 2xx, the request's DATA frames are what the client sends and the
//! response's DATA frames what the server sends, as a WebSocket session expects of a
//! connection. Reading gives flow-control window back as bytes are taken; writes go
//! through a small queue that the connection empties as the client's window allows, so
//! a peer that does not read holds back the writer, not memory.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::body::Incoming;

/// Writes queued before the writer waits for the connection to send them.
const QUEUE: usize = 8;

/// The client's half: its DATA frames.
pub(crate) struct Reader {
    body: Incoming,
    chunk: Bytes,
}

/// The server's half: DATA frames out.
pub(crate) struct Writer {
    tx: PollSender<Bytes>,
}

/// The response body the connection sends: what the [`Writer`] wrote.
pub(crate) struct Outgoing {
    rx: mpsc::Receiver<Bytes>,
}

pub(crate) fn split(body: Incoming) -> (Reader, Writer, Outgoing) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (
        Reader {
            body,
            chunk: Bytes::new(),
        },
        Writer {
            tx: PollSender::new(tx),
        },
        Outgoing { rx },
    )
}

impl AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.chunk.is_empty() {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk = data;
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())), // END_STREAM: end of input
            }
        }
        let n = self.chunk.len().min(buf.remaining());
        buf.put_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let gone = || io::Error::from(io::ErrorKind::BrokenPipe);
        ready!(self.tx.poll_reserve(cx)).map_err(|_| gone())?;
        self.tx
            .send_item(Bytes::copy_from_slice(buf))
            .map_err(|_| gone())?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// END_STREAM once what was written is sent.
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}
