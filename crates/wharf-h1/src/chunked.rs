//! The chunked transfer coding (RFC 9112 §7.1), decoded sans-IO: request bodies for
//! the server, response bodies for the client.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! [`Decoder::decode`] takes whatever bytes have arrived and hands back how many it
//! used and where the chunk data among them is, so the caller copies data straight out
//! of its read buffer. Every unbounded part of the grammar is bounded: the size (16 hex
//! digits), a chunk line with its extensions, and the trailer section.

use std::ops::Range;

use http::HeaderMap;

/// The longest chunk-size line, extensions included, that is accepted.
const MAX_LINE: usize = 4096;

/// Where the decoder is in the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size {
        digits: u8,
    },
    /// Whitespace after the size: an extension must follow (BWS ";").
    SizeWs,
    /// After the size: extensions (ignored) up to the line's end.
    Ext,
    /// The LF of a chunk line.
    SizeLf,
    /// Chunk data still to come.
    Data(u64),
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// Trailer section lines; `at_line_start` tells an empty line (the end).
    Trailer {
        at_line_start: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// What one call made of the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used.
    pub used: usize,
    /// Chunk data within the used bytes, if any.
    pub data: Range<usize>,
}

/// The body is not validly chunked.
#[derive(Debug, PartialEq, Eq)]
pub struct BadChunk(pub &'static str);

/// A chunked-body decoder.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    size: u64,
    /// Bytes of the current chunk line, or of the trailer section.
    line: usize,
    max_trailer: usize,
    /// The raw trailer section, kept for the service.
    trailer: Vec<u8>,
}

impl Decoder {
    /// A decoder whose trailer section may hold `max_trailer` bytes.
    pub fn new(max_trailer: usize) -> Self {
        Decoder {
            state: State::Size { digits: 0 },
            size: 0,
            line: 0,
            max_trailer,
            trailer: Vec::new(),
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer section read so far (field lines, each ending in CRLF).
    pub fn take_trailer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.trailer)
    }

    /// Decodes from the start of `input`: stops after a run of chunk data, at the end
    /// of the body, or when the input is used up.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, BadChunk> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => match hex(b) {
                    Some(d) if digits < 16 => {
                        self.size = self.size << 4 | u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                    }
                    Some(_) => return Err(BadChunk("chunk size too large")),
                    None if digits == 0 => return Err(BadChunk("chunk size expected")),
                    // §7.1: chunk-size [ chunk-ext ] CRLF, and (§7.1.1) an extension
                    // starts with BWS ";". Strict: a front end that read these lines
                    // differently could be made to disagree on where the body ends.
                    None => match b {
                        b';' => self.state = State::Ext,
                        b' ' | b'\t' => self.state = State::SizeWs,
                        b'\r' => self.state = State::SizeLf,
                        _ => return Err(BadChunk("invalid chunk size")),
                    },
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::Ext,
                    _ => return Err(BadChunk("invalid chunk size")),
                },
                State::Ext => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\t' | b' '..=b'~' | 0x80.. => {}
                    _ => return Err(BadChunk("invalid chunk extension")),
                },
                State::SizeLf if b == b'\n' => self.chunk_line_done(),
                State::SizeLf => return Err(BadChunk("CR without LF in chunk line")),
                State::Data(left) => {
                    let n = left.min((input.len() - i) as u64) as usize;
                    self.state = match left - n as u64 {
                        0 => State::DataCr,
                        rest => State::Data(rest),
                    };
                    return Ok(Decoded {
                        used: i + n,
                        data: i..i + n,
                    });
                }
                State::DataCr if b == b'\r' => self.state = State::DataLf,
                State::DataLf if b == b'\n' => self.next_chunk(),
                State::DataCr | State::DataLf => {
                    return Err(BadChunk("chunk data not followed by CRLF"))
                }
                State::Trailer { at_line_start } => {
                    self.line += 1;
                    if self.line > self.max_trailer {
                        return Err(BadChunk("trailer section too large"));
                    }
                    match b {
                        b'\r' => {
                            self.state = State::TrailerLf {
                                empty: at_line_start,
                            }
                        }
                        b'\n' => self.trailer_line_done(at_line_start),
                        _ => {
                            self.trailer.push(b);
                            self.state = State::Trailer {
                                at_line_start: false,
                            };
                        }
                    }
                }
                State::TrailerLf { empty } if b == b'\n' => self.trailer_line_done(empty),
                State::TrailerLf { .. } => return Err(BadChunk("CR without LF in trailer")),
                State::Done => break,
            }
            if matches!(
                self.state,
                State::Size { .. } | State::SizeWs | State::Ext | State::SizeLf
            ) {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(BadChunk("chunk line too long"));
                }
            }
            i += 1;
            if self.state == State::Done {
                break;
            }
        }
        Ok(Decoded {
            used: i,
            data: i..i,
        })
    }

    fn chunk_line_done(&mut self) {
        self.line = 0;
        self.state = match self.size {
            0 => State::Trailer {
                at_line_start: true,
            },
            n => State::Data(n),
        };
    }

    fn next_chunk(&mut self) {
        self.size = 0;
        self.state = State::Size { digits: 0 };
    }

    fn trailer_line_done(&mut self, empty: bool) {
        if empty {
            self.state = State::Done;
        } else {
            self.trailer.extend_from_slice(b"\r\n");
            self.state = State::Trailer {
                at_line_start: true,
            };
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The line that starts a chunk of `len` bytes.
pub fn chunk_start(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with the trailer section when there is one.
pub fn last_chunk(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    if let Some(trailers) = trailers {
        crate::framing::all_fields(out, trailers);
    }
    out.extend_from_slice(b"\r\n");
}

/// The trailer section of a chunked body ([`Decoder::take_trailer`]) as fields
/// (RFC 9112 §7.1.2), or `None` when it is empty; at most `max_fields` fields.
pub fn trailer_fields(raw: &[u8], max_fields: usize) -> Result<Option<HeaderMap>, &'static str> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut section = raw.to_vec();
    section.extend_from_slice(b"\r\n");
    let mut fields = vec![httparse::EMPTY_HEADER; max_fields];
    match httparse::parse_headers(&section, &mut fields) {
        Ok(httparse::Status::Complete((_, parsed))) => {
            crate::framing::header_map(parsed, &crate::framing::Section::new(&section))
                .map(|(fields, _)| Some(fields))
        }
        Err(httparse::Error::TooManyHeaders) => Err("too many fields"),
        _ => Err("malformed field"),
    }
}

/// Feeds `pieces` to `d` one after another, as a connection's reads would: the data
/// decoded and the bytes left after the body's end. The property the fuzz target and
/// the tests check: what the decoder reports stays within its input.
#[cfg(any(test, fuzzing))]
fn feed<'a>(
    d: &mut Decoder,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(Vec<u8>, Vec<u8>), BadChunk> {
    let (mut data, mut pending) = (Vec::new(), Vec::new());
    for piece in pieces {
        pending.extend_from_slice(piece);
        while !pending.is_empty() && !d.is_done() {
            let out = d.decode(&pending)?;
            assert!(
                out.data.end <= out.used && out.used <= pending.len(),
                "{pending:?}"
            );
            data.extend_from_slice(&pending[out.data]);
            pending.drain(..out.used);
        }
    }
    Ok((data, pending))
}

/// The fuzz target's entry: arbitrary bytes as one chunked body.
#[cfg(fuzzing)]
pub fn fuzz(data: &[u8]) {
    let _ = feed(&mut Decoder::new(1024), [data]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn chunk_lines() {
        for (len, want) in [(0, "0\r\n"), (10, "a\r\n"), (4096, "1000\r\n")] {
            let mut out = Vec::new();
            chunk_start(&mut out, len);
            assert_eq!(out, want.as_bytes());
        }
        let mut t = HeaderMap::new();
        t.insert("x-sum", http::HeaderValue::from_static("1"));
        let mut out = Vec::new();
        last_chunk(&mut out, Some(&t));
        assert_eq!(out, b"0\r\nx-sum: 1\r\n\r\n");
    }

    /// Decodes `input` fed `step` bytes at a time: the data, the raw trailer section,
    /// or the error.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), BadChunk> {
        let mut d = Decoder::new(64);
        let (data, _) = feed(&mut d, input.chunks(step))?;
        if !d.is_done() {
            return Err(BadChunk("incomplete"));
        }
        Ok((data, d.take_trailer()))
    }

    #[test]
    fn chunked_bodies() {
        type Want = Result<(&'static str, &'static str), &'static str>;
        // (body, data, trailer) — RFC 9112 §7.1
        let table: &[(&str, Want)] = &[
            ("0\r\n\r\n", Ok(("", ""))),
            ("5\r\nhello\r\n0\r\n\r\n", Ok(("hello", ""))),
            ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", Ok(("hello world", ""))),
            ("A\r\n0123456789\r\n0\r\n\r\n", Ok(("0123456789", ""))),
            ("a\r\n0123456789\r\n000\r\n\r\n", Ok(("0123456789", ""))),
            // §7.1.1 extensions are ignored
            ("5;name=val;x\r\nhello\r\n0;y\r\n\r\n", Ok(("hello", ""))),
            // §7.1.2 trailer section
            ("1\r\nx\r\n0\r\nA: b\r\nC: d\r\n\r\n", Ok(("x", "A: b\r\nC: d\r\n"))),
            // §7.1: chunk lines and data end in CRLF; a bare LF is refused
            ("1\nx\r\n0\r\n\r\n", Err("invalid chunk size")),
            ("1\r\nx\n0\r\n\r\n", Err("chunk data not followed by CRLF")),
            ("1;a\nx\r\n0\r\n\r\n", Err("invalid chunk extension")),
            ("1;a\0\r\nx\r\n0\r\n\r\n", Err("invalid chunk extension")),
            ("5 x\r\nhello\r\n0\r\n\r\n", Err("invalid chunk size")),
            // trailer fields, like header fields, may end in a bare LF (RFC 9112 §2.2)
            ("1\r\nx\r\n0\r\nA: b\n\n", Ok(("x", "A: b\r\n"))),
            ("\r\n", Err("chunk size expected")),
            ("x\r\n", Err("chunk size expected")),
            ("5x\r\nhello\r\n0\r\n\r\n", Err("invalid chunk size")),
            ("5 ;a\r\nhello\r\n0\r\n\r\n", Ok(("hello", ""))),
            ("1\rx", Err("CR without LF in chunk line")),
            ("1\r\nx\r\r", Err("chunk data not followed by CRLF")),
            ("1\r\nxy", Err("chunk data not followed by CRLF")),
            ("11111111111111111\r\n", Err("chunk size too large")),
            ("0\r\nA: b\r\n", Err("incomplete")),
            ("5\r\nhel", Err("incomplete")),
            (
                "0\r\nA: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
                Err("trailer section too large"),
            ),
        ];
        for (body, want) in table {
            for step in [1, 3, body.len()] {
                let got = decode_all(body.as_bytes(), step)
                    .map(|(d, t)| (String::from_utf8(d).unwrap(), String::from_utf8(t).unwrap()));
                let want = want
                    .map(|(d, t)| (d.to_owned(), t.to_owned()))
                    .map_err(BadChunk);
                assert_eq!(got, want, "{body:?} in pieces of {step}");
            }
        }
    }

    #[test]
    fn long_extensions_are_refused() {
        let line = format!("1;{}\r\n", "e".repeat(MAX_LINE));
        assert_eq!(
            decode_all(line.as_bytes(), 512),
            Err(BadChunk("chunk line too long"))
        );
    }

    #[test]
    fn bytes_after_the_end_are_left() {
        let mut d = Decoder::new(64);
        let input = b"0\r\n\r\nGET / HTTP/1.1\r\n";
        let out = d.decode(input).unwrap();
        assert!(d.is_done());
        assert_eq!(&input[out.used..], b"GET / HTTP/1.1\r\n");
    }

    use crate::arbitrary::{Rng, TCHAR, VCHAR};

    /// `data` in the chunked coding: random chunk sizes, extensions and a trailer
    /// section; returns the encoding and the raw trailer the decoder should keep.
    fn encode(rng: &mut Rng, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(300));
            let size = if rng.below(2) == 0 {
                format!("{n:x}")
            } else {
                format!("{n:X}")
            };
            out.extend_from_slice(size.as_bytes());
            if rng.below(4) == 0 {
                out.extend_from_slice(b";ext=");
                let len = rng.below(10);
                out.extend_from_slice(&rng.string(TCHAR, len));
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\n");
        let mut trailer = Vec::new();
        for _ in 0..rng.below(3) {
            let name_len = 1 + rng.below(8);
            trailer.extend_from_slice(&rng.string(TCHAR, name_len));
            trailer.extend_from_slice(b": ");
            let value_len = rng.below(12);
            trailer.extend_from_slice(rng.string(VCHAR, value_len).trim_ascii());
            trailer.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&trailer);
        out.extend_from_slice(b"\r\n");
        (out, trailer)
    }

    #[test]
    fn property_any_chunking_in_any_pieces_decodes_to_the_data() {
        for seed in 0..3000 {
            let mut rng = Rng::new(seed);
            let len = rng.below(2000);
            let data = rng.noise(len);
            let (mut wire, trailer) = encode(&mut rng, &data);
            let after = b"GET / HTTP/1.1\r\n";
            wire.extend_from_slice(after);
            let mut left = &wire[..];
            let pieces: Vec<&[u8]> = (rng.pieces(wire.len()).into_iter())
                .map(|n| {
                    let (piece, rest) = left.split_at(n);
                    left = rest;
                    piece
                })
                .collect();
            let mut d = Decoder::new(1024);
            let (got, pending) =
                feed(&mut d, pieces).unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
            assert!(d.is_done(), "seed {seed}");
            assert_eq!(got, data, "seed {seed}");
            assert_eq!(d.take_trailer(), trailer, "seed {seed}");
            assert_eq!(
                pending, after,
                "seed {seed}: bytes after the body are left alone"
            );
        }
    }

    #[test]
    fn property_arbitrary_bytes_never_panic_and_stay_in_bounds() {
        for seed in 0..20000 {
            let mut rng = Rng::new(seed);
            let len = rng.below(300);
            let input = rng.noise(len);
            // `feed` asserts that every report stays within its input.
            let _ = feed(&mut Decoder::new(64), [&input[..]]);
        }
    }
}
