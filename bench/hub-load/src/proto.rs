//! The little of HTTP/1.1, chunked transfer coding, Server-Sent Events and
//! WebSocket (RFC 6455, client side) that hub-load needs, on raw byte buffers.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

pub fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// A response head.
pub struct Head {
    pub status: u16,
    /// (lower-cased name, value)
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers.iter().filter(|(n, _)| n == name).any(|(_, v)| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    }

    pub fn chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }
}

/// Reads more into `buf` (growing it when it is nearly full); 0 at end of stream.
pub async fn fill<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    s.read_buf(buf).await
}

/// Reads a response head; `buf` keeps what followed it. 1xx heads are skipped.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> io::Result<Head> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = parse_head(&buf[..end])?;
            buf.drain(..end + 4);
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            return Ok(head);
        }
        if buf.len() > 65536 {
            return Err(err("response head over 64 KiB"));
        }
        if fill(s, buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response head",
            ));
        }
    }
}

fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(raw).map_err(|_| err("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(err(format!("not an HTTP/1.x response: {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Head { status, headers })
}

/// Reads the body of a response with `head` (Content-Length, chunked, or to the end
/// of the stream); `buf` keeps what followed it.
pub async fn read_body<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    head: &Head,
) -> io::Result<Vec<u8>> {
    if head.status == 204 || head.status == 304 {
        return Ok(Vec::new());
    }
    if head.chunked() {
        let mut dec = Chunked::default();
        let mut out = Vec::new();
        loop {
            let used = dec.feed(buf, &mut out)?;
            buf.drain(..used);
            if dec.done() {
                return Ok(out);
            }
            if fill(s, buf).await? == 0 {
                return Err(err("connection closed inside a chunked body"));
            }
        }
    }
    if let Some(len) = head.get("content-length") {
        let len: usize = len.parse().map_err(|_| err("bad Content-Length"))?;
        while buf.len() < len {
            if fill(s, buf).await? == 0 {
                return Err(err("connection closed inside a body"));
            }
        }
        return Ok(buf.drain(..len).collect());
    }
    while fill(s, buf).await? != 0 {}
    Ok(std::mem::take(buf))
}

/// A chunked transfer-coding decoder that can be fed any slicing of the input.
#[derive(Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

impl Chunked {
    pub fn done(&self) -> bool {
        matches!(self.state, ChunkState::Done)
    }

    /// Decodes what it can of `input` into `out`; returns how many bytes it used.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut i = 0;
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(p) = find(&input[i..], b"\r\n") else {
                        if input.len() - i > 1024 {
                            return Err(err("chunk-size line over 1 KiB"));
                        }
                        return Ok(i);
                    };
                    let line = std::str::from_utf8(&input[i..i + p])
                        .map_err(|_| err("bad chunk-size line"))?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let n = usize::from_str_radix(hex, 16)
                        .map_err(|_| err(format!("bad chunk size {hex:?}")))?;
                    i += p + 2;
                    self.state = if n == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(n)
                    };
                }
                ChunkState::Data(n) => {
                    let take = n.min(input.len() - i);
                    if take == 0 {
                        return Ok(i);
                    }
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.state = if take == n {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(n - take)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() - i < 2 {
                        return Ok(i);
                    }
                    if &input[i..i + 2] != b"\r\n" {
                        return Err(err("chunk data not followed by CRLF"));
                    }
                    i += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(p) = find(&input[i..], b"\r\n") else {
                        return Ok(i);
                    };
                    i += p + 2;
                    if p == 0 {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(i),
            }
        }
    }
}

/// What an event stream carries, as far as hub-load cares.
pub enum SseEvent<'a> {
    /// The data of an ordinary event (one hub message's JSON object).
    Data(&'a [u8]),
    /// An event named `missed`: ids lost before the client got them.
    Missed,
    /// The `retry:` field the stream opens with, or a comment (heartbeat).
    Other,
}

/// A Server-Sent Events line parser (lines end with LF; CR LF and CR alone are
/// not used by wharf and not handled).
#[derive(Default)]
pub struct Sse {
    acc: Vec<u8>,
    missed: bool,
}

impl Sse {
    pub fn feed(&mut self, data: &[u8], mut on: impl FnMut(SseEvent<'_>)) {
        let mut start = 0;
        // Most reads carry whole events: parse in place when nothing is pending.
        let (buf, from_acc) = if self.acc.is_empty() {
            (data, false)
        } else {
            self.acc.extend_from_slice(data);
            (&self.acc[..], true)
        };
        while let Some(p) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + p];
            start += p + 1;
            if line.is_empty() {
                self.missed = false;
            } else if let Some(d) = line.strip_prefix(b"data:") {
                let d = d.strip_prefix(b" ").unwrap_or(d);
                on(if self.missed {
                    SseEvent::Missed
                } else {
                    SseEvent::Data(d)
                });
            } else if let Some(e) = line.strip_prefix(b"event:") {
                self.missed = e.trim_ascii() == b"missed";
            } else if line.starts_with(b"id:") {
                // The id is in the data too.
            } else {
                on(SseEvent::Other);
            }
        }
        if from_acc {
            self.acc.drain(..start);
        } else {
            self.acc.extend_from_slice(&data[start..]);
        }
    }
}

/// One frame found at the start of a buffer.
pub struct WsFrame {
    pub fin: bool,
    pub opcode: u8,
    /// The payload's range in the buffer.
    pub payload: std::ops::Range<usize>,
    /// Header + payload length.
    pub len: usize,
}

/// The first frame of `buf`, if it is all there. Server frames must not be masked.
pub fn ws_frame(buf: &[u8]) -> io::Result<Option<WsFrame>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b1 & 0x80 != 0 {
        return Err(err("the server sent a masked frame"));
    }
    let (hl, plen) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (10, u64::from_be_bytes(b) as usize)
        }
        n => (2, n as usize),
    };
    if plen > 64 << 20 {
        return Err(err("frame over 64 MiB"));
    }
    if buf.len() < hl + plen {
        return Ok(None);
    }
    Ok(Some(WsFrame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload: hl..hl + plen,
        len: hl + plen,
    }))
}

/// A masked client frame (FIN set) with `payload`.
pub fn ws_client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { B64[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { B64[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Sec-WebSocket-Accept for `key` (RFC 6455 §4.2.2).
pub fn ws_accept(key: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(ws_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn chunked_any_split() {
        let wire = b"5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let mut dec = Chunked::default();
            let mut out = Vec::new();
            let mut buf = wire[..split].to_vec();
            let used = dec.feed(&buf, &mut out).unwrap();
            buf.drain(..used);
            buf.extend_from_slice(&wire[split..]);
            let used = dec.feed(&buf, &mut out).unwrap();
            assert!(dec.done());
            assert_eq!(out, b"hello world");
            assert_eq!(&buf[used..], b"NEXT");
        }
    }

    #[test]
    fn sse_lines_across_reads() {
        let wire = b"retry: 2000\n\nid: 1\ndata: {\"a\":1}\n\nevent: missed\ndata: {}\n\n: heartbeat\n\nid: 2\ndata: {\"b\":2}\n\n";
        for split in 0..wire.len() {
            let mut sse = Sse::default();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                sse.feed(part, |e| {
                    got.push(match e {
                        SseEvent::Data(d) => String::from_utf8(d.to_vec()).unwrap(),
                        SseEvent::Missed => "missed".into(),
                        SseEvent::Other => "other".into(),
                    })
                });
            }
            assert_eq!(got, ["other", "{\"a\":1}", "missed", "other", "{\"b\":2}"]);
        }
    }

    #[test]
    fn frames() {
        let mut wire = vec![0x81, 3, b'a', b'b', b'c', 0x89, 126, 0, 1, b'x'];
        let f = ws_frame(&wire).unwrap().unwrap();
        assert!(f.fin && f.opcode == 1 && &wire[f.payload.clone()] == b"abc");
        wire.drain(..f.len);
        let f = ws_frame(&wire).unwrap().unwrap();
        assert_eq!((f.opcode, f.len), (9, 5));
        assert!(ws_frame(&wire[..4]).unwrap().is_none());
        assert_eq!(find(b"xxabcab", b"ab"), Some(2));
        assert_eq!(find(b"xxabcab", b"abd"), None);
    }
}
