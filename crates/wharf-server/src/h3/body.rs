//! A request stream's reading side: its frames, and the request body services read
//! from it (DATA, trailers, the length checks of RFC 9114 §4.1.2).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use wharf_h2::head::{Collect, Outcome};
use wharf_h3::{qpack, Code, ConnError, Frames, Item};

use super::{close, code};
use crate::RequestBody;

/// A request stream's reading side with its frames: what the head's chunk left, and
/// what comes after.
pub(super) struct Reading {
    recv: quinn::RecvStream,
    frames: Frames,
    input: Bytes,
    /// The stream's end has been read.
    ended: bool,
}

impl Reading {
    pub(super) fn new(recv: quinn::RecvStream, limit: usize) -> Self {
        Reading {
            recv,
            frames: Frames::request(limit),
            input: Bytes::new(),
            ended: false,
        }
    }

    /// The next item; `None` at the stream's end (checked to fall between frames).
    pub(super) fn poll_item(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Item>, ReadFailed>> {
        loop {
            if let Some(item) = self.frames.next(&mut self.input)? {
                return Poll::Ready(Ok(Some(item)));
            }
            if self.ended {
                return Poll::Ready(Ok(None));
            }
            let read = std::pin::pin!(self.recv.read_chunk(usize::MAX, true));
            match std::task::ready!(read.poll(cx)) {
                Ok(Some(chunk)) => self.input = chunk.bytes,
                Ok(None) => {
                    self.ended = true;
                    return Poll::Ready(self.frames.end().map(|()| None).map_err(Into::into));
                }
                Err(e) => return Poll::Ready(Err(ReadFailed::Stream(e))),
            }
        }
    }

    /// Asks the client to stop sending with `c`, unless its end has been read.
    pub(super) fn stop(&mut self, c: Code) {
        if !self.ended {
            let _ = self.recv.stop(code(c));
        }
    }
}

/// A stream put down before its end is read (the response went out first, or the
/// request failed) is stopped with H3_NO_ERROR (RFC 9114 §4.1), not with the code
/// 0 quinn would send as it is dropped. (A stop with another code comes first where
/// the request was malformed; quinn sends only the first.)
impl Drop for Reading {
    fn drop(&mut self) {
        self.stop(Code::NoError);
    }
}

/// Why a request stream could not be read on.
pub(super) enum ReadFailed {
    /// An error of the connection.
    Conn(ConnError),
    /// The client reset the stream, or the connection is gone.
    Stream(quinn::ReadError),
}

impl From<ConnError> for ReadFailed {
    fn from(e: ConnError) -> Self {
        ReadFailed::Conn(e)
    }
}

/// Resets a request stream both ways with `c`.
pub(super) fn reset(send: &mut quinn::SendStream, reading: &mut Reading, c: Code) {
    let _ = send.reset(code(c));
    reading.stop(c);
}

/// A request's body: the stream's frames, its length as declared and as received,
/// and how far it is read.
pub(crate) struct Incoming {
    reading: Reading,
    /// What [`request_body`] read before the service was called.
    first: Option<Result<Option<Item>, ReadFailed>>,
    /// To close the connection on an error of the connection's found in the body.
    conn: quinn::Connection,
    declared: Option<u64>,
    received: u64,
    /// The largest trailer section taken.
    limit: usize,
    /// How long the body may wait for the client ([`Incoming::poll_idle`]).
    idle: Duration,
    /// Armed once the body first waits; `moved`: something came since it was set.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    moved: bool,
    done: bool,
    /// Set when the body turns out malformed (its length, its trailers), for the
    /// request's task, which has given the body to the service.
    malformed: Arc<AtomicBool>,
}

impl Incoming {
    /// Reads the body's next frame: DATA, then trailers if the client sent some.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = match self.first.take() {
            Some(item) => item,
            None => match self.reading.poll_item(cx) {
                Poll::Ready(item) => {
                    self.moved = true;
                    item
                }
                Poll::Pending => return self.poll_idle(cx),
            },
        };
        let out = match item {
            Ok(Some(Item::Data(chunk))) => self.count(chunk).map(Frame::data),
            Ok(Some(Item::Headers(block))) => {
                self.done = true;
                self.at_end().and_then(|()| self.trailers(&block))
            }
            // Trailers too large (§4.2.2).
            Ok(Some(_)) => Err(self.mark_malformed("trailers larger than the limit")),
            Ok(None) => {
                self.done = true;
                return Poll::Ready(self.at_end().err().map(Err));
            }
            Err(ReadFailed::Conn(e)) => Err(io::Error::other(close(&self.conn, e))),
            Err(ReadFailed::Stream(e)) => Err(io::Error::other(e)),
        };
        if out.is_err() {
            self.done = true;
        }
        Poll::Ready(Some(out))
    }

    /// The body waits for the client: one that sends nothing more of it for the idle
    /// timeout has the stream stopped (H3_REQUEST_CANCELLED) and the body fails, as
    /// HTTP/1.1 and HTTP/2 bodies time out. (QUIC's own idle timeout does not come
    /// while the client keeps its connection alive.)
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.timer.is_none() || self.moved {
            let deadline = tokio::time::Instant::now() + self.idle;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.moved = false;
        }
        let timer = self.timer.as_mut().expect("armed above");
        std::task::ready!(timer.as_mut().poll(cx));
        self.done = true;
        self.reading.stop(Code::RequestCancelled);
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body timed out",
        ))))
    }

    /// RFC 9114 §4.1.2: a request whose DATA goes past its Content-Length is
    /// malformed (H3_MESSAGE_ERROR). The excess is never handed on: a proxy frames
    /// the request upstream by its Content-Length, and what went past it would reach
    /// the upstream as a request of its own.
    fn count(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        self.received += chunk.len() as u64;
        match self.declared {
            Some(declared) if self.received > declared => {
                Err(self.mark_malformed("request body longer than its Content-Length"))
            }
            _ => Ok(chunk),
        }
    }

    /// At the body's end: a body shorter than its Content-Length is malformed too.
    fn at_end(&mut self) -> io::Result<()> {
        match self.declared {
            Some(declared) if self.received != declared => {
                Err(self.mark_malformed("request body shorter than its Content-Length"))
            }
            _ => Ok(()),
        }
    }

    /// The trailers (RFC 9114 §4.1): regular fields only, and (§4.2) none of the
    /// connection-specific ones, checked as a head's are (`wharf_h2::head`).
    fn trailers(&mut self, block: &Bytes) -> io::Result<Frame<Bytes>> {
        let mut collect = Collect::trailers(self.limit);
        if let Err(e) = qpack::decode(block, |f| collect.field(f)) {
            return Err(io::Error::other(close(&self.conn, e)));
        }
        let fields = match collect.finish_trailers() {
            Outcome::Ok(fields) => fields,
            Outcome::Malformed(why) => return Err(self.mark_malformed(why)),
            Outcome::TooLarge => return Err(self.mark_malformed("trailers larger than the limit")),
        };
        Ok(Frame::trailers(fields))
    }

    /// The client is asked to stop sending, and the request's task will reset the
    /// stream (both with H3_MESSAGE_ERROR).
    fn mark_malformed(&mut self, why: &'static str) -> io::Error {
        self.reading.stop(Code::MessageError);
        self.malformed.store(true, Ordering::Relaxed);
        io::Error::new(io::ErrorKind::InvalidData, why)
    }
}

/// The body of a request whose head has arrived, declared `declared` bytes long. A
/// request without content (a `GET`) usually ends in the packet that brought its
/// head, and a look without waiting tells so: its body is then known to be empty,
/// and a proxy sends none upstream rather than an empty chunked one. With a body
/// comes the flag that says it turned out malformed.
pub(super) fn request_body(
    conn: &quinn::Connection,
    mut reading: Reading,
    declared: Option<u64>,
    limits: &crate::Limits,
) -> Result<(RequestBody, Option<Arc<AtomicBool>>), ConnError> {
    // What has arrived after the head: often only the stream's end (after frames
    // of unknown types, which some clients send as grease).
    let mut first = None;
    if declared.unwrap_or(0) == 0 {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match reading.poll_item(&mut cx) {
            Poll::Ready(Ok(None)) => return Ok((RequestBody::empty(), None)),
            Poll::Ready(Err(ReadFailed::Conn(e))) => return Err(e),
            Poll::Ready(item) => first = Some(item),
            Poll::Pending => {}
        }
    }
    let malformed = Arc::new(AtomicBool::new(false));
    let body = Incoming {
        reading,
        first,
        conn: conn.clone(),
        declared,
        received: 0,
        limit: limits.max_header_bytes,
        idle: limits.idle_timeout,
        timer: None,
        moved: false,
        done: false,
        malformed: malformed.clone(),
    };
    Ok((RequestBody::h3(body), Some(malformed)))
}
