//! HTTP/3's error codes (RFC 9114 §8.1, RFC 9204 §6), and the connection errors this
//! crate finds.

use std::fmt;

/// An HTTP/3 or QPACK error code, as sent in QUIC's CONNECTION_CLOSE, RESET_STREAM
/// and STOP_SENDING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Code {
    /// H3_NO_ERROR.
    NoError = 0x100,
    /// H3_GENERAL_PROTOCOL_ERROR.
    GeneralProtocolError = 0x101,
    /// H3_INTERNAL_ERROR.
    InternalError = 0x102,
    /// H3_STREAM_CREATION_ERROR.
    StreamCreationError = 0x103,
    /// H3_CLOSED_CRITICAL_STREAM.
    ClosedCriticalStream = 0x104,
    /// H3_FRAME_UNEXPECTED.
    FrameUnexpected = 0x105,
    /// H3_FRAME_ERROR.
    FrameError = 0x106,
    /// H3_EXCESSIVE_LOAD.
    ExcessiveLoad = 0x107,
    /// H3_ID_ERROR.
    IdError = 0x108,
    /// H3_SETTINGS_ERROR.
    SettingsError = 0x109,
    /// H3_MISSING_SETTINGS.
    MissingSettings = 0x10a,
    /// H3_REQUEST_REJECTED.
    RequestRejected = 0x10b,
    /// H3_REQUEST_CANCELLED.
    RequestCancelled = 0x10c,
    /// H3_REQUEST_INCOMPLETE.
    RequestIncomplete = 0x10d,
    /// H3_MESSAGE_ERROR.
    MessageError = 0x10e,
    /// H3_CONNECT_ERROR.
    ConnectError = 0x10f,
    /// QPACK_DECOMPRESSION_FAILED.
    QpackDecompressionFailed = 0x200,
    /// QPACK_ENCODER_STREAM_ERROR.
    QpackEncoderStreamError = 0x201,
    /// QPACK_DECODER_STREAM_ERROR.
    QpackDecoderStreamError = 0x202,
}

impl Code {
    /// The code's value on the wire.
    pub fn value(self) -> u64 {
        self as u64
    }
}

/// An error of the whole connection: it closes with `code`, and `reason` says why
/// (in the log, and in CONNECTION_CLOSE's reason phrase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    /// The code the connection closes with.
    pub code: Code,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl ConnError {
    /// An error with `code`, for `reason`.
    pub const fn new(code: Code, reason: &'static str) -> Self {
        ConnError { code, reason }
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.reason, self.code)
    }
}

impl std::error::Error for ConnError {}
