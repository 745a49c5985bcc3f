//! Frame headers (RFC 6455 §5.2), sans-IO: parsing a client's, writing the server's.
//!
//! A parsed header is checked for everything decidable from the header alone (§5.2,
//! §5.5): reserved bits other than RSV1, reserved opcodes, fragmented or oversized
//! control frames, unmasked client frames (§5.1), lengths with the top bit set, and
//! frames over the endpoint's limit. Whether RSV1 is allowed depends on the
//! negotiated extension and on the frame's place in a message, so `message` decides.

use crate::close::{Close, Code};

/// Continuation frame.
pub(crate) const CONTINUATION: u8 = 0x0;
/// Text frame.
pub(crate) const TEXT: u8 = 0x1;
/// Binary frame.
pub(crate) const BINARY: u8 = 0x2;
/// Connection close.
pub(crate) const CLOSE: u8 = 0x8;
/// Ping.
pub(crate) const PING: u8 = 0x9;
/// Pong.
pub(crate) const PONG: u8 = 0xA;

/// Largest control frame payload (§5.5).
pub(crate) const MAX_CONTROL: u64 = 125;

/// A client frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) rsv1: bool,
    pub(crate) opcode: u8,
    pub(crate) mask: [u8; 4],
    pub(crate) len: u64,
}

impl Header {
    /// Whether this is a control frame (opcodes 0x8–0xF, §5.5).
    pub(crate) fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses the header at the start of `buf`: `Ok(None)` when more bytes are needed,
/// else the header and its length in bytes.
pub(crate) fn parse(buf: &[u8], max_frame: u64) -> Result<Option<(Header, usize)>, Close> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0F);
    if b0 & 0x30 != 0 {
        return Err(Close::new(
            Code::PROTOCOL,
            "RSV2 or RSV3 set without an extension",
        ));
    }
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(Close::new(Code::PROTOCOL, "reserved opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(Close::new(Code::PROTOCOL, "client frames must be masked"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(Close::new(
            Code::PROTOCOL,
            "frame length with the top bit set",
        ));
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let header = Header {
        fin,
        rsv1,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        len,
    };
    if header.is_control() && (!fin || len > MAX_CONTROL) {
        return Err(Close::new(
            Code::PROTOCOL,
            "control frames must be unfragmented and at most 125 bytes",
        ));
    }
    if len > max_frame {
        return Err(Close::new(Code::TOO_BIG, "frame over the size limit"));
    }
    Ok(Some((header, at + 4)))
}

/// Unmasks (or masks) `payload` with `mask` (§5.3).
pub(crate) fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// Appends a server frame header (unmasked, §5.1) for a payload of `len` bytes.
pub(crate) fn write_header(out: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: u8, len: usize) {
    out.push(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [1, 2, 3, 4];

    fn masked(b0: u8, len_bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![b0];
        v.extend_from_slice(len_bytes);
        v[1] |= 0x80;
        v.extend_from_slice(&MASK);
        v
    }

    #[test]
    fn headers_parse_per_rfc_6455_5_2() {
        let ok = |b: Vec<u8>| parse(&b, u64::MAX).unwrap().unwrap();
        let (h, n) = ok(masked(0x81, &[5]));
        assert_eq!(
            (h.fin, h.rsv1, h.opcode, h.len, n),
            (true, false, TEXT, 5, 6)
        );
        let (h, n) = ok(masked(0x02, &[126, 0x01, 0x00]));
        assert_eq!((h.fin, h.opcode, h.len, n), (false, BINARY, 256, 8));
        let (h, n) = ok(masked(0xC1, &[127, 0, 0, 0, 1, 0, 0, 0, 0]));
        assert_eq!((h.rsv1, h.len, n), (true, 1 << 32, 14));
        assert_eq!(h.mask, MASK);
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let full = masked(0x82, &[127, 0, 0, 0, 0, 0, 0, 1, 0]);
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut], u64::MAX), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bad_headers_fail_with_the_rfc_code() {
        let table: [(Vec<u8>, Code); 8] = [
            (masked(0xA1, &[0]), Code::PROTOCOL),           // RSV2 (§5.2)
            (masked(0x91, &[0]), Code::PROTOCOL),           // RSV3
            (masked(0x83, &[0]), Code::PROTOCOL),           // reserved data opcode
            (masked(0x8B, &[0]), Code::PROTOCOL),           // reserved control opcode
            (vec![0x81, 0x00], Code::PROTOCOL),             // unmasked (§5.1)
            (masked(0x09, &[0]), Code::PROTOCOL),           // fragmented ping (§5.5)
            (masked(0x89, &[126, 0, 126]), Code::PROTOCOL), // ping over 125
            (
                masked(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
                Code::PROTOCOL,
            ),
        ];
        for (bytes, code) in table {
            let err = parse(&bytes, u64::MAX).unwrap_err();
            assert_eq!(err.code, code, "{bytes:02x?}: {}", err.reason);
        }
        let big = masked(0x82, &[126, 0x10, 0x00]);
        assert_eq!(parse(&big, 4095).unwrap_err().code, Code::TOO_BIG);
        assert!(parse(&big, 4096).unwrap().is_some());
    }

    #[test]
    fn masking_is_its_own_inverse_at_any_length_and_alignment() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut v = data.clone();
            unmask(&mut v, MASK);
            let expected: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i % 4])
                .collect();
            assert_eq!(v, expected);
            unmask(&mut v, MASK);
            assert_eq!(v, data);
        }
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        let table: [(usize, &[u8]); 5] = [
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (65535, &[0x81, 126, 0xFF, 0xFF]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, expected) in table {
            let mut out = Vec::new();
            write_header(&mut out, true, false, TEXT, len);
            assert_eq!(out, expected, "{len}");
        }
        let mut out = Vec::new();
        write_header(&mut out, false, true, BINARY, 1);
        assert_eq!(out, [0x42, 1]);
    }
}
