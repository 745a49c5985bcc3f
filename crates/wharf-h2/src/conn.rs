//! The server side of one HTTP/2 connection (RFC 9113), sans-IO.
//!
//! [`Connection::recv`] takes the bytes read from the peer and checks every frame:
//! what breaks a rule of the connection ends it with GOAWAY and the RFC's error code,
//! what breaks a rule of one stream resets that stream, and what the service must
//! hear of comes out as [`Event`]s. The service's answers go in through the `send_*`
//! methods, which encode them into one output buffer, DATA only as far as the peer's
//! windows allow. The transport writes that buffer whenever it likes: one write for
//! everything every stream had ready.
//!
//! Streams a client opens and does not finish sending after the response is complete
//! are not reset at once: their remaining DATA (up to [`DISCARD_LIMIT`]) is read and
//! dropped, so the checks on it (Content-Length, trailers) still apply and a client
//! that sends a short body with its request never sees RST_STREAM.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes};
use http::HeaderMap;

use crate::frame::{self, Head, Reason, *};
use crate::head::{Collect, LastTarget, Outcome};
use crate::hpack::{Decoder, Encoder};
use wharf_http::spares::Spares;

/// The event queue and the stream map an idle connection gives back, kept per thread
/// for the next connection that needs them: a busy connection's grow to a batch of
/// requests, and would otherwise be made again (and the map rehashed as it grows)
/// after every idle moment. Those that grew past `SPARE_CAPACITY` entries are dropped
/// instead, and a thread keeps `SPARES_KEPT` of each (a queue of 64 events is 2.5 KB,
/// a map with room for 56 streams, in 64 slots of 56 bytes, 3.6 KB).
const SPARE_CAPACITY: usize = 64;
const SPARES_KEPT: usize = 16;

thread_local! {
    static SPARE_EVENTS: std::cell::RefCell<Vec<VecDeque<Event>>> =
        const { std::cell::RefCell::new(Vec::new()) };
    static SPARE_STREAMS: std::cell::RefCell<Vec<Streams>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `item` (empty) back to the thread's `spares`, if its capacity is worth keeping.
fn give_spare<T: 'static>(spares: &'static Spares<T>, item: T, capacity: fn(&T) -> usize) {
    if (1..=SPARE_CAPACITY).contains(&capacity(&item)) {
        wharf_http::spares::keep(spares, item, SPARES_KEPT);
    }
}

/// A spare of the thread's in place of `current`, if `current` has no room yet.
fn take_spare<T: 'static>(spares: &'static Spares<T>, current: &mut T, capacity: fn(&T) -> usize) {
    if capacity(current) == 0 {
        if let Some(spare) = wharf_http::spares::take(spares) {
            *current = spare;
        }
    }
}

/// The client connection preface (§3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Request body bytes read and dropped after a complete response before the stream
/// is reset with NO_ERROR (§8.1).
pub const DISCARD_LIMIT: u64 = 64 * 1024;

/// A header block (HEADERS and CONTINUATIONs) may not grow past this many bytes of
/// compressed fields, whatever the header list limit.
const MAX_BLOCK: usize = 256 * 1024;

/// Closed streams remembered, to tell a frame on a closed stream (STREAM_CLOSED) from
/// one on a stream the client skipped (PROTOCOL_ERROR), and to ignore what arrives
/// after this end reset a stream (§5.1, §5.4.2).
const REMEMBERED: usize = 128;

/// The PING payload of the first step of a graceful shutdown (§6.8).
const DRAIN_PING: [u8; 8] = *b"wharf-gw";

/// The settings this end announces.
#[derive(Clone, Debug)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: each request body's window.
    pub stream_window: u32,
    /// The connection's receive window (a WINDOW_UPDATE after the preface).
    pub connection_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE; a larger request gets 431.
    pub max_header_list_size: u32,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
    pub connect_protocol: bool,
}

/// What the peer did that the service must know.
#[derive(Debug)]
pub enum Event {
    /// A new request.
    Request {
        /// Its stream.
        id: u32,
        /// Method, target, fields (version HTTP/2). Boxed, as the trailers: events
        /// queue by value, and these would make every event a few hundred bytes.
        head: Box<http::request::Parts>,
        /// The `:protocol` of an extended CONNECT (RFC 8441).
        protocol: Option<String>,
        /// No body follows.
        end_stream: bool,
    },
    /// Request body bytes; give them back with [`Connection::release`] once consumed.
    Data {
        /// The stream.
        id: u32,
        /// The bytes (padding removed).
        data: Bytes,
        /// The body is complete.
        end_stream: bool,
    },
    /// The request's trailers, which end its body.
    Trailers {
        /// The stream.
        id: u32,
        /// The fields.
        trailers: Box<HeaderMap>,
    },
    /// The stream is gone: reset by the peer, or by this end for breaking a rule.
    /// Its work can stop; nothing more can be sent on it.
    Reset {
        /// The stream.
        id: u32,
        /// The reset's error code.
        reason: Reason,
    },
    /// Flow-control windows grew: streams waiting to send may go on.
    Capacity,
    /// A request was malformed (§8.1.1) and its stream reset; for the log only.
    Malformed {
        /// The stream.
        id: u32,
        /// The rule it broke.
        why: &'static str,
    },
    /// The peer sent GOAWAY.
    GoAway {
        /// Its error code.
        reason: Reason,
    },
}

/// The connection broke a rule and is over; GOAWAY is in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    /// The GOAWAY's error code.
    pub reason: Reason,
    /// What happened, for the log.
    pub why: &'static str,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.why, self.reason)
    }
}

impl std::error::Error for ConnError {}

fn fail<T>(reason: Reason, why: &'static str) -> Result<T, ConnError> {
    Err(ConnError { reason, why })
}

/// One stream's state at this end.
#[derive(Debug)]
struct Stream {
    /// The peer may still send (no END_STREAM yet).
    recv_open: bool,
    /// This end may still send.
    send_open: bool,
    send_window: i64,
    recv_window: i64,
    /// Bytes consumed and not yet given back with WINDOW_UPDATE.
    unacked: u32,
    content_length: Option<u64>,
    received: u64,
    /// The response is complete; what the peer still sends is dropped.
    discarding: bool,
    pushed: bool,
}

impl Stream {
    /// A stream this end may send on; `recv_open` while the peer may too.
    fn new(recv_open: bool, send_window: i64, recv_window: i64, pushed: bool) -> Stream {
        Stream {
            recv_open,
            send_open: true,
            send_window,
            recv_window,
            unacked: 0,
            content_length: None,
            received: 0,
            discarding: false,
            pushed,
        }
    }
}

/// What a header block being received will be.
#[derive(Debug)]
enum BlockKind {
    Request,
    Trailers,
    /// Decoded only to keep HPACK in step; then the stream is reset with this code,
    /// if any.
    Ignore(Option<Reason>),
}

#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    kind: BlockKind,
    /// The fragments so far, when the block continues in CONTINUATION frames (a
    /// block in one HEADERS frame is decoded where it lies).
    buf: Vec<u8>,
}

/// How a remembered stream was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    /// Both sides ended it: frames on it are STREAM_CLOSED, HEADERS for the connection.
    Done,
    /// The peer reset it: frames on it are STREAM_CLOSED for the stream.
    ResetByPeer,
    /// This end reset it: frames in flight are ignored (§5.4.2).
    ResetHere,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preface,
    FirstSettings,
    Frames,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoAway {
    /// GOAWAY with the largest id and a PING sent; waiting for the PING's ACK.
    Announced,
    /// The final GOAWAY: streams above this id will not be served.
    Final(u32),
}

/// Streams by id, hashed with FxHash: ids are the client's, but at most
/// SETTINGS_MAX_CONCURRENT_STREAMS of them are in the table.
type Streams = HashMap<u32, Stream, rustc_hash::FxBuildHasher>;

/// The server side of one HTTP/2 connection.
#[derive(Debug)]
pub struct Connection {
    cfg: Config,
    phase: Phase,
    decoder: Decoder,
    encoder: Encoder,
    out: Vec<u8>,
    /// How much of `out`'s front was written already (dropped from it in halves, so
    /// that a large output written a little at a time is not moved each time).
    out_sent: usize,
    events: VecDeque<Event>,
    /// The last request's target, parsed.
    last_target: LastTarget,
    streams: Streams,
    open_requests: usize,
    open_pushes: usize,
    /// The highest stream id the client opened.
    last_client: u32,
    next_push: u32,
    recent: VecDeque<(u32, Closed)>,
    block: Option<Block>,
    settings_acked: bool,
    peer_window: i64,
    peer_max_frame: usize,
    peer_push: bool,
    peer_max_streams: u32,
    peer_gone: bool,
    send_window: i64,
    recv_window: i64,
    recv_unacked: u32,
    goaway: Option<GoAway>,
    failed: Option<ConnError>,
}

impl Connection {
    /// A connection whose SETTINGS (and connection window) are already in the output.
    pub fn new(cfg: Config) -> Self {
        let mut c = Connection {
            decoder: Decoder::new(4096),
            encoder: Encoder::default(),
            out: Vec::new(),
            out_sent: 0,
            events: VecDeque::new(),
            last_target: LastTarget::default(),
            streams: Streams::default(),
            open_requests: 0,
            open_pushes: 0,
            last_client: 0,
            next_push: 2,
            recent: VecDeque::new(),
            block: None,
            settings_acked: false,
            peer_window: DEFAULT_WINDOW,
            peer_max_frame: DEFAULT_MAX_FRAME,
            peer_push: true,
            peer_max_streams: u32::MAX,
            peer_gone: false,
            send_window: DEFAULT_WINDOW,
            recv_window: i64::from(cfg.connection_window).max(DEFAULT_WINDOW),
            recv_unacked: 0,
            goaway: None,
            failed: None,
            phase: Phase::Preface,
            cfg,
        };
        let mut settings = vec![
            (
                SETTINGS_MAX_CONCURRENT_STREAMS,
                c.cfg.max_concurrent_streams,
            ),
            (SETTINGS_INITIAL_WINDOW_SIZE, c.cfg.stream_window),
            (SETTINGS_MAX_HEADER_LIST_SIZE, c.cfg.max_header_list_size),
        ];
        if c.cfg.connect_protocol {
            settings.push((SETTINGS_ENABLE_CONNECT_PROTOCOL, 1));
        }
        frame::put_settings(&mut c.out, &settings);
        let extra = i64::from(c.cfg.connection_window) - DEFAULT_WINDOW;
        if extra > 0 {
            frame::put_window_update(&mut c.out, 0, extra as u32);
        }
        c
    }

    /// Reads every complete frame at the start of `input`: the number of bytes read
    /// (the caller keeps the rest, a frame not yet whole, for the next call). What the
    /// service needs of them is copied out, so `input` can be a buffer the caller
    /// reuses. On a connection error the GOAWAY is in the output and nothing more may
    /// be read.
    pub fn recv(&mut self, input: &[u8]) -> Result<usize, ConnError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.recv_frames(input) {
            Ok(n) => Ok(n),
            Err(e) => {
                frame::put_goaway(&mut self.out, self.last_client, e.reason);
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    fn recv_frames(&mut self, input: &[u8]) -> Result<usize, ConnError> {
        let mut pos = 0;
        if self.phase == Phase::Preface {
            let n = input.len().min(PREFACE.len());
            if input[..n] != PREFACE[..n] {
                return fail(Reason::PROTOCOL_ERROR, "invalid connection preface");
            }
            if n < PREFACE.len() {
                return Ok(0);
            }
            pos = PREFACE.len();
            self.phase = Phase::FirstSettings;
        }
        while input.len() - pos >= HEAD_LEN {
            let head = Head::parse(&input[pos..]);
            if head.len > DEFAULT_MAX_FRAME {
                return fail(
                    Reason::FRAME_SIZE_ERROR,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                );
            }
            let end = pos + HEAD_LEN + head.len;
            if input.len() < end {
                break;
            }
            self.frame(head, &input[pos + HEAD_LEN..end])?;
            pos = end;
        }
        Ok(pos)
    }

    fn frame(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if let Some(b) = &self.block {
            if h.kind != CONTINUATION || h.stream != b.stream {
                return fail(Reason::PROTOCOL_ERROR, "header block interrupted");
            }
        }
        if self.phase == Phase::FirstSettings {
            if h.kind != SETTINGS || h.has(ACK) {
                return fail(Reason::PROTOCOL_ERROR, "first frame is not SETTINGS");
            }
            self.phase = Phase::Frames;
        }
        match h.kind {
            DATA => self.on_data(h, p),
            HEADERS => self.on_headers(h, p),
            PRIORITY => self.on_priority(h, p),
            RST_STREAM => self.on_rst(h, p),
            SETTINGS => self.on_settings(h, p),
            PUSH_PROMISE => fail(Reason::PROTOCOL_ERROR, "PUSH_PROMISE from a client"),
            PING => self.on_ping(h, p),
            GOAWAY => self.on_goaway(h, p),
            WINDOW_UPDATE => self.on_window_update(h, p),
            CONTINUATION => self.on_continuation(h, p),
            _ => Ok(()), // unknown frame types are ignored (§5.5)
        }
    }

    // ---------------------------------------------------------------- receiving

    fn on_data(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        let id = h.stream;
        if id == 0 {
            return fail(Reason::PROTOCOL_ERROR, "DATA on stream 0");
        }
        let len = h.len as i64;
        if len > self.recv_window {
            return fail(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            );
        }
        self.recv_window -= len;
        let data = unpad(&h, p)?;
        let Some(s) = self.streams.get_mut(&id) else {
            self.give_back(0, len as u32);
            if self.is_idle(id) {
                return fail(Reason::PROTOCOL_ERROR, "DATA on an idle stream");
            }
            // Streams skipped over, or closed long ago, count as closed (§5.1.1).
            if self.closed_how(id) != Some(Closed::ResetHere) {
                self.reset_closed(id, Reason::STREAM_CLOSED);
            }
            return Ok(());
        };
        if !s.recv_open {
            self.give_back(0, len as u32);
            self.reset(id, Reason::STREAM_CLOSED, true);
            return Ok(());
        }
        if len > s.recv_window {
            self.give_back(0, len as u32);
            self.reset(id, Reason::FLOW_CONTROL_ERROR, true);
            return Ok(());
        }
        s.recv_window -= len;
        s.received += data.len() as u64;
        let end = h.has(END_STREAM);
        let over = s.content_length.is_some_and(|cl| s.received > cl);
        let short = end && s.content_length.is_some_and(|cl| s.received != cl);
        if over || short {
            self.give_back(0, len as u32);
            self.reset(id, Reason::PROTOCOL_ERROR, true);
            return Ok(());
        }
        let discarding = s.discarding;
        let dropped = if discarding {
            len
        } else {
            len - data.len() as i64
        };
        if discarding && s.received > DISCARD_LIMIT {
            self.give_back(0, len as u32);
            self.reset(id, Reason::NO_ERROR, false);
            return Ok(());
        }
        if end {
            s.recv_open = false;
        }
        if !discarding && (!data.is_empty() || end) {
            self.event(Event::Data {
                id,
                data: Bytes::copy_from_slice(data),
                end_stream: end,
            });
        }
        // Padding, and what is dropped, is consumed at once.
        self.give_back(id, dropped as u32);
        if end {
            self.maybe_close(id);
        }
        Ok(())
    }

    fn on_headers(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        let id = h.stream;
        if id == 0 {
            return fail(Reason::PROTOCOL_ERROR, "HEADERS on stream 0");
        }
        let mut p = unpad(&h, p)?;
        let mut self_dependent = false;
        if h.has(PRIORITY_FLAG) {
            if p.len() < 5 {
                return fail(
                    Reason::FRAME_SIZE_ERROR,
                    "HEADERS too short for its priority",
                );
            }
            self_dependent = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff == id;
            p = &p[5..];
        }
        let kind = if let Some(s) = self.streams.get(&id) {
            if s.recv_open {
                BlockKind::Trailers
            } else {
                BlockKind::Ignore(Some(Reason::STREAM_CLOSED))
            }
        } else if id <= self.last_client {
            match self.closed_how(id) {
                Some(Closed::ResetHere) => BlockKind::Ignore(None),
                Some(Closed::ResetByPeer) => BlockKind::Ignore(Some(Reason::STREAM_CLOSED)),
                Some(Closed::Done) => {
                    return fail(Reason::STREAM_CLOSED, "HEADERS on a closed stream")
                }
                None => {
                    return fail(
                        Reason::PROTOCOL_ERROR,
                        "HEADERS on a stream id already skipped",
                    )
                }
            }
        } else if id.is_multiple_of(2) {
            return fail(
                Reason::PROTOCOL_ERROR,
                "a client opened an even-numbered stream",
            );
        } else {
            self.last_client = id;
            if matches!(self.goaway, Some(GoAway::Final(last)) if id > last) {
                BlockKind::Ignore(None)
            } else if self.open_requests >= self.cfg.max_concurrent_streams as usize {
                BlockKind::Ignore(Some(Reason::REFUSED_STREAM))
            } else {
                BlockKind::Request
            }
        };
        let kind = if self_dependent {
            BlockKind::Ignore(Some(Reason::PROTOCOL_ERROR))
        } else {
            kind
        };
        let mut b = Block {
            stream: id,
            end_stream: h.has(END_STREAM),
            kind,
            buf: Vec::new(),
        };
        if h.has(END_HEADERS) {
            return self.end_block(b, p);
        }
        b.buf.extend_from_slice(p);
        self.block = Some(b);
        Ok(())
    }

    fn on_continuation(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        let Some(b) = &mut self.block else {
            return fail(Reason::PROTOCOL_ERROR, "CONTINUATION without HEADERS");
        };
        if b.buf.len() + p.len() > MAX_BLOCK {
            return fail(Reason::ENHANCE_YOUR_CALM, "header block too large");
        }
        b.buf.extend_from_slice(p);
        if h.has(END_HEADERS) {
            let mut b = self.block.take().expect("a block is open");
            let block = std::mem::take(&mut b.buf);
            return self.end_block(b, &block);
        }
        Ok(())
    }

    /// Decodes the complete header block `block` of `b`.
    fn end_block(&mut self, b: Block, block: &[u8]) -> Result<(), ConnError> {
        let limit = self.cfg.max_header_list_size as usize;
        let mut collect = match b.kind {
            BlockKind::Trailers => Collect::trailers(limit),
            _ => Collect::request(limit, self.cfg.connect_protocol),
        };
        if self.decoder.decode(block, |f| collect.field(f)).is_err() {
            return fail(Reason::COMPRESSION_ERROR, "undecodable header block");
        }
        let id = b.stream;
        match b.kind {
            BlockKind::Ignore(None) => {}
            BlockKind::Ignore(Some(reason)) => self.reset(id, reason, true),
            BlockKind::Request => self.on_request(id, b.end_stream, collect),
            BlockKind::Trailers => self.on_trailers(id, b.end_stream, collect),
        }
        Ok(())
    }

    fn on_request(&mut self, id: u32, end_stream: bool, collect: Collect) {
        let head = match collect.finish_request(&mut self.last_target) {
            Outcome::Ok(head) => head,
            Outcome::Malformed(why) => {
                self.event(Event::Malformed { id, why });
                return self.reset_closed(id, Reason::PROTOCOL_ERROR);
            }
            Outcome::TooLarge => return self.too_large(id, end_stream),
        };
        if end_stream && head.content_length.is_some_and(|cl| cl != 0) {
            return self.reset_closed(id, Reason::PROTOCOL_ERROR);
        }
        let recv_window = if self.settings_acked {
            i64::from(self.cfg.stream_window)
        } else {
            i64::from(self.cfg.stream_window).max(DEFAULT_WINDOW)
        };
        let stream = Stream::new(!end_stream, self.peer_window, recv_window, false);
        self.open(
            id,
            Stream {
                content_length: head.content_length,
                ..stream
            },
        );
        self.open_requests += 1;
        self.event(Event::Request {
            id,
            head: Box::new(head.parts),
            protocol: head.protocol,
            end_stream,
        });
    }

    /// A header section over SETTINGS_MAX_HEADER_LIST_SIZE: 431 (RFC 6585, as RFC
    /// 9113 §10.5.1 suggests), then the rest of the request is not read.
    fn too_large(&mut self, id: u32, end_stream: bool) {
        self.put_block(HEADERS, id, END_STREAM, &[], |e, dst| {
            e.field(b":status", b"431", false, dst);
            e.field(b"content-length", b"0", false, dst);
        });
        if end_stream {
            self.remember(id, Closed::Done);
        } else {
            frame::put_rst(&mut self.out, id, Reason::NO_ERROR);
            self.remember(id, Closed::ResetHere);
        }
    }

    fn on_trailers(&mut self, id: u32, end_stream: bool, collect: Collect) {
        let trailers = match collect.finish_trailers() {
            Outcome::Ok(t) if end_stream => t,
            _ => return self.reset(id, Reason::PROTOCOL_ERROR, true),
        };
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.content_length.is_some_and(|cl| cl != s.received) {
            return self.reset(id, Reason::PROTOCOL_ERROR, true);
        }
        s.recv_open = false;
        if !s.discarding {
            self.event(Event::Trailers {
                id,
                trailers: Box::new(trailers),
            });
        }
        self.maybe_close(id);
    }

    fn on_priority(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 {
            return fail(Reason::PROTOCOL_ERROR, "PRIORITY on stream 0");
        }
        if p.len() != 5 {
            self.reset(h.stream, Reason::FRAME_SIZE_ERROR, true);
        } else if u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff == h.stream {
            self.reset(h.stream, Reason::PROTOCOL_ERROR, true);
        }
        Ok(())
    }

    fn on_rst(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 {
            return fail(Reason::PROTOCOL_ERROR, "RST_STREAM on stream 0");
        }
        if p.len() != 4 {
            return fail(Reason::FRAME_SIZE_ERROR, "RST_STREAM of the wrong length");
        }
        if self.is_idle(h.stream) {
            return fail(Reason::PROTOCOL_ERROR, "RST_STREAM on an idle stream");
        }
        let reason = Reason(u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
        if self.remove(h.stream) {
            self.remember(h.stream, Closed::ResetByPeer);
            self.event(Event::Reset {
                id: h.stream,
                reason,
            });
        }
        Ok(())
    }

    fn on_settings(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream != 0 {
            return fail(Reason::PROTOCOL_ERROR, "SETTINGS on a stream");
        }
        if h.has(ACK) {
            if !p.is_empty() {
                return fail(Reason::FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
            }
            self.settings_acked = true;
            return Ok(());
        }
        if !p.len().is_multiple_of(6) {
            return fail(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS of a length not a multiple of 6",
            );
        }
        for s in p.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                SETTINGS_HEADER_TABLE_SIZE => self.encoder.set_peer_limit(v as usize),
                SETTINGS_ENABLE_PUSH => {
                    if v > 1 {
                        return fail(Reason::PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1");
                    }
                    self.peer_push = v == 1;
                }
                SETTINGS_MAX_CONCURRENT_STREAMS => self.peer_max_streams = v,
                SETTINGS_INITIAL_WINDOW_SIZE => self.set_peer_window(i64::from(v))?,
                SETTINGS_MAX_FRAME_SIZE => {
                    if !(DEFAULT_MAX_FRAME as u32..=MAX_FRAME_LIMIT).contains(&v) {
                        return fail(
                            Reason::PROTOCOL_ERROR,
                            "SETTINGS_MAX_FRAME_SIZE out of range",
                        );
                    }
                    self.peer_max_frame = v as usize;
                }
                SETTINGS_ENABLE_CONNECT_PROTOCOL if v > 1 => {
                    return fail(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1",
                    )
                }
                _ => {} // SETTINGS_MAX_HEADER_LIST_SIZE is advisory; unknown ones are ignored
            }
        }
        frame::put_frame(&mut self.out, SETTINGS, ACK, 0, &[]);
        Ok(())
    }

    fn set_peer_window(&mut self, v: i64) -> Result<(), ConnError> {
        if v > MAX_WINDOW {
            return fail(
                Reason::FLOW_CONTROL_ERROR,
                "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
            );
        }
        let delta = v - self.peer_window;
        self.peer_window = v;
        for s in self.streams.values_mut() {
            s.send_window += delta;
            if s.send_window > MAX_WINDOW {
                return fail(Reason::FLOW_CONTROL_ERROR, "a stream window above 2^31-1");
            }
        }
        if delta > 0 {
            self.event(Event::Capacity);
        }
        Ok(())
    }

    fn on_ping(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream != 0 {
            return fail(Reason::PROTOCOL_ERROR, "PING on a stream");
        }
        if p.len() != 8 {
            return fail(Reason::FRAME_SIZE_ERROR, "PING of the wrong length");
        }
        if !h.has(ACK) {
            frame::put_frame(&mut self.out, PING, ACK, 0, p);
        } else if p == DRAIN_PING && self.goaway == Some(GoAway::Announced) {
            self.final_goaway();
        }
        Ok(())
    }

    fn on_goaway(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream != 0 {
            return fail(Reason::PROTOCOL_ERROR, "GOAWAY on a stream");
        }
        if p.len() < 8 {
            return fail(Reason::FRAME_SIZE_ERROR, "GOAWAY too short");
        }
        self.peer_gone = true;
        let reason = Reason(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        self.event(Event::GoAway { reason });
        Ok(())
    }

    fn on_window_update(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if p.len() != 4 {
            return fail(
                Reason::FRAME_SIZE_ERROR,
                "WINDOW_UPDATE of the wrong length",
            );
        }
        let inc = i64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff);
        let id = h.stream;
        if id == 0 {
            if inc == 0 {
                return fail(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
            }
            self.send_window += inc;
            if self.send_window > MAX_WINDOW {
                return fail(Reason::FLOW_CONTROL_ERROR, "connection window above 2^31-1");
            }
            self.event(Event::Capacity);
            return Ok(());
        }
        if self.is_idle(id) {
            return fail(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(()); // closed: ignored
        };
        if inc == 0 {
            self.reset(id, Reason::PROTOCOL_ERROR, true);
            return Ok(());
        }
        s.send_window += inc;
        if s.send_window > MAX_WINDOW {
            self.reset(id, Reason::FLOW_CONTROL_ERROR, true);
            return Ok(());
        }
        self.event(Event::Capacity);
        Ok(())
    }

    // ---------------------------------------------------------------- stream ends

    /// Whether `id` has never been opened (§5.1 "idle").
    fn is_idle(&self, id: u32) -> bool {
        if id % 2 == 1 {
            id > self.last_client
        } else {
            id >= self.next_push
        }
    }

    /// How a recently closed stream was closed; `None` for one not remembered (idle,
    /// skipped over, or closed long ago).
    fn closed_how(&self, id: u32) -> Option<Closed> {
        self.recent
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, how)| *how)
    }

    fn remember(&mut self, id: u32, how: Closed) {
        if self.recent.len() == REMEMBERED {
            self.recent.pop_front();
        }
        self.recent.push_back((id, how));
    }

    /// Takes a stream out of the table; false if it was not there. (Request body
    /// bytes the service still holds are given back by [`release`](Self::release),
    /// which then counts them for the connection only.)
    fn remove(&mut self, id: u32) -> bool {
        match self.streams.remove(&id) {
            Some(s) => {
                if s.pushed {
                    self.open_pushes -= 1;
                } else {
                    self.open_requests -= 1;
                }
                true
            }
            None => false,
        }
    }

    /// Resets a stream this end knows of (or has just seen), telling the service
    /// when `tell` and the stream was live.
    fn reset(&mut self, id: u32, reason: Reason, tell: bool) {
        frame::put_rst(&mut self.out, id, reason);
        if self.remove(id) && tell {
            self.event(Event::Reset { id, reason });
        }
        self.remember(id, Closed::ResetHere);
    }

    /// Resets a stream that has no state here.
    fn reset_closed(&mut self, id: u32, reason: Reason) {
        frame::put_rst(&mut self.out, id, reason);
        self.remember(id, Closed::ResetHere);
    }

    fn maybe_close(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match (s.recv_open, s.send_open) {
            (false, false) => {
                self.remove(id);
                self.remember(id, Closed::Done);
            }
            (true, false) if !s.discarding => {
                // The response is complete; what is left of the request is dropped.
                s.discarding = true;
                if s.received > DISCARD_LIMIT {
                    self.reset(id, Reason::NO_ERROR, false);
                }
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- flow control

    /// Request body bytes of stream `id` consumed by the service: the window they
    /// took is given back.
    pub fn release(&mut self, id: u32, n: usize) {
        self.give_back(id, n as u32);
    }

    /// Gives `n` bytes back to the connection window, and to stream `id`'s (unless 0),
    /// sending WINDOW_UPDATE once half a window is owed.
    fn give_back(&mut self, id: u32, n: u32) {
        if n == 0 {
            return;
        }
        self.recv_unacked += n;
        if self.recv_unacked >= self.cfg.connection_window / 2 {
            frame::put_window_update(&mut self.out, 0, self.recv_unacked);
            self.recv_window += i64::from(self.recv_unacked);
            self.recv_unacked = 0;
        }
        let half = self.cfg.stream_window / 2;
        if let Some(s) = self.streams.get_mut(&id).filter(|s| s.recv_open) {
            s.unacked += n;
            if s.unacked >= half {
                frame::put_window_update(&mut self.out, id, s.unacked);
                s.recv_window += i64::from(s.unacked);
                s.unacked = 0;
            }
        }
    }

    /// The bytes stream `id` may send now (0 for a stream that cannot send).
    pub fn send_capacity(&self, id: u32) -> usize {
        match self.streams.get(&id) {
            Some(s) if s.send_open => s.send_window.min(self.send_window).max(0) as usize,
            _ => 0,
        }
    }

    // ---------------------------------------------------------------- sending

    /// Sends a response head (an informational one with `status` 1xx).
    /// False if the stream is gone.
    pub fn send_headers(
        &mut self,
        id: u32,
        status: http::StatusCode,
        fields: &HeaderMap,
        end_stream: bool,
    ) -> bool {
        self.send_response(id, status, fields, &[], end_stream)
    }

    /// Sends a response head of `fields` and then `extra` (fields the server adds,
    /// such as `date`, without putting them in a map first). False if the stream is
    /// gone.
    pub fn send_response(
        &mut self,
        id: u32,
        status: http::StatusCode,
        fields: &HeaderMap,
        extra: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> bool {
        if !self.streams.get(&id).is_some_and(|s| s.send_open) {
            return false;
        }
        let flags = if end_stream { END_STREAM } else { 0 };
        self.put_block(HEADERS, id, flags, &[], |e, dst| {
            e.status(status, dst);
            encode_fields(e, fields, dst);
            for (name, value) in extra {
                e.field(name, value, false, dst);
            }
        });
        if end_stream {
            self.end_send(id);
        }
        true
    }

    /// Sends trailers, which end the response.
    pub fn send_trailers(&mut self, id: u32, fields: &HeaderMap) -> bool {
        if !self.streams.get(&id).is_some_and(|s| s.send_open) {
            return false;
        }
        self.put_block(HEADERS, id, END_STREAM, &[], |e, dst| {
            encode_fields(e, fields, dst)
        });
        self.end_send(id);
        true
    }

    /// Sends as much of `data` as the windows allow, taking it from the front; with
    /// `end_stream`, the last frame ends the stream. True once all of it is sent (and
    /// the stream ended, if asked); false if the rest must wait for window, or the
    /// stream is gone (then [`send_capacity`](Self::send_capacity) is 0 for good).
    pub fn send_data(&mut self, id: u32, data: &mut Bytes, end_stream: bool) -> bool {
        let max_frame = self.peer_max_frame;
        let Some(s) = self.streams.get_mut(&id).filter(|s| s.send_open) else {
            return false;
        };
        loop {
            let room = s.send_window.min(self.send_window).max(0) as usize;
            let n = data.len().min(room).min(max_frame);
            if n == 0 && !data.is_empty() {
                return false;
            }
            let last = n == data.len();
            let flags = if last && end_stream { END_STREAM } else { 0 };
            frame::put_head(&mut self.out, n, DATA, flags, id);
            self.out.extend_from_slice(&data[..n]);
            data.advance(n);
            s.send_window -= n as i64;
            self.send_window -= n as i64;
            if last {
                break;
            }
        }
        if end_stream {
            self.end_send(id);
        }
        true
    }

    /// Resets a stream at the service's request (its work failed or gave up).
    pub fn cancel(&mut self, id: u32, reason: Reason) {
        if self.streams.contains_key(&id) {
            self.reset(id, reason, false);
        }
    }

    /// Promises a pushed response to `head` (a GET) on stream `parent` (§8.4): the
    /// promised stream's id, or `None` if the client disabled push, the connection is
    /// closing or the client's stream limit is reached.
    pub fn push_promise(&mut self, parent: u32, head: &http::request::Parts) -> Option<u32> {
        let allowed = self.push_allowed();
        let room = (self.open_pushes as u64) < u64::from(self.peer_max_streams);
        if !allowed || !room || !self.streams.get(&parent).is_some_and(|s| s.send_open) {
            return None;
        }
        let id = self.next_push;
        if id > MAX_WINDOW as u32 {
            return None;
        }
        self.next_push += 2;
        let scheme = head.uri.scheme_str().unwrap_or("https");
        let authority = head.uri.authority().map_or("", |a| a.as_str());
        let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
        self.put_block(PUSH_PROMISE, parent, 0, &id.to_be_bytes(), |e, dst| {
            for (n, v) in [
                (":method", head.method.as_str()),
                (":scheme", scheme),
                (":authority", authority),
                (":path", path),
            ] {
                e.field(n.as_bytes(), v.as_bytes(), false, dst);
            }
            encode_fields(e, &head.headers, dst);
        });
        self.open(id, Stream::new(false, self.peer_window, 0, true));
        self.open_pushes += 1;
        Some(id)
    }

    fn end_send(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.send_open = false;
        }
        self.maybe_close(id);
    }

    /// Encodes a header block (after `prefix`: a PUSH_PROMISE's promised id) straight
    /// into the output as one frame of `kind`, or, when it is larger than the peer's
    /// frame size, that frame and CONTINUATIONs.
    fn put_block(
        &mut self,
        kind: u8,
        id: u32,
        flags: u8,
        prefix: &[u8],
        encode: impl FnOnce(&mut Encoder, &mut Vec<u8>),
    ) {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; HEAD_LEN]);
        self.out.extend_from_slice(prefix);
        self.encoder.begin(&mut self.out);
        encode(&mut self.encoder, &mut self.out);
        let len = self.out.len() - start - HEAD_LEN;
        let max = self.peer_max_frame;
        if len <= max {
            let head = frame::head(len, kind, flags | END_HEADERS, id);
            self.out[start..start + HEAD_LEN].copy_from_slice(&head);
            return;
        }
        let block = self.out.split_off(start + HEAD_LEN);
        self.out.truncate(start);
        let (first, mut rest) = block.split_at(max);
        let end_headers = if rest.is_empty() { END_HEADERS } else { 0 };
        frame::put_frame(&mut self.out, kind, flags | end_headers, id, first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(max));
            rest = tail;
            let end_headers = if rest.is_empty() { END_HEADERS } else { 0 };
            frame::put_frame(&mut self.out, CONTINUATION, end_headers, id, chunk);
        }
    }

    // ---------------------------------------------------------------- the connection

    /// Starts a graceful shutdown (§6.8): GOAWAY with the largest stream id and a
    /// PING; when the PING's ACK comes back, every request the client sent before it
    /// has been seen, and a second GOAWAY names the last one. Those are still served.
    pub fn shutdown(&mut self) {
        if self.goaway.is_none() && self.failed.is_none() {
            frame::put_goaway(&mut self.out, MAX_WINDOW as u32, Reason::NO_ERROR);
            frame::put_frame(&mut self.out, PING, 0, 0, &DRAIN_PING);
            self.goaway = Some(GoAway::Announced);
        }
    }

    /// The second step of the shutdown without waiting for the PING's ACK any longer.
    pub fn final_goaway(&mut self) {
        if self.failed.is_none() && !matches!(self.goaway, Some(GoAway::Final(_))) {
            frame::put_goaway(&mut self.out, self.last_client, Reason::NO_ERROR);
            self.goaway = Some(GoAway::Final(self.last_client));
        }
    }

    /// Ends the connection at once with GOAWAY `reason` (a flood, an internal error).
    pub fn abort(&mut self, reason: Reason, why: &'static str) {
        if self.failed.is_none() {
            frame::put_goaway(&mut self.out, self.last_client, reason);
            self.failed = Some(ConnError { reason, why });
        }
    }

    /// Whether the shutdown's first step went out and its PING is unanswered.
    pub fn awaiting_goaway_ack(&self) -> bool {
        self.goaway == Some(GoAway::Announced)
    }

    /// True when nothing is left to do but write the output and close: the connection
    /// failed, or this end is shutting down and no stream is open. (A client's GOAWAY
    /// only stops pushes: the client closes the connection when it is done with it.)
    pub fn is_done(&self) -> bool {
        // Streams whose response is complete (discarding the rest of a request) are
        // not waited for.
        self.failed.is_some()
            || (matches!(self.goaway, Some(GoAway::Final(_)))
                && self.streams.values().all(|s| s.discarding))
    }

    /// Whether stream `id` can still send.
    pub fn is_open(&self, id: u32) -> bool {
        self.streams.get(&id).is_some_and(|s| s.send_open)
    }

    /// Whether a push promise could be sent now (the client allows pushes and the
    /// connection is not closing).
    pub fn push_allowed(&self) -> bool {
        self.peer_push && !self.peer_gone && self.goaway.is_none()
    }

    /// The number of open streams (requests and pushes).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Gives the connection a buffer for its output when it has none (a transport
    /// lends it pooled buffers, and takes them back with `reclaim_output`).
    pub fn lend_output(&mut self, buf: impl FnOnce() -> Vec<u8>) {
        if self.out.capacity() == 0 {
            self.out = buf();
            self.out.clear();
        }
    }

    /// The output buffer, once written, while the connection idles (no stream open,
    /// no event waiting); its other buffers shrink too. An idle connection then holds
    /// its HPACK tables and little else.
    pub fn reclaim_output(&mut self) -> Option<Vec<u8>> {
        if !self.streams.is_empty() || !self.events.is_empty() || !self.out.is_empty() {
            return None;
        }
        give_spare(
            &SPARE_EVENTS,
            std::mem::take(&mut self.events),
            VecDeque::capacity,
        );
        give_spare(
            &SPARE_STREAMS,
            std::mem::take(&mut self.streams),
            Streams::capacity,
        );
        (self.out.capacity() > 0).then(|| std::mem::take(&mut self.out))
    }

    /// Queues `e` for the service, in a queue from the thread's spares if the
    /// connection had given its own back while it idled.
    fn event(&mut self, e: Event) {
        take_spare(&SPARE_EVENTS, &mut self.events, VecDeque::capacity);
        self.events.push_back(e);
    }

    /// Opens stream `id`, in a map from the thread's spares if the connection had
    /// given its own back while it idled.
    fn open(&mut self, id: u32, stream: Stream) {
        take_spare(&SPARE_STREAMS, &mut self.streams, Streams::capacity);
        self.streams.insert(id, stream);
    }

    /// The next thing the service must hear of.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The bytes to write.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_sent..]
    }

    /// `n` bytes of the output were written. (What was written leaves the buffer
    /// once it is half of it: a 1 MiB output written 64 KiB at a time, as TLS
    /// takes it, was moved sixteen times over.)
    pub fn consume_output(&mut self, n: usize) {
        self.out_sent = self.out_sent.saturating_add(n);
        if self.out_sent >= self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        } else if self.out_sent >= self.out.len() / 2 {
            self.out.drain(..self.out_sent);
            self.out_sent = 0;
        }
    }
}

/// Appends `fields` to a header block, but for connection-specific ones, which
/// HTTP/2 does not carry (RFC 9113 §8.2.2 MUST NOT): a service's response may have
/// them for HTTP/1.1, and leaving them out here costs no pass of its own.
fn encode_fields(e: &mut Encoder, fields: &HeaderMap, dst: &mut Vec<u8>) {
    for (name, value) in fields {
        let name = name.as_str();
        if wharf_http::fields::is_connection_specific(name) {
            continue;
        }
        e.field(name.as_bytes(), value.as_bytes(), value.is_sensitive(), dst);
    }
}

/// The payload without its padding (§6.1, §6.2).
fn unpad<'a>(h: &Head, p: &'a [u8]) -> Result<&'a [u8], ConnError> {
    if !h.has(PADDED) {
        return Ok(p);
    }
    let Some(&pad) = p.first() else {
        return fail(
            Reason::FRAME_SIZE_ERROR,
            "padded frame without a pad length",
        );
    };
    let pad = usize::from(pad);
    if pad >= p.len() {
        return fail(Reason::PROTOCOL_ERROR, "padding longer than the payload");
    }
    Ok(&p[1..p.len() - pad])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            max_concurrent_streams: 4,
            stream_window: 65_535,
            connection_window: 1 << 20,
            max_header_list_size: 1024,
            connect_protocol: true,
        }
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        frame::put_frame(&mut v, kind, flags, stream, payload);
        v
    }

    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut e = Encoder::default();
        let mut b = Vec::new();
        for (n, v) in fields {
            e.field(n.as_bytes(), v.as_bytes(), false, &mut b);
        }
        b
    }

    fn get(path: &str) -> Vec<u8> {
        block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a.example"),
            (":path", path),
        ])
    }

    fn post(len: usize) -> Vec<u8> {
        block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "a.example"),
            (":path", "/"),
            ("content-length", &len.to_string()),
        ])
    }

    /// A connection past its handshake, its output cleared.
    fn open() -> Connection {
        let mut c = Connection::new(cfg());
        let input = [PREFACE, &frame(SETTINGS, 0, 0, &[])].concat();
        assert_eq!(c.recv(&input), Ok(input.len()));
        c.consume_output(usize::MAX);
        c
    }

    /// An open connection that has read request 1, `GET /` without a body.
    fn open_with_get() -> Connection {
        let mut c = open();
        get_without_body(&mut c);
        c
    }

    /// Feeds request 1, `GET /` without a body.
    fn get_without_body(c: &mut Connection) {
        feed(c, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/"))).unwrap();
    }

    /// Feeds whole frames.
    fn feed(c: &mut Connection, bytes: &[u8]) -> Result<(), ConnError> {
        assert_eq!(c.recv(bytes)?, bytes.len(), "whole frames are read");
        Ok(())
    }

    /// The output as (type, flags, stream, payload) frames, then cleared.
    fn frames(c: &mut Connection) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut out = &c.output().to_vec()[..];
        c.consume_output(usize::MAX);
        let mut v = Vec::new();
        while !out.is_empty() {
            let h = Head::parse(out);
            v.push((h.kind, h.flags, h.stream, out[9..9 + h.len].to_vec()));
            out = &out[9 + h.len..];
        }
        v
    }

    fn code(payload: &[u8], at: usize) -> Reason {
        Reason(u32::from_be_bytes(payload[at..at + 4].try_into().unwrap()))
    }

    fn goaway_code(c: &mut Connection) -> Option<Reason> {
        frames(c)
            .iter()
            .find(|f| f.0 == GOAWAY)
            .map(|f| code(&f.3, 4))
    }

    fn rst_code(c: &mut Connection, id: u32) -> Option<Reason> {
        frames(c)
            .iter()
            .find(|f| f.0 == RST_STREAM && f.2 == id)
            .map(|f| code(&f.3, 0))
    }

    #[test]
    fn handshake_and_one_request() {
        let mut c = Connection::new(cfg());
        let server = frames(&mut c);
        assert_eq!(
            server[0].0, SETTINGS,
            "§3.4: the server preface is SETTINGS"
        );
        assert_eq!(server[1].0, WINDOW_UPDATE);
        let mut input = [PREFACE, &frame(SETTINGS, 0, 0, &[])].concat();
        input.extend_from_slice(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/x")));
        // In two pieces: the first ends inside the HEADERS frame, which waits.
        let cut = input.len() - 3;
        let read = c.recv(&input[..cut]).unwrap();
        assert_eq!(read, PREFACE.len() + HEAD_LEN, "the preface and SETTINGS");
        assert!(c.poll_event().is_none());
        assert_eq!(c.recv(&input[read..]), Ok(input.len() - read));
        assert_eq!(frames(&mut c)[0], (SETTINGS, ACK, 0, vec![]));
        let Some(Event::Request {
            id: 1,
            head,
            end_stream: true,
            ..
        }) = c.poll_event()
        else {
            panic!("no request")
        };
        assert_eq!(head.uri, "http://a.example/x");
        let mut fields = HeaderMap::new();
        fields.insert("content-type", "text/plain".parse().unwrap());
        assert!(c.send_headers(1, http::StatusCode::OK, &fields, false));
        assert!(c.send_data(1, &mut Bytes::from_static(b"hi"), true));
        let out = frames(&mut c);
        assert_eq!((out[0].0, out[0].1), (HEADERS, END_HEADERS));
        assert_eq!(out[1], (DATA, END_STREAM, 1, b"hi".to_vec()));
        assert_eq!(c.open_streams(), 0, "closed once both sides ended");
    }

    /// Frames that end the connection, with the error code the RFC section names.
    #[test]
    fn connection_errors() {
        let mut big_window = vec![0, 4];
        big_window.extend_from_slice(&(1u32 << 31).to_be_bytes());
        let headers_then_data = [frame(HEADERS, 0, 1, &get("/")), frame(DATA, 0, 1, b"x")].concat();
        let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
            (
                "§6.1 DATA on stream 0",
                frame(DATA, 0, 0, b"x"),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§5.1 DATA on an idle stream",
                frame(DATA, 0, 7, b"x"),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§5.1.1 even stream",
                frame(HEADERS, END_HEADERS, 2, &get("/")),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.5 ACK with payload",
                frame(SETTINGS, ACK, 0, &[0; 6]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "§6.5 length not 6n",
                frame(SETTINGS, 0, 0, &[0; 5]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "§6.5 on a stream",
                frame(SETTINGS, 0, 1, &[]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.5.2 window above 2^31-1",
                frame(SETTINGS, 0, 0, &big_window),
                Reason::FLOW_CONTROL_ERROR,
            ),
            (
                "§6.5.2 ENABLE_PUSH 2",
                frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.5.2 MAX_FRAME_SIZE too small",
                frame(SETTINGS, 0, 0, &[0, 5, 0, 0, 0x3f, 0xff]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.7 PING of 7 bytes",
                frame(PING, 0, 0, &[0; 7]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "§6.7 PING on a stream",
                frame(PING, 0, 1, &[0; 8]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.8 GOAWAY on a stream",
                frame(GOAWAY, 0, 1, &[0; 8]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.9 WINDOW_UPDATE of 3 bytes",
                frame(WINDOW_UPDATE, 0, 0, &[0; 3]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "§6.9 WINDOW_UPDATE of 0",
                frame(WINDOW_UPDATE, 0, 0, &[0; 4]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.9.1 window overflow",
                frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
                Reason::FLOW_CONTROL_ERROR,
            ),
            (
                "§6.4 RST_STREAM on idle",
                frame(RST_STREAM, 0, 1, &[0; 4]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.4 RST_STREAM of 3 bytes",
                frame(RST_STREAM, 0, 1, &[0; 3]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "§6.10 CONTINUATION alone",
                frame(CONTINUATION, END_HEADERS, 1, &get("/")),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.2 block interrupted",
                headers_then_data,
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§4.2 frame too large",
                frame(DATA, 0, 1, &[0; 16_385]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "§4.3 undecodable block",
                frame(HEADERS, END_HEADERS, 1, &[0xff]),
                Reason::COMPRESSION_ERROR,
            ),
            (
                "§8.4 PUSH_PROMISE from a client",
                frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.1 padding too long",
                frame(DATA, PADDED, 1, &[5, 1, 2]),
                Reason::PROTOCOL_ERROR,
            ),
        ];
        for (rule, bytes, want) in cases {
            let mut c = open();
            let err = feed(&mut c, &bytes).expect_err(rule);
            assert_eq!(err.reason, want, "{rule}");
            assert_eq!(goaway_code(&mut c), Some(want), "{rule}: GOAWAY");
            assert!(c.is_done(), "{rule}");
        }
        let mut c = open();
        feed(
            &mut c,
            &frame(HEADERS, END_HEADERS | END_STREAM, 5, &get("/")),
        )
        .unwrap();
        let err = feed(
            &mut c,
            &frame(HEADERS, END_HEADERS | END_STREAM, 3, &get("/")),
        );
        assert_eq!(
            err.unwrap_err().reason,
            Reason::PROTOCOL_ERROR,
            "§5.1.1 smaller id"
        );
    }

    /// Frames that reset their stream only, with the code the RFC names; the
    /// connection goes on.
    #[test]
    fn stream_errors() {
        let opened = frame(HEADERS, END_HEADERS, 1, &post(3));
        let ended = frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/"));
        let max = 0x7fff_ffffu32.to_be_bytes();
        let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
            (
                "§6.3 PRIORITY of 4 bytes",
                frame(PRIORITY, 0, 1, &[0; 4]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                "§5.3.1 depends on itself",
                frame(PRIORITY, 0, 1, &[0, 0, 0, 1, 0]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§8.2 uppercase field",
                frame(
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    1,
                    &[get("/"), block(&[("X", "1")])].concat(),
                ),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§5.1 DATA half-closed (remote)",
                [ended.clone(), frame(DATA, 0, 1, b"x")].concat(),
                Reason::STREAM_CLOSED,
            ),
            (
                "§6.9.1 stream window overflow",
                [ended, frame(WINDOW_UPDATE, 0, 1, &max)].concat(),
                Reason::FLOW_CONTROL_ERROR,
            ),
            (
                "§8.1.1 body longer than Content-Length",
                [opened.clone(), frame(DATA, 0, 1, b"abcd")].concat(),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§8.1.1 body shorter than Content-Length",
                [opened.clone(), frame(DATA, END_STREAM, 1, b"ab")].concat(),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§8.1 trailers without END_STREAM",
                [
                    opened.clone(),
                    frame(HEADERS, END_HEADERS, 1, &block(&[("a", "b")])),
                ]
                .concat(),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§8.1 pseudo-header in trailers",
                [
                    opened.clone(),
                    frame(DATA, 0, 1, b"abc"),
                    frame(
                        HEADERS,
                        END_HEADERS | END_STREAM,
                        1,
                        &block(&[(":path", "/")]),
                    ),
                ]
                .concat(),
                Reason::PROTOCOL_ERROR,
            ),
            (
                "§6.9 WINDOW_UPDATE of 0 on a stream",
                [opened, frame(WINDOW_UPDATE, 0, 1, &[0; 4])].concat(),
                Reason::PROTOCOL_ERROR,
            ),
        ];
        for (rule, bytes, want) in cases {
            let mut c = open();
            feed(&mut c, &bytes).expect(rule);
            assert_eq!(rst_code(&mut c, 1), Some(want), "{rule}");
            feed(&mut c, &frame(PING, 0, 0, &[7; 8])).expect(rule);
            assert_eq!(frames(&mut c)[0].0, PING, "{rule}: the connection goes on");
        }
    }

    /// §5.1.2: streams beyond SETTINGS_MAX_CONCURRENT_STREAMS are refused.
    #[test]
    fn concurrency_limit() {
        let mut c = open();
        for id in [1, 3, 5, 7] {
            feed(
                &mut c,
                &frame(HEADERS, END_HEADERS | END_STREAM, id, &get("/")),
            )
            .unwrap();
        }
        assert!(frames(&mut c).is_empty());
        feed(
            &mut c,
            &frame(HEADERS, END_HEADERS | END_STREAM, 9, &get("/")),
        )
        .unwrap();
        assert_eq!(rst_code(&mut c, 9), Some(Reason::REFUSED_STREAM));
        assert_eq!(c.open_streams(), 4);
    }

    /// DATA goes out as the windows allow, and WINDOW_UPDATE lets the rest go.
    #[test]
    fn send_flow_control() {
        let mut c = open();
        feed(&mut c, &frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 10])).unwrap();
        get_without_body(&mut c);
        c.send_headers(1, http::StatusCode::OK, &HeaderMap::new(), false);
        let mut body = Bytes::from_static(b"0123456789abcdef");
        assert!(!c.send_data(1, &mut body, true), "window of 10");
        assert_eq!(body, "abcdef");
        assert_eq!(c.send_capacity(1), 0);
        feed(&mut c, &frame(WINDOW_UPDATE, 0, 1, &6u32.to_be_bytes())).unwrap();
        assert!(matches!(c.poll_event(), Some(Event::Request { .. })));
        assert!(matches!(c.poll_event(), Some(Event::Capacity)));
        assert!(c.send_data(1, &mut body, true));
        let data: Vec<_> = frames(&mut c).into_iter().filter(|f| f.0 == DATA).collect();
        assert_eq!(data[0].3, b"0123456789");
        assert_eq!((data[1].1, &data[1].3[..]), (END_STREAM, &b"abcdef"[..]));
    }

    /// Request bodies take window; what the service consumes is given back once half
    /// a window is owed.
    #[test]
    fn receive_flow_control() {
        let mut c = open();
        let mut input = frame(
            HEADERS,
            END_HEADERS,
            1,
            &block(&[(":method", "PUT"), (":scheme", "http"), (":path", "/")]),
        );
        input.extend(frame(DATA, 0, 1, &[1; 16_000]));
        input.extend(frame(DATA, 0, 1, &[1; 16_000]));
        input.extend(frame(DATA, 0, 1, &[1; 16_000]));
        feed(&mut c, &input).unwrap();
        assert!(frames(&mut c).is_empty(), "nothing consumed yet");
        c.release(1, 33_000);
        let updates: Vec<_> = frames(&mut c)
            .into_iter()
            .filter(|f| f.0 == WINDOW_UPDATE)
            .collect();
        assert_eq!(updates.len(), 1, "the stream's half window is owed");
        assert_eq!((updates[0].2, code(&updates[0].3, 0).0), (1, 33_000));
        // 48,000 of 65,535 were taken, 33,000 given back: 50,535 remain.
        feed(&mut c, &frame(DATA, 0, 1, &[1; 16_000])).unwrap();
        feed(&mut c, &frame(DATA, 0, 1, &[1; 16_000])).unwrap();
        feed(&mut c, &frame(DATA, 0, 1, &[1; 16_000])).unwrap();
        let err = feed(&mut c, &frame(DATA, 0, 1, &[1; 2_536]));
        assert!(err.is_ok());
        assert_eq!(
            rst_code(&mut c, 1),
            Some(Reason::FLOW_CONTROL_ERROR),
            "§6.9.1"
        );
    }

    /// §6.8: GOAWAY with the largest id and a PING; requests sent before the PING's
    /// ACK are served; the second GOAWAY names the last; later ones are ignored.
    #[test]
    fn two_step_goaway() {
        let mut c = open();
        c.shutdown();
        let out = frames(&mut c);
        assert_eq!((out[0].0, code(&out[0].3, 0).0), (GOAWAY, 0x7fff_ffff));
        assert_eq!((out[1].0, &out[1].3[..]), (PING, &DRAIN_PING[..]));
        get_without_body(&mut c);
        feed(&mut c, &frame(PING, ACK, 0, &DRAIN_PING)).unwrap();
        let out = frames(&mut c);
        assert_eq!((out[0].0, code(&out[0].3, 0).0), (GOAWAY, 1));
        feed(
            &mut c,
            &frame(HEADERS, END_HEADERS | END_STREAM, 3, &get("/")),
        )
        .unwrap();
        assert!(matches!(c.poll_event(), Some(Event::Request { id: 1, .. })));
        assert!(c.poll_event().is_none(), "stream 3 is past the last id");
        assert!(!c.is_done(), "stream 1 is still open");
        c.send_headers(1, http::StatusCode::NO_CONTENT, &HeaderMap::new(), true);
        assert!(c.is_done());
    }

    /// A response complete before its request: the rest of the body is read and
    /// dropped, with no reset, up to the limit.
    #[test]
    fn early_response_discards_the_rest() {
        let mut c = open();
        let put = block(&[(":method", "PUT"), (":scheme", "http"), (":path", "/")]);
        feed(&mut c, &frame(HEADERS, END_HEADERS, 1, &put)).unwrap();
        c.send_headers(1, http::StatusCode::OK, &HeaderMap::new(), true);
        frames(&mut c);
        feed(&mut c, &frame(DATA, 0, 1, &[0; 1000])).unwrap();
        feed(&mut c, &frame(DATA, END_STREAM, 1, &[0; 10])).unwrap();
        assert!(frames(&mut c).iter().all(|f| f.0 != RST_STREAM));
        assert!(matches!(c.poll_event(), Some(Event::Request { .. })));
        assert!(c.poll_event().is_none(), "dropped, not handed out");
        assert_eq!(c.open_streams(), 0);
    }

    /// §10.5.1: a header section over the limit gets 431; HPACK stays in step.
    #[test]
    fn too_large_header_section() {
        let mut c = open();
        let big = [get("/"), block(&[("x", &"a".repeat(1100))])].concat();
        feed(&mut c, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &big)).unwrap();
        let out = frames(&mut c);
        assert_eq!((out[0].0, out[0].2), (HEADERS, 1));
        let mut d = Decoder::new(4096);
        let mut status = Vec::new();
        d.decode(&out[0].3, |f| status.push(f.value.clone()))
            .unwrap();
        assert_eq!(status[0], "431");
        assert!(c.poll_event().is_none());
        feed(
            &mut c,
            &frame(HEADERS, END_HEADERS | END_STREAM, 3, &get("/")),
        )
        .unwrap();
        assert!(matches!(c.poll_event(), Some(Event::Request { id: 3, .. })));
    }

    /// Output written a little at a time comes out whole and in order, with what is
    /// queued meanwhile after it.
    #[test]
    fn output_written_in_pieces_comes_out_in_order() {
        let mut c = open_with_get();
        frames(&mut c);
        c.send_headers(1, http::StatusCode::OK, &HeaderMap::new(), false);
        let mut data = Bytes::from(vec![1u8; 60_000]);
        assert!(c.send_data(1, &mut data, true));
        let mut want = c.output().to_vec();
        let mut got = Vec::new();
        let mut write = |c: &mut Connection, until: usize| {
            while c.output().len() > until {
                let n = 7000.min(c.output().len());
                got.extend_from_slice(&c.output()[..n]);
                c.consume_output(n);
            }
        };
        write(&mut c, want.len() / 3);
        feed(&mut c, &frame(PING, 0, 0, &[9; 8])).unwrap();
        want.extend(frame(PING, ACK, 0, &[9; 8]));
        write(&mut c, 0);
        assert_eq!(got, want);
    }

    /// A response head is `:status`, the service's fields, then the server's own;
    /// connection-specific fields are left out (§8.2.2).
    #[test]
    fn response_fields_then_the_servers() {
        let mut c = open_with_get();
        let mut fields = HeaderMap::new();
        fields.insert("connection", "keep-alive, x".parse().unwrap());
        fields.insert("etag", "\"a\"".parse().unwrap());
        for name in [
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
        ] {
            fields.insert(name, "x".parse().unwrap());
        }
        let extra: &[(&[u8], &[u8])] = &[
            (b"date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
            (b"content-length", b"2"),
        ];
        assert!(c.send_response(1, http::StatusCode::OK, &fields, extra, false));
        let out = frames(&mut c);
        let mut d = Decoder::new(4096);
        let mut got = Vec::new();
        d.decode(&out[0].3, |f| {
            got.push((f.name.to_vec(), f.value.to_vec()));
        })
        .unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            (&b":status"[..], &b"200"[..]),
            (b"etag", b"\"a\""),
            (b"date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
            (b"content-length", b"2"),
        ]
        .iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
        assert_eq!(got, want);
    }

    /// Headers larger than the peer's frame size go out as HEADERS + CONTINUATION.
    #[test]
    fn large_response_heads_are_continued() {
        let mut c = open_with_get();
        let mut fields = HeaderMap::new();
        for i in 0..40 {
            fields.insert(
                http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                "v".repeat(1000).parse().unwrap(),
            );
        }
        c.send_headers(1, http::StatusCode::OK, &fields, true);
        let out = frames(&mut c);
        assert_eq!((out[0].0, out[0].1), (HEADERS, END_STREAM));
        assert!(out[1..out.len() - 1]
            .iter()
            .all(|f| (f.0, f.1) == (CONTINUATION, 0)));
        assert_eq!(out.last().unwrap().1, END_HEADERS);
    }
}
