//! QUIC's variable-length integers (RFC 9000 §16), which HTTP/3 uses for frame types,
//! lengths, stream types and settings: the first byte's two high bits give the
//! length (1, 2, 4 or 8 bytes).

/// The largest value a variable-length integer holds (2^62 - 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Reads the integer at `pos`, moving `pos` past it; `None` if `buf` ends first.
pub fn read(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *buf.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(*pos..*pos + len)?;
    let mut value = u64::from(first & 0x3f);
    for &b in &bytes[1..] {
        value = value << 8 | u64::from(b);
    }
    *pos += len;
    Some(value)
}

/// Appends `value` (at most [`MAX`]) in its shortest form.
pub fn put(value: u64, dst: &mut Vec<u8>) {
    debug_assert!(value <= MAX);
    match value {
        0..=0x3f => dst.push(value as u8),
        0x40..=0x3fff => dst.extend_from_slice(&(value as u16 | 0x4000).to_be_bytes()),
        0x4000..=0x3fff_ffff => dst.extend_from_slice(&(value as u32 | 0x8000_0000).to_be_bytes()),
        _ => dst.extend_from_slice(&(value | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// How many bytes [`put`] writes for `value`.
pub fn len(value: u64) -> usize {
    match value {
        0..=0x3f => 1,
        0x40..=0x3fff => 2,
        0x4000..=0x3fff_ffff => 4,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9000 §A.1's examples, and the edges of each length.
    #[test]
    fn examples_of_rfc_9000() {
        let table: &[(&[u8], u64)] = &[
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
            (&[0x00], 0),
            (&[0x3f], 63),
            (&[0x40, 0x40], 64),
            (&[0x7f, 0xff], 16_383),
            (&[0x80, 0x00, 0x40, 0x00], 16_384),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], MAX),
        ];
        for (bytes, value) in table {
            let mut pos = 0;
            assert_eq!(read(bytes, &mut pos), Some(*value), "{bytes:x?}");
            assert_eq!(pos, bytes.len());
            let mut out = Vec::new();
            put(*value, &mut out);
            assert_eq!(&out[..], *bytes, "{value}");
            assert_eq!(len(*value), bytes.len());
        }
        // §A.1: a two-byte encoding of 37 reads as 37 too.
        assert_eq!(read(&[0x40, 0x25], &mut 0), Some(37));
        // Cut short.
        for cut in [&[0x40][..], &[0x80, 0, 0], &[0xc0, 0, 0, 0, 0, 0, 0], &[]] {
            let mut pos = 0;
            assert_eq!(read(cut, &mut pos), None, "{cut:x?}");
            assert_eq!(pos, 0);
        }
    }
}
