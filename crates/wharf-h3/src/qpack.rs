//! QPACK (RFC 9204) without a dynamic table.
//!
//! wharf announces a dynamic table of capacity 0 (SETTINGS_QPACK_MAX_TABLE_CAPACITY
//! left at its default), so a client's header sections may refer to the static table
//! only, its encoder stream may carry nothing but "capacity 0", and no section ever
//! waits for an instruction that has not arrived (no blocked streams). wharf's own
//! sections use the static table and literals, so it needs no encoder stream either
//! (§4.2). What this gives up is compression of repeated request fields across
//! requests on one connection; what it saves is the state, the instruction streams
//! and the acknowledgements, and every response head is encoded without looking
//! anything up but the static table.
//!
//! Values go out as they are, not Huffman-coded: with no table to remember them, a
//! value would be coded again in every response, and coding costs more CPU than the
//! quarter of its bytes it saves.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use wharf_h2::hpack::{huffman_decoded, integer, put_integer, Field};

use crate::error::{Code, ConnError};

/// Appends a header section (§4.5) for a response head with `status` and `fields`,
/// or for trailers (`status` None), then the `added` fields (name, value) a
/// transport writes beside the service's (`Date`, `Content-Length`).
/// Connection-specific fields are left out (RFC 9114 §4.2: they would make the
/// message malformed).
pub fn encode(
    status: Option<StatusCode>,
    fields: &HeaderMap,
    added: &[(&[u8], &[u8])],
    dst: &mut Vec<u8>,
) {
    // Required Insert Count 0, Base 0 (§4.5.1): nothing refers to a dynamic table.
    dst.extend_from_slice(&[0, 0]);
    if let Some(status) = status {
        put_status(status, dst);
    }
    for (name, value) in fields {
        let name = name.as_str();
        if wharf_http::fields::is_connection_specific(name) {
            continue;
        }
        put_field(name.as_bytes(), value.as_bytes(), value.is_sensitive(), dst);
    }
    for (name, value) in added {
        put_field(name, value, false, dst);
    }
}

/// `:status`, indexed where the static table has the code.
fn put_status(status: StatusCode, dst: &mut Vec<u8>) {
    let index = match status.as_u16() {
        103 => 24,
        200 => 25,
        304 => 26,
        404 => 27,
        503 => 28,
        100 => 63,
        204 => 64,
        206 => 65,
        302 => 66,
        400 => 67,
        403 => 68,
        421 => 69,
        425 => 70,
        500 => 71,
        _ => {
            // A literal with the name of entry 24 (`:status`).
            put_integer(dst, 0x50, 4, 24);
            put_literal(dst, status.as_str().as_bytes());
            return;
        }
    };
    put_integer(dst, 0xc0, 6, index);
}

/// One field line: indexed when the static table has it whole, else a literal with
/// the table's name when it has the name, else a literal with its own name. A
/// sensitive value is marked never to be indexed (N, §4.5.4), and never indexed.
fn put_field(name: &[u8], value: &[u8], sensitive: bool, dst: &mut Vec<u8>) {
    let entries = entries(name);
    if !sensitive {
        if let Some(&i) = entries
            .iter()
            .find(|&&i| STATIC[usize::from(i)].1.as_bytes() == value)
        {
            return put_integer(dst, 0xc0, 6, usize::from(i));
        }
    }
    let never = if sensitive { 0x20 } else { 0 };
    match entries.first() {
        Some(&i) => put_integer(dst, 0x50 | never, 4, usize::from(i)),
        None => {
            put_integer(dst, 0x20 | never >> 1, 3, name.len());
            dst.extend_from_slice(name);
        }
    }
    put_literal(dst, value);
}

/// A string literal, not Huffman-coded (§4.1.2).
fn put_literal(dst: &mut Vec<u8>, s: &[u8]) {
    put_integer(dst, 0x00, 7, s.len());
    dst.extend_from_slice(s);
}

/// Decodes a header section with no memory of others ([`Decoder::decode`]).
pub fn decode(block: &Bytes, field: impl FnMut(Cow<'_, Field>)) -> Result<(), ConnError> {
    Decoder::default().decode(block, field)
}

/// How many Huffman-coded strings a [`Decoder`] remembers.
const MEMO: usize = 4;

/// Decodes the header sections of one connection. Without a dynamic table a client
/// sends its repeated values (`:authority`, `:path`, `user-agent`) as literals in
/// every request, Huffman-coded by most: the decoder remembers the last few it
/// decoded and hands out the same bytes again for the same code.
#[derive(Debug, Default)]
pub struct Decoder {
    /// (the code, its decoding), newest at `next - 1`.
    memo: [(Bytes, Bytes); MEMO],
    next: usize,
}

impl Decoder {
    /// Decodes a header section, giving each field to `field` in order. A reference to
    /// the dynamic table, which wharf's is not allowed to have, and any malformed line
    /// is QPACK_DECOMPRESSION_FAILED (§2.2.3), an error of the connection.
    pub fn decode(
        &mut self,
        block: &Bytes,
        mut field: impl FnMut(Cow<'_, Field>),
    ) -> Result<(), ConnError> {
        let failed = |reason| ConnError::new(Code::QpackDecompressionFailed, reason);
        let bad = |_| failed("a malformed field line");
        let mut pos = 0;
        if integer(block, &mut pos, 8).map_err(bad)? != 0 {
            return Err(failed("a reference to the dynamic table"));
        }
        integer(block, &mut pos, 7).map_err(bad)?; // Base: unused without a table
        while pos < block.len() {
            let b = block[pos];
            let line = if b & 0x80 != 0 {
                // Indexed (§4.5.2): 1T, T = static.
                if b & 0x40 == 0 {
                    return Err(failed("a reference to the dynamic table"));
                }
                let (name, value) = static_entry(integer(block, &mut pos, 6).map_err(bad)?)?;
                Field::new(
                    Bytes::from_static(name.as_bytes()),
                    Bytes::from_static(value.as_bytes()),
                    false,
                )
            } else if b & 0x40 != 0 {
                // Literal with a name reference (§4.5.4): 01NT.
                if b & 0x10 == 0 {
                    return Err(failed("a reference to the dynamic table"));
                }
                let (name, _) = static_entry(integer(block, &mut pos, 4).map_err(bad)?)?;
                let value = self.string(block, &mut pos, 7)?;
                Field::new(Bytes::from_static(name.as_bytes()), value, b & 0x20 != 0)
            } else if b & 0x20 != 0 {
                // Literal with a literal name (§4.5.6): 001NH.
                let name = self.string(block, &mut pos, 3)?;
                let value = self.string(block, &mut pos, 7)?;
                Field::new(name, value, b & 0x10 != 0)
            } else {
                // Post-base forms (§4.5.3, §4.5.5) refer to the dynamic table.
                return Err(failed("a reference to the dynamic table"));
            };
            field(Cow::Owned(line));
        }
        Ok(())
    }

    /// The string literal at `pos` whose length has a `prefix`-bit prefix, its H flag
    /// the bit above (§4.1.2): its bytes (shared with the block) or their Huffman
    /// decoding (remembered).
    fn string(&mut self, block: &Bytes, pos: &mut usize, prefix: u8) -> Result<Bytes, ConnError> {
        let failed = |reason| ConnError::new(Code::QpackDecompressionFailed, reason);
        let first = block
            .get(*pos)
            .ok_or(failed("a string past the section's end"))?;
        let huffman = first & (1 << prefix) != 0;
        let len = integer(block, pos, prefix).map_err(|_| failed("a malformed string length"))?;
        let end = pos.checked_add(len).filter(|&e| e <= block.len());
        let end = end.ok_or(failed("a string past the section's end"))?;
        let raw = block.slice(*pos..end);
        *pos = end;
        if !huffman {
            return Ok(raw);
        }
        if let Some((_, decoded)) = self.memo.iter().find(|(code, _)| *code == raw) {
            return Ok(decoded.clone());
        }
        let decoded = huffman_decoded(&raw).map_err(|_| failed("an invalid Huffman string"))?;
        self.memo[self.next] = (raw, decoded.clone());
        self.next = (self.next + 1) % MEMO;
        Ok(decoded)
    }
}

/// The static table's entry `index`.
fn static_entry(index: usize) -> Result<(&'static str, &'static str), ConnError> {
    STATIC.get(index).copied().ok_or(ConnError::new(
        Code::QpackDecompressionFailed,
        "an index past the static table",
    ))
}

/// Checks the bytes of the peer's encoder stream (§4.3) against a dynamic table of
/// capacity 0: the one instruction that fits is Set Dynamic Table Capacity to 0 (a
/// single byte, 0x20); a larger capacity or any insertion is
/// QPACK_ENCODER_STREAM_ERROR.
pub fn check_encoder_stream(bytes: &[u8]) -> Result<(), ConnError> {
    match bytes.iter().all(|&b| b == 0x20) {
        true => Ok(()),
        false => Err(ConnError::new(
            Code::QpackEncoderStreamError,
            "an encoder instruction beyond a dynamic table of capacity 0",
        )),
    }
}

/// The peer's decoder stream (§4.4), checked as it arrives. wharf's sections never
/// refer to a dynamic table, so the only instruction that may come is Stream
/// Cancellation; Section Acknowledgment and Insert Count Increment are
/// QPACK_DECODER_STREAM_ERROR.
#[derive(Debug, Default)]
pub struct DecoderStream {
    /// Continuation bytes of a Stream Cancellation's stream id read so far, when
    /// inside one.
    inside: Option<u8>,
}

impl DecoderStream {
    /// Checks the next bytes of the stream.
    pub fn check(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let error = |reason| Err(ConnError::new(Code::QpackDecoderStreamError, reason));
        for &b in bytes {
            match self.inside {
                // 6 bits in the first byte and 7 in each of 8 more: 62.
                Some(n) if n >= 8 => return error("a stream id longer than 62 bits"),
                Some(n) => self.inside = (b & 0x80 != 0).then_some(n + 1),
                None if b & 0x80 != 0 => return error("an acknowledgment of a section"),
                None if b & 0x40 == 0 => return error("an insert count increment"),
                None => self.inside = (b & 0x3f == 0x3f).then_some(0),
            }
        }
        Ok(())
    }
}

/// The static table (RFC 9204 Appendix A).
pub(crate) const STATIC: [(&str, &str); 99] = [
    (":authority", ""),                                    // 0
    (":path", "/"),                                        // 1
    ("age", "0"),                                          // 2
    ("content-disposition", ""),                           // 3
    ("content-length", "0"),                               // 4
    ("cookie", ""),                                        // 5
    ("date", ""),                                          // 6
    ("etag", ""),                                          // 7
    ("if-modified-since", ""),                             // 8
    ("if-none-match", ""),                                 // 9
    ("last-modified", ""),                                 // 10
    ("link", ""),                                          // 11
    ("location", ""),                                      // 12
    ("referer", ""),                                       // 13
    ("set-cookie", ""),                                    // 14
    (":method", "CONNECT"),                                // 15
    (":method", "DELETE"),                                 // 16
    (":method", "GET"),                                    // 17
    (":method", "HEAD"),                                   // 18
    (":method", "OPTIONS"),                                // 19
    (":method", "POST"),                                   // 20
    (":method", "PUT"),                                    // 21
    (":scheme", "http"),                                   // 22
    (":scheme", "https"),                                  // 23
    (":status", "103"),                                    // 24
    (":status", "200"),                                    // 25
    (":status", "304"),                                    // 26
    (":status", "404"),                                    // 27
    (":status", "503"),                                    // 28
    ("accept", "*/*"),                                     // 29
    ("accept", "application/dns-message"),                 // 30
    ("accept-encoding", "gzip, deflate, br"),              // 31
    ("accept-ranges", "bytes"),                            // 32
    ("access-control-allow-headers", "cache-control"),     // 33
    ("access-control-allow-headers", "content-type"),      // 34
    ("access-control-allow-origin", "*"),                  // 35
    ("cache-control", "max-age=0"),                        // 36
    ("cache-control", "max-age=2592000"),                  // 37
    ("cache-control", "max-age=604800"),                   // 38
    ("cache-control", "no-cache"),                         // 39
    ("cache-control", "no-store"),                         // 40
    ("cache-control", "public, max-age=31536000"),         // 41
    ("content-encoding", "br"),                            // 42
    ("content-encoding", "gzip"),                          // 43
    ("content-type", "application/dns-message"),           // 44
    ("content-type", "application/javascript"),            // 45
    ("content-type", "application/json"),                  // 46
    ("content-type", "application/x-www-form-urlencoded"), // 47
    ("content-type", "image/gif"),                         // 48
    ("content-type", "image/jpeg"),                        // 49
    ("content-type", "image/png"),                         // 50
    ("content-type", "text/css"),                          // 51
    ("content-type", "text/html; charset=utf-8"),          // 52
    ("content-type", "text/plain"),                        // 53
    ("content-type", "text/plain;charset=utf-8"),          // 54
    ("range", "bytes=0-"),                                 // 55
    ("strict-transport-security", "max-age=31536000"),     // 56
    (
        "strict-transport-security",
        "max-age=31536000; includesubdomains",
    ), // 57
    (
        "strict-transport-security",
        "max-age=31536000; includesubdomains; preload",
    ), // 58
    ("vary", "accept-encoding"),                           // 59
    ("vary", "origin"),                                    // 60
    ("x-content-type-options", "nosniff"),                 // 61
    ("x-xss-protection", "1; mode=block"),                 // 62
    (":status", "100"),                                    // 63
    (":status", "204"),                                    // 64
    (":status", "206"),                                    // 65
    (":status", "302"),                                    // 66
    (":status", "400"),                                    // 67
    (":status", "403"),                                    // 68
    (":status", "421"),                                    // 69
    (":status", "425"),                                    // 70
    (":status", "500"),                                    // 71
    ("accept-language", ""),                               // 72
    ("access-control-allow-credentials", "FALSE"),         // 73
    ("access-control-allow-credentials", "TRUE"),          // 74
    ("access-control-allow-headers", "*"),                 // 75
    ("access-control-allow-methods", "get"),               // 76
    ("access-control-allow-methods", "get, post, options"), // 77
    ("access-control-allow-methods", "options"),           // 78
    ("access-control-expose-headers", "content-length"),   // 79
    ("access-control-request-headers", "content-type"),    // 80
    ("access-control-request-method", "get"),              // 81
    ("access-control-request-method", "post"),             // 82
    ("alt-svc", "clear"),                                  // 83
    ("authorization", ""),                                 // 84
    (
        "content-security-policy",
        "script-src 'none'; object-src 'none'; base-uri 'none'",
    ), // 85
    ("early-data", "1"),                                   // 86
    ("expect-ct", ""),                                     // 87
    ("forwarded", ""),                                     // 88
    ("if-range", ""),                                      // 89
    ("origin", ""),                                        // 90
    ("purpose", "prefetch"),                               // 91
    ("server", ""),                                        // 92
    ("timing-allow-origin", "*"),                          // 93
    ("upgrade-insecure-requests", "1"),                    // 94
    ("user-agent", ""),                                    // 95
    ("x-forwarded-for", ""),                               // 96
    ("x-frame-options", "deny"),                           // 97
    ("x-frame-options", "sameorigin"),                     // 98
];

/// The static table's entries with `name`, in order.
fn entries(name: &[u8]) -> &'static [u8] {
    match name {
        b":authority" => &[0],
        b":path" => &[1],
        b"age" => &[2],
        b"content-disposition" => &[3],
        b"content-length" => &[4],
        b"cookie" => &[5],
        b"date" => &[6],
        b"etag" => &[7],
        b"if-modified-since" => &[8],
        b"if-none-match" => &[9],
        b"last-modified" => &[10],
        b"link" => &[11],
        b"location" => &[12],
        b"referer" => &[13],
        b"set-cookie" => &[14],
        b":method" => &[15, 16, 17, 18, 19, 20, 21],
        b":scheme" => &[22, 23],
        b":status" => &[24, 25, 26, 27, 28, 63, 64, 65, 66, 67, 68, 69, 70, 71],
        b"accept" => &[29, 30],
        b"accept-encoding" => &[31],
        b"accept-ranges" => &[32],
        b"access-control-allow-headers" => &[33, 34, 75],
        b"access-control-allow-origin" => &[35],
        b"cache-control" => &[36, 37, 38, 39, 40, 41],
        b"content-encoding" => &[42, 43],
        b"content-type" => &[44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54],
        b"range" => &[55],
        b"strict-transport-security" => &[56, 57, 58],
        b"vary" => &[59, 60],
        b"x-content-type-options" => &[61],
        b"x-xss-protection" => &[62],
        b"accept-language" => &[72],
        b"access-control-allow-credentials" => &[73, 74],
        b"access-control-allow-methods" => &[76, 77, 78],
        b"access-control-expose-headers" => &[79],
        b"access-control-request-headers" => &[80],
        b"access-control-request-method" => &[81, 82],
        b"alt-svc" => &[83],
        b"authorization" => &[84],
        b"content-security-policy" => &[85],
        b"early-data" => &[86],
        b"expect-ct" => &[87],
        b"forwarded" => &[88],
        b"if-range" => &[89],
        b"origin" => &[90],
        b"purpose" => &[91],
        b"server" => &[92],
        b"timing-allow-origin" => &[93],
        b"upgrade-insecure-requests" => &[94],
        b"user-agent" => &[95],
        b"x-forwarded-for" => &[96],
        b"x-frame-options" => &[97, 98],
        _ => &[],
    }
}
