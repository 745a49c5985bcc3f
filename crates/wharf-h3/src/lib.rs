//! wharf's HTTP/3 layer (RFC 9114) with QPACK (RFC 9204), sans-IO.
//!
//! QUIC (quinn) carries the streams; this crate knows what goes on them: the frames
//! of request streams and of the control stream, checked in the order and with the
//! error codes the RFC gives, the settings, and header sections encoded and decoded
//! with QPACK's static table (no dynamic table: see [`qpack`]). The transport
//! (`wharf-server`'s `h3` module) feeds it a stream's bytes as they arrive and
//! writes the bytes it makes; request heads are checked by the same code as
//! HTTP/2's (`wharf_h2::head`, RFC 9114 §4.3 has RFC 9113 §8's rules).

mod error;
pub mod frame;
pub mod qpack;
pub mod varint;

pub use error::{Code, ConnError};
pub use frame::{Frames, Item, Settings};

/// The stream types of unidirectional streams (RFC 9114 §6.2, RFC 9204 §4.2).
pub mod stream_type {
    /// The control stream.
    pub const CONTROL: u64 = 0x00;
    /// A push stream (server to client only).
    pub const PUSH: u64 = 0x01;
    /// QPACK's encoder stream.
    pub const ENCODER: u64 = 0x02;
    /// QPACK's decoder stream.
    pub const DECODER: u64 = 0x03;
}

/// Entry points for the cargo-fuzz targets in `fuzz/` (and this crate's property
/// tests); only under `cfg(fuzzing)` or tests.
#[cfg(any(test, fuzzing))]
pub mod fuzz;

#[cfg(test)]
mod tests;

/// Appends a HEADERS frame holding a response head with `status` and `fields` (and
/// the `added` ones), or trailers (`status` None), encoded with [`qpack::encode`].
pub fn headers_frame(
    status: Option<http::StatusCode>,
    fields: &http::HeaderMap,
    added: &[(&[u8], &[u8])],
    dst: &mut Vec<u8>,
) {
    // The length goes in front once known: two bytes are kept for it, enough for
    // any head under 16 KiB, and the section moves along for a longer one.
    let start = dst.len();
    dst.extend_from_slice(&[frame::HEADERS as u8, 0, 0]);
    qpack::encode(status, fields, added, dst);
    let len = dst.len() - start - 3;
    if len <= 0x3fff {
        // A two-byte variable-length integer (RFC 9000 §16 allows the longer form).
        dst[start + 1..start + 3].copy_from_slice(&(len as u16 | 0x4000).to_be_bytes());
    } else {
        let mut head = Vec::new();
        frame::put_head(frame::HEADERS, len as u64, &mut head);
        dst.splice(start..start + 3, head);
    }
}

/// Appends the head of a DATA frame of `len` bytes.
pub fn data_head(len: u64, dst: &mut Vec<u8>) {
    frame::put_head(frame::DATA, len, dst);
}
