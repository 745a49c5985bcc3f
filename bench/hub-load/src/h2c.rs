//! Event streams over HTTP/2 (cleartext, prior knowledge), read by one task per
//! connection: the connection's bytes are read in large chunks and each DATA payload
//! goes straight to its stream's SSE parser.
//!
//! Why not the `h2` crate: it wakes a task per stream for every DATA frame, and with
//! 10,000 streams at 100 messages/s (a million events a second) that took this
//! process's whole CPU, so the fan-out benchmark measured the client. This is just
//! enough of RFC 9113 for event streams: GET requests without bodies, flow control
//! given back in batches, SETTINGS and PING acknowledged. Response heads are not
//! HPACK-decoded: a response must begin with `:status: 200` from the static table
//! (0x88, RFC 7541 §6.1, as wharf encodes it); anything else fails the stream, so a
//! head that cannot be checked is reported, never taken for a 200.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::{open, proto, sse_feed, Cfg, Kind, Rec};

/// The smallest MAX_CONCURRENT_STREAMS any server connection announced.
pub static SERVER_MAX_STREAMS: AtomicU64 = AtomicU64::new(u64::MAX);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE).
const STREAM_WINDOW: u32 = 1 << 20;
/// The connection's receive window.
const CONNECTION_WINDOW: u32 = 64 << 20;
/// Flow-control credit is given back once a stream, or the connection, has this much.
const STREAM_RELEASE: u32 = 8 << 10;
const CONNECTION_RELEASE: u32 = 1 << 20;
/// `:status: 200`, entry 8 of HPACK's static table, indexed.
const STATUS_200: u8 = 0x88;

struct Stream {
    rec: Rec,
    sse: proto::Sse,
    unreleased: u32,
    answered: bool,
    failed: bool,
}

impl Stream {
    fn fail(&mut self, why: String) {
        if !self.failed {
            self.failed = true;
            self.rec = std::mem::replace(&mut self.rec, Rec::new(Kind::SseH2)).fail(why);
        }
    }
}

/// Connection `idx` with `n` event streams on the channel, read until `stop`; one
/// record per stream.
pub async fn connection(cfg: Arc<Cfg>, idx: usize, n: usize, mut stop: watch::Receiver<bool>) -> Vec<Rec> {
    let mut streams: Vec<Stream> = (0..n)
        .map(|_| Stream { rec: Rec::new(Kind::SseH2), sse: proto::Sse::default(), unreleased: 0, answered: false, failed: false })
        .collect();
    let tcp = match tokio::time::timeout(cfg.handshake_timeout, open_streams(&cfg, idx, n)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return fail_all(streams, format!("HTTP/2 connection {idx}: {e}")),
        Err(_) => return fail_all(streams, format!("HTTP/2 connection {idx}: no SETTINGS in time")),
    };
    let (mut tcp, mut buf) = tcp;
    let mut out = Vec::new();
    let mut connection_unreleased = 0;
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let mut pos = 0;
        while let Some((kind, flags, id, payload)) = frame(&buf[pos..]) {
            let len = 9 + payload.len();
            match kind {
                DATA | HEADERS | RST_STREAM if id % 2 == 1 && ((id as usize - 1) / 2) < n => {
                    let s = &mut streams[(id as usize - 1) / 2];
                    match kind {
                        DATA => {
                            let size = payload.len() as u32;
                            s.unreleased += size;
                            connection_unreleased += size;
                            if s.unreleased >= STREAM_RELEASE {
                                window_update(&mut out, id, std::mem::take(&mut s.unreleased));
                            }
                            if !s.failed {
                                sse_feed(&mut s.rec, &mut s.sse, unpad(payload, flags, 0));
                            }
                            if flags & END_STREAM != 0 {
                                s.fail("h2 stream: the server ended it".into());
                            }
                        }
                        HEADERS if !s.answered => {
                            s.answered = true;
                            let extra = if flags & PRIORITY != 0 { 5 } else { 0 };
                            match unpad(payload, flags, extra).first() {
                                Some(&STATUS_200) => s.rec.set_ready(),
                                first => s.fail(format!("h2 stream: a response not starting with :status 200 (first byte {first:?})")),
                            }
                        }
                        HEADERS => {}
                        _ => s.fail(format!("h2 stream: RST_STREAM {}", be32(payload))),
                    }
                    if kind == HEADERS && flags & END_STREAM != 0 {
                        s.fail("h2 stream: the server ended it".into());
                    }
                }
                SETTINGS if flags & ACK == 0 => frame_head(&mut out, 0, SETTINGS, ACK, 0),
                PING if flags & ACK == 0 => {
                    frame_head(&mut out, 8, PING, ACK, 0);
                    out.extend_from_slice(payload);
                }
                GOAWAY => {
                    let why = format!("h2 stream: GOAWAY {}", payload.get(4..8).map_or(0, be32));
                    return fail_all(streams, why);
                }
                _ => {}
            }
            pos += len;
        }
        buf.drain(..pos);
        if connection_unreleased >= CONNECTION_RELEASE {
            window_update(&mut out, 0, std::mem::take(&mut connection_unreleased));
        }
        if !out.is_empty() {
            if let Err(e) = tcp.write_all(&out).await {
                return fail_all(streams, format!("h2 connection {idx}: write: {e}"));
            }
            out.clear();
        }
        let read = tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = tcp.read_buf(&mut buf) => r,
        };
        match read {
            Ok(0) => return fail_all(streams, format!("h2 connection {idx}: closed by the server")),
            Ok(_) => {}
            Err(e) => return fail_all(streams, format!("h2 connection {idx}: read: {e}")),
        }
    }
    if cfg.cancel_streams {
        for i in 0..n {
            frame_head(&mut out, 4, RST_STREAM, 0, stream_id(i));
            out.extend_from_slice(&0x8u32.to_be_bytes()); // CANCEL
        }
        let _ = tcp.write_all(&out).await;
    } else {
        // Closing thousands of streams at once is the server's to see when the process
        // exits, as with a browser that goes away.
        std::mem::forget(tcp);
    }
    streams.into_iter().map(|s| s.rec).collect()
}

/// Connects, exchanges SETTINGS, checks the server allows `n` streams, and sends the
/// `n` requests. Returns the connection and what was read past the server's SETTINGS.
async fn open_streams(cfg: &Cfg, idx: usize, n: usize) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let mut tcp = open(cfg, idx).await?;
    let mut out = PREFACE.to_vec();
    frame_head(&mut out, 12, SETTINGS, 0, 0);
    out.extend_from_slice(&[0, 2, 0, 0, 0, 0]); // ENABLE_PUSH 0
    out.extend_from_slice(&[0, 4]);
    out.extend_from_slice(&STREAM_WINDOW.to_be_bytes());
    window_update(&mut out, 0, CONNECTION_WINDOW - 65_535);
    tcp.write_all(&out).await?;
    let mut buf = Vec::with_capacity(256 << 10);
    let max_streams = loop {
        if let Some((SETTINGS, 0, 0, payload)) = frame(&buf) {
            let max = payload.chunks_exact(6).filter(|s| s[..2] == [0, 3]).map(|s| be32(&s[2..]) as u64).last();
            let len = 9 + payload.len();
            buf.drain(..len);
            break max.unwrap_or(u64::MAX);
        }
        if tcp.read_buf(&mut buf).await? == 0 {
            return Err(crate::err("closed before its SETTINGS"));
        }
    };
    SERVER_MAX_STREAMS.fetch_min(max_streams, Relaxed);
    if max_streams < n as u64 {
        return Err(crate::err(format!(
            "the server allows {max_streams} concurrent streams, {n} are needed: raise wharf's \
             limits.max_concurrent_streams (or use more --h2-connections)"
        )));
    }
    let mut out = Vec::with_capacity(n * 64);
    frame_head(&mut out, 0, SETTINGS, ACK, 0);
    // Every request's head is the same block (literals, no table state).
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    literal(&mut block, 0x04, &format!("/hub/{}", cfg.channel)); // :path
    literal(&mut block, 0x01, &cfg.host); // :authority
    block.extend_from_slice(&[0x0f, 0x04]); // accept (static entry 19)
    push_string(&mut block, "text/event-stream");
    for i in 0..n {
        frame_head(&mut out, block.len(), HEADERS, END_STREAM | 0x4, stream_id(i));
        out.extend_from_slice(&block);
    }
    tcp.write_all(&out).await?;
    Ok((tcp, buf))
}

fn fail_all(streams: Vec<Stream>, why: String) -> Vec<Rec> {
    eprintln!("hub-load: {why}");
    streams
        .into_iter()
        .map(|mut s| {
            s.fail(why.clone());
            s.rec
        })
        .collect()
}

/// The first whole frame of `buf`: type, flags, stream id, payload.
fn frame(buf: &[u8]) -> Option<(u8, u8, u32, &[u8])> {
    let head = buf.get(..9)?;
    let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
    let payload = buf.get(9..9 + len)?;
    Some((head[3], head[4], be32(&head[5..9]) & 0x7fff_ffff, payload))
}

/// A DATA or HEADERS payload without its padding and `extra` leading bytes.
fn unpad(payload: &[u8], flags: u8, extra: usize) -> &[u8] {
    let (start, pad) = match flags & PADDED != 0 {
        true => (1, payload.first().copied().unwrap_or(0) as usize),
        false => (0, 0),
    };
    payload.get(start + extra..payload.len().saturating_sub(pad)).unwrap_or(&[])
}

fn frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, id: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&id.to_be_bytes());
}

fn window_update(out: &mut Vec<u8>, id: u32, credit: u32) {
    frame_head(out, 4, WINDOW_UPDATE, 0, id);
    out.extend_from_slice(&credit.to_be_bytes());
}

/// A literal field without indexing whose name is static entry `name` (< 15).
fn literal(block: &mut Vec<u8>, name: u8, value: &str) {
    block.push(name);
    push_string(block, value);
}

/// An HPACK string, not Huffman-coded; values here are under 127 bytes.
fn push_string(block: &mut Vec<u8>, value: &str) {
    assert!(value.len() < 127, "a request field over 126 bytes: {value}");
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

fn stream_id(i: usize) -> u32 {
    2 * i as u32 + 1
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

