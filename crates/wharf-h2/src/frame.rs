//! Frame types, flags, settings and error codes (RFC 9113 §6, §7), and the writers of
//! the frames a server sends.

/// A frame's 9-byte header (§4.1).
pub(crate) const HEAD_LEN: usize = 9;

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PUSH_PROMISE: u8 = 0x5;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

pub(crate) const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub(crate) const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub(crate) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(crate) const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub(crate) const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;
pub(crate) const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// The largest flow-control window (§6.9.1).
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The initial windows and frame size before SETTINGS say otherwise (§6.5.2).
pub(crate) const DEFAULT_WINDOW: i64 = 65_535;
pub(crate) const DEFAULT_MAX_FRAME: usize = 16_384;
pub(crate) const MAX_FRAME_LIMIT: u32 = (1 << 24) - 1;

/// An error code (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

#[allow(missing_docs)]
impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => return write!(f, "error code {:#x}", self.0),
        };
        f.write_str(name)
    }
}

/// A received frame's header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
}

impl Head {
    pub(crate) fn parse(b: &[u8]) -> Head {
        Head {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A frame header.
pub(crate) fn head(len: usize, kind: u8, flags: u8, stream: u32) -> [u8; HEAD_LEN] {
    let l = len as u32;
    let s = stream.to_be_bytes();
    [
        (l >> 16) as u8,
        (l >> 8) as u8,
        l as u8,
        kind,
        flags,
        s[0],
        s[1],
        s[2],
        s[3],
    ]
}

/// Appends a frame header.
pub(crate) fn put_head(dst: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    dst.extend_from_slice(&head(len, kind, flags, stream));
}

/// Appends a whole frame.
pub(crate) fn put_frame(dst: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    put_head(dst, payload.len(), kind, flags, stream);
    dst.extend_from_slice(payload);
}

pub(crate) fn put_rst(dst: &mut Vec<u8>, stream: u32, reason: Reason) {
    put_frame(dst, RST_STREAM, 0, stream, &reason.0.to_be_bytes());
}

pub(crate) fn put_window_update(dst: &mut Vec<u8>, stream: u32, n: u32) {
    put_frame(dst, WINDOW_UPDATE, 0, stream, &n.to_be_bytes());
}

pub(crate) fn put_goaway(dst: &mut Vec<u8>, last: u32, reason: Reason) {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&last.to_be_bytes());
    p[4..].copy_from_slice(&reason.0.to_be_bytes());
    put_frame(dst, GOAWAY, 0, 0, &p);
}

/// Appends a SETTINGS frame with `settings`.
pub(crate) fn put_settings(dst: &mut Vec<u8>, settings: &[(u16, u32)]) {
    put_head(dst, settings.len() * 6, SETTINGS, 0, 0);
    for (id, v) in settings {
        dst.extend_from_slice(&id.to_be_bytes());
        dst.extend_from_slice(&v.to_be_bytes());
    }
}
