//! The read side of an HTTP/1.1 connection, shared by the connection (which reads
//! request heads) and the body of the request in progress (which reads its own bytes
//! when the service asks for them).
//!
//! Reads are demand-driven: nothing is read while a service works unless it reads the
//! body, so a client's next pipelined requests wait in its socket, not in memory. The
//! read buffer is lent by `pool` only while unconsumed bytes remain. A body asking for
//! bytes the client has not sent after `Expect: 100-continue` makes the connection send
//! `100 Continue` first (RFC 9110 §10.1.1). Once the response is done the body is
//! detached: a service that kept it sees an error, and the connection reads (or
//! discards) what is left of it.

use crate::lock;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use super::head::{Framing, MAX_HEADERS};
use crate::pool;
use crate::watchdog::Watchdog;
use wharf_h1::chunked::{trailer_fields, Decoder};

/// Where the body of the request in progress stands.
#[derive(Debug)]
enum BodyState {
    /// No body, or all of it read.
    Done,
    /// This many bytes still to come.
    Length(u64),
    Chunked(Box<Decoder>),
    /// The trailer section, to be handed out after the last data.
    Trailers(HeaderMap),
}

/// `Expect: 100-continue` of the request in progress.
#[derive(Debug)]
enum Expect {
    /// Nothing to send (no expectation, or already answered).
    No,
    /// The client waits for `100 Continue` before sending the body.
    Waiting,
    /// The body wants bytes: the connection is to send `100 Continue` and wake it.
    Wanted(Waker),
}

/// The connection's read half and its buffer.
pub(crate) struct Reader<R> {
    io: R,
    /// Lent by `pool` while `start..end` holds bytes; empty otherwise.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    body: BodyState,
    expect: Expect,
    /// The request's body was handed back by the connection: its reader is stale.
    detached: bool,
    /// Counts requests: a body handle of an earlier request never reads a later one's.
    generation: u64,
    /// The connection's task, woken when a body (perhaps in another task) wants a
    /// `100 Continue` sent.
    conn_waker: Option<Waker>,
    /// Read buffers may grow to this for long heads.
    max_buf: usize,
    max_trailer: usize,
    dog: Arc<Watchdog>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) fn new(io: R, prefix: &[u8], max_header_bytes: usize, dog: Arc<Watchdog>) -> Self {
        let mut r = Reader {
            io,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            body: BodyState::Done,
            expect: Expect::No,
            detached: false,
            generation: 0,
            conn_waker: None,
            max_buf: (max_header_bytes + 1).max(pool::READ_BUF),
            max_trailer: max_header_bytes,
            dog,
        };
        if !prefix.is_empty() {
            r.buf = pool::take_read();
            if r.buf.len() < prefix.len() {
                r.buf.resize(prefix.len(), 0);
            }
            r.buf[..prefix.len()].copy_from_slice(prefix);
            r.end = prefix.len();
        }
        r
    }

    /// The bytes read and not yet consumed.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether the client closed its side.
    pub(crate) fn is_eof(&self) -> bool {
        self.eof
    }

    /// Marks `n` bytes consumed; an emptied buffer goes back to the pool.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start >= self.end {
            self.release();
        }
    }

    fn release(&mut self) {
        self.start = 0;
        self.end = 0;
        pool::give_read(std::mem::take(&mut self.buf));
    }

    /// Reads more bytes after those held: `Ok(0)` at the end of the stream.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        if self.buf.is_empty() {
            self.buf = pool::take_read();
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < self.max_buf {
                let to = (self.buf.len() * 2).min(self.max_buf);
                self.buf.resize(to, 0);
            } else {
                return Poll::Ready(Err(io::Error::other("read buffer full")));
            }
        }
        let mut rb = ReadBuf::new(&mut self.buf[self.end..]);
        match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
            Poll::Pending => {
                if self.start == self.end {
                    // Nothing held: an idle connection keeps no buffer.
                    self.release();
                }
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.end += n;
                if n == 0 {
                    self.eof = true;
                    if self.start == self.end {
                        self.release();
                    }
                } else {
                    self.dog.on_read();
                }
                Poll::Ready(Ok(n))
            }
        }
    }

    /// Whether the client went away (end of stream, or a read error) while its
    /// response is pending, as nginx tests it for requests that wait: what arrives
    /// meanwhile (a pipelined request) is read ahead and kept, while there is room.
    /// Never while the request's body may still be read, whose bytes are the
    /// service's. Checking costs no system call until the socket is readable.
    pub(crate) fn poll_gone(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.body_done() {
            return false;
        }
        loop {
            let full =
                self.start == 0 && self.end == self.buf.len() && self.buf.len() >= self.max_buf;
            if full {
                return false;
            }
            match self.poll_fill(cx) {
                Poll::Pending => return false,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return true,
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// The socket's read half and the bytes read but not consumed (an upgrade).
    pub(crate) fn into_parts(mut self) -> (R, Bytes) {
        let rest = Bytes::copy_from_slice(self.data());
        self.release();
        (self.io, rest)
    }

    /// Sets up the body of a request whose head was just consumed.
    pub(crate) fn start_body(&mut self, framing: Framing, expect_continue: bool) -> u64 {
        self.detached = false;
        self.generation += 1;
        self.body = match framing {
            Framing::Empty => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(Box::new(Decoder::new(self.max_trailer))),
        };
        self.expect = if expect_continue && !self.body_done() {
            Expect::Waiting
        } else {
            Expect::No
        };
        self.generation
    }

    /// The connection's task asks to be woken when a `100 Continue` is wanted.
    pub(crate) fn watch_continue(&mut self, cx: &Context<'_>) {
        if matches!(self.expect, Expect::Waiting)
            && !self
                .conn_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.conn_waker = Some(cx.waker().clone());
        }
    }

    /// The expectation is over: `100 Continue` went out, or the final response head
    /// did and no 100 can follow it (RFC 9110 §10.1.1: a client may send its body
    /// without waiting). A body waiting for it reads now.
    pub(crate) fn expectation_over(&mut self) {
        if let Expect::Wanted(w) = std::mem::replace(&mut self.expect, Expect::No) {
            w.wake();
        }
    }

    /// Whether the whole body has been read.
    pub(crate) fn body_done(&self) -> bool {
        matches!(self.body, BodyState::Done)
    }

    /// Whether the body asked for bytes the client holds back until `100 Continue`.
    pub(crate) fn wants_continue(&self) -> bool {
        matches!(self.expect, Expect::Wanted(_))
    }

    /// Whether more than `limit` bytes of the body are known to be unread.
    pub(crate) fn unread_over(&self, limit: u64) -> bool {
        matches!(self.body, BodyState::Length(n) if n > limit)
    }

    /// Whether the client still holds the body back, waiting for `100 Continue`.
    pub(crate) fn awaits_continue(&self) -> bool {
        matches!(self.expect, Expect::Waiting | Expect::Wanted(_)) && !self.body_done()
    }

    /// The response is done: the body's reader is stale from now on. Returns whether
    /// the rest of the body may be read and discarded (it can be, unless the client
    /// still waits for a `100 Continue` that never came).
    pub(crate) fn detach(&mut self) -> bool {
        self.detached = true;
        self.conn_waker = None;
        !self.awaits_continue()
    }

    /// Reads and drops the rest of the body, at most `budget` bytes of it: ready
    /// with `true` when the body ended within the budget.
    pub(crate) fn poll_discard(
        &mut self,
        cx: &mut Context<'_>,
        budget: &mut usize,
    ) -> Poll<io::Result<bool>> {
        loop {
            match ready!(self.poll_body(cx)) {
                None => return Poll::Ready(Ok(true)),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(frame)) => {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    if n > *budget {
                        return Poll::Ready(Ok(false));
                    }
                    *budget -= n;
                }
            }
        }
    }

    /// The next frame of the request body.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        loop {
            if self.start < self.end {
                if let Some(frame) = self.take_buffered().transpose() {
                    return Poll::Ready(Some(frame));
                }
            }
            match std::mem::replace(&mut self.body, BodyState::Done) {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Trailers(t) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                more => self.body = more,
            }
            if self.start < self.end {
                continue;
            }
            if let Expect::Waiting | Expect::Wanted(_) = self.expect {
                // RFC 9110 §10.1.1: the client sends the body after `100 Continue`.
                self.expect = Expect::Wanted(cx.waker().clone());
                if let Some(conn) = self.conn_waker.take() {
                    conn.wake();
                }
                return Poll::Pending;
            }
            let filled = self.poll_fill(cx);
            // A client that stops sending its body is timed like one slow to send a head.
            self.dog.body_waiting(filled.is_pending());
            match ready!(filled) {
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the end of the request body",
                    ))))
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// Body data (or the end of the body) from the bytes already read.
    fn take_buffered(&mut self) -> io::Result<Option<Frame<Bytes>>> {
        let data = &self.buf[self.start..self.end];
        let (used, bytes) = match &mut self.body {
            BodyState::Length(left) => {
                let n = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                (n, Bytes::copy_from_slice(&data[..n]))
            }
            BodyState::Chunked(dec) => {
                let out = dec
                    .decode(data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
                (out.used, Bytes::copy_from_slice(&data[out.data]))
            }
            BodyState::Done | BodyState::Trailers(_) => return Ok(None),
        };
        self.consume(used);
        match &mut self.body {
            BodyState::Length(0) => self.body = BodyState::Done,
            BodyState::Chunked(dec) if dec.is_done() => {
                let raw = dec.take_trailer();
                let fields = trailer_fields(&raw, MAX_HEADERS).map_err(|why| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("trailer: {why}"))
                })?;
                self.body = match fields {
                    Some(t) => BodyState::Trailers(t),
                    None => BodyState::Done,
                };
            }
            _ => {}
        }
        Ok((!bytes.is_empty()).then(|| Frame::data(bytes)))
    }

    fn size_hint(&self) -> SizeHint {
        match self.body {
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// What the request body reads through: the connection's [`Reader`], whatever its
/// socket type.
/// Each call names the request (`generation`) whose body is wanted.
pub(crate) trait Source: Send + Sync {
    fn poll_frame(
        &self,
        generation: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>>;
    fn is_end_stream(&self, generation: u64) -> bool;
    fn size_hint(&self, generation: u64) -> SizeHint;
}

impl<R: AsyncRead + Unpin + Send> Source for Mutex<Reader<R>> {
    fn poll_frame(
        &self,
        generation: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let mut r = lock(self);
        if r.detached || r.generation != generation {
            return Poll::Ready(Some(Err(io::Error::other(
                "request body read after its response was sent",
            ))));
        }
        r.poll_body(cx)
    }

    fn is_end_stream(&self, generation: u64) -> bool {
        let r = lock(self);
        !r.detached && r.generation == generation && r.body_done()
    }

    fn size_hint(&self, generation: u64) -> SizeHint {
        let r = lock(self);
        if r.generation == generation {
            r.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

/// The body of an HTTP/1.1 request, as services receive it (in `RequestBody`).
pub(crate) struct Incoming {
    pub(crate) source: Arc<dyn Source>,
    /// The request it belongs to.
    pub(crate) generation: u64,
}

impl Incoming {
    pub(crate) fn poll_frame(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.source.poll_frame(self.generation, cx)
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.source.is_end_stream(self.generation)
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        self.source.size_hint(self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncWriteExt;

    use crate::watchdog::tests::dog;

    async fn body_of(sent: &[u8], framing: Framing) -> (io::Result<Vec<u8>>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(sent).await.unwrap();
        drop(client);
        let mut r = Reader::new(server, b"", 1024, dog());
        r.start_body(framing, false);
        let mut data = Vec::new();
        let res = loop {
            match poll_fn(|cx| r.poll_body(cx)).await {
                None => break Ok(data),
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        data.extend_from_slice(d);
                    }
                }
                Some(Err(e)) => break Err(e),
            }
        };
        let rest = r.data().to_vec();
        (res, rest)
    }

    #[tokio::test]
    async fn bodies_stop_at_their_end() {
        let (data, rest) = body_of(b"helloGET /", Framing::Length(5)).await;
        assert_eq!(data.unwrap(), b"hello");
        assert_eq!(rest, b"GET /");
        let (data, rest) = body_of(b"3\r\nabc\r\n0\r\n\r\nNEXT", Framing::Chunked).await;
        assert_eq!(data.unwrap(), b"abc");
        assert_eq!(rest, b"NEXT");
    }

    #[tokio::test]
    async fn short_and_malformed_bodies_are_errors() {
        let (data, _) = body_of(b"hel", Framing::Length(5)).await;
        assert_eq!(data.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (data, _) = body_of(b"zz\r\n", Framing::Chunked).await;
        assert_eq!(data.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn trailers_come_after_the_data() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut client = client;
        client
            .write_all(b"1\r\nx\r\n0\r\nX-Sum: 7\r\n\r\n")
            .await
            .unwrap();
        let mut r = Reader::new(server, b"", 1024, dog());
        r.start_body(Framing::Chunked, false);
        let first = poll_fn(|cx| r.poll_body(cx)).await.unwrap().unwrap();
        assert_eq!(first.data_ref().unwrap(), &b"x"[..]);
        let second = poll_fn(|cx| r.poll_body(cx)).await.unwrap().unwrap();
        assert_eq!(second.trailers_ref().unwrap()["x-sum"], "7");
        assert!(poll_fn(|cx| r.poll_body(cx)).await.is_none());
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut r = Reader::new(server, b"", 1024, dog());
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(r.poll_fill(&mut cx).is_pending());
        assert_eq!(r.buf.capacity(), 0, "pending read keeps no buffer");
        client.write_all(b"GET").await.unwrap();
        assert!(matches!(r.poll_fill(&mut cx), Poll::Ready(Ok(3))));
        assert_eq!(r.data(), b"GET");
        r.consume(3);
        assert_eq!(r.buf.capacity(), 0, "consumed bytes free the buffer");
    }

    #[tokio::test]
    async fn a_body_handle_never_reads_a_later_requests_body() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let reader = Arc::new(Mutex::new(Reader::new(server, b"", 1024, dog())));
        let first = lock(&reader).start_body(Framing::Length(2), false);
        client.write_all(b"aaBBBBB").await.unwrap();
        let source: Arc<dyn Source> = reader.clone();
        let f = poll_fn(|cx| source.poll_frame(first, cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.data_ref().unwrap(), &b"aa"[..]);
        // The next request on the connection, with its own body.
        lock(&reader).detach();
        let second = lock(&reader).start_body(Framing::Length(5), false);
        let stale = poll_fn(|cx| source.poll_frame(first, cx)).await.unwrap();
        assert!(stale.is_err(), "the first request's handle is stale");
        let f = poll_fn(|cx| source.poll_frame(second, cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.data_ref().unwrap(), &b"BBBBB"[..]);
    }

    #[tokio::test]
    async fn a_body_waiting_for_100_continue_asks_the_connection() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut r = Reader::new(server, b"", 1024, dog());
        r.start_body(Framing::Length(2), true);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(r.poll_body(&mut cx).is_pending());
        assert!(r.wants_continue());
        r.expectation_over();
        assert!(!r.wants_continue());
        client.write_all(b"ok").await.unwrap();
        let f = poll_fn(|cx| r.poll_body(cx)).await.unwrap().unwrap();
        assert_eq!(f.data_ref().unwrap(), &b"ok"[..]);
        assert!(r.detach(), "whole body read: the connection may go on");
    }
}
