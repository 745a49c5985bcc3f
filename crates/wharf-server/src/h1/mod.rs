//! One HTTP/1.1 connection (RFC 9112): wharf's own engine.
//!
//! Why not hyper: an idle keep-alive connection must cost a few KiB (the hub holds
//! thousands of SSE and long-poll subscribers open), and hyper keeps an 8 KiB read
//! buffer and a write buffer per connection for its whole life. Here the connection
//! holds buffers only while it has bytes to move (`pool`), and the engine is small
//! enough to follow whole:
//!
//! - `head`: sans-IO request-head parsing on `httparse`, limits (414 before 431,
//!   431, 505) and body framing (RFC 9112 §6);
//! - `chunked`: the chunked coding of request bodies (§7.1);
//! - `reader`: the read half and its lent buffer, shared with the request body,
//!   `100 Continue` on demand;
//! - `encode`: response heads, `Date`, framing of response bodies (length, chunked,
//!   close), `103 Early Hints`;
//! - this module: the loop. Read a head, run the service, write the response; while
//!   the client's next requests are already buffered (pipelining) responses collect
//!   in the write buffer and leave in one write when the connection would otherwise
//!   wait. Timeouts are the `Watchdog`'s; graceful shutdown closes an idle connection
//!   at once and lets a busy one finish its response with `Connection: close`.

mod encode;
mod head;
mod reader;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use wharf_http::interim::{EarlyHints, Interim};

use crate::conn::ConnCtx;
use crate::lock;
use crate::watchdog::{Alarm, Expiry, Watchdog};
use crate::{pool, upgrade, RequestBody, Service, Shutdown};
#[cfg(fuzzing)]
pub(crate) use head::fuzz as fuzz_head;
pub(crate) use reader::Incoming;
use reader::Reader;

/// Response bytes held back before they are written regardless (pipelined batches).
const CORK_LIMIT: usize = 64 * 1024;

/// Unread request body discarded after a response so the connection can go on; a
/// longer rest closes the connection instead.
const DISCARD_LIMIT: usize = 64 * 1024;

/// How long a closing connection reads and drops what the client still sends, so the
/// client sees the last response rather than a reset (as nginx's lingering close).
const LINGER: Duration = Duration::from_secs(2);

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
    let flags = Flags::default();
    let l = &ctx.shared.limits;
    let limits = head::HeadLimits {
        max_uri_len: l.max_uri_len,
        max_header_bytes: l.max_header_bytes,
        max_headers: l.max_headers,
    };
    let reader = Reader::new(read, &prefix, l.max_header_bytes, dog.clone());
    let mut conn = Conn {
        reader: Arc::new(Mutex::new(reader)),
        out: Out {
            io: write,
            buf: Vec::new(),
            sent: 0,
            dog: dog.clone(),
        },
        limits,
        ctx,
        flags: &flags,
    };
    let end = {
        let run = conn.run();
        tokio::pin!(run);
        // Polled on every wake-up: each costs an atomic load unless it fired.
        let mut alarm = Alarm::new(&dog);
        let mut stop = shutdown.stop();
        poll_fn(|cx| {
            if !flags.draining.load(Ordering::Relaxed) && stop.poll(cx) {
                flags.draining.store(true, Ordering::Relaxed);
                if flags.idle.load(Ordering::Relaxed) {
                    return Poll::Ready(End::Done);
                }
            }
            if let Poll::Ready(expiry) = alarm.poll(&dog, cx) {
                return Poll::Ready(End::Timeout(expiry));
            }
            run.as_mut().poll(cx)
        })
        .await
    };
    match end {
        End::Done => {}
        End::Upgrade(pending) => upgrade(conn, pending).await,
        End::Refused(status, reason) => {
            tracing::debug!(%peer, %status, reason, "request refused; connection closed")
        }
        End::Io(what, e) => tracing::debug!(%peer, error = %e, "connection ended: {what}"),
        End::Timeout(expiry) => tracing::debug!(%peer, ?expiry, "closing connection: timeout"),
    }
}

/// What the connection's outer loop and its engine share.
#[derive(Default)]
struct Flags {
    /// Waiting for a request with nothing buffered and nothing to write.
    idle: AtomicBool,
    /// Shutdown began: finish the exchange in progress, then close.
    draining: AtomicBool,
}

/// Hands the connection to the service that answered 101, and waits until it is
/// done with it (so the connection still counts, and shutdown waits for it).
async fn upgrade<S, R, W>(conn: Conn<'_, S, R, W>, pending: upgrade::Pending)
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let peer = conn.ctx.info.peer;
    let Conn { reader, out, .. } = conn;
    let Ok(reader) = Arc::try_unwrap(reader) else {
        return tracing::debug!(%peer, "upgrade refused: the request body is still held");
    };
    let (read, buffered) = reader
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_parts();
    let (upgraded, closed) = upgrade::Upgraded::new(buffered, Box::new(read), Box::new(out.io));
    if pending.fulfil(upgraded) {
        let _ = closed.await;
    }
}

/// Why a connection ended.
enum End {
    Done,
    /// The service answered 101: the connection is its now.
    Upgrade(upgrade::Pending),
    Refused(StatusCode, &'static str),
    Io(&'static str, io::Error),
    Timeout(Expiry),
}

impl End {
    fn write(e: io::Error) -> End {
        End::Io("write failed", e)
    }
}

/// The client closed while its response was pending.
fn client_gone() -> End {
    End::Io("client went away", io::ErrorKind::ConnectionAborted.into())
}

struct Conn<'a, S, R, W> {
    reader: Arc<Mutex<Reader<R>>>,
    out: Out<W>,
    limits: head::HeadLimits,
    ctx: Arc<ConnCtx<S>>,
    flags: &'a Flags,
}

/// A request about to be handled, and what its response needs of it.
struct Started {
    req: Request<RequestBody>,
    /// Where the service sends `103`s and where they arrive, when they go out on
    /// this connection.
    interim: Option<(Interim, crate::interim::Receiver)>,
    method: Method,
    version: Version,
    has_body: bool,
    keep_alive: bool,
    /// The protocol the client offered, for the service to take.
    upgrade: Option<upgrade::Pending>,
}

impl<S, R, W> Conn<'_, S, R, W>
where
    S: Service,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    async fn run(&mut self) -> End {
        loop {
            let head = match self.next_head().await {
                Ok(Some(head)) => head,
                Ok(None) => return self.close(End::Done, false).await,
                Err(end) => return self.close(end, true).await,
            };
            // Boxed: the exchange's state (the service's future, the response being
            // written) lives only while a request does; an idle connection keeps no
            // room for it.
            // (Bound first: a temporary in the scrutinee would keep its room.)
            let exchange = Box::pin(self.exchange(head));
            match exchange.await {
                Ok(true) => {}
                Ok(false) => return self.close(End::Done, true).await,
                Err(end @ End::Upgrade(_)) => return end,
                // What was answered still goes out (a write error ends at once).
                Err(end) => return self.close(end, true).await,
            }
        }
    }

    /// The next request head; `None` when the client is done (or shutdown found the
    /// connection idle).
    async fn next_head(&mut self) -> Result<Option<Box<head::Head>>, End> {
        let mut seen = 0;
        poll_fn(|cx| self.poll_head(cx, &mut seen)).await
    }

    /// One poll of [`Conn::next_head`], under one lock of the reader (a lock is two
    /// atomic operations, and a request's head takes two polls: the wait, the read).
    /// `seen` is how much of a partial head was already looked at.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        seen: &mut usize,
    ) -> Poll<Result<Option<Box<head::Head>>, End>> {
        let mut r = lock(&self.reader);
        loop {
            let data = r.data();
            if data.len() > *seen {
                match head::parse(data, &self.limits) {
                    Ok(head::Parsed::Head(head, len)) => {
                        r.consume(len);
                        return Poll::Ready(Ok(Some(head)));
                    }
                    Ok(head::Parsed::Partial) => *seen = data.len(),
                    Err(rejected) => {
                        drop(r);
                        return Poll::Ready(Err(self.refuse(rejected.status, rejected.reason)));
                    }
                }
            }
            if r.is_eof() {
                if !r.data().is_empty() {
                    tracing::debug!(peer = %self.ctx.info.peer, "connection closed mid-head");
                }
                return Poll::Ready(Ok(None));
            }
            let empty = r.data().is_empty();
            if empty && self.flags.draining.load(Ordering::Relaxed) {
                return Poll::Ready(Ok(None));
            }
            // Responses to the requests already read leave before the wait.
            if let Err(e) = ready!(self.out.poll_flush(cx)) {
                return Poll::Ready(Err(End::write(e)));
            }
            self.flags.idle.store(empty, Ordering::Relaxed);
            let read = ready!(r.poll_fill(cx));
            self.flags.idle.store(false, Ordering::Relaxed);
            if let Err(e) = read {
                return Poll::Ready(Err(End::Io("read failed", e)));
            }
        }
    }

    /// Queues the transport's answer to a head it refuses.
    fn refuse(&mut self, status: StatusCode, reason: &'static str) -> End {
        encode::error(self.out.buf(), status, reason);
        End::Refused(status, reason)
    }

    /// One request and its response; `Ok(true)` when the connection goes on. (The
    /// head comes boxed: an argument keeps its room in the future to the end.)
    async fn exchange(&mut self, head: Box<head::Head>) -> Result<bool, End> {
        let Started {
            req,
            interim,
            method,
            version,
            has_body,
            keep_alive,
            upgrade,
        } = self.start(head);
        let (interim, mut hints) = interim.unzip();
        // In a block: the service's future is gone before the response is written, so
        // the sending part of this future reuses its room.
        let res = {
            // (The connection's context borrowed, not its `Arc` cloned: two atomic
            // operations a request.)
            let call = self.ctx.handle(req, interim);
            tokio::pin!(call);
            poll_fn(|cx| {
                let done = call.as_mut().poll(cx);
                // Hints go out as they come, and those that came with the end of the
                // service's work still before its response.
                while let Some(Poll::Ready(fields)) = hints.as_mut().map(|i| i.poll_recv(cx)) {
                    encode::early_hints(self.out.buf(), &fields);
                }
                if let Poll::Ready(res) = done {
                    return Poll::Ready(Ok(res));
                }
                let mut r = lock(&self.reader);
                r.watch_continue(cx);
                if r.wants_continue() {
                    self.out
                        .buf()
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    r.expectation_over();
                }
                // A long-poll whose client went away is not waited out.
                if r.poll_gone(cx) {
                    return Poll::Ready(Err(client_gone()));
                }
                drop(r);
                // Earlier pipelined responses and a 100 leave while the service works.
                match self.out.poll_flush(cx) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(End::write(e))),
                    _ => Poll::Pending,
                }
            })
            .await?
        };
        let (parts, mut body) = res.into_parts();
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            drop(body);
            return self.switch(&parts.headers, upgrade).await;
        }
        if parts.status.is_informational() {
            // RFC 9110 §15.2: a 1xx is never the final answer; the service erred.
            drop(body);
            return Err(self.refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "a 1xx status as the final response",
            ));
        }
        let body_in_the_way = has_body && {
            // The client holds its body back for a 100 that never came: it cannot
            // tell where the next request would start; nor is a long unread rest
            // worth reading past (RFC 9112 §9.6: say so in this response).
            let r = lock(&self.reader);
            r.awaits_continue() || r.unread_over(DISCARD_LIMIT as u64)
        };
        let keep_alive =
            keep_alive && !body_in_the_way && !self.flags.draining.load(Ordering::Relaxed);
        if self.ctx.shared.http.early_hints_http1 && version == Version::HTTP_11 {
            // RFC 9110 §15.2: never to HTTP/1.0 clients.
            if let Some(EarlyHints(fields)) = parts.extensions.get() {
                encode::early_hints(self.out.buf(), fields);
            }
        }
        let response = encode::Response {
            method: &method,
            version,
            status: parts.status,
            fields: &parts.headers,
            exact: body.size_hint().exact(),
        };
        let (framing, keep) = encode::head(self.out.buf(), &response, keep_alive);
        wharf_http::maps::give(parts.headers);
        if has_body {
            // The final head is out: no 100 can follow it (RFC 9110 §10.1.1).
            lock(&self.reader).expectation_over();
        }
        if framing != encode::Framing::None {
            let mut st = Sending {
                framing,
                sent: 0,
                trailers: None,
                through: None,
            };
            poll_fn(|cx| self.poll_send(&mut st, Pin::new(&mut body), cx)).await?;
        }
        // The access-log line is written and the watchdog told as the body drops.
        drop(body);
        if !has_body {
            return Ok(keep);
        }
        if !keep {
            lock(&self.reader).detach();
            return Ok(false);
        }
        self.discard_body().await
    }

    /// The request of `head`, with what its response needs of it. Not in `exchange`:
    /// a local that was ever borrowed keeps its room in an async function's future
    /// to the end of its scope, and that future is boxed per request.
    fn start(&mut self, head: Box<head::Head>) -> Started {
        let head::Head {
            mut parts,
            framing,
            keep_alive,
            expect_continue,
            upgrade,
        } = *head;
        let has_body = framing != head::Framing::Empty;
        let method = parts.method.clone();
        let version = parts.version;
        // RFC 9110 §7.8: the client offers a protocol; the service may take it.
        let upgrade = upgrade.then(|| {
            let (pending, on_upgrade) = upgrade::pending();
            parts.extensions.insert(on_upgrade);
            pending
        });
        let body = if !has_body {
            RequestBody::empty()
        } else {
            let generation = lock(&self.reader).start_body(framing, expect_continue);
            RequestBody::h1(Incoming {
                source: self.reader.clone(),
                generation,
            })
        };
        let req = Request::from_parts(parts, body);
        // RFC 9110 §15.2: no 1xx to HTTP/1.0 clients; and to HTTP/1.1 ones only when
        // early hints are on for them.
        let hints = self.ctx.shared.http.early_hints_http1 && version == Version::HTTP_11;
        let interim = hints.then(crate::interim::channel);
        Started {
            req,
            interim,
            method,
            version,
            has_body,
            keep_alive,
            upgrade,
        }
    }

    /// Writes the response body as `framing` says. A poll function over a small
    /// state (`Sending`) rather than nested async functions: the request's future is
    /// moved into its box whole, so every byte of its size costs a copy per request.
    fn poll_send<B>(
        &mut self,
        st: &mut Sending,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), End>>
    where
        B: Body<Data = Bytes, Error = io::Error>,
    {
        let chunked = st.framing == encode::Framing::Chunked;
        loop {
            if let Some(data) = &st.through {
                ready!(self.out.poll_write_through(cx, data)).map_err(End::write)?;
                st.through = None;
                if chunked {
                    self.out.buf().extend_from_slice(b"\r\n");
                }
            }
            let frame = match body.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => frame,
                // The body waits (a file read, an event): what is ready goes out now.
                // An event stream whose client went away ends now, not at its next
                // write.
                Poll::Pending => {
                    if let Poll::Ready(Err(e)) = self.out.poll_flush(cx) {
                        return Poll::Ready(Err(End::write(e)));
                    }
                    if lock(&self.reader).poll_gone(cx) {
                        return Poll::Ready(Err(client_gone()));
                    }
                    return Poll::Pending;
                }
            };
            let data = match frame {
                None => return Poll::Ready(self.end_body(st)),
                Some(Err(e)) => return Poll::Ready(Err(End::Io("response body failed", e))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => data,
                    Err(frame) => {
                        st.trailers = frame.into_trailers().ok();
                        continue;
                    }
                },
            };
            st.sent += data.len() as u64;
            if let encode::Framing::Length(n) = st.framing {
                if st.sent > n {
                    let e = io::Error::other("longer than its Content-Length");
                    return Poll::Ready(Err(End::Io("response body", e)));
                }
            }
            if chunked {
                encode::chunk_start(self.out.buf(), data.len());
            }
            if self.out.buf.len() + data.len() <= CORK_LIMIT {
                self.out.buf().extend_from_slice(&data);
                if chunked {
                    self.out.buf().extend_from_slice(b"\r\n");
                }
            } else {
                // Large: written from where it is, after what is queued.
                st.through = Some(data);
            }
        }
    }

    /// The end of a response body: the last chunk, or a check of the length.
    fn end_body(&mut self, st: &mut Sending) -> Result<(), End> {
        match st.framing {
            encode::Framing::Chunked => encode::last_chunk(self.out.buf(), st.trailers.as_ref()),
            encode::Framing::Length(n) if st.sent < n => {
                let e = io::Error::other("shorter than its Content-Length");
                return Err(End::Io("response body", e));
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the 101 and ends HTTP on this connection: handed over when the client
    /// asked for an upgrade, else closed (a 101 it did not ask for).
    async fn switch(
        &mut self,
        fields: &http::HeaderMap,
        upgrade: Option<upgrade::Pending>,
    ) -> Result<bool, End> {
        // RFC 9110 §7.8: the switch happens after the whole request, and only to a
        // protocol the client offered; the connection must be free to hand over.
        let handover = match upgrade {
            None => Err("101 to a request that offered no upgrade"),
            Some(_) if !lock(&self.reader).body_done() => {
                Err("101 before the request body was read")
            }
            Some(_) if Arc::strong_count(&self.reader) > 1 => {
                Err("101 while the request body is still held")
            }
            Some(pending) => Ok(pending),
        };
        match handover {
            Ok(pending) => {
                encode::switching(self.out.buf(), fields);
                self.flush().await?;
                Err(End::Upgrade(pending))
            }
            Err(why) => Err(self.refuse(StatusCode::INTERNAL_SERVER_ERROR, why)),
        }
    }

    /// Reads what is left of the request body so the next request can be read:
    /// `Ok(false)` (close) when that is too much or the client waits for a 100.
    async fn discard_body(&mut self) -> Result<bool, End> {
        if !lock(&self.reader).detach() {
            return Ok(false);
        }
        let mut budget = DISCARD_LIMIT;
        let drained = poll_fn(|cx| {
            let discarded = lock(&self.reader).poll_discard(cx, &mut budget);
            if discarded.is_pending() {
                // What is written already goes while the client's bytes are awaited.
                if let Poll::Ready(Err(e)) = self.out.poll_flush(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            discarded
        })
        .await;
        match drained {
            Ok(done) => {
                self.ctx.dog.body_discarded();
                Ok(done)
            }
            Err(e) => Err(End::Io("request body", e)),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        poll_fn(|cx| self.out.poll_flush(cx))
            .await
            .map_err(End::write)
    }

    /// Writes what is queued and ends the write side. With `linger` (the server ends
    /// a connection the client may still be writing to), reads what the client still
    /// sends for a moment, so that it reads the last response instead of a reset.
    async fn close(&mut self, end: End, linger: bool) -> End {
        if let Err(e) = self.flush().await {
            return e;
        }
        if let Err(e) = poll_fn(|cx| Pin::new(&mut self.out.io).poll_shutdown(cx)).await {
            return End::Io("shutdown failed", e);
        }
        if !linger {
            return end;
        }
        let linger = poll_fn(|cx| {
            let mut r = lock(&self.reader);
            loop {
                let n = r.data().len();
                r.consume(n);
                match r.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        let _ = tokio::time::timeout(LINGER, linger).await;
        end
    }
}

/// Where the writing of a response body stands.
struct Sending {
    framing: encode::Framing,
    /// Body bytes so far.
    sent: u64,
    trailers: Option<http::HeaderMap>,
    /// A large piece being written from where it is.
    through: Option<Bytes>,
}

/// The write half and the bytes queued for it.
struct Out<W> {
    io: W,
    /// Lent by `pool` while bytes wait in it.
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    sent: usize,
    dog: Arc<Watchdog>,
}

impl<W: AsyncWrite + Unpin> Out<W> {
    /// The buffer to queue bytes in.
    fn buf(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.buf = pool::take_write();
        }
        &mut self.buf
    }

    /// Writes everything queued (and flushes a TLS half); the emptied buffer goes back.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let res = Pin::new(&mut self.io).poll_write(cx, &self.buf[self.sent..]);
            self.sent += ready!(self.written(res))?;
        }
        if self.buf.capacity() > 0 {
            self.sent = 0;
            pool::give_write(std::mem::take(&mut self.buf));
        }
        let res = Pin::new(&mut self.io).poll_flush(cx);
        self.dog.on_write(res.is_pending());
        res
    }

    /// Writes what is queued and then `data`, without copying `data`.
    fn poll_write_through(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<()>> {
        let queued = self.buf.len();
        while self.sent < queued + data.len() {
            let res = if self.sent < queued {
                let bufs = [
                    io::IoSlice::new(&self.buf[self.sent..]),
                    io::IoSlice::new(data),
                ];
                Pin::new(&mut self.io).poll_write_vectored(cx, &bufs)
            } else {
                Pin::new(&mut self.io).poll_write(cx, &data[self.sent - queued..])
            };
            self.sent += ready!(self.written(res))?;
        }
        self.sent = 0;
        self.buf.clear();
        Poll::Ready(Ok(()))
    }

    /// The bytes a write took, reporting to the watchdog; `Pending` passes through.
    fn written(&self, res: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match res {
            Poll::Pending => {
                self.dog.on_write(true);
                Poll::Pending
            }
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                self.dog.on_write(false);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use http::Response;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// Reads each request's body, then answers with it (data and trailers), its
    /// length unknown (so chunked); 400 when the body cannot be read.
    struct Echo;

    /// Frames handed back one by one.
    struct Back(std::collections::VecDeque<http_body::Frame<Bytes>>);

    impl Body for Back {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    /// Every frame of a request body, or the error that ended it.
    async fn frames(
        mut body: RequestBody,
    ) -> io::Result<std::collections::VecDeque<http_body::Frame<Bytes>>> {
        let mut frames = std::collections::VecDeque::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            frames.push_back(frame?);
        }
        Ok(frames)
    }

    /// An empty response with `status`.
    fn status(status: StatusCode) -> Response<Back> {
        let mut res = Response::new(Back(Default::default()));
        *res.status_mut() = status;
        res
    }

    impl Service for Echo {
        type Body = Back;
        async fn call(&self, req: Request<RequestBody>, _: crate::Exchange<'_>) -> Response<Back> {
            match frames(req.into_body()).await {
                Ok(frames) => Response::new(Back(frames)),
                Err(_) => status(StatusCode::BAD_REQUEST),
            }
        }
    }

    /// A connection to the echo service; the client's end of it.
    fn echo_conn() -> DuplexStream {
        conn_to(Echo)
    }

    /// Answers requests offering the `echo` protocol with 101, then echoes what the
    /// client sends on the upgraded connection; others get 426.
    struct Switch;

    impl Service for Switch {
        type Body = Back;
        async fn call(
            &self,
            mut req: Request<RequestBody>,
            _: crate::Exchange<'_>,
        ) -> Response<Back> {
            let Some(on_upgrade) = req.extensions_mut().remove::<upgrade::OnUpgrade>() else {
                return status(StatusCode::UPGRADE_REQUIRED);
            };
            tokio::spawn(async move {
                let mut io = on_upgrade.await.expect("upgraded");
                let mut buf = [0u8; 64];
                loop {
                    let n = io.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    io.write_all(&buf[..n]).await.unwrap();
                }
            });
            let mut res = status(StatusCode::SWITCHING_PROTOCOLS);
            let h = res.headers_mut();
            h.insert(
                http::header::UPGRADE,
                http::HeaderValue::from_static("echo"),
            );
            h.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("upgrade"),
            );
            res
        }
    }

    #[tokio::test]
    async fn a_101_hands_the_connection_to_the_service() {
        let mut c = conn_to(Switch);
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let res = read_until(&mut c, "\r\n\r\n").await;
        assert!(
            res.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{res}"
        );
        // RFC 9110 §7.8: bytes after the request are the new protocol's already.
        c.write_all(
            b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly",
        )
        .await
        .unwrap();
        let res = read_until(&mut c, "early").await;
        assert!(
            res.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{res}"
        );
        assert!(
            res.contains("\r\nupgrade: echo\r\nconnection: upgrade\r\n"),
            "{res}"
        );
        assert!(res.ends_with("\r\n\r\nearly"), "{res}");
        c.write_all(b"more").await.unwrap();
        assert_eq!(read_until(&mut c, "more").await, "more");
    }

    /// Reads each request's body in another task (as a proxy's upstream connection
    /// would), then answers with it.
    struct Elsewhere;

    impl Service for Elsewhere {
        type Body = Back;
        async fn call(&self, req: Request<RequestBody>, _: crate::Exchange<'_>) -> Response<Back> {
            let frames = tokio::spawn(frames(req.into_body()));
            Response::new(Back(frames.await.unwrap().unwrap_or_default()))
        }
    }

    #[tokio::test]
    async fn a_body_read_in_another_task_gets_its_100_continue() {
        let mut c = conn_to(Elsewhere);
        c.write_all(
            b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(
            read_until(&mut c, "\r\n\r\n").await,
            "HTTP/1.1 100 Continue\r\n\r\n"
        );
        c.write_all(b"ok").await.unwrap();
        let res = read_until(&mut c, "0\r\n\r\n").await;
        assert!(res.ends_with("2\r\nok\r\n0\r\n\r\n"), "{res}");
    }

    #[tokio::test]
    async fn a_101_before_the_body_is_read_is_refused() {
        let mut c = conn_to(Switch);
        c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: upgrade\r\nContent-Length: 4\r\n\r\nabcd")
            .await
            .unwrap();
        let res = read_until(&mut c, "never").await;
        // RFC 9110 §7.8: the switch comes after the whole request; here it cannot.
        assert!(
            res.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{res}"
        );
    }

    /// A connection to `service`; the client's end of it.
    fn conn_to<S: Service>(service: S) -> DuplexStream {
        let (client, server) = tokio::io::duplex(1 << 20);
        let ctx = crate::conn::test_ctx(service, Limits::default());
        let (r, w) = tokio::io::split(server);
        tokio::spawn(serve(r, w, Bytes::new(), ctx, Shutdown::new()));
        client
    }

    /// Reads until `want` has arrived (or the stream ends); everything read.
    async fn read_until(c: &mut DuplexStream, want: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(want) {
            let n = c.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn bodies_stream_back_chunked_with_their_trailers() {
        let mut c = echo_conn();
        c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let res = read_until(&mut c, "0\r\n\r\n").await;
        assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
        assert!(res.contains("\r\ntransfer-encoding: chunked\r\n"), "{res}");
        assert!(res.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{res}");
        c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\nX-Sum: 3\r\n\r\n")
            .await
            .unwrap();
        let res = read_until(&mut c, "x-sum: 3\r\n\r\n").await;
        assert!(
            res.contains("2\r\nab\r\n1\r\nc\r\n0\r\nx-sum: 3\r\n\r\n"),
            "{res}"
        );
    }

    #[tokio::test]
    async fn a_body_read_by_the_service_gets_its_100_continue() {
        let mut c = echo_conn();
        c.write_all(
            b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
        let first = read_until(&mut c, "\r\n\r\n").await;
        assert_eq!(first, "HTTP/1.1 100 Continue\r\n\r\n");
        c.write_all(b"ok").await.unwrap();
        let res = read_until(&mut c, "0\r\n\r\n").await;
        assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
        assert!(res.ends_with("2\r\nok\r\n0\r\n\r\n"), "{res}");
    }

    #[tokio::test]
    async fn pipelined_requests_with_bodies_are_answered_in_order() {
        let mut c = echo_conn();
        let mut batch = String::new();
        for i in 0..20 {
            let body = format!("req{i:02}");
            batch.push_str(&format!(
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        c.write_all(batch.as_bytes()).await.unwrap();
        let res = read_until(&mut c, "req19\r\n0\r\n\r\n").await;
        let order: Vec<_> = (0..20)
            .map(|i| res.find(&format!("req{i:02}")).expect("every body echoed"))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "in order");
    }

    #[tokio::test]
    async fn a_client_that_ends_mid_body_ends_the_connection() {
        let mut c = echo_conn();
        c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        c.shutdown().await.unwrap();
        let res = read_until(&mut c, "never").await;
        // The service saw the body fail; its answer goes out and the connection ends.
        assert!(res.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{res}");
    }
}
