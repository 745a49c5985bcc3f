//! HTTP/3 frames (RFC 9114 §7) on request streams and the control stream: what a
//! client may send on each, in which order, and the errors the RFC names for the
//! rest.
//!
//! [`Frames`] is fed the stream's bytes as they arrive, in chunks cut anywhere, and
//! hands out what they hold: a request's header sections whole, its DATA as it comes
//! (the chunk's own bytes, not copies), the control stream's settings and ids.
//! Frames of unknown types are skipped unread (§9: extensions, and grease).

use bytes::{Buf, Bytes};

use crate::error::{Code, ConnError};
use crate::varint;

/// DATA (§7.2.1).
pub const DATA: u64 = 0x00;
/// HEADERS (§7.2.2).
pub const HEADERS: u64 = 0x01;
/// CANCEL_PUSH (§7.2.3).
pub const CANCEL_PUSH: u64 = 0x03;
/// SETTINGS (§7.2.4).
pub const SETTINGS: u64 = 0x04;
/// PUSH_PROMISE (§7.2.5).
pub const PUSH_PROMISE: u64 = 0x05;
/// GOAWAY (§7.2.6).
pub const GOAWAY: u64 = 0x07;
/// MAX_PUSH_ID (§7.2.7).
pub const MAX_PUSH_ID: u64 = 0x0d;

/// The longest frame head: a type and a length of eight bytes each.
const HEAD_MAX: usize = 16;

/// The longest SETTINGS payload taken (§7.2.4.1 sets no bound; a peer sending more
/// is only using memory).
const SETTINGS_MAX: usize = 16 * 1024;

/// What a frame of the stream holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole header section (a HEADERS payload): a request's head, or its trailers.
    Headers(Bytes),
    /// A HEADERS frame longer than the limit: skipped, not kept.
    HeadersTooLarge,
    /// Some of a DATA frame's payload.
    Data(Bytes),
    /// The peer's SETTINGS.
    Settings(Settings),
    /// The peer's GOAWAY, with its id.
    Goaway(u64),
    /// MAX_PUSH_ID.
    MaxPushId(u64),
    /// CANCEL_PUSH.
    CancelPush(u64),
}

/// Which stream the frames come on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Request,
    Control,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames (a head cut short waits in `buf`).
    Head,
    /// Inside a DATA frame, with this much of it to come.
    Data(u64),
    /// Gathering a frame's whole payload of `len` bytes in `buf`.
    Whole { kind: u64, len: usize },
    /// Skipping a frame's payload.
    Skip(u64),
}

/// The frames of one stream a client sent, checked as they arrive.
#[derive(Debug)]
pub struct Frames {
    role: Role,
    state: State,
    /// A frame head cut between chunks, or a payload being gathered.
    buf: Vec<u8>,
    /// The largest header section taken (request streams).
    limit: usize,
    /// Request streams: header sections begun (1: the head, 2: the trailers).
    /// The control stream: frames seen (SETTINGS comes first).
    seen: u8,
}

impl Frames {
    /// For a request stream whose header sections may be `limit` bytes long.
    pub fn request(limit: usize) -> Self {
        Frames {
            role: Role::Request,
            state: State::Head,
            buf: Vec::new(),
            limit,
            seen: 0,
        }
    }

    /// For the peer's control stream (after its stream type).
    pub fn control() -> Self {
        Frames {
            role: Role::Control,
            ..Frames::request(SETTINGS_MAX)
        }
    }

    /// The next item in what has arrived, taking from `input` what it reads; `None`
    /// once `input` is used up without completing one.
    pub fn next(&mut self, input: &mut Bytes) -> Result<Option<Item>, ConnError> {
        loop {
            match self.state {
                State::Data(left) => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(input.len() as u64);
                    self.state = match left - n {
                        0 => State::Head,
                        rest => State::Data(rest),
                    };
                    return Ok(Some(Item::Data(input.split_to(n as usize))));
                }
                State::Skip(left) => {
                    let n = left.min(input.len() as u64);
                    input.advance(n as usize);
                    if n < left {
                        self.state = State::Skip(left - n);
                        return Ok(None);
                    }
                    self.state = State::Head;
                }
                State::Whole { kind, len } => {
                    let payload = if self.buf.is_empty() && input.len() >= len {
                        input.split_to(len)
                    } else {
                        let n = (len - self.buf.len()).min(input.len());
                        self.buf.extend_from_slice(&input.split_to(n));
                        if self.buf.len() < len {
                            return Ok(None);
                        }
                        Bytes::from(std::mem::take(&mut self.buf))
                    };
                    self.state = State::Head;
                    return self.whole(kind, payload).map(Some);
                }
                State::Head => {
                    let Some((kind, len)) = self.head(input) else {
                        return Ok(None);
                    };
                    if let Some(item) = self.begin(kind, len)? {
                        return Ok(Some(item));
                    }
                }
            }
        }
    }

    /// Whether the stream may end here (RFC 9114 §7.1: a frame cut short by the
    /// stream's end is H3_FRAME_ERROR).
    pub fn end(&self) -> Result<(), ConnError> {
        match (self.state, self.buf.is_empty()) {
            (State::Head, true) => Ok(()),
            _ => Err(ConnError::new(
                Code::FrameError,
                "a frame cut short by its stream's end",
            )),
        }
    }

    /// Reads a frame head from `buf` (what an earlier chunk left) and `input`.
    fn head(&mut self, input: &mut Bytes) -> Option<(u64, u64)> {
        if self.buf.is_empty() {
            let mut pos = 0;
            if let Some(head) = read_head(input, &mut pos) {
                input.advance(pos);
                return Some(head);
            }
            self.buf.extend_from_slice(input);
            input.clear();
            return None;
        }
        let before = self.buf.len();
        let n = (HEAD_MAX - before).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        let mut pos = 0;
        match read_head(&self.buf, &mut pos) {
            Some(head) => {
                input.advance(pos - before);
                self.buf.clear();
                Some(head)
            }
            None => {
                input.advance(n);
                None
            }
        }
    }

    /// Checks a frame of `kind` and `len` where it came, and gets ready to read it;
    /// a header section too large to take is reported at once.
    fn begin(&mut self, kind: u64, len: u64) -> Result<Option<Item>, ConnError> {
        let unexpected = |reason| Err(ConnError::new(Code::FrameUnexpected, reason));
        if matches!(kind, 0x02 | 0x06 | 0x08 | 0x09) {
            // §7.2.8: HTTP/2's frame types have no meaning in HTTP/3.
            return unexpected("a frame type reserved for HTTP/2");
        }
        let known = matches!(
            kind,
            DATA | HEADERS | CANCEL_PUSH | SETTINGS | PUSH_PROMISE | GOAWAY | MAX_PUSH_ID
        );
        if self.role == Role::Control {
            let first = self.seen == 0;
            self.seen = 1;
            return match kind {
                SETTINGS if first => self.whole_of(kind, len, SETTINGS_MAX, Code::ExcessiveLoad),
                _ if first => Err(ConnError::new(
                    Code::MissingSettings,
                    "the control stream does not begin with SETTINGS",
                )),
                SETTINGS => unexpected("a second SETTINGS frame"),
                GOAWAY | MAX_PUSH_ID | CANCEL_PUSH => self.whole_of(kind, len, 8, Code::FrameError),
                _ if known => unexpected("a frame not allowed on the control stream"),
                _ => {
                    self.state = State::Skip(len);
                    Ok(None)
                }
            };
        }
        match kind {
            HEADERS if self.seen >= 2 => unexpected("a frame after the trailers"),
            HEADERS => {
                self.seen += 1;
                if len > self.limit as u64 {
                    self.state = State::Skip(len);
                    return Ok(Some(Item::HeadersTooLarge));
                }
                self.state = State::Whole {
                    kind,
                    len: len as usize,
                };
                Ok(None)
            }
            DATA if self.seen == 0 => unexpected("DATA before the request's head"),
            DATA if self.seen >= 2 => unexpected("DATA after the trailers"),
            DATA => {
                self.state = match len {
                    0 => State::Head,
                    len => State::Data(len),
                };
                Ok(None)
            }
            _ if known => unexpected("a frame not allowed on a request stream"),
            _ => {
                self.state = State::Skip(len);
                Ok(None)
            }
        }
    }

    /// Gathers a frame of at most `max` bytes whole; a longer one is an error with
    /// `code`.
    fn whole_of(
        &mut self,
        kind: u64,
        len: u64,
        max: usize,
        code: Code,
    ) -> Result<Option<Item>, ConnError> {
        if len > max as u64 {
            return Err(ConnError::new(
                code,
                "a frame longer than its content allows",
            ));
        }
        self.state = State::Whole {
            kind,
            len: len as usize,
        };
        Ok(None)
    }

    /// A whole frame's payload, read.
    fn whole(&mut self, kind: u64, payload: Bytes) -> Result<Item, ConnError> {
        if kind == HEADERS {
            return Ok(Item::Headers(payload));
        }
        let id = || {
            let mut pos = 0;
            varint::read(&payload, &mut pos)
                .filter(|_| pos == payload.len())
                .ok_or(ConnError::new(
                    Code::FrameError,
                    "a frame whose id does not fill it",
                ))
        };
        Ok(match kind {
            SETTINGS => Item::Settings(Settings::parse(&payload)?),
            GOAWAY => Item::Goaway(id()?),
            MAX_PUSH_ID => Item::MaxPushId(id()?),
            _ => Item::CancelPush(id()?),
        })
    }
}

/// A frame head (type, length) at `pos`.
fn read_head(buf: &[u8], pos: &mut usize) -> Option<(u64, u64)> {
    let kind = varint::read(buf, pos)?;
    let len = varint::read(buf, pos)?;
    Some((kind, len))
}

/// Settings (RFC 9114 §7.2.4.1, RFC 9204 §5, RFC 9220 §3, RFC 9297 §2.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// SETTINGS_QPACK_MAX_TABLE_CAPACITY.
    pub qpack_max_table_capacity: u64,
    /// SETTINGS_MAX_FIELD_SECTION_SIZE, when sent (else unlimited).
    pub max_field_section_size: Option<u64>,
    /// SETTINGS_QPACK_BLOCKED_STREAMS.
    pub qpack_blocked_streams: u64,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL.
    pub enable_connect_protocol: bool,
}

const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
const QPACK_BLOCKED_STREAMS: u64 = 0x07;
const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;

impl Settings {
    /// A SETTINGS payload read: an identifier sent twice, or one of HTTP/2's, is
    /// H3_SETTINGS_ERROR; unknown ones are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, ConnError> {
        let error = |reason| Err(ConnError::new(Code::SettingsError, reason));
        let mut s = Settings::default();
        let mut ids = Vec::new();
        let mut pos = 0;
        while pos < payload.len() {
            let pair = varint::read(payload, &mut pos).zip(varint::read(payload, &mut pos));
            let Some((id, value)) = pair else {
                return Err(ConnError::new(
                    Code::FrameError,
                    "SETTINGS cut inside a setting",
                ));
            };
            match id {
                0x00 | 0x02..=0x05 => return error("a setting of HTTP/2's"),
                QPACK_MAX_TABLE_CAPACITY => s.qpack_max_table_capacity = value,
                MAX_FIELD_SECTION_SIZE => s.max_field_section_size = Some(value),
                QPACK_BLOCKED_STREAMS => s.qpack_blocked_streams = value,
                ENABLE_CONNECT_PROTOCOL if value > 1 => {
                    return error("SETTINGS_ENABLE_CONNECT_PROTOCOL neither 0 nor 1")
                }
                ENABLE_CONNECT_PROTOCOL => s.enable_connect_protocol = value == 1,
                _ => {}
            }
            ids.push(id);
        }
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return error("a setting sent twice");
        }
        Ok(s)
    }

    /// The SETTINGS frame, whole; zero and absent values are left out.
    pub fn frame(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        let mut put = |id, value| {
            varint::put(id, &mut payload);
            varint::put(value, &mut payload);
        };
        if self.qpack_max_table_capacity > 0 {
            put(QPACK_MAX_TABLE_CAPACITY, self.qpack_max_table_capacity);
        }
        if let Some(size) = self.max_field_section_size {
            put(MAX_FIELD_SECTION_SIZE, size);
        }
        if self.qpack_blocked_streams > 0 {
            put(QPACK_BLOCKED_STREAMS, self.qpack_blocked_streams);
        }
        if self.enable_connect_protocol {
            put(ENABLE_CONNECT_PROTOCOL, 1);
        }
        let mut frame = Vec::new();
        put_head(SETTINGS, payload.len() as u64, &mut frame);
        frame.extend_from_slice(&payload);
        frame
    }
}

/// Appends a frame head.
pub fn put_head(kind: u64, len: u64, dst: &mut Vec<u8>) {
    varint::put(kind, dst);
    varint::put(len, dst);
}

/// A GOAWAY frame with `id` (§5.2: the first request stream not served).
pub fn goaway(id: u64) -> Vec<u8> {
    let mut frame = Vec::new();
    put_head(GOAWAY, varint::len(id) as u64, &mut frame);
    varint::put(id, &mut frame);
    frame
}
