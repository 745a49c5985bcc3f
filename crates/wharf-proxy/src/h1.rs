//! HTTP/1.1 to upstreams on wharf's own client, run in the request's own task.
//!
//! hyper's client drives each connection from a task of its own and hands requests,
//! responses and body pieces to it through channels: every exchange wakes two tasks
//! several times. Here the request's task writes the request, reads the response head
//! and, as the client's side polls the response body, reads the body straight from
//! the connection; the framing rules are `wharf-h1`'s, the same the server side uses.
//!
//! A connection goes back to its pool only once its response has been read whole,
//! the request went out whole, both sides agreed to keep it (RFC 9112 §9.3) and
//! nothing unasked-for followed the response; anything else closes it. A request
//! body is sent while the response is awaited, so an upstream that answers early
//! (a 413 half way through an upload) is heard.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use wharf_h1::chunked::{self, Decoder};
use wharf_h1::client::{self as codec, Framing, ResponseHead};
use wharf_h1::framing::RequestFraming;
use wharf_http::forward::remove_noted_hop_by_hop;
use wharf_http::interim::Interim;

use crate::body::Incoming;
use crate::pool::{OpenSlot, Pool};
use crate::RequestBody;

/// The longest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// The most fields in a response head or trailer section.
const MAX_FIELDS: usize = 128;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 16 * 1024;
/// Request body pieces up to this size are copied to go out with their chunk line,
/// and response body pieces up to it are copied out of the read buffer.
const COPY_LIMIT: usize = 16 * 1024;
/// A trailer section's longest size.
const MAX_TRAILER: usize = 16 * 1024;

/// What a connection to an upstream is: TCP or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether the upstream closed the connection (or sent something unasked-for)
    /// while it idled. Costs no system call when nothing arrived since the last read
    /// found the socket drained.
    fn is_closed(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        !matches!(Pin::new(self).poll_read(&mut cx, &mut probe), Poll::Pending)
    }
}

/// Over TCP, a read that only tries: a poll would also register a waker with the
/// socket, under a lock, once per request.
impl Io for tokio::net::TcpStream {
    fn is_closed(&mut self) -> bool {
        !matches!(self.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Over TLS, bytes that arrive may be the TLS layer's own (a session ticket): they
/// are read through it.
impl Io for tokio_rustls::client::TlsStream<tokio::net::TcpStream> {}

/// One HTTP/1.1 connection to an upstream, between exchanges.
pub(crate) struct Conn {
    io: Box<dyn Io>,
    /// Bytes read and not yet used (empty between exchanges), its allocation kept.
    buf: BytesMut,
    /// The request head being written, its allocation kept.
    out: Vec<u8>,
    /// Counts the connection against its pool's `max_connections` while it lives.
    _slot: Option<OpenSlot>,
    /// Where in its pool the connection idles: the place of the thread that opened
    /// it (on the server's event loops, the thread whose `epoll` watches its socket).
    pub(crate) place: usize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("h1::Conn")
    }
}

/// An exchange that failed, and the request's body when nothing of the request was
/// sent (`unsent`: it can go elsewhere whole).
pub(crate) struct Failed {
    pub(crate) reason: String,
    pub(crate) body: Option<RequestBody>,
    pub(crate) unsent: bool,
}

impl Failed {
    fn new(reason: impl Into<String>) -> Failed {
        Failed {
            reason: reason.into(),
            body: None,
            unsent: false,
        }
    }
}

impl Conn {
    pub(crate) fn new(io: impl Io, slot: Option<OpenSlot>, place: usize) -> Conn {
        Conn {
            io: Box::new(io),
            buf: BytesMut::new(),
            out: Vec::new(),
            _slot: slot,
            place,
        }
    }

    /// Whether the upstream closed the connection (or sent something unasked-for)
    /// while it idled ([`Io::is_closed`]).
    pub(crate) fn is_closed(&mut self) -> bool {
        self.io.is_closed()
    }

    /// Sends `req` and reads the response head. The response's body reads from this
    /// connection as it is polled; at its end the connection goes back to `home`
    /// (when given). `hints` gets the upstream's `103`s.
    pub(crate) fn send<'a>(
        mut self,
        req: Request<RequestBody>,
        hints: Option<&'a Interim>,
        home: Option<Arc<Pool>>,
    ) -> impl Future<Output = Result<Response<Incoming>, Failed>> + Send + 'a {
        let (parts, body) = req.into_parts();
        let framing = codec::request_framing(&parts.headers, body.is_end_stream());
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.out.clear();
        codec::request_head(
            &mut self.out,
            &parts.method,
            target,
            &parts.headers,
            framing,
        );
        self.start(parts.method, body, framing, hints, home)
    }

    /// Sends the request `head` stands for (as [`Conn::send`] does), with `host` as
    /// its `Host`; `head`'s fields stay as they are.
    pub(crate) fn forward<'a>(
        mut self,
        head: &crate::Head,
        host: Option<&HeaderValue>,
        body: RequestBody,
        hints: Option<&'a Interim>,
        home: Option<Arc<Pool>>,
    ) -> impl Future<Output = Result<Response<Incoming>, Failed>> + Send + 'a {
        let framing = codec::request_framing(&head.headers, body.is_end_stream());
        self.out.clear();
        codec::request_head(
            &mut self.out,
            &head.method,
            head.target.as_str(),
            head.fields(host),
            framing,
        );
        self.start(head.method.clone(), body, framing, hints, home)
    }

    /// The exchange once the request head is in `out`: the head, the body, the
    /// response head. (One future: one awaiting another held their arguments twice.)
    async fn start(
        mut self,
        method: Method,
        body: RequestBody,
        framing: RequestFraming,
        hints: Option<&Interim>,
        home: Option<Arc<Pool>>,
    ) -> Result<Response<Incoming>, Failed> {
        // The first write tells a connection the upstream closed while it idled
        // from one that failed later: nothing of the request is lost yet.
        let written = match self.io.write(&self.out).await {
            Ok(n) if n > 0 => n,
            Ok(_) | Err(_) => {
                return Err(Failed {
                    reason: "the connection was closed before the request was sent".into(),
                    body: Some(body),
                    unsent: true,
                })
            }
        };
        if let Err(e) = self.io.write_all(&self.out[written..]).await {
            return Err(Failed::new(format!("the request could not be sent: {e}")));
        }
        let (conn, outcome) = if framing == RequestFraming::Empty {
            let head = read_head(&mut self.io, &mut self.buf, &method, hints).await;
            (self, head.map(|h| (h, true)))
        } else {
            // Boxed: the two futures run side by side are large, and a request
            // without a body (most) should not carry room for them.
            Box::pin(self.head_while_sending(&method, hints, body, framing)).await
        };
        let (head, sent_whole) = outcome?;
        Ok(conn.response(head, sent_whole, home).map(Incoming::H1))
    }

    /// Sends the request body while waiting for the response head (so an early
    /// answer is heard); with the head comes whether the body went out whole first.
    async fn head_while_sending(
        self,
        method: &Method,
        hints: Option<&Interim>,
        body: RequestBody,
        framing: RequestFraming,
    ) -> (Conn, Result<(ResponseHead, bool), Failed>) {
        let Conn {
            io,
            mut buf,
            out,
            _slot,
            place,
        } = self;
        let (mut rd, mut wr) = tokio::io::split(io);
        let outcome = {
            let send = send_body(&mut wr, body, framing);
            let recv = read_head(&mut rd, &mut buf, method, hints);
            tokio::pin!(send, recv);
            let mut sent: Option<Result<(), SendError>> = None;
            loop {
                tokio::select! {
                    r = &mut send, if sent.is_none() => {
                        if let Err(SendError::Client(e)) = r {
                            break Err(Failed::new(format!("the request body failed: {e}")));
                        }
                        sent = Some(r);
                    }
                    head = &mut recv => {
                        let head = match (head, &sent) {
                            // The upstream stopped reading and closed: say why.
                            (Err(_), Some(Err(SendError::Upstream(e)))) => {
                                Err(Failed::new(format!("the request body could not be sent: {e}")))
                            }
                            (head, _) => head,
                        };
                        break head.map(|h| (h, matches!(sent, Some(Ok(())))));
                    }
                }
            }
        };
        let conn = Conn {
            io: rd.unsplit(wr),
            buf,
            out,
            _slot,
            place,
        };
        (conn, outcome)
    }

    /// The response as the proxy gets it: head and a body reading from here.
    /// Its hop-by-hop fields are gone (RFC 9110 §7.6.1; found as the head was
    /// parsed), but for a `101`'s, which say what the connection becomes.
    fn response(
        self,
        mut head: ResponseHead,
        sent_whole: bool,
        home: Option<Arc<Pool>>,
    ) -> Response<Body> {
        let upgraded = head.parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if !upgraded {
            remove_noted_hop_by_hop(&mut head.parts.headers, head.present.hop_by_hop);
        }
        let state = match head.framing {
            _ if upgraded => State::Upgraded,
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Box::new(Decoder::new(MAX_TRAILER))),
            Framing::UntilClose => State::UntilClose,
        };
        let keep = head.keep_alive && sent_whole;
        let mut body = Body {
            conn: Some(self),
            state,
            home: home.filter(|_| keep),
        };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        Response::from_parts(head.parts, body)
    }
}

/// Why sending a request body stopped.
enum SendError {
    /// The client's body failed (cut short, or over the limit).
    Client(io::Error),
    /// Writing to the upstream failed.
    Upstream(io::Error),
}

/// Writes `body` in `framing`, then flushes.
async fn send_body<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut body: RequestBody,
    framing: RequestFraming,
) -> Result<(), SendError> {
    let chunked = framing == RequestFraming::Chunked;
    let mut out = Vec::new();
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(SendError::Client)?;
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        // A small piece goes out in one write with its chunk line; a large one is
        // written as it is.
        out.clear();
        if chunked {
            chunked::chunk_start(&mut out, data.len());
        }
        if data.len() <= COPY_LIMIT {
            out.extend_from_slice(&data);
        } else {
            wr.write_all(&out).await.map_err(SendError::Upstream)?;
            out.clear();
            wr.write_all(&data).await.map_err(SendError::Upstream)?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        wr.write_all(&out).await.map_err(SendError::Upstream)?;
    }
    if chunked {
        out.clear();
        chunked::last_chunk(&mut out, trailers.as_ref());
        wr.write_all(&out).await.map_err(SendError::Upstream)?;
    }
    wr.flush().await.map_err(SendError::Upstream)
}

/// Reads until a final response head is in `buf` (then taken from it).
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    method: &Method,
    hints: Option<&Interim>,
) -> Result<ResponseHead, Failed> {
    loop {
        let parsed = match buf.is_empty() {
            true => Ok(None),
            false => codec::response_head(buf, method, MAX_FIELDS),
        };
        match parsed {
            Err(m) => return Err(Failed::new(format!("malformed response ({m})"))),
            Ok(Some(head)) => {
                buf.advance(head.len);
                let status = head.parts.status;
                if !status.is_informational() || status == StatusCode::SWITCHING_PROTOCOLS {
                    return Ok(head);
                }
                // 103s go on to the client as they arrive (RFC 8297), less hop-by-hop
                // fields; other 1xx are the proxy's business (100) or not forwarded.
                if let (Some(hints), StatusCode::EARLY_HINTS) = (hints, status) {
                    let mut fields = head.parts.headers;
                    remove_noted_hop_by_hop(&mut fields, head.present.hop_by_hop);
                    hints.early_hints(fields);
                }
                continue;
            }
            Ok(None) if buf.len() >= MAX_HEAD => {
                return Err(Failed::new(format!(
                    "malformed response (a head over {MAX_HEAD} bytes)"
                )))
            }
            Ok(None) => {}
        }
        buf.reserve(READ_SIZE);
        match rd.read_buf(buf).await {
            Ok(0) if buf.is_empty() => {
                return Err(Failed::new(
                    "the connection closed before a complete response (nothing arrived)",
                ))
            }
            Ok(0) => {
                return Err(Failed::new(
                    "the connection closed before a complete response (in its head)",
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Failed::new(format!("reading the response: {e}"))),
        }
    }
}

/// Where a response body's reading is.
#[derive(Debug)]
enum State {
    /// This many bytes to come.
    Length(u64),
    Chunked(Box<Decoder>),
    UntilClose,
    /// A `101`: the connection now speaks another protocol ([`Body::upgrade`]).
    Upgraded,
    Done,
}

/// An upstream response's body, read from its connection as it is polled.
pub(crate) struct Body {
    conn: Option<Conn>,
    state: State,
    /// Where the connection goes after the body's end, when it may be reused.
    home: Option<Arc<Pool>>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h1::Body")
            .field("state", &self.state)
            .finish()
    }
}

impl Body {
    /// The connection after a `101`, with any bytes of the new protocol already read.
    pub(crate) fn upgrade(mut self) -> Option<Upgraded> {
        if !matches!(self.state, State::Upgraded) {
            return None;
        }
        let conn = self.conn.take()?;
        Some(Upgraded {
            early: conn.buf,
            io: conn.io,
        })
    }

    /// The body is whole: the connection goes back to its pool if it may be reused
    /// and nothing followed the response, else it closes.
    fn finish(&mut self) {
        self.state = State::Done;
        let conn = self.conn.take();
        if let (Some(conn), Some(home)) = (conn, self.home.take()) {
            if conn.buf.is_empty() {
                home.release(conn);
            }
        }
    }

    /// The body ends here, cut short or delimited by the connection's close: the
    /// connection is not reused (dropping it closes it).
    fn abandon(&mut self) {
        self.conn = None;
        self.state = State::Done;
    }

    /// The next frame from what is already read, if any.
    fn next_buffered(&mut self) -> Option<io::Result<Frame<Bytes>>> {
        let buf = &mut self.conn.as_mut()?.buf;
        let (frame, ended) = match &mut self.state {
            State::Length(left) if !buf.is_empty() => {
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                (Some(Ok(Frame::data(take(buf, 0..n)))), *left == 0)
            }
            State::UntilClose if !buf.is_empty() => {
                let n = buf.len();
                (Some(Ok(Frame::data(take(buf, 0..n)))), false)
            }
            State::Chunked(dec) => chunked_frame(dec, buf),
            _ => return None,
        };
        if ended {
            self.finish();
        }
        frame
    }
}

/// The next frame of a chunked body from `buf`, and whether the body has ended.
fn chunked_frame(
    dec: &mut Decoder,
    buf: &mut BytesMut,
) -> (Option<io::Result<Frame<Bytes>>>, bool) {
    loop {
        if dec.is_done() {
            let raw = dec.take_trailer();
            return match chunked::trailer_fields(&raw, MAX_FIELDS) {
                Ok(fields) => (fields.map(|t| Ok(Frame::trailers(t))), true),
                Err(why) => (Some(Err(bad(format!("trailer: {why}")))), false),
            };
        }
        if buf.is_empty() {
            return (None, false);
        }
        let d = match dec.decode(buf) {
            Ok(d) => d,
            Err(e) => return (Some(Err(bad(format!("chunked body: {}", e.0)))), false),
        };
        if !d.data.is_empty() {
            let end = d.data.end;
            let data = take(buf, d.data);
            buf.advance(d.used - end);
            return (Some(Ok(Frame::data(data))), false);
        }
        buf.advance(d.used);
    }
}

/// The bytes `range` of `buf` as a frame's data, and everything before its end gone
/// from `buf`. Small pieces are copied, so that the buffer stays the connection's
/// alone and is reused for the next read instead of reallocated while the piece is
/// still on its way to the client; large ones are split off without a copy.
fn take(buf: &mut BytesMut, range: std::ops::Range<usize>) -> Bytes {
    if range.len() <= COPY_LIMIT {
        let data = Bytes::copy_from_slice(&buf[range.clone()]);
        buf.advance(range.end);
        data
    } else {
        buf.advance(range.start);
        buf.split_to(range.len()).freeze()
    }
}

fn bad(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.next_buffered() {
                if frame.is_err() {
                    this.abandon();
                }
                return Poll::Ready(Some(frame));
            }
            if matches!(this.state, State::Done | State::Upgraded) {
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if conn.buf.capacity() - conn.buf.len() < READ_SIZE / 4 {
                conn.buf.reserve(READ_SIZE);
            }
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.buf
            ));
            let end = match read {
                Ok(0) if matches!(this.state, State::UntilClose) => None,
                Ok(0) => Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before the body's end",
                ))),
                Ok(_) => continue,
                Err(e) => Some(Err(e)),
            };
            this.abandon();
            return Poll::Ready(end);
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Upgraded)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done | State::Upgraded => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// An upstream connection after a `101`, and the bytes of the new protocol that were
/// read with the head (they come before anything `io` reads).
pub(crate) struct Upgraded {
    pub(crate) early: BytesMut,
    pub(crate) io: Box<dyn Io>,
}
