//! One WebSocket connection over any byte stream (an upgraded HTTP/1.1 connection, an
//! HTTP/2 or HTTP/3 stream): frames read and written, control frames answered,
//! heartbeats, limits, and the closing handshake (RFC 6455 §5–§7).
//!
//! The session is driven by its owner calling [`Session::recv`], which also writes what
//! [`Session::send`] queued, answers pings, pings a quiet peer every `ping_interval`,
//! fails a peer silent for `idle_timeout` with 1001, and closes with 1001 when the
//! server shuts down. `recv` is cancel-safe: all state lives in the session, so an owner
//! may `select!` it against other sources (a hub subscription).
//!
//! Memory: an idle session holds no buffer. Bytes are read into a per-thread scratch
//! buffer and parsed in place; only an incomplete frame's bytes are kept, in a buffer
//! freed once the frame is complete. The write buffer is freed once flushed. Writes are
//! bounded: when more than `max_queued_bytes` wait for a client that does not read,
//! the session stops taking messages and closes with 1008 (nobody else waits for it).

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::close::{self, Close, Code};
use crate::deflate::{Agreed, Deflate};
use crate::frame;
use crate::message::{Assembler, Event, Message};

/// Limits and timings of one endpoint's sessions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest frame payload accepted; beyond it, 1009.
    pub max_frame_size: usize,
    /// Largest message accepted (after decompression); beyond it, 1009.
    pub max_message_size: usize,
    /// Bytes that may wait for a client that does not read; beyond them, 1008.
    pub max_queued_bytes: usize,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long the peer may send nothing (not even a pong) before it is closed.
    pub idle_timeout: Duration,
    /// How long a closing handshake may take.
    pub close_timeout: Duration,
    /// zlib level of permessage-deflate (0–9).
    pub deflate_level: u32,
    /// Messages shorter than this are sent uncompressed (default 0: every message is
    /// compressed once the client agreed, as browsers do).
    pub deflate_threshold: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_queued_bytes: 1 << 20,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(5),
            deflate_level: 1,
            deflate_threshold: 0,
        }
    }
}

/// Size of the per-thread read buffer.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static READ: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Where the closing handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The server sent its close and waits for the peer's.
    Closing,
    /// Nothing more is read: what is queued is written, then the stream ends.
    Done,
    /// The stream is finished.
    Ended,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// The close code (1006 when the connection dropped without one, RFC 6455 §7.1.5).
    pub code: Code,
    /// Who closed: the peer or the server.
    pub by_peer: bool,
    /// The server's reason, or the peer's (lossily decoded).
    pub reason: String,
}

/// A message could not be sent: the session is closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// One WebSocket connection.
pub struct Session<S> {
    io: S,
    settings: Arc<Settings>,
    assembler: Assembler,
    deflate: Option<Deflate>,
    /// Bytes of an incomplete frame.
    rx: BytesMut,
    /// Bytes to write, and how many of them are written.
    tx: Vec<u8>,
    sent: usize,
    flush: bool,
    state: State,
    heard: Instant,
    next_ping: Instant,
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    end: Option<End>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session on `io` after a successful handshake.
    pub fn new(
        io: S,
        settings: Arc<Settings>,
        deflate: Option<Agreed>,
        shutdown: Option<CancellationToken>,
    ) -> Self {
        let now = Instant::now();
        let next_ping = now + settings.ping_interval;
        let deadline = next_ping.min(now + settings.idle_timeout);
        Session {
            io,
            assembler: Assembler::new(settings.max_message_size),
            deflate: deflate.map(|a| Deflate::new(a, settings.deflate_level)),
            settings,
            rx: BytesMut::new(),
            tx: Vec::new(),
            sent: 0,
            flush: false,
            state: State::Open,
            heard: now,
            next_ping,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            shutdown: shutdown.map(|t| Box::pin(t.cancelled_owned())),
            end: None,
        }
    }

    /// The next message; `None` once the session has ended. Also writes what is
    /// queued and keeps the heartbeat.
    pub async fn recv(&mut self) -> Option<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queues a message. Fails once the session is closing; when more than
    /// `max_queued_bytes` were already waiting, starts closing with 1008.
    pub fn send(&mut self, msg: &Message) -> Result<(), Closed> {
        if self.state != State::Open {
            return Err(Closed);
        }
        if self.queued() > self.settings.max_queued_bytes {
            self.close(Close::new(
                Code::POLICY,
                "the client does not read what it is sent",
            ));
            return Err(Closed);
        }
        let (opcode, payload) = match msg {
            Message::Text(b) => (frame::TEXT, b),
            Message::Binary(b) => (frame::BINARY, b),
        };
        let compressed = match &mut self.deflate {
            Some(d) if payload.len() >= self.settings.deflate_threshold => {
                Some(d.compress(payload))
            }
            _ => None,
        };
        let body = compressed.as_ref().unwrap_or(payload);
        frame::write_header(&mut self.tx, true, compressed.is_some(), opcode, body.len());
        self.tx.extend_from_slice(body);
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.tx.len() - self.sent
    }

    /// Starts the closing handshake with this code and reason.
    pub fn close(&mut self, why: Close) {
        if self.state == State::Open {
            self.control(frame::CLOSE, &close::payload(why.code, why.reason));
            self.finish_with(why.code, false, why.reason.to_string());
            self.enter(State::Closing);
        }
    }

    /// How the session ended (also set while its close is under way).
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// [`Session::recv`] as a poll function.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        loop {
            if self.state == State::Open && self.shutting_down(cx) {
                self.close(Close::new(Code::GOING_AWAY, "the server is shutting down"));
            }
            if let Poll::Ready(Err(e)) = self.poll_write(cx) {
                tracing::debug!(error = %e, "WebSocket write failed");
                self.finish_with(Code(1006), true, e.to_string());
                self.state = State::Ended;
            }
            match self.state {
                State::Ended => return Poll::Ready(None),
                State::Done if self.queued() == 0 && !self.flush => {
                    let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    self.state = State::Ended;
                    return Poll::Ready(None);
                }
                _ => {}
            }
            if self.poll_timer(cx) {
                continue;
            }
            if self.state == State::Done {
                return Poll::Pending; // until written or timed out
            }
            match ready!(self.poll_frames(cx)) {
                Some(msg) => return Poll::Ready(Some(msg)),
                None => continue,
            }
        }
    }

    fn shutting_down(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(s) = &mut self.shutdown else {
            return false;
        };
        if s.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.shutdown = None;
        true
    }

    /// Writes what is queued: `Ready(Ok)` once all is written and flushed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.tx.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.tx[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
            self.flush = true;
        }
        if !self.tx.is_empty() {
            self.tx = Vec::new(); // an idle session holds no buffer
            self.sent = 0;
        }
        if self.flush {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.flush = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Handles the timer if it fired: a ping, a silent peer, or a closing handshake
    /// that took too long. Reading does not touch the timer; it finds out when it fires.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let now = Instant::now();
        match self.state {
            State::Open if now >= self.heard + self.settings.idle_timeout => {
                let why = Close::new(Code::GOING_AWAY, "the peer sent nothing for too long");
                self.fail(why);
            }
            State::Open => {
                if now >= self.next_ping {
                    self.control(frame::PING, b"");
                    self.next_ping = now + self.settings.ping_interval;
                }
                self.deadline = self.next_ping.min(self.heard + self.settings.idle_timeout);
            }
            _ => {
                tracing::debug!("WebSocket closing handshake timed out");
                self.state = State::Ended;
            }
        }
        let deadline = self.deadline;
        self.timer.as_mut().reset(deadline);
        true
    }

    /// Reads and handles frames: `Ready(Some)` for a message, `Ready(None)` after any
    /// other progress (the caller loops), `Pending` when the socket has nothing.
    fn poll_frames(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        if !self.rx.is_empty() {
            let mut rx = std::mem::take(&mut self.rx);
            let (used, msg, complete) = self.process(&mut rx);
            rx.advance(used);
            // A finished frame's buffer is freed, not kept for the next one.
            self.rx = if rx.is_empty() { BytesMut::new() } else { rx };
            if msg.is_some() || self.state == State::Done || complete {
                return Poll::Ready(msg);
            }
            // An incomplete frame: read the rest straight into its buffer.
            let want = self.rx.len().clamp(4096, 64 * 1024);
            self.rx.reserve(want);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut self.rx
            ));
            self.received(n.ok());
            return Poll::Ready(None);
        }
        READ.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut buf = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).ok();
            let n = buf.filled().len();
            if !self.received((n > 0).then_some(n)) {
                return Poll::Ready(None);
            }
            let (used, msg, _) = self.process(&mut scratch[..n]);
            if self.state != State::Done && used < n {
                self.rx.extend_from_slice(&scratch[used..n]);
            }
            Poll::Ready(msg)
        })
    }

    /// Notes bytes arriving (`None`: end of stream or an error, which ends the session).
    fn received(&mut self, n: Option<usize>) -> bool {
        match n {
            Some(n) if n > 0 => {
                self.heard = Instant::now();
                true
            }
            _ => {
                if self.end.is_none() {
                    self.finish_with(Code(1006), true, "the connection dropped".into());
                }
                self.state = State::Ended;
                false
            }
        }
    }

    /// Handles the complete frames at the start of `buf` (unmasking them in place):
    /// the bytes used, a message if one completed, and whether `buf` ended on a
    /// frame boundary.
    fn process(&mut self, buf: &mut [u8]) -> (usize, Option<Message>, bool) {
        let mut pos = 0;
        while matches!(self.state, State::Open | State::Closing) && pos < buf.len() {
            let (h, at) = match frame::parse(&buf[pos..], self.settings.max_frame_size as u64) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return (pos, None, false),
                Err(why) => {
                    self.fail(why);
                    break;
                }
            };
            let end = pos + at + h.len as usize;
            if buf.len() < end {
                return (pos, None, false);
            }
            let payload = &mut buf[pos + at..end];
            frame::unmask(payload, h.mask);
            let payload = Bytes::copy_from_slice(payload);
            pos = end;
            match self.assembler.frame(&h, payload, self.deflate.as_mut()) {
                Err(why) => self.fail(why),
                Ok(Some(event)) => {
                    if let Some(msg) = self.on_event(event) {
                        return (pos, Some(msg), pos == buf.len());
                    }
                }
                Ok(None) => {}
            }
        }
        (pos, None, true)
    }

    fn on_event(&mut self, event: Event) -> Option<Message> {
        match event {
            Event::Message(m) => return (self.state == State::Open).then_some(m),
            Event::Ping(p) if self.state == State::Open => self.control(frame::PONG, &p),
            Event::Ping(_) | Event::Pong => {}
            Event::Close(received) => {
                if self.state == State::Open {
                    // Echo the peer's code (§5.5.1); an empty close gets an empty one.
                    let (payload, code, reason) = match &received {
                        close::Received::Empty => (Vec::new(), Code(1005), String::new()),
                        close::Received::Code(c, r) => (
                            close::payload(*c, ""),
                            *c,
                            String::from_utf8_lossy(r).into_owned(),
                        ),
                    };
                    self.control(frame::CLOSE, &payload);
                    self.finish_with(code, true, reason);
                }
                self.enter(State::Done);
            }
        }
        None
    }

    /// Fails the connection (§7.1.7): a close frame with the reason, nothing more read.
    fn fail(&mut self, why: Close) {
        tracing::debug!(code = why.code.0, reason = why.reason, "WebSocket failed");
        if self.state == State::Open {
            self.control(frame::CLOSE, &close::payload(why.code, why.reason));
        }
        self.finish_with(why.code, false, why.reason.to_string());
        self.enter(State::Done);
    }

    fn finish_with(&mut self, code: Code, by_peer: bool, reason: String) {
        if self.end.is_none() {
            self.end = Some(End {
                code,
                by_peer,
                reason,
            });
        }
    }

    /// Moves to a closing state, which has `close_timeout` to complete.
    fn enter(&mut self, state: State) {
        if self.state == State::Open {
            self.deadline = Instant::now() + self.settings.close_timeout;
            let deadline = self.deadline;
            self.timer.as_mut().reset(deadline);
        }
        self.state = state;
    }

    fn control(&mut self, opcode: u8, payload: &[u8]) {
        frame::write_header(&mut self.tx, true, false, opcode, payload.len());
        self.tx.extend_from_slice(payload);
    }
}

/// Echoes every message back: the endpoint of `--ws-echo`, and Autobahn's peer.
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut session: Session<S>) -> Option<End> {
    while let Some(msg) = session.recv().await {
        let _ = session.send(&msg);
    }
    session.end.take()
}
