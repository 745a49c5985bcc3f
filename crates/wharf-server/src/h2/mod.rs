//! One HTTP/2 connection (RFC 9113) over wharf's own codec, `wharf_h2`.
//!
//! The codec is sans-IO; this module is its event loop, run on the connection's one
//! task as an event-driven server runs a connection: read what the socket has, let the
//! codec check it, start each request's work (the service, through `conn`), poll that
//! work and the response bodies, and write everything the codec encoded in one go.
//! No task per request, no lock shared with another thread, one write for the
//! frames of every stream that had something ready.
//!
//! Around the codec: request bodies (`body`), extended CONNECT tunnels (`tunnel`,
//! RFC 8441), `103 Early Hints`, server push, the flood meter (`flood`, which reads
//! the frame headers as they arrive), the watchdog's timeouts, and the two-step
//! GOAWAY of §6.8 when the connection reaches its request limit, idles out or the
//! server shuts down, so no request a client already sent is refused.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use http::header::{ACCEPT_ENCODING, ACCEPT_LANGUAGE, USER_AGENT};
use http::{Request, Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use wharf_h2::{Connection, Event, Reason};
use wharf_http::conn::ConnectProtocol;
use wharf_http::interim::{EarlyHints, Interim, Push};

pub(crate) mod body;
pub(crate) mod flood;
mod mailbox;
mod tunnel;

use crate::access_log::LoggedBody;
use crate::conn::{ConnCtx, ResBody};
use crate::implied;
use crate::socket::Socket;
use crate::upgrade::{Pending, Upgraded};
use crate::watchdog::{Alarm, Expiry};
use crate::{pool, Limits, RequestBody, Service, Shutdown};

/// How long a flooding client has to read its GOAWAY before the socket closes.
const ABUSER_GRACE: Duration = Duration::from_secs(1);

/// How long the PING of a graceful shutdown's first GOAWAY may go unanswered before
/// the second GOAWAY is sent anyway.
const GOAWAY_ACK_WAIT: Duration = Duration::from_secs(2);

/// Encoded output held before the connection stops reading and filling it, until
/// the socket has taken it.
const OUT_HIGH: usize = 256 * 1024;

/// How long a connection this end closes reads and drops what the client still
/// sends, so that the client reads the GOAWAY rather than a reset (a lingering close,
/// as nginx's).
const LINGER: Duration = Duration::from_secs(2);

/// Reads per wake-up before the task yields to others.
const READS_PER_TURN: usize = 8;

/// The codec's settings for every connection.
pub(crate) fn config(limits: &Limits) -> wharf_h2::Config {
    wharf_h2::Config {
        max_concurrent_streams: limits.max_concurrent_streams,
        stream_window: limits.stream_window,
        connection_window: limits.connection_window,
        max_header_list_size: u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX),
        connect_protocol: true, // RFC 8441: WebSocket over HTTP/2
    }
}

/// Serves one HTTP/2 connection; `prefix` holds bytes already read from `read`.
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
    let peer = ctx.info.peer;
    let dog = ctx.dog.clone();
    let io = Socket::new(read, write, dog.clone())
        .with_prefix(prefix)
        .with_meter(flood::Meter::new(Instant::now()));
    let mut stop = shutdown.stop();
    let mut driver = Driver {
        codec: Connection::new(ctx.shared.h2.clone()),
        alarm: Alarm::new(&dog),
        max_requests: ctx.shared.limits.max_requests_per_connection,
        send_timeout: ctx.shared.limits.send_timeout,
        ctx: &ctx,
        io,
        rbuf: Vec::new(),
        rlen: 0,
        streams: HashMap::default(),
        work: FuturesUnordered::new(),
        make: answer::<S>,
        mailbox: Arc::new(mailbox::Mailbox::default()),
        accepted: 0,
        draining: false,
        goaway_timer: None,
        cutoff: None,
        window_timer: None,
        reading: true,
        hung_up: false,
    };
    let end = std::future::poll_fn(|cx| driver.poll(cx, &mut stop)).await;
    match end {
        Ok(Close::Now) => {}
        Ok(Close::Linger) => driver.linger().await,
        Err(End::Io(e)) => tracing::debug!(%peer, error = %e, "HTTP/2 connection ended"),
        Err(End::Expired(expiry)) => tracing::debug!(%peer, ?expiry, "closing connection: timeout"),
    }
}

/// How a connection that is done closes.
enum Close {
    /// The client closed it.
    Now,
    /// This end closed it: its write side ends, and what the client still sends is
    /// read for a moment.
    Linger,
}

/// Why a connection ended early.
enum End {
    Io(io::Error),
    Expired(Expiry),
}

/// A service's answer as `conn` returns it.
type Answer<S> = Response<LoggedBody<ResBody<<S as Service>::Body>>>;

/// What a request's response needs of it. (The rare parts are boxed: a stream is
/// moved into the connection's map of streams, and seldom has them.)
#[derive(Default)]
struct Carry {
    /// An extended CONNECT: the upgrade to fulfil and the client's side of the tunnel.
    tunnel: Option<Box<(Pending, body::Incoming)>>,
    /// What pushed requests copy from this one (when the client accepts pushes).
    push_from: Option<Box<http::request::Parts>>,
    /// The request's method, which says whether its response's length is implied.
    method: http::Method,
}

/// One request's work: the service's answer. (The `103`s it sends on the way go
/// through the connection's mailbox.) It borrows the connection's context, which
/// outlives the driver that holds the work: no reference count per request.
fn answer<'c, S: Service>(
    ctx: &'c ConnCtx<S>,
    req: Request<RequestBody>,
    interim: Option<Interim>,
) -> impl Future<Output = Answer<S>> + Send + 'c {
    ctx.handle(req, interim)
}

/// A stream's work as the connection's `FuturesUnordered` holds it: its id and the
/// work, boxed. The box keeps what the set holds and moves small: the service's
/// future is kilobytes, and the set keeps one empty slot of its element's size for
/// as long as the connection lives.
///
/// A stream the client resets has its work dropped at once by [`Work::cancel`]: the
/// set is searched (it holds at most the concurrent-stream limit) rather than each
/// stream given an abort handle, an allocation per request for what few need.
struct Work<F> {
    id: u32,
    /// `None` once cancelled.
    fut: Option<Pin<Box<F>>>,
    /// The waker of its latest poll that found it waiting (the set's, once it is in
    /// the set): a cancelled work must be polled once more to leave the set. (Work
    /// done at its first poll never keeps one: a clone is a reference count each
    /// way.)
    waker: Option<Waker>,
}

impl<F> Work<F> {
    fn new(id: u32, fut: F) -> Self {
        Work {
            id,
            fut: Some(Box::pin(fut)),
            waker: None,
        }
    }

    /// Drops stream `id`'s work, if it is still in `set`.
    fn cancel(set: &mut FuturesUnordered<Work<F>>, id: u32) {
        if let Some(work) = set.iter_mut().find(|w| w.id == id) {
            work.fut = None;
            if let Some(waker) = work.waker.take() {
                waker.wake();
            }
        }
    }
}

impl<F: Future> Future for Work<F> {
    /// The stream's id, and the service's answer unless cancelled.
    type Output = (u32, Option<F::Output>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready((id, None));
        };
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready((id, Some(out)));
        }
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A response body: the service's, or what a tunnel's writer writes.
enum OutBody<B> {
    Service(B),
    Tunnel(tunnel::Outgoing),
}

impl<B> OutBody<B>
where
    B: Body<Data = Bytes, Error = io::Error> + Unpin,
{
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        match self {
            OutBody::Service(b) => Pin::new(b).poll_frame(cx),
            OutBody::Tunnel(t) => Pin::new(t).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Service(b) => b.is_end_stream(),
            OutBody::Tunnel(t) => t.is_end_stream(),
        }
    }
}

/// A response whose head is sent and whose body is on its way.
struct Sending<B> {
    body: OutBody<B>,
    /// Taken from the body, not yet accepted by the codec (no window).
    pending: Bytes,
    /// The body is over once `pending` is sent.
    last: bool,
    /// Since when the client's window has held it back.
    blocked_since: Option<Instant>,
}

/// The driver's side of one stream.
struct Stream<B> {
    feed: Option<body::Feed>,
    /// Until the response: what it needs of the request.
    carry: Carry,
    /// The response body, once the head is out; until then the stream's work is in
    /// the set.
    sending: Option<Sending<B>>,
}

type WorkFn<'c, S, F> = fn(&'c ConnCtx<S>, Request<RequestBody>, Option<Interim>) -> F;

struct Driver<'c, S: Service, R, W, F> {
    ctx: &'c ConnCtx<S>,
    codec: Connection,
    io: Socket<R, W>,
    /// Lent from the pool while bytes move (`rlen` of them read and not yet taken by
    /// the codec: the start of a frame); empty while the connection waits.
    rbuf: Vec<u8>,
    rlen: usize,
    /// By id, hashed with FxHash as the codec's (at most the concurrent-stream limit).
    streams: HashMap<u32, Stream<LoggedBody<ResBody<S::Body>>>, rustc_hash::FxBuildHasher>,
    work: FuturesUnordered<Work<F>>,
    make: WorkFn<'c, S, F>,
    mailbox: Arc<mailbox::Mailbox>,
    alarm: Alarm,
    accepted: u64,
    max_requests: u64,
    send_timeout: Duration,
    draining: bool,
    goaway_timer: Option<Pin<Box<Sleep>>>,
    cutoff: Option<Pin<Box<Sleep>>>,
    window_timer: Option<Pin<Box<Sleep>>>,
    reading: bool,
    /// The client closed the connection, or is cut off: no lingering close.
    hung_up: bool,
}

impl<'c, S, R, W, F> Driver<'c, S, R, W, F>
where
    S: Service,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
    F: Future<Output = Answer<S>>,
{
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        stop: &mut crate::shutdown::Stop,
    ) -> Poll<Result<Close, End>> {
        if !self.draining && (stop.poll(cx) || self.accepted >= self.max_requests) {
            self.drain(cx);
        }
        if let Err(e) = self.poll_timers(cx) {
            return Poll::Ready(Err(e));
        }
        let mut turns = 0;
        loop {
            // Whatever this turn encodes goes into a pooled buffer.
            self.codec.lend_output(pool::take_write);
            let mut more = false;
            // Over the high mark, the client is not read this turn (it waits for
            // what it is sent first): then a write that empties the output must
            // start another turn, which reads, or nothing would wake this task for
            // the client's next bytes.
            let read_skipped = self.reading && self.codec.output().len() >= OUT_HIGH;
            if self.reading && !read_skipped {
                match self.poll_read(cx) {
                    Poll::Ready(Ok(true)) => more = true,
                    Poll::Ready(Ok(false)) => {
                        self.hung_up = true; // the client closed the connection
                        self.gone();
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if self.ctx.dog.is_abused() && self.cutoff.is_none() {
                self.abused(cx);
            }
            self.events(cx);
            self.mailbox.register(cx);
            for (id, n) in self.mailbox.take_owed() {
                self.codec.release(id, n);
            }
            while let Poll::Ready(Some((id, res))) = self.work.poll_next_unpin(cx) {
                if let Some(res) = res {
                    self.respond(id, res);
                }
            }
            self.send_hints();
            let full = self.pump(cx);
            match self.poll_write(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(End::Io(e))),
                Poll::Ready(Ok(()))
                    if self.codec.output().is_empty()
                        && (!self.reading || self.codec.is_done()) =>
                {
                    return Poll::Ready(Ok(if self.hung_up {
                        Close::Now
                    } else {
                        Close::Linger
                    }));
                }
                // Written: the bodies that waited for room may go on, and the
                // client is read again.
                Poll::Ready(Ok(())) if full || read_skipped => more = true,
                Poll::Ready(Ok(())) if self.streams.is_empty() => {
                    // Idle: the output buffer goes back to the pool until there is
                    // something to write again.
                    if let Some(buf) = self.codec.reclaim_output() {
                        pool::give_write(buf);
                    }
                }
                _ => {}
            }
            turns += 1;
            if !more {
                return Poll::Pending;
            }
            if turns == READS_PER_TURN {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }

    /// Ends the write side, then reads and drops what the client sends until it
    /// closes too, for at most [`LINGER`].
    async fn linger(&mut self) {
        if std::future::poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx))
            .await
            .is_err()
        {
            return;
        }
        // A pooled buffer, not an array in this future: the connection's future would
        // carry the array's room for its whole life.
        let mut buf = pool::take_frame_read();
        let drain = std::future::poll_fn(|cx| loop {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
                Poll::Pending => return Poll::Pending,
            }
        });
        let _ = tokio::time::timeout(LINGER, drain).await;
        pool::give_frame_read(buf);
    }

    /// The first step of the graceful shutdown.
    fn drain(&mut self, cx: &mut Context<'_>) {
        self.draining = true;
        self.codec.shutdown();
        let mut t = Box::pin(tokio::time::sleep(GOAWAY_ACK_WAIT));
        let _ = t.as_mut().poll(cx);
        self.goaway_timer = Some(t);
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        if let Some(t) = &mut self.goaway_timer {
            if !self.codec.awaiting_goaway_ack() {
                self.goaway_timer = None;
            } else if t.as_mut().poll(cx).is_ready() {
                self.codec.final_goaway();
                self.goaway_timer = None;
            }
        }
        if let Some(cutoff) = &mut self.cutoff {
            // An abuser that does not read its GOAWAY is not waited for.
            if cutoff.as_mut().poll(cx).is_ready() {
                return Err(End::Expired(Expiry::Abuse));
            }
            return Ok(());
        }
        match self.alarm.poll(&self.ctx.dog, cx) {
            Poll::Ready(Expiry::Idle) if !self.draining => self.drain(cx), // GOAWAY, not silence
            Poll::Ready(Expiry::Idle) | Poll::Pending => {}
            Poll::Ready(Expiry::Abuse) => self.abused(cx),
            Poll::Ready(expiry) => return Err(End::Expired(expiry)),
        }
        if let Some(t) = &mut self.window_timer {
            if t.as_mut().poll(cx).is_ready() {
                self.window_timer = None;
                self.cancel_stalled(cx);
            }
        }
        Ok(())
    }

    /// A flood: GOAWAY with ENHANCE_YOUR_CALM, everything dropped, and the socket
    /// closed once the GOAWAY is written or after a grace period.
    fn abused(&mut self, cx: &mut Context<'_>) {
        let reason = self.ctx.dog.abuse_reason();
        let peer = self.ctx.info.peer;
        tracing::warn!(%peer, reason, "closing connection: GOAWAY ENHANCE_YOUR_CALM");
        self.codec.abort(Reason::ENHANCE_YOUR_CALM, "flood");
        self.hung_up = true; // not waited for beyond the grace period
        self.gone();
        let mut sleep = Box::pin(tokio::time::sleep(ABUSER_GRACE));
        let _ = sleep.as_mut().poll(cx);
        self.cutoff = Some(sleep);
    }

    /// Stops reading and drops every stream's work.
    fn gone(&mut self) {
        self.reading = false;
        self.streams.clear();
        self.work.clear();
    }

    /// Reads once and hands the codec every whole frame; `Ok(false)` at the end of
    /// input. The read buffer is lent by the pool and given back whenever it holds
    /// nothing, so a connection waiting for its client holds none.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, End>> {
        if self.rbuf.is_empty() {
            self.rbuf = pool::take_frame_read();
        }
        let mut rb = ReadBuf::new(&mut self.rbuf[self.rlen..]);
        let res = Pin::new(&mut self.io).poll_read(cx, &mut rb);
        let n = rb.filled().len();
        let res = match res {
            Poll::Ready(Ok(())) if n == 0 => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(())) => {
                self.rlen += n;
                match self.codec.recv(&self.rbuf[..self.rlen]) {
                    Ok(read) => {
                        // What is left begins a frame: it moves to the front.
                        self.rbuf.copy_within(read..self.rlen, 0);
                        self.rlen -= read;
                    }
                    Err(e) => {
                        // The GOAWAY is in the output: written before the end.
                        let peer = self.ctx.info.peer;
                        tracing::debug!(%peer, error = %e, "HTTP/2 connection error: GOAWAY");
                        self.gone();
                    }
                }
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(End::Io(e))),
            Poll::Pending => Poll::Pending,
        };
        if self.rlen == 0 {
            pool::give_frame_read(std::mem::take(&mut self.rbuf));
        }
        res
    }

    fn events(&mut self, cx: &mut Context<'_>) {
        while let Some(ev) = self.codec.poll_event() {
            match ev {
                Event::Request {
                    id,
                    head,
                    protocol,
                    end_stream,
                } => self.accept(id, head, protocol, end_stream, cx),
                Event::Data {
                    id,
                    data,
                    end_stream,
                } => {
                    let n = data.len();
                    let feed = self.streams.get(&id).and_then(|s| s.feed.as_ref());
                    if !feed.is_some_and(|f| f.data(data, end_stream)) {
                        self.codec.release(id, n); // nobody reads it
                    }
                }
                Event::Trailers { id, trailers } => {
                    if let Some(f) = self.streams.get(&id).and_then(|s| s.feed.as_ref()) {
                        f.trailers(*trailers);
                    }
                }
                Event::Reset { id, reason } => {
                    if let Some(s) = self.streams.remove(&id) {
                        if s.sending.is_none() {
                            Work::cancel(&mut self.work, id);
                        }
                        if let Some(f) = s.feed {
                            f.reset(reason);
                        }
                    }
                }
                Event::Malformed { why, .. } => {
                    let peer = self.ctx.info.peer;
                    tracing::debug!(%peer, reason = why, "malformed HTTP/2 request: RST_STREAM PROTOCOL_ERROR");
                }
                Event::Capacity | Event::GoAway { .. } => {}
            }
        }
    }

    /// A new request: its body's queue, then its work.
    fn accept(
        &mut self,
        id: u32,
        head: Box<http::request::Parts>,
        protocol: Option<String>,
        end_stream: bool,
        cx: &mut Context<'_>,
    ) {
        let mut head = *head;
        self.accepted += 1;
        let method = head.method.clone();
        let (feed, incoming) = if end_stream {
            (None, None)
        } else {
            let (f, i) = body::channel(id, self.mailbox.clone());
            (Some(f), Some(i))
        };
        let (req, carry, interim) = match protocol {
            Some(protocol) => {
                // Extended CONNECT (RFC 8441 §4): the service sees the protocol and an
                // `OnUpgrade`; the stream's DATA becomes the tunnel's input.
                let (pending, on_upgrade) = crate::upgrade::pending();
                head.extensions.insert(ConnectProtocol(protocol));
                head.extensions.insert(on_upgrade);
                let tunnel = incoming.map(|i| Box::new((pending, i)));
                let req = Request::from_parts(head, RequestBody::empty());
                let carry = Carry {
                    tunnel,
                    push_from: None,
                    method,
                };
                (req, carry, None)
            }
            None => {
                let push_from = self
                    .codec
                    .push_allowed()
                    .then(|| Box::new(push_template(&head)));
                let body = incoming.map_or_else(RequestBody::empty, RequestBody::h2);
                let carry = Carry {
                    tunnel: None,
                    push_from,
                    method,
                };
                let interim = self.mailbox.interim(id);
                (Request::from_parts(head, body), carry, Some(interim))
            }
        };
        let work = self.start(id, req, carry, feed, interim);
        self.run(work, cx);
    }

    /// Opens stream `id`'s side here and returns its work, to run.
    fn start(
        &mut self,
        id: u32,
        req: Request<RequestBody>,
        carry: Carry,
        feed: Option<body::Feed>,
        interim: Option<Interim>,
    ) -> Work<F> {
        let fut = (self.make)(self.ctx, req, interim);
        self.streams.insert(
            id,
            Stream {
                feed,
                carry,
                sending: None,
            },
        );
        Work::new(id, fut)
    }

    /// Polls a new stream's work once, here: a service that answers at once (a file
    /// whose bytes are in memory) is answered without a task of the set (its
    /// allocation, its queue and wake-ups, about 4 % of an HTTP/2 request's CPU
    /// under perf). Work that waits joins the set, which polls it again with the
    /// set's own waker (then the one a cancel wakes).
    fn run(&mut self, mut work: Work<F>, cx: &mut Context<'_>) {
        match Pin::new(&mut work).poll(cx) {
            Poll::Ready((id, Some(res))) => self.respond(id, res),
            Poll::Ready((_, None)) => {}
            Poll::Pending => self.work.push(work),
        }
    }

    /// Sends the `103`s services sent so far (before their final responses).
    fn send_hints(&mut self) {
        for (id, fields) in self.mailbox.take_hints() {
            self.codec
                .send_headers(id, StatusCode::EARLY_HINTS, &fields, false);
        }
    }

    /// A service answered: hints, promises, the head, and the body to pump.
    fn respond(&mut self, id: u32, res: Answer<S>) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return; // reset meanwhile
        };
        let carry = std::mem::take(&mut stream.carry);
        self.send_hints(); // any this service sent go first
        let (mut head, body) = res.into_parts();
        if let Some(EarlyHints(fields)) = head.extensions.remove::<EarlyHints>() {
            self.codec
                .send_headers(id, StatusCode::EARLY_HINTS, &fields, false);
        }
        // Promises go before the response that references the pushed resources
        // (RFC 9113 §8.4); each pushed response is then worked on as a request.
        if let (Some(Push(paths)), Some(from)) = (head.extensions.remove::<Push>(), carry.push_from)
        {
            self.push(id, &from, paths);
        }
        // (The codec leaves out connection-specific fields, RFC 9113 §8.2.2.)
        let exact = body.size_hint().exact();
        let length = implied::content_length(&carry.method, head.status, &head.headers, exact);
        let out = match carry.tunnel.map(|t| *t) {
            Some((pending, incoming)) if head.status.is_success() => {
                drop(body); // logged; the tunnel is the stream's body from here
                let (reader, writer, outgoing) = tunnel::split(incoming);
                let (upgraded, _) = Upgraded::new(Bytes::new(), Box::new(reader), Box::new(writer));
                if !pending.fulfil(upgraded) {
                    // The service no longer waits for it: the stream just ends.
                    self.send_final(id, &head, None, true);
                    self.streams.remove(&id);
                    return;
                }
                OutBody::Tunnel(outgoing)
            }
            _ => OutBody::Service(body),
        };
        let end = out.is_end_stream();
        let sent = self.send_final(id, &head, length, end);
        wharf_http::maps::give(head.headers);
        if !sent || end {
            self.streams.remove(&id);
            return;
        }
        if let Some(s) = self.streams.get_mut(&id) {
            s.sending = Some(Sending {
                body: out,
                pending: Bytes::new(),
                last: false,
                blocked_since: None,
            });
        }
    }

    /// Sends a final response head with what the transport adds to it: `Date` unless
    /// the service gave one, and `length` as `Content-Length` ([`implied`]).
    fn send_final(
        &mut self,
        id: u32,
        head: &http::response::Parts,
        length: Option<u64>,
        end: bool,
    ) -> bool {
        implied::added(&head.headers, length, |added| {
            self.codec
                .send_response(id, head.status, &head.headers, added, end)
        })
    }

    fn push(&mut self, id: u32, from: &http::request::Parts, paths: Vec<String>) {
        for path in paths {
            let Some(req) = pushed_request(from, &path) else {
                continue;
            };
            let (parts, ()) = req.into_parts();
            let Some(promised) = self.codec.push_promise(id, &parts) else {
                break; // the client disabled pushes, or its limit is reached
            };
            let req = Request::from_parts(parts, RequestBody::empty());
            let work = self.start(promised, req, Carry::default(), None, None);
            self.work.push(work);
        }
    }

    /// Moves response bodies into the codec as far as the windows and the output
    /// allow; true if the output filled up first.
    fn pump(&mut self, cx: &mut Context<'_>) -> bool {
        let mut blocked = false;
        let mut full = false;
        // Streams whose response ended go in the same pass; once the output is
        // full, the rest keep their place.
        self.streams.retain(|&id, s| {
            let Some(out) = s.sending.as_mut().filter(|_| !full) else {
                return true;
            };
            match pump_one(&mut self.codec, id, out, cx) {
                Pumped::Ended => return false,
                Pumped::Blocked => {
                    out.blocked_since.get_or_insert_with(Instant::now);
                    blocked = true;
                }
                // Not waiting for the client's window (any more).
                Pumped::Waiting => out.blocked_since = None,
                Pumped::OutputFull => {
                    out.blocked_since = None;
                    full = true;
                }
            }
            true
        });
        if blocked && self.window_timer.is_none() {
            let mut t = Box::pin(tokio::time::sleep(self.send_timeout));
            let _ = t.as_mut().poll(cx);
            self.window_timer = Some(t);
        }
        full
    }

    /// Streams whose client opened no window for `send_timeout` are reset.
    fn cancel_stalled(&mut self, cx: &mut Context<'_>) {
        let now = Instant::now();
        let stalled: Vec<u32> = self
            .streams
            .iter()
            .filter_map(|(&id, s)| {
                let since = s.sending.as_ref()?.blocked_since?;
                (now.duration_since(since) >= self.send_timeout).then_some(id)
            })
            .collect();
        for id in stalled {
            self.codec.cancel(id, Reason::CANCEL);
            self.streams.remove(&id);
        }
        let earliest = self
            .streams
            .values()
            .filter_map(|s| s.sending.as_ref()?.blocked_since)
            .min();
        if let Some(since) = earliest {
            let mut t = Box::pin(tokio::time::sleep_until(since + self.send_timeout));
            let _ = t.as_mut().poll(cx);
            self.window_timer = Some(t);
        }
    }

    /// Writes what the codec encoded; ready once the socket has all of it.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.codec.output().is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, self.codec.output()) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.codec.consume_output(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

/// What pumping one body came to.
enum Pumped {
    /// The body is sent, END_STREAM included (or the stream is gone).
    Ended,
    /// The client's window holds it back.
    Blocked,
    /// The body has nothing ready.
    Waiting,
    /// The output is full: the rest waits for the socket.
    OutputFull,
}

fn pump_one<B>(
    codec: &mut Connection,
    id: u32,
    out: &mut Sending<B>,
    cx: &mut Context<'_>,
) -> Pumped
where
    B: Body<Data = Bytes, Error = io::Error> + Unpin,
{
    loop {
        if !out.pending.is_empty() || out.last {
            if !codec.send_data(id, &mut out.pending, out.last) {
                return if codec.is_open(id) {
                    Pumped::Blocked
                } else {
                    Pumped::Ended
                };
            }
            if out.last {
                return Pumped::Ended;
            }
        }
        if codec.output().len() >= OUT_HIGH {
            return Pumped::OutputFull;
        }
        if codec.send_capacity(id) == 0 {
            return if codec.is_open(id) {
                Pumped::Blocked
            } else {
                Pumped::Ended
            };
        }
        match out.body.poll_frame(cx) {
            Poll::Pending => return Pumped::Waiting,
            Poll::Ready(None) => out.last = true,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    out.last = out.body.is_end_stream();
                    out.pending = data;
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().unwrap_or_default();
                    codec.send_trailers(id, &trailers);
                    return Pumped::Ended;
                }
            },
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(error = %e, "response body failed: stream reset");
                codec.cancel(id, Reason::INTERNAL_ERROR);
                return Pumped::Ended;
            }
        }
    }
}

/// What pushed requests copy from the request that caused them: scheme, authority
/// and the fields that choose a representation.
fn push_template(parts: &http::request::Parts) -> http::request::Parts {
    let (mut t, ()) = Request::new(()).into_parts();
    t.uri = parts.uri.clone();
    t.version = parts.version;
    for name in [ACCEPT_ENCODING, ACCEPT_LANGUAGE, USER_AGENT] {
        if let Some(v) = parts.headers.get(&name) {
            t.headers.insert(name, v.clone());
        }
    }
    t
}

/// `GET path` on the template's origin; `None` for a path that is not a valid target.
fn pushed_request(from: &http::request::Parts, path: &str) -> Option<Request<()>> {
    let mut uri = http::uri::Parts::default();
    uri.scheme = from.uri.scheme().cloned();
    uri.authority = from.uri.authority().cloned();
    uri.path_and_query = Some(path.parse().ok()?);
    let mut req = Request::new(());
    *req.uri_mut() = http::Uri::from_parts(uri).ok()?;
    *req.version_mut() = from.version;
    *req.headers_mut() = from.headers.clone();
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::watch;

    /// A writer that takes nothing until its gate opens.
    struct Gated<W> {
        inner: W,
        gate: Arc<Mutex<Gate>>,
    }

    #[derive(Default)]
    struct Gate {
        open: bool,
        waker: Option<Waker>,
    }

    impl<W> Gated<W> {
        /// Whether the gate is shut (then `cx` is woken when it opens).
        fn shut(&self, cx: &mut Context<'_>) -> bool {
            let mut gate = self.gate.lock().unwrap();
            if !gate.open {
                gate.waker = Some(cx.waker().clone());
            }
            !gate.open
        }
    }

    impl<W: AsyncWrite + Unpin> AsyncWrite for Gated<W> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.shut(cx) {
                return Poll::Pending;
            }
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.shut(cx) {
                return Poll::Pending;
            }
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A body of `left` frames of `size` bytes, which says it ends with the last (as
    /// a file's does).
    struct Frames {
        left: usize,
        size: usize,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            let data = Bytes::from(vec![1u8; self.size]);
            Poll::Ready(Some(Ok(http_body::Frame::data(data))))
        }

        fn is_end_stream(&self) -> bool {
            self.left == 0
        }
    }

    /// Answers every request with 1 MiB at once, counting them in `answered`.
    struct Big {
        answered: watch::Sender<u64>,
    }

    impl Service for Big {
        type Body = Frames;
        async fn call(&self, _: Request<RequestBody>, _: crate::Exchange<'_>) -> Response<Frames> {
            self.answered.send_modify(|n| *n += 1);
            Response::new(Frames {
                left: 1,
                size: 1 << 20,
            })
        }
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// GET / on `stream` (:method GET, :scheme http, :path /, :authority t).
    fn get(stream: u32) -> Vec<u8> {
        frame(0x1, 0x5, stream, &[0x82, 0x86, 0x84, 0x41, 0x01, b't'])
    }

    /// Reads frames from `client` until a HEADERS frame on `stream`.
    async fn headers_on(client: &mut tokio::io::DuplexStream, stream: u32) {
        let (mut buf, mut at) = (Vec::new(), 0);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            while buf.len() >= at + 9 {
                let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                let id = u32::from_be_bytes([buf[at + 5], buf[at + 6], buf[at + 7], buf[at + 8]]);
                if buf[at + 3] == 0x1 && id & 0x7fff_ffff == stream {
                    return;
                }
                at += 9 + len;
            }
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A connection to `service` under `limits` whose writes wait for `gate`; the
    /// client's end of it.
    fn gated_conn<S: Service>(
        service: S,
        limits: Limits,
        gate: &Arc<Mutex<Gate>>,
    ) -> tokio::io::DuplexStream {
        let (client, server) = tokio::io::duplex(8 << 20);
        let (r, w) = tokio::io::split(server);
        let ctx = crate::conn::test_ctx(service, limits);
        let writer = Gated {
            inner: w,
            gate: gate.clone(),
        };
        tokio::spawn(serve(r, writer, Bytes::new(), ctx, Shutdown::new()));
        client
    }

    /// Opens `gate` and wakes the writer waiting for it; whether one was.
    fn open(gate: &Mutex<Gate>) -> bool {
        let waker = {
            let mut g = gate.lock().unwrap();
            g.open = true;
            g.waker.take()
        };
        waker.map(Waker::wake).is_some()
    }

    /// A turn that skips reading (the output is over its high mark) and then writes
    /// all of it must read before it waits: otherwise a request that arrived while
    /// the output was full is not read until a timer wakes the connection (seen as
    /// a rare stall of 1 MiB responses over TLS on a loaded machine).
    #[tokio::test]
    async fn a_request_that_came_while_the_output_was_full_is_read_once_it_drains() {
        let gate = Arc::new(Mutex::new(Gate::default()));
        let (answered_tx, mut answered) = watch::channel(0);
        let service = Big {
            answered: answered_tx,
        };
        let mut client = gated_conn(service, Limits::default(), &gate);
        // Windows large enough for the whole response at once, then stream 1.
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
        hello.extend(frame(0x8, 0, 0, &0x7fff_0000u32.to_be_bytes()));
        hello.extend(get(1));
        client.write_all(&hello).await.unwrap();
        // Stream 1 answered and ended: its megabyte waits in the output.
        answered.wait_for(|&n| n == 1).await.unwrap();
        // Stream 3 arrives while nothing can be written, and is not read yet.
        client.write_all(&get(3)).await.unwrap();
        // Then the socket takes everything at once.
        assert!(open(&gate), "the driver waits to write");
        // Bounded below the watchdog's 10 s, whose alarm would read at last.
        tokio::time::timeout(Duration::from_secs(5), headers_on(&mut client, 3))
            .await
            .expect("stream 3 answered without waiting for a timer");
    }

    /// Answers with 2 MiB in 64 KiB frames.
    struct Long;

    impl Service for Long {
        type Body = Frames;
        async fn call(&self, _: Request<RequestBody>, _: crate::Exchange<'_>) -> Response<Frames> {
            Response::new(Frames {
                left: 32,
                size: 1 << 16,
            })
        }
    }

    /// A stream that waited for its window once, and then goes on as fast as the
    /// socket takes it, is not reset as stalled when its send timeout comes: only
    /// waiting for the window counts (RFC 9113 §6.9 flow control, `send_timeout`).
    #[tokio::test(start_paused = true)]
    async fn a_stream_that_once_waited_for_its_window_is_not_reset_while_it_moves() {
        let gate = Arc::new(Mutex::new(Gate::default()));
        let limits = Limits {
            send_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let mut client = gated_conn(Long, limits, &gate);
        open(&gate);
        // Stream windows of 0: the response waits for its window.
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
        hello.extend(frame(0x8, 0, 0, &0x7fff_0000u32.to_be_bytes()));
        hello.extend(get(1));
        client.write_all(&hello).await.unwrap();
        headers_on(&mut client, 1).await;
        // The socket takes nothing now; the window opens, and the output fills.
        gate.lock().unwrap().open = false;
        client
            .write_all(&frame(0x8, 0, 1, &0x7fff_0000u32.to_be_bytes()))
            .await
            .unwrap();
        // Past the send timeout (virtual time), then the socket drains.
        tokio::time::sleep(Duration::from_millis(300)).await;
        open(&gate);
        let (mut buf, mut at, mut data) = (Vec::new(), 0, 0);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            while buf.len() >= at + 9 {
                let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                if buf.len() < at + 9 + len {
                    break;
                }
                let (kind, flags) = (buf[at + 3], buf[at + 4]);
                assert_ne!(kind, 0x3, "RST_STREAM: reset as stalled");
                if kind == 0x0 {
                    data += len;
                    if flags & 0x1 != 0 {
                        assert_eq!(data, 32 << 16);
                        return;
                    }
                }
                at += 9 + len;
            }
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}
