//! `ws-load`: the WebSocket echo load generator of bench/ws.
//!
//! ```text
//! ws-load --url ws://127.0.0.1:PORT/PATH [-c 100] [--size 64] [-d 10s] [--window 1]
//!         [--max-messages N] [--handshake-timeout 10s]
//! ```
//!
//! Each of `-c` connections is one task that opens a TCP connection (TCP_NODELAY) and
//! does the RFC 6455 client handshake itself (a random `Sec-WebSocket-Key`, the
//! `Sec-WebSocket-Accept` checked; no extension offered, so no permessage-deflate, no
//! `Origin`). When every connection is up, the clock starts for all of them: each keeps
//! `--window` binary messages of `--size` bytes in flight, and sends the next one when
//! an echo arrives. Every frame is masked with its own random key (xorshift64*, seeded
//! from the OS per connection); the masked bytes are the same random bytes in every
//! frame, so each message's payload (those bytes XOR its key) is new and sending costs
//! no masking pass (and from 2 KiB no copy either: `writev` of the header and those
//! bytes). All frames due after one read go out in one `write` / `writev`. Every echo is checked: one binary message (continuation
//! frames allowed), unmasked, exactly `--size` bytes; and the first echo and every 16th
//! on each connection byte for byte against what was sent. Pings from the
//! server are answered. At the end of `-d` (or when `--max-messages` echoes have arrived
//! over all connections) each connection stops sending, sends a Close (1000), reads until
//! the server's Close (at most 2 s) and shuts down.
//!
//! Prints one JSON line on stdout:
//! `{"messages": N, "seconds": S, "rate": N/S, "errors": E, "p50_us": .., "p99_us": .., ...}`
//! where messages are the echoes received in the measured time, seconds the measured
//! time (handshakes not included), latency the time from a message's write to its
//! echo's arrival, and errors every connection that failed to connect or handshake, and
//! every protocol error or wrong echo (each ends its connection). The first few errors
//! are described on stderr.
//!
//! Only loopback addresses are accepted (127.0.0.0/8, ::1, or a name that resolves to
//! those alone). Reusable buffers per connection: no allocation per message.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::Histogram;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, timeout_at, Instant};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_CONNECTIONS: usize = 20_000;
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Every echo's length and framing is checked; its bytes, for the first echo and every
/// this-many-th on each connection (comparing every 16 KiB echo cost ws-load 7-14 % of
/// its CPU, and pinned, ws-load's one CPU is the limit against the fastest servers).
const CHECK_BYTES_EVERY: u64 = 16;
/// Errors described on stderr; the rest are only counted.
const MAX_REPORTED: u64 = 5;

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

struct Args {
    host: String,
    port: u16,
    path: String,
    connections: usize,
    size: usize,
    duration: Duration,
    window: usize,
    max_messages: u64,
    handshake_timeout: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!("ws-load: {msg}");
    eprintln!(
        "usage: ws-load --url ws://127.0.0.1:PORT/PATH [-c 100] [--size 64] [-d 10s] \
         [--window 1] [--max-messages 100000000] [--handshake-timeout 10s]"
    );
    exit(2);
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

fn parse_args() -> Args {
    let mut url = None;
    let mut a = Args {
        host: String::new(),
        port: 0,
        path: String::new(),
        connections: 100,
        size: 64,
        duration: Duration::from_secs(10),
        window: 1,
        max_messages: 100_000_000,
        handshake_timeout: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            usage("help");
        }
        let Some(value) = it.next() else { usage(&format!("{flag} needs a value")) };
        let num = |v: &str| -> u64 {
            v.replace('_', "").parse().unwrap_or_else(|_| usage(&format!("{flag} {v}: not a number")))
        };
        match flag.as_str() {
            "--url" | "-u" => url = Some(value),
            "-c" | "--connections" => a.connections = num(&value) as usize,
            "--size" | "-s" => a.size = num(&value) as usize,
            "-d" | "--duration" => {
                a.duration = parse_duration(&value).unwrap_or_else(|| usage(&format!("-d {value}")))
            }
            "--window" | "-w" => a.window = num(&value) as usize,
            "--max-messages" | "-n" => a.max_messages = num(&value),
            "--handshake-timeout" => {
                a.handshake_timeout = parse_duration(&value)
                    .unwrap_or_else(|| usage(&format!("--handshake-timeout {value}")))
            }
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is required"));
    let rest = url.strip_prefix("ws://").unwrap_or_else(|| usage("only ws:// URLs"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            (h, p.parse().unwrap_or_else(|_| usage(&format!("bad port in {url}"))))
        }
        _ => (authority, 80),
    };
    a.host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    a.port = port;
    a.path = path.to_string();
    if a.connections == 0 || a.connections > MAX_CONNECTIONS {
        usage(&format!("-c must be 1..={MAX_CONNECTIONS}"));
    }
    if a.window == 0 || a.window > 4096 {
        usage("--window must be 1..=4096");
    }
    if a.size > 64 << 20 {
        usage("--size at most 64 MiB");
    }
    if a.max_messages == 0 {
        usage("--max-messages must be at least 1");
    }
    a
}

/// xorshift64*: fast, and good enough for masking keys (RFC 6455 asks that they be
/// unpredictable to scripts in a browser; this is a benchmark client).
struct Rng(u64);

impl Rng {
    fn from_os() -> Rng {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("getrandom");
        Rng(u64::from_ne_bytes(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn mask(&mut self) -> [u8; 4] {
        ((self.next() >> 32) as u32).to_ne_bytes()
    }
}

/// The 4-byte `mask` repeated over 8 bytes.
fn mask8(mask: [u8; 4]) -> u64 {
    u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]])
}

/// Writes `src` XOR the repeated `mask` (from offset 0) into `dst`, 8 bytes at a time:
/// copying and masking in one pass.
fn copy_masked(dst: &mut [u8], src: &[u8], mask: [u8; 4]) {
    let m8 = mask8(mask);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let v = u64::from_ne_bytes(s.try_into().unwrap()) ^ m8;
        d.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, (d, s)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *d = s ^ mask[i & 3];
    }
}

/// Whether `echo` equals `wire` XOR the mask, where `echo` and `wire` start at offset
/// `off` of the message (the mask is applied from offset 0 of the message).
fn eq_unmasked(echo: &[u8], wire: &[u8], mask: [u8; 4], off: usize) -> bool {
    let rot = [mask[off & 3], mask[(off + 1) & 3], mask[(off + 2) & 3], mask[(off + 3) & 3]];
    let m8 = mask8(rot);
    let mut e = echo.chunks_exact(8);
    let mut w = wire.chunks_exact(8);
    for (e, w) in (&mut e).zip(&mut w) {
        if u64::from_ne_bytes(e.try_into().unwrap())
            != u64::from_ne_bytes(w.try_into().unwrap()) ^ m8
        {
            return false;
        }
    }
    e.remainder().iter().zip(w.remainder()).enumerate().all(|(i, (e, w))| *e == w ^ rot[i & 3])
}

/// Data frames of at least this size are written with `writev` from the connection's
/// one copy of the wire bytes (only their header goes into the write buffer); smaller
/// ones are copied into the buffer, which is then written with one `write`.
const VECTORED_MIN: usize = 2048;
/// `IoSlice`s per `writev` call.
const MAX_IOV: usize = 64;

/// A piece of what is to be written: bytes of the buffer, or the wire bytes.
#[derive(Clone, Copy)]
enum Seg {
    Buf(usize, usize),
    Wire,
}

/// The frames to write: a buffer that is reused (kept initialized, never shrunk), the
/// length of what it holds, and the pieces to write in order. Nothing is allocated per
/// message once the buffers have grown to a batch's size.
struct Out {
    buf: Vec<u8>,
    len: usize,
    segs: Vec<Seg>,
}

impl Out {
    fn new(buf: usize, segs: usize) -> Out {
        Out { buf: vec![0; buf], len: 0, segs: Vec::with_capacity(segs) }
    }

    fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    fn clear(&mut self) {
        self.len = 0;
        self.segs.clear();
    }

    /// Marks buf[from..self.len] as the next piece (merged with a buffer piece just
    /// before it).
    fn add_buf(&mut self, from: usize) {
        match self.segs.last_mut() {
            Some(Seg::Buf(_, end)) if *end == from => *end = self.len,
            _ => self.segs.push(Seg::Buf(from, self.len)),
        }
    }

    /// Appends one masked client frame (FIN set) carrying `payload`.
    fn push_frame(&mut self, opcode: u8, payload: &[u8], mask: [u8; 4]) {
        let from = self.len;
        let h = self.header(opcode, payload.len(), mask, payload.len());
        copy_masked(&mut self.buf[from + h..from + h + payload.len()], payload, mask);
        self.len += h + payload.len();
        self.add_buf(from);
    }

    /// Appends one binary client frame (FIN set) whose bytes on the wire, after the
    /// masking key `mask`, are `wire`: its payload is `wire` XOR the mask. With `wire`
    /// fixed and a new random mask per frame, each message is different and the
    /// sender never masks: it copies `wire` (small frames) or hands it to `writev`.
    fn push_wire_frame(&mut self, wire: &[u8], mask: [u8; 4]) {
        let from = self.len;
        if wire.len() >= VECTORED_MIN {
            self.len += self.header(OP_BINARY, wire.len(), mask, 0);
            self.add_buf(from);
            self.segs.push(Seg::Wire);
        } else {
            let h = self.header(OP_BINARY, wire.len(), mask, wire.len());
            self.buf[from + h..from + h + wire.len()].copy_from_slice(wire);
            self.len += h + wire.len();
            self.add_buf(from);
        }
    }

    /// Writes a masked frame's header and masking key at buf[len..], with room for
    /// `room` more bytes after it; returns the header's length.
    fn header(&mut self, opcode: u8, len: usize, mask: [u8; 4], room: usize) -> usize {
        let need = self.len + 14 + room;
        if need > self.buf.len() {
            self.buf.resize(need.max(2 * self.buf.len()), 0);
        }
        let b = &mut self.buf[self.len..];
        b[0] = 0x80 | opcode;
        let mut h = 2;
        if len < 126 {
            b[1] = 0x80 | len as u8;
        } else if len <= u16::MAX as usize {
            b[1] = 0x80 | 126;
            b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            h = 4;
        } else {
            b[1] = 0x80 | 127;
            b[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            h = 10;
        }
        b[h..h + 4].copy_from_slice(&mask);
        h + 4
    }

    fn seg<'a>(&'a self, s: Seg, wire: &'a [u8]) -> &'a [u8] {
        match s {
            Seg::Buf(a, b) => &self.buf[a..b],
            Seg::Wire => wire,
        }
    }

    /// Writes everything: one `write` when it is all in the buffer, else `writev`s.
    async fn write_to(&self, stream: &mut TcpStream, wire: &[u8]) -> io::Result<()> {
        if let [Seg::Buf(a, b)] = self.segs[..] {
            return stream.write_all(&self.buf[a..b]).await;
        }
        let (mut seg, mut off) = (0, 0);
        while seg < self.segs.len() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (i, &s) in self.segs[seg..].iter().take(MAX_IOV).enumerate() {
                let bytes = self.seg(s, wire);
                iov[i] = IoSlice::new(if i == 0 { &bytes[off..] } else { bytes });
                n += 1;
            }
            let mut written = stream.write_vectored(&iov[..n]).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let left = self.seg(self.segs[seg], wire).len() - off;
                if written >= left {
                    written -= left;
                    seg += 1;
                    off = 0;
                } else {
                    off += written;
                    written = 0;
                }
            }
        }
        Ok(())
    }
}

/// A complete frame at the start of a buffer: (fin, opcode, payload range, frame length).
struct Frame {
    fin: bool,
    opcode: u8,
    start: usize,
    len: usize,
}

/// Parses the frame at the start of `buf`: Ok(None) if it is not complete yet.
fn parse_frame(buf: &[u8], max_payload: usize) -> Result<Option<Frame>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(format!("RSV bits set in a server frame ({b0:#04x}): no extension was negotiated"));
    }
    if b1 & 0x80 != 0 {
        return Err("masked server frame".into());
    }
    let (len, header) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            (u64::from_be_bytes(buf[2..10].try_into().unwrap()), 10)
        }
        n => (n as u64, 2),
    };
    if len > max_payload as u64 {
        return Err(format!("server frame of {len} bytes, more than expected"));
    }
    let len = len as usize;
    if buf.len() < header + len {
        return Ok(None);
    }
    Ok(Some(Frame { fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, start: header, len }))
}

/// What one connection reports at its end.
struct ConnResult {
    messages: u64,
    errors: u64,
    /// When it stopped counting (the deadline, or its last echo when its share of
    /// --max-messages was done).
    end: Option<Instant>,
    hist: Histogram<u64>,
    connected: bool,
}

struct Shared {
    addr: SocketAddr,
    host_header: String,
    path: String,
    size: usize,
    window: usize,
    per_conn_max: u64,
    handshake_timeout: Duration,
    /// Errors described on stderr so far.
    reported: AtomicU64,
}

impl Shared {
    fn report(&self, conn: usize, what: &str) {
        if self.reported.fetch_add(1, Ordering::Relaxed) < MAX_REPORTED {
            eprintln!("ws-load: connection {conn}: {what}");
        }
    }
}

fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// TCP connect and the opening handshake. Returns the stream and whatever the server
/// sent after its 101 response (normally nothing).
async fn handshake(sh: &Shared, rng: &mut Rng) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect(sh.addr).await.map_err(|e| format!("connect {}: {e}", sh.addr))?;
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&rng.next().to_ne_bytes());
    nonce[8..].copy_from_slice(&rng.next().to_ne_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        sh.path, sh.host_header
    );
    stream.write_all(req.as_bytes()).await.map_err(|e| format!("write handshake: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err("handshake response longer than 16 KiB".into());
        }
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read handshake: {e}"))?;
        if n == 0 {
            return Err("connection closed during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake answered {status:?}"));
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            "connection" => {
                connection = value.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            }
            "sec-websocket-accept" => accept = Some(value.to_string()),
            "sec-websocket-extensions" => {
                return Err(format!("server chose extensions {value:?}, none were offered"))
            }
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err("101 without Upgrade: websocket / Connection: Upgrade".into());
    }
    if accept.as_deref() != Some(accept_key(&key).as_str()) {
        return Err(format!("wrong Sec-WebSocket-Accept {accept:?}"));
    }
    Ok((stream, buf.split_off(head_end)))
}

/// One connection from start to end. `ready` is told when its handshake is over
/// (whether it succeeded); `start` then gives the deadline.
async fn connection(
    id: usize,
    sh: Arc<Shared>,
    ready: mpsc::Sender<()>,
    mut start: watch::Receiver<Option<Instant>>,
) -> ConnResult {
    let mut res = ConnResult {
        messages: 0,
        errors: 0,
        end: None,
        hist: Histogram::new(3).unwrap(),
        connected: false,
    };
    let mut rng = Rng::from_os();
    let hs = timeout(sh.handshake_timeout, handshake(&sh, &mut rng)).await;
    let _ = ready.send(()).await;
    drop(ready);
    let (mut stream, early) = match hs {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            sh.report(id, &e);
            res.errors += 1;
            return res;
        }
        Err(_) => {
            sh.report(id, "handshake timed out");
            res.errors += 1;
            return res;
        }
    };
    res.connected = true;
    let deadline = match start.wait_for(|s| s.is_some()).await {
        Ok(s) => s.unwrap(),
        Err(_) => return res,
    };
    drop(start);

    let size = sh.size;
    // The bytes every data frame carries on the wire (see Out::push_wire_frame).
    let mut wire = vec![0u8; size];
    for chunk in wire.chunks_mut(8) {
        let r = rng.next().to_ne_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    // A frame header is at most 14 bytes (10 from a server, which does not mask).
    let cap = (64 * 1024).max(2 * (size + 14));
    let mut inbuf = vec![0u8; cap];
    inbuf[..early.len()].copy_from_slice(&early);
    let (mut pos, mut end) = (0usize, early.len());
    let mut out = Out::new(sh.window * (size.min(VECTORED_MIN) + 14) + 256, 2 * sh.window + 8);
    // The messages in flight, oldest first: when each was written, and its mask.
    let mut in_flight: VecDeque<(Instant, [u8; 4])> = VecDeque::with_capacity(sh.window);
    let mut in_msg = false; // in the middle of a fragmented echo
    let mut msg_len = 0usize;
    let mut check_bytes = true; // compare this echo's bytes with what was sent
    let mut sent = 0u64;

    let now = Instant::now();
    while in_flight.len() < sh.window && sent < sh.per_conn_max {
        let mask = rng.mask();
        out.push_wire_frame(&wire, mask);
        in_flight.push_back((now, mask));
        sent += 1;
    }
    let mut failed: Option<String> = None;
    let mut server_closed = false;
    if let Err(e) = out.write_to(&mut stream, &wire).await {
        failed = Some(format!("write: {e}"));
    }
    out.clear();

    // The measured phase.
    'run: while failed.is_none() {
        // Every complete frame in the buffer.
        let now = Instant::now();
        loop {
            let frame = match parse_frame(&inbuf[pos..end], cap - 14) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break 'run;
                }
            };
            let body = &inbuf[pos + frame.start..pos + frame.start + frame.len];
            pos += frame.start + frame.len;
            match frame.opcode {
                OP_BINARY | OP_CONT => {
                    if (frame.opcode == OP_CONT) != in_msg {
                        failed = Some(format!("unexpected opcode {:#x}", frame.opcode));
                        break 'run;
                    }
                    if !in_msg {
                        check_bytes = res.messages.is_multiple_of(CHECK_BYTES_EVERY);
                    }
                    if msg_len + body.len() > size {
                        failed = Some(format!(
                            "echo longer than the message sent (over {size} bytes)"
                        ));
                        break 'run;
                    }
                    let Some(&(_, mask)) = in_flight.front() else {
                        failed = Some("an echo of a message not sent".into());
                        break 'run;
                    };
                    if check_bytes
                        && !eq_unmasked(body, &wire[msg_len..msg_len + body.len()], mask, msg_len)
                    {
                        failed = Some("echo's bytes differ from the message sent".into());
                        break 'run;
                    }
                    msg_len += body.len();
                    in_msg = !frame.fin;
                    if frame.fin {
                        if msg_len != size {
                            failed = Some(format!("echo of {msg_len} bytes, sent {size}"));
                            break 'run;
                        }
                        msg_len = 0;
                        let (t, _) = in_flight.pop_front().expect("checked above");
                        res.messages += 1;
                        let us = now.saturating_duration_since(t).as_micros() as u64;
                        let _ = res.hist.record(us.max(1));
                        if sent < sh.per_conn_max {
                            let mask = rng.mask();
                            out.push_wire_frame(&wire, mask);
                            in_flight.push_back((now, mask));
                            sent += 1;
                        } else if in_flight.is_empty() {
                            res.end = Some(now);
                            break 'run; // its share of --max-messages is done
                        }
                    }
                }
                OP_TEXT => {
                    failed = Some("text message echoed to a binary one".into());
                    break 'run;
                }
                OP_PING => {
                    let mask = rng.mask();
                    out.push_frame(OP_PONG, body, mask);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    server_closed = true;
                    failed = Some(format!("server closed the connection ({:?})", close_text(body)));
                    break 'run;
                }
                op => {
                    failed = Some(format!("unknown opcode {op:#x}"));
                    break 'run;
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = out.write_to(&mut stream, &wire).await {
                failed = Some(format!("write: {e}"));
                break;
            }
            out.clear();
        }
        // Room to read: move what is left of a partial frame to the front.
        if pos == end {
            pos = 0;
            end = 0;
        } else if cap - end < 16 * 1024 && pos > 0 {
            inbuf.copy_within(pos..end, 0);
            end -= pos;
            pos = 0;
        }
        match timeout_at(deadline, stream.read(&mut inbuf[end..])).await {
            Err(_) => {
                res.end = Some(deadline);
                break;
            }
            Ok(Ok(0)) => failed = Some("connection closed by the server".into()),
            Ok(Ok(n)) => {
                end += n;
                if Instant::now() >= deadline {
                    res.end = Some(deadline);
                    break;
                }
            }
            Ok(Err(e)) => failed = Some(format!("read: {e}")),
        }
    }
    if let Some(e) = failed {
        sh.report(id, &e);
        res.errors += 1;
        if !server_closed {
            let _ = stream.shutdown().await;
            return res;
        }
    }
    // The closing handshake: our Close, then read (and drop) echoes still in flight
    // until the server's Close, at most CLOSE_TIMEOUT.
    out.clear();
    out.push_frame(OP_CLOSE, &1000u16.to_be_bytes(), rng.mask());
    let _ = timeout(CLOSE_TIMEOUT, async {
        out.write_to(&mut stream, &wire).await?;
        if server_closed {
            return Ok::<(), io::Error>(());
        }
        loop {
            while let Ok(Some(f)) = parse_frame(&inbuf[pos..end], cap - 14) {
                if f.opcode == OP_CLOSE {
                    return Ok(());
                }
                pos += f.start + f.len;
            }
            if pos > 0 {
                inbuf.copy_within(pos..end, 0);
                end -= pos;
                pos = 0;
            }
            if end == cap {
                return Ok(()); // cannot happen with frames up to cap - 14
            }
            let n = stream.read(&mut inbuf[end..]).await?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        }
    })
    .await;
    let _ = stream.shutdown().await;
    res
}

fn close_text(body: &[u8]) -> String {
    if body.len() >= 2 {
        let code = u16::from_be_bytes([body[0], body[1]]);
        format!("{code} {}", String::from_utf8_lossy(&body[2..]))
    } else {
        "no status".into()
    }
}

async fn resolve_loopback(host: &str, port: u16) -> SocketAddr {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect(),
        Err(e) => usage(&format!("cannot resolve {host}: {e}")),
    };
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        usage(&format!("{host} is not a loopback address: ws-load connects to loopback only"));
    }
    addrs[0]
}

#[tokio::main]
async fn main() {
    let a = parse_args();
    let addr = resolve_loopback(&a.host, a.port).await;
    let host_header = if a.host.contains(':') {
        format!("[{}]:{}", a.host, a.port)
    } else {
        format!("{}:{}", a.host, a.port)
    };
    let sh = Arc::new(Shared {
        addr,
        host_header,
        path: a.path.clone(),
        size: a.size,
        window: a.window,
        per_conn_max: a.max_messages.div_ceil(a.connections as u64).max(1),
        handshake_timeout: a.handshake_timeout,
        reported: AtomicU64::new(0),
    });
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(a.connections);
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let tasks: Vec<_> = (0..a.connections)
        .map(|id| tokio::spawn(connection(id, sh.clone(), ready_tx.clone(), start_rx.clone())))
        .collect();
    drop(ready_tx);
    // Every connection reports once, after its handshake (each is bounded in time).
    let mut ready = 0;
    while ready < a.connections && ready_rx.recv().await.is_some() {
        ready += 1;
    }
    let start = Instant::now();
    let deadline = start + a.duration;
    let _ = start_tx.send(Some(deadline));

    let mut hist = Histogram::<u64>::new(3).unwrap();
    let (mut messages, mut errors, mut connected) = (0u64, 0u64, 0usize);
    let mut last_end = start;
    // Each connection ends by the deadline + CLOSE_TIMEOUT + its last write; a task
    // still running well after that is counted as an error and left behind.
    let hard_end = deadline + CLOSE_TIMEOUT + Duration::from_secs(10);
    for t in tasks {
        match timeout_at(hard_end, t).await {
            Ok(Ok(r)) => {
                messages += r.messages;
                errors += r.errors;
                connected += r.connected as usize;
                if let Some(e) = r.end {
                    last_end = last_end.max(e);
                } else if r.connected {
                    last_end = deadline;
                }
                let _ = hist.add(&r.hist);
            }
            Ok(Err(_)) | Err(_) => errors += 1,
        }
    }
    let seconds = last_end.saturating_duration_since(start).as_secs_f64().max(1e-9);
    let q = |p: f64| if hist.is_empty() { 0 } else { hist.value_at_quantile(p) };
    println!(
        "{{\"messages\": {messages}, \"seconds\": {seconds:.6}, \"rate\": {:.1}, \"errors\": {errors}, \
         \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}, \"connections\": {connected}, \
         \"connections_asked\": {}, \"size\": {}, \"window\": {}}}",
        messages as f64 / seconds,
        q(0.50),
        q(0.99),
        hist.max(),
        a.connections,
        a.size,
        a.window
    );
    // Tasks left behind (none normally) must not keep the process alive.
    exit(0);
}
