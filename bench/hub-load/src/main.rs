//! hub-load: load for wharf's real-time hub, on loopback only.
//!
//! ```text
//! hub-load fanout --addr 127.0.0.1:PORT --transport ws|sse|sse-h2 --subscribers 10000
//!                 [--h2-connections 8] --rate 100 --duration 10s --size 64 [--pid PID]
//! hub-load broadcast --addr 127.0.0.1:PORT --longpoll 5000 --sse 5000 [--pid PID]
//! ```
//!
//! fanout: N subscribers on one channel (WebSocket, SSE over HTTP/1.1, or SSE streams
//! spread over a few HTTP/2 connections), then one message published every 1/rate s
//! for the duration (POST over its own keep-alive connection). Every message's data
//! carries its sequence number and the time its POST was about to be written (µs on
//! this process's monotonic clock); every subscriber records receive time − that.
//!
//! broadcast: long-poll clients (`GET /hub/c?since=LAST`) and SSE clients, then ONE
//! message; the time from the POST to the moment each client has it.
//!
//! Both wait until `GET /hub/` shows every subscriber, read the server's VmRSS
//! (--pid) before connecting, once connected and idle, and at the end, and print one
//! JSON line on stdout (diagnostics go to stderr). Every phase has a time limit, and a
//! watchdog thread ends the process if the whole run overstays.

mod h2c;
mod net;
mod proto;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use proto::{err, SseEvent};

// ------------------------------------------------------------------ clocks, counters

static BASE: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the process started (monotonic): the send timestamps.
fn now_us() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Deliveries received so far (first copies only), all subscribers together.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Subscribers that are set up (handshake done, or long-poll request sent).
static READY: AtomicUsize = AtomicUsize::new(0);
/// Subscribers that failed before they were set up.
static FAILED: AtomicUsize = AtomicUsize::new(0);

// ------------------------------------------------------------------ options

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Ws,
    Sse,
    SseH2,
    LongPoll,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ws => "ws",
            Kind::Sse => "sse",
            Kind::SseH2 => "sse-h2",
            Kind::LongPoll => "longpoll",
        }
    }
}

struct Cfg {
    addr: SocketAddr,
    host: String,
    channel: String,
    pid: Option<u32>,
    source_ips: u32,
    concurrency: usize,
    handshake_timeout: Duration,
    ready_timeout: Duration,
    drain: Duration,
    settle: Duration,
    size: usize,
    /// sse-h2: at the end, cancel every stream (RST_STREAM) instead of leaving them to
    /// the connection's close.
    cancel_streams: bool,
}

const USAGE: &str = "usage:
  hub-load fanout --addr 127.0.0.1:PORT --transport ws|sse|sse-h2 --subscribers N
                  [--h2-connections 8] [--rate 100] [--duration 10s] [--size 64]
                  [--max-messages 100000] [common options]
  hub-load broadcast --addr 127.0.0.1:PORT [--longpoll 5000] [--sse 5000] [--size 64]
                  [common options]
common options:
  --pid PID               wharf's process id: VmRSS and CPU time from /proc/PID
  --channel NAME          (default: a fresh name, hl-MODE-<unix ms>)
  --source-ips K          spread client sockets over 127.0.0.2..127.0.0.(K+1), each with
                          its own ephemeral port range (default 4; 0: don't bind)
  --concurrency 100       connections being set up at once (wharf listens with a backlog
                          of 128: more SYNs at once overflow it and wait 1 s to be resent)
  --handshake-timeout 10s per connection
  --ready-timeout 120s    until GET /hub/ shows every subscriber
  --settle 1s             idle wait before the idle RSS reading
  --drain 10s             after the last publish, how long to wait for deliveries
  --cancel-streams true   sse-h2: at the end, reset every stream (as a client closing its
                          event streams does) instead of just closing the connections";

struct Args(HashMap<String, String>);

impl Args {
    fn parse(list: &[String]) -> Result<Args, String> {
        let mut m = HashMap::new();
        let mut it = list.iter();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else {
                return Err(format!("unexpected argument {k:?}"));
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (
                    name.to_owned(),
                    it.next().ok_or(format!("--{name} needs a value"))?.clone(),
                ),
            };
            m.insert(name, value);
        }
        Ok(Args(m))
    }

    fn take(&mut self, k: &str) -> Option<String> {
        self.0.remove(k)
    }

    fn num<T: std::str::FromStr>(&mut self, k: &str, default: T) -> Result<T, String> {
        match self.take(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{k}: not a number: {v:?}")),
        }
    }

    fn dur(&mut self, k: &str, default: Duration) -> Result<Duration, String> {
        match self.take(k) {
            None => Ok(default),
            Some(v) => parse_duration(&v).ok_or(format!("--{k}: a duration like 10s, 500ms or 2m, not {v:?}")),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(k) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

fn parse_duration(v: &str) -> Option<Duration> {
    let (num, mul) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        (v, 1.0)
    };
    let x: f64 = num.parse().ok()?;
    (x >= 0.0 && x.is_finite()).then(|| Duration::from_secs_f64(x * mul))
}

fn common(a: &mut Args, mode: &str) -> Result<Cfg, String> {
    let addr: SocketAddr = a
        .take("addr")
        .ok_or("--addr 127.0.0.1:PORT is required")?
        .parse()
        .map_err(|_| "--addr: an address like 127.0.0.1:8080")?;
    if !addr.ip().is_loopback() {
        return Err(format!("--addr {addr}: hub-load connects to loopback addresses only"));
    }
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let channel = a.take("channel").unwrap_or(format!("hl-{mode}-{unix_ms}"));
    let pid = match a.take("pid") {
        None => None,
        Some(p) => Some(p.parse().map_err(|_| format!("--pid: not a process id: {p:?}"))?),
    };
    let source_ips: u32 = a.num("source-ips", 4)?;
    if source_ips > 250 {
        return Err("--source-ips: at most 250".into());
    }
    Ok(Cfg {
        host: addr.to_string(),
        addr,
        channel,
        pid,
        source_ips,
        concurrency: a.num("concurrency", 100)?.max(1),
        handshake_timeout: a.dur("handshake-timeout", Duration::from_secs(10))?,
        ready_timeout: a.dur("ready-timeout", Duration::from_secs(120))?,
        drain: a.dur("drain", Duration::from_secs(10))?,
        settle: a.dur("settle", Duration::from_secs(1))?,
        size: a.num("size", 64)?,
        cancel_streams: a.num("cancel-streams", false)?,
    })
}

fn main() -> ExitCode {
    now_us();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = argv.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if mode == "-h" || mode == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let parsed = Args::parse(&argv[1..]).and_then(|mut a| {
        let cfg = common(&mut a, &mode)?;
        let plan = match mode.as_str() {
            "fanout" => {
                let transport = match a.take("transport").as_deref() {
                    Some("ws") | None => Kind::Ws,
                    Some("sse") => Kind::Sse,
                    Some("sse-h2") => Kind::SseH2,
                    Some(t) => return Err(format!("--transport: ws, sse or sse-h2, not {t:?}")),
                };
                let rate: f64 = a.num("rate", 100.0)?;
                if !(rate > 0.0 && rate <= 100_000.0) {
                    return Err("--rate: between 0 and 100000 messages/s".into());
                }
                Plan::Fanout {
                    transport,
                    subscribers: a.num("subscribers", 1000)?,
                    h2_connections: a.num("h2-connections", 8usize)?.max(1),
                    rate,
                    duration: a.dur("duration", Duration::from_secs(10))?,
                    max_messages: a.num("max-messages", 100_000)?,
                }
            }
            "broadcast" => Plan::Broadcast {
                longpoll: a.num("longpoll", 5000)?,
                sse: a.num("sse", 5000)?,
            },
            m => return Err(format!("unknown mode {m:?} (fanout or broadcast)")),
        };
        a.finish()?;
        Ok((cfg, plan))
    });
    let (cfg, plan) = match parsed {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hub-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cfg.size < 40 {
        eprintln!("hub-load: --size is at least 40 (the sequence number and timestamp)");
        return ExitCode::from(2);
    }

    let sockets = plan.sockets();
    let (soft, hard) = net::raise_nofile();
    if hard < 2 * sockets as u64 {
        eprintln!(
            "hub-load: warning: RLIMIT_NOFILE hard limit is {hard} (< 2 × {sockets} sockets); \
             this process needs one descriptor per subscriber, and wharf too if it runs \
             under the same limit (raise it: ulimit -Hn, /etc/security/limits.conf)"
        );
    }
    if soft < sockets as u64 + 64 {
        eprintln!("hub-load: error: RLIMIT_NOFILE is {soft}, too low for {sockets} sockets");
        return ExitCode::from(1);
    }

    // Watchdog: whatever happens, the process ends.
    let limit = plan.time_limit(&cfg);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("hub-load: time limit of {}s reached; exiting", limit.as_secs());
        println!("{}", json!({"error": "time limit reached", "limit_s": limit.as_secs()}));
        std::process::exit(3);
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cfg = Arc::new(cfg);
    let out = rt.block_on(async move {
        match plan {
            Plan::Fanout {
                transport,
                subscribers,
                h2_connections,
                rate,
                duration,
                max_messages,
            } => {
                fanout(cfg, transport, subscribers, h2_connections, rate, duration, max_messages)
                    .await
            }
            Plan::Broadcast { longpoll, sse } => broadcast(cfg, longpoll, sse).await,
        }
    });
    let failed = out.get("error").is_some();
    println!("{out}");
    // Dropping 10,000 tasks and sockets in order is slow and pointless: exit now.
    std::process::exit(if failed { 1 } else { 0 });
}

enum Plan {
    Fanout {
        transport: Kind,
        subscribers: usize,
        h2_connections: usize,
        rate: f64,
        duration: Duration,
        max_messages: u64,
    },
    Broadcast {
        longpoll: usize,
        sse: usize,
    },
}

impl Plan {
    fn sockets(&self) -> usize {
        match self {
            Plan::Fanout {
                transport: Kind::SseH2,
                h2_connections,
                ..
            } => h2_connections + 2,
            Plan::Fanout { subscribers, .. } => subscribers + 2,
            Plan::Broadcast { longpoll, sse } => longpoll + sse + 2,
        }
    }

    fn time_limit(&self, cfg: &Cfg) -> Duration {
        let run = match self {
            Plan::Fanout { duration, .. } => *duration,
            Plan::Broadcast { .. } => Duration::ZERO,
        };
        cfg.ready_timeout + cfg.settle + run + cfg.drain + Duration::from_secs(60)
    }
}

// ------------------------------------------------------------------ subscribers

const MARK: &[u8] = b"\"data\":\"hub-load ";

/// What one subscriber saw.
struct Rec {
    kind: Kind,
    ready: bool,
    received: u64,
    duplicates: u64,
    missed: u64,
    /// Latency of each first delivery, µs.
    lat: Vec<u32>,
    seen: Vec<u64>,
    error: Option<String>,
}

impl Rec {
    fn new(kind: Kind) -> Rec {
        Rec {
            kind,
            ready: false,
            received: 0,
            duplicates: 0,
            missed: 0,
            lat: Vec::new(),
            seen: Vec::new(),
            error: None,
        }
    }

    fn set_ready(&mut self) {
        self.ready = true;
        READY.fetch_add(1, Relaxed);
    }

    fn fail(mut self, what: String) -> Rec {
        if !self.ready {
            FAILED.fetch_add(1, Relaxed);
        }
        self.error = Some(what);
        self
    }

    /// Records every hub-load message in `bytes` (one message's JSON object, or a
    /// whole poll answer); returns how many.
    fn deliver(&mut self, bytes: &[u8]) -> usize {
        static FINDER: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
        let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new(MARK));
        let now = now_us();
        let mut n = 0;
        let mut rest = bytes;
        while let Some(p) = finder.find(rest) {
            rest = &rest[p + MARK.len()..];
            let Some((seq, used)) = parse_u64(rest) else { continue };
            let Some((sent, _)) = parse_u64(&rest[used + 1..]) else { continue };
            let (word, bit) = ((seq / 64) as usize, seq % 64);
            if word >= self.seen.len() {
                self.seen.resize(word + 1, 0);
            }
            if self.seen[word] & (1 << bit) != 0 {
                self.duplicates += 1;
                continue;
            }
            self.seen[word] |= 1 << bit;
            self.received += 1;
            self.lat.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
            n += 1;
        }
        if n > 0 {
            RECEIVED.fetch_add(n as u64, Relaxed);
        } else if proto::find(bytes, b"\"missed\"").is_some() {
            self.missed += 1;
        }
        n
    }
}

fn parse_u64(s: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut n = 0;
    for &b in s.iter().take(19) {
        if !b.is_ascii_digit() {
            break;
        }
        v = v * 10 + (b - b'0') as u64;
        n += 1;
    }
    // A number, and something after it.
    (n > 0 && s.len() > n).then_some((v, n))
}

/// A message of `size` bytes: "hub-load SEQ SENT_US " and padding.
fn payload(seq: u64, sent_us: u64, size: usize) -> Vec<u8> {
    let mut p = format!("hub-load {seq} {sent_us} ").into_bytes();
    while p.len() < size {
        p.push(b'x');
    }
    p
}

/// Connects subscriber `idx` (waiting for a handshake slot first).
async fn open(cfg: &Cfg, idx: usize) -> io::Result<TcpStream> {
    net::connect_retry(cfg.addr, idx, cfg.source_ips, cfg.handshake_timeout).await
}

async fn ws_subscriber(cfg: Arc<Cfg>, idx: usize, sem: Arc<Semaphore>, mut stop: watch::Receiver<bool>) -> Rec {
    let mut rec = Rec::new(Kind::Ws);
    let mut buf = Vec::with_capacity(4096);
    let permit = sem.acquire().await.unwrap();
    let setup = async {
        let mut s = open(&cfg, idx).await?;
        let mut rng = seed(idx as u64);
        let key: Vec<u8> = (0..16).map(|_| next_rand(&mut rng) as u8).collect();
        let key = proto::base64(&key);
        let req = format!(
            "GET /hub/{} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            cfg.channel, cfg.host
        );
        s.write_all(req.as_bytes()).await?;
        let head = proto::read_head(&mut s, &mut buf).await?;
        if head.status != 101 {
            let body = proto::read_body(&mut s, &mut buf, &head).await.unwrap_or_default();
            return Err(err(format!(
                "handshake answered {}: {}",
                head.status,
                String::from_utf8_lossy(&body)
            )));
        }
        if head.get("sec-websocket-accept") != Some(proto::ws_accept(&key).as_str()) {
            return Err(err("wrong Sec-WebSocket-Accept"));
        }
        if let Some(ext) = head.get("sec-websocket-extensions") {
            return Err(err(format!("the server chose an extension not offered: {ext}")));
        }
        Ok::<_, io::Error>((s, rng))
    };
    let (mut s, mut rng) = match tokio::time::timeout(cfg.handshake_timeout * 2, setup).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return rec.fail(format!("ws handshake: {e}")),
        Err(_) => return rec.fail("ws handshake timed out".into()),
    };
    drop(permit);
    rec.set_ready();
    // One wait for the stop, registered once (a new `changed()` per read would take
    // the watch's lock a million times a second).
    let stopped = stop.changed();
    tokio::pin!(stopped);
    let mut frag: Vec<u8> = Vec::new();
    loop {
        // Every whole frame in the buffer.
        let mut used = 0;
        loop {
            let f = match proto::ws_frame(&buf[used..]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return rec.fail(format!("ws: {e}")),
            };
            let payload = used + f.payload.start..used + f.payload.end;
            used += f.len;
            match f.opcode {
                0x1 | 0x0 => {
                    if f.fin && frag.is_empty() {
                        rec.deliver(&buf[payload]);
                    } else {
                        frag.extend_from_slice(&buf[payload]);
                        if f.fin {
                            rec.deliver(&frag);
                            frag.clear();
                        }
                    }
                }
                0x9 => {
                    let pong = proto::ws_client_frame(0xA, &buf[payload], next_rand(&mut rng).to_le_bytes()[..4].try_into().unwrap());
                    if let Err(e) = s.write_all(&pong).await {
                        return rec.fail(format!("ws: writing a pong: {e}"));
                    }
                }
                0x8 => {
                    let code = if payload.len() >= 2 {
                        u16::from_be_bytes([buf[payload.start], buf[payload.start + 1]])
                    } else {
                        1005
                    };
                    let reason = String::from_utf8_lossy(&buf[payload.start + 2.min(payload.len())..payload.end]).into_owned();
                    return rec.fail(format!("ws: closed by the server: {code} {reason}"));
                }
                0xA => {}
                op => return rec.fail(format!("ws: unexpected opcode {op}")),
            }
        }
        buf.drain(..used);
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = proto::fill(&mut s, &mut buf) => match r {
                Ok(0) => return rec.fail("ws: the server closed the connection".into()),
                Ok(_) => {}
                Err(e) => return rec.fail(format!("ws: read: {e}")),
            }
        }
    }
    // A polite close; the connection is dropped right after.
    let close = proto::ws_client_frame(0x8, &1000u16.to_be_bytes(), [1, 2, 3, 4]);
    let _ = tokio::time::timeout(Duration::from_millis(100), s.write_all(&close)).await;
    rec
}

/// Feeds event-stream bytes to a subscriber's record.
fn sse_feed(rec: &mut Rec, sse: &mut proto::Sse, data: &[u8]) {
    sse.feed(data, |e| match e {
        SseEvent::Data(d) => {
            rec.deliver(d);
        }
        SseEvent::Missed => rec.missed += 1,
        SseEvent::Other => {}
    });
}

async fn sse_subscriber(cfg: Arc<Cfg>, idx: usize, sem: Arc<Semaphore>, mut stop: watch::Receiver<bool>, since: Option<u64>) -> Rec {
    let mut rec = Rec::new(Kind::Sse);
    let mut buf = Vec::with_capacity(4096);
    let permit = sem.acquire().await.unwrap();
    let setup = async {
        let mut s = open(&cfg, idx).await?;
        let last = since.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        let req = format!(
            "GET /hub/{} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{last}\r\n",
            cfg.channel, cfg.host
        );
        s.write_all(req.as_bytes()).await?;
        let head = proto::read_head(&mut s, &mut buf).await?;
        if head.status != 200 {
            let body = proto::read_body(&mut s, &mut buf, &head).await.unwrap_or_default();
            return Err(err(format!("answered {}: {}", head.status, String::from_utf8_lossy(&body))));
        }
        if !head.get("content-type").unwrap_or("").starts_with("text/event-stream") {
            return Err(err(format!("Content-Type {:?}", head.get("content-type"))));
        }
        Ok::<_, io::Error>((s, head.chunked()))
    };
    let (mut s, chunked) = match tokio::time::timeout(cfg.handshake_timeout * 2, setup).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return rec.fail(format!("sse request: {e}")),
        Err(_) => return rec.fail("sse request timed out".into()),
    };
    drop(permit);
    rec.set_ready();
    let mut dec = proto::Chunked::default();
    let mut body = Vec::with_capacity(1024);
    let mut sse = proto::Sse::default();
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        if chunked {
            match dec.feed(&buf, &mut body) {
                Ok(used) => {
                    buf.drain(..used);
                }
                Err(e) => return rec.fail(format!("sse: chunked coding: {e}")),
            }
            sse_feed(&mut rec, &mut sse, &body);
            body.clear();
            if dec.done() {
                return rec.fail("sse: the server ended the stream".into());
            }
        } else {
            sse_feed(&mut rec, &mut sse, &buf);
            buf.clear();
        }
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = proto::fill(&mut s, &mut buf) => match r {
                Ok(0) => return rec.fail("sse: the server closed the connection".into()),
                Ok(_) => {}
                Err(e) => return rec.fail(format!("sse: read: {e}")),
            }
        }
    }
    rec
}

async fn longpoll_subscriber(cfg: Arc<Cfg>, idx: usize, sem: Arc<Semaphore>, mut stop: watch::Receiver<bool>, mut since: u64) -> Rec {
    let mut rec = Rec::new(Kind::LongPoll);
    let mut buf = Vec::with_capacity(2048);
    let permit = sem.acquire().await.unwrap();
    let mut s = match open(&cfg, idx).await {
        Ok(s) => s,
        Err(e) => return rec.fail(format!("long-poll connect: {e}")),
    };
    // First a poll that is answered at once (wait=0): the connection is then surely
    // accepted and served before the slot goes to the next client (a long-poll request
    // is written before the server even accepts the connection, so writing it says
    // nothing). Then the long polls.
    let mut permit = Some(permit);
    loop {
        let wait = if permit.is_some() { "&wait=0" } else { "" };
        let req = format!("GET /hub/{}?since={since}{wait} HTTP/1.1\r\nHost: {}\r\n\r\n", cfg.channel, cfg.host);
        if let Err(e) = s.write_all(req.as_bytes()).await {
            return rec.fail(format!("long-poll write: {e}"));
        }
        if permit.is_none() && !rec.ready {
            rec.set_ready();
        }
        let answer = async {
            let head = proto::read_head(&mut s, &mut buf).await?;
            let body = proto::read_body(&mut s, &mut buf, &head).await?;
            Ok::<_, io::Error>((head, body))
        };
        let limit = if permit.is_some() { cfg.handshake_timeout * 2 } else { Duration::from_secs(3600) };
        let (head, body) = tokio::select! {
            biased;
            _ = stop.changed() => return rec,
            r = tokio::time::timeout(limit, answer) => match r {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => return rec.fail(format!("long-poll: {e}")),
                Err(_) => return rec.fail("long-poll: the first poll was not answered in time".into()),
            }
        };
        permit.take();
        if head.status != 200 {
            return rec.fail(format!("long-poll answered {}: {}", head.status, String::from_utf8_lossy(&body)));
        }
        if rec.deliver(&body) > 0 {
            break;
        }
        // Nothing (yet, or within the server's wait): poll again from where it says.
        match serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["last"].as_u64()) {
            Some(last) => since = last,
            None => return rec.fail(format!("long-poll: an answer without \"last\": {}", String::from_utf8_lossy(&body))),
        }
        if head.has_token("connection", "close") {
            return rec.fail("long-poll: the server closed the connection".into());
        }
    }
    let _ = stop.changed().await;
    rec
}

fn seed(x: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (t ^ (std::process::id() as u64) << 32 ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

fn next_rand(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

// ------------------------------------------------------------------ requests

/// One request on a fresh connection (Connection: close): (status, body).
async fn http_once(cfg: &Cfg, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let go = async {
        let mut s = net::connect(cfg.addr, 0, 0).await?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            cfg.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        s.write_all(&req).await?;
        let mut buf = Vec::with_capacity(4096);
        let head = proto::read_head(&mut s, &mut buf).await?;
        let body = proto::read_body(&mut s, &mut buf, &head).await?;
        Ok((head.status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), go)
        .await
        .map_err(|_| err(format!("{method} {path} timed out")))?
}

/// The channel's (subscribers, last id) from `GET /hub/`; (0, 0) if it isn't listed.
async fn channel_info(cfg: &Cfg) -> io::Result<(u64, u64)> {
    let (status, body) = http_once(cfg, "GET", "/hub/", b"").await?;
    if status != 200 {
        return Err(err(format!("GET /hub/ answered {status}: {}", String::from_utf8_lossy(&body))));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| err(format!("GET /hub/: {e}")))?;
    let found = v["channels"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["channel"] == cfg.channel.as_str()));
    Ok(found.map_or((0, 0), |c| {
        (c["subscribers"].as_u64().unwrap_or(0), c["last"].as_u64().unwrap_or(0))
    }))
}

/// A keep-alive publishing connection.
struct Publisher {
    conn: Option<(TcpStream, Vec<u8>)>,
}

impl Publisher {
    /// POSTs `body`; (status, answer). Reconnects when the server closed.
    async fn post(&mut self, cfg: &Cfg, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        if self.conn.is_none() {
            self.conn = Some((net::connect(cfg.addr, 0, 0).await?, Vec::with_capacity(1024)));
        }
        let (s, buf) = self.conn.as_mut().unwrap();
        let mut req = format!(
            "POST /hub/{} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            cfg.channel,
            cfg.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let r = async {
            s.write_all(&req).await?;
            let head = proto::read_head(s, buf).await?;
            let answer = proto::read_body(s, buf, &head).await?;
            Ok::<_, io::Error>((head, answer))
        };
        match tokio::time::timeout(Duration::from_secs(10), r).await {
            Ok(Ok((head, answer))) => {
                if head.has_token("connection", "close") {
                    self.conn = None;
                }
                Ok((head.status, answer))
            }
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(err("POST timed out (10s)"))
            }
        }
    }
}

/// What the open-loop publisher did.
struct Published {
    /// POSTs written, answered 200, answered otherwise or not at all.
    sent: u64,
    ok: u64,
    errors: u64,
    /// Write → answer, µs, of the 200s.
    rtt: Vec<u32>,
    first_error: Option<String>,
    /// From the first write to the last.
    writing_s: f64,
}

/// POSTs sent on one connection: their answers, read in order by a task of their own.
struct PostConn {
    write: tokio::net::tcp::OwnedWriteHalf,
    sent: usize,
    times: tokio::sync::mpsc::UnboundedSender<u64>,
    reader: JoinHandle<(u64, u64, Vec<u32>, Option<String>)>,
}

/// Reads the answers to the POSTs whose write times come through `times`.
async fn read_answers(
    mut read: tokio::net::tcp::OwnedReadHalf,
    mut times: tokio::sync::mpsc::UnboundedReceiver<u64>,
) -> (u64, u64, Vec<u32>, Option<String>) {
    let (mut ok, mut errors, mut rtt, mut first_error) = (0u64, 0u64, Vec::new(), None);
    let mut buf = Vec::with_capacity(4096);
    let mut broken = false;
    while let Some(sent) = times.recv().await {
        if broken {
            errors += 1;
            continue;
        }
        let answer = async {
            let head = proto::read_head(&mut read, &mut buf).await?;
            let body = proto::read_body(&mut read, &mut buf, &head).await?;
            Ok::<_, io::Error>((head.status, body))
        };
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok((200, _))) => {
                ok += 1;
                rtt.push(now_us().saturating_sub(sent).min(u32::MAX as u64) as u32);
            }
            Ok(Ok((status, body))) => {
                errors += 1;
                first_error.get_or_insert(format!(
                    "POST answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Ok(Err(e)) => {
                errors += 1;
                broken = true;
                first_error.get_or_insert(format!("POST: reading the answer: {e}"));
            }
            Err(_) => {
                errors += 1;
                broken = true;
                first_error.get_or_insert("POST: no answer within 30s".into());
            }
        }
    }
    (ok, errors, rtt, first_error)
}

/// POSTs to the channel every 1/rate s for `duration` (at most `max` of them), each
/// written when its time comes; answers are read as they come. A connection carries
/// at most POSTS_PER_CONN requests (wharf's default max_requests_per_connection is
/// 1000; the next POST then goes on a new connection).
async fn publish_open_loop(cfg: &Cfg, rate: f64, duration: Duration, max: u64) -> Published {
    const POSTS_PER_CONN: usize = 500;
    let mut res = Published {
        sent: 0,
        ok: 0,
        errors: 0,
        rtt: Vec::new(),
        first_error: None,
        writing_s: 0.0,
    };
    let mut conns: Vec<PostConn> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut last_write = start;
    while res.sent < max {
        tick.tick().await;
        if start.elapsed() >= duration {
            break;
        }
        if conns.last().is_none_or(|c| c.sent >= POSTS_PER_CONN) {
            match net::connect(cfg.addr, 0, 0).await {
                Ok(s) => {
                    let (read, write) = s.into_split();
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let reader = tokio::spawn(read_answers(read, rx));
                    conns.push(PostConn { write, sent: 0, times: tx, reader });
                }
                Err(e) => {
                    res.errors += 1;
                    res.sent += 1;
                    res.first_error.get_or_insert(format!("POST: connect: {e}"));
                    continue;
                }
            }
        }
        let c = conns.last_mut().unwrap();
        let sent = now_us();
        let body = payload(res.sent, sent, cfg.size);
        let mut req = format!(
            "POST /hub/{} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n\r\n",
            cfg.channel,
            cfg.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        res.sent += 1;
        c.sent += 1;
        match tokio::time::timeout(Duration::from_secs(10), c.write.write_all(&req)).await {
            Ok(Ok(())) => {
                let _ = c.times.send(sent);
            }
            Ok(Err(e)) => {
                res.errors += 1;
                res.first_error.get_or_insert(format!("POST: write: {e}"));
                c.sent = POSTS_PER_CONN; // the next one on a new connection
            }
            Err(_) => {
                res.errors += 1;
                res.first_error.get_or_insert("POST: write blocked for 10s".into());
                c.sent = POSTS_PER_CONN;
            }
        }
        last_write = Instant::now();
    }
    res.writing_s = last_write.duration_since(start).as_secs_f64();
    // The answers still on their way (each reader gives up 30 s after a request).
    for c in conns {
        drop(c.times);
        let (ok, errors, mut rtt, first_error) = match c.reader.await {
            Ok(x) => x,
            Err(e) => (0, c.sent as u64, Vec::new(), Some(format!("POST reader: {e}"))),
        };
        res.ok += ok;
        res.errors += errors;
        res.rtt.append(&mut rtt);
        if res.first_error.is_none() {
            res.first_error = first_error;
        }
        drop(c.write);
    }
    res
}

// ------------------------------------------------------------------ coordination

/// Waits until `want` subscribers are set up on the client side and the server
/// counts `want` on the channel (or every subscriber has either set up or failed).
/// Returns (server's count, last id) or an error text.
async fn wait_ready(cfg: &Cfg, want: usize) -> Result<(u64, u64), String> {
    let deadline = Instant::now() + cfg.ready_timeout;
    let mut last_report = Instant::now();
    loop {
        let ready = READY.load(Relaxed);
        let failed = FAILED.load(Relaxed);
        let info = channel_info(cfg).await;
        if let Ok((subs, last)) = info {
            if ready == want && subs >= want as u64 {
                return Ok((subs, last));
            }
            if ready + failed >= want && failed > 0 && subs >= ready as u64 {
                eprintln!("hub-load: {failed} of {want} subscribers failed; going on with {ready}");
                return Ok((subs, last));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {}s: {ready} of {want} subscribers set up, {failed} failed, server: {}",
                cfg.ready_timeout.as_secs(),
                match info {
                    Ok((subs, _)) => format!("{subs} subscribers on the channel"),
                    Err(e) => format!("GET /hub/ failed: {e}"),
                }
            ));
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "hub-load: waiting: {ready}/{want} set up, {failed} failed, server counts {}",
                info.map_or("?".into(), |(s, _)| s.to_string())
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Collects the records (each subscriber ends promptly once stopped).
async fn join_all(handles: Vec<JoinHandle<Rec>>) -> Vec<Rec> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, h).await {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(e)) => eprintln!("hub-load: a subscriber task failed: {e}"),
            Err(_) => {
                eprintln!("hub-load: subscribers did not stop within 30s");
                break;
            }
        }
    }
    out
}

/// Percentiles of latencies in µs, as ms.
fn latency_summary(lat: &mut [u32]) -> Value {
    if lat.is_empty() {
        return json!({"p50_ms": null, "p99_ms": null, "max_ms": null, "mean_ms": null});
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        let rank = ((p / 100.0) * lat.len() as f64).ceil().max(1.0) as usize;
        lat[rank.min(lat.len()) - 1] as f64 / 1000.0
    };
    let mean = lat.iter().map(|&x| x as f64).sum::<f64>() / lat.len() as f64 / 1000.0;
    json!({
        "p50_ms": round3(pct(50.0)),
        "p99_ms": round3(pct(99.0)),
        "p999_ms": round3(pct(99.9)),
        "max_ms": round3(*lat.last().unwrap() as f64 / 1000.0),
        "mean_ms": round3(mean),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `PREFIX_p50_ms`, `PREFIX_p99_ms`, `PREFIX_max_ms` from a latency summary.
fn insert_latency(out: &mut serde_json::Map<String, Value>, prefix: &str, summary: &Value) {
    for k in ["p50_ms", "p99_ms", "max_ms"] {
        out.insert(format!("{prefix}_{k}"), summary[k].clone());
    }
}

/// The server's RSS before the subscribers came, with them idle, at the end, and the
/// growth per subscriber (KiB).
fn insert_memory(
    out: &mut serde_json::Map<String, Value>,
    [before, idle, end]: [Option<u64>; 3],
    subscribers: usize,
) {
    out.insert("rss_before_kib".into(), json!(before));
    out.insert("rss_idle_kib".into(), json!(idle));
    out.insert("rss_end_kib".into(), json!(end));
    let per = before
        .zip(idle)
        .map(|(b, i)| round3((i as f64 - b as f64) / subscribers.max(1) as f64));
    out.insert("rss_per_subscriber_kib".into(), json!(per));
}

fn merge(into: &mut serde_json::Map<String, Value>, v: Value) {
    if let Value::Object(m) = v {
        into.extend(m);
    }
}

/// Counts and error samples over records.
fn tally(recs: &[Rec]) -> Value {
    let mut errors: HashMap<String, usize> = HashMap::new();
    for r in recs {
        if let Some(e) = &r.error {
            // Group by the message without numbers that vary (ports and such).
            *errors.entry(e.clone()).or_default() += 1;
        }
    }
    let mut list: Vec<_> = errors.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1));
    json!({
        "subscribers_failed_setup": recs.iter().filter(|r| !r.ready).count(),
        "subscribers_lost": recs.iter().filter(|r| r.ready && r.error.is_some()).count(),
        "duplicates": recs.iter().map(|r| r.duplicates).sum::<u64>(),
        "missed_notices": recs.iter().map(|r| r.missed).sum::<u64>(),
        "errors": list.iter().take(5).map(|(e, n)| json!({"count": n, "error": e})).collect::<Vec<_>>(),
    })
}

fn rss(cfg: &Cfg) -> Option<u64> {
    cfg.pid.and_then(net::rss_kib)
}

fn server_cpu(cfg: &Cfg) -> Option<f64> {
    cfg.pid.and_then(net::cpu_seconds)
}

async fn fanout(
    cfg: Arc<Cfg>,
    transport: Kind,
    n: usize,
    h2_connections: usize,
    rate: f64,
    duration: Duration,
    max_messages: u64,
) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("mode".into(), json!("fanout"));
    out.insert("transport".into(), json!(transport.name()));
    out.insert("subscribers".into(), json!(n));
    out.insert("channel".into(), json!(cfg.channel));
    let rss_before = rss(&cfg);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(n);
    let mut h2_tasks = Vec::new();
    match transport {
        Kind::Ws => {
            for i in 0..n {
                handles.push(tokio::spawn(ws_subscriber(cfg.clone(), i, sem.clone(), stop_rx.clone())));
            }
        }
        Kind::Sse => {
            for i in 0..n {
                handles.push(tokio::spawn(sse_subscriber(cfg.clone(), i, sem.clone(), stop_rx.clone(), None)));
            }
        }
        Kind::SseH2 => {
            let per = n.div_ceil(h2_connections.clamp(1, n.max(1)));
            let connections = n.div_ceil(per.max(1));
            for c in 0..connections {
                let streams = per.min(n - c * per);
                h2_tasks.push(tokio::spawn(h2c::connection(cfg.clone(), c, streams, stop_rx.clone())));
            }
            out.insert("h2_connections".into(), json!(connections));
        }
        Kind::LongPoll => unreachable!(),
    }
    let ready = wait_ready(&cfg, n).await;
    if !h2_tasks.is_empty() {
        let max = h2c::SERVER_MAX_STREAMS.load(Relaxed);
        out.insert("h2_server_max_streams".into(), json!((max != u64::MAX).then_some(max)));
    }
    out.insert("connect_s".into(), json!(round3(t0.elapsed().as_secs_f64())));
    let (server_subs, _) = match ready {
        Ok(x) => x,
        Err(e) => {
            out.insert("error".into(), json!(format!("not every subscriber got connected: {e}")));
            out.insert("rss_before_kib".into(), json!(rss_before));
            out.insert("rss_now_kib".into(), json!(rss(&cfg)));
            return Value::Object(out);
        }
    };
    tokio::time::sleep(cfg.settle).await;
    let rss_idle = rss(&cfg);
    let connected = READY.load(Relaxed);
    out.insert("connected".into(), json!(connected));
    out.insert("server_subscribers".into(), json!(server_subs));

    // Publish, open loop: each POST goes out on schedule, pipelined on a keep-alive
    // connection, whether or not the answers to the earlier ones have come.
    let cpu_server0 = server_cpu(&cfg);
    let cpu_self0 = net::self_cpu_seconds();
    let t_pub = Instant::now();
    let pubs = publish_open_loop(&cfg, rate, duration, max_messages).await;
    let (published, publish_errors, mut rtt, first_error) =
        (pubs.ok, pubs.errors, pubs.rtt, pubs.first_error);
    let publish_s = pubs.writing_s;
    out.insert("publish_answers_s".into(), json!(round3(t_pub.elapsed().as_secs_f64())));
    let expected = published * connected as u64;
    let t_drain = Instant::now();
    while RECEIVED.load(Relaxed) < expected && t_drain.elapsed() < cfg.drain {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_s = t_drain.elapsed().as_secs_f64();
    let rss_end = rss(&cfg);
    let phase_s = t_pub.elapsed().as_secs_f64().max(1e-9);
    let cpu_server = server_cpu(&cfg).zip(cpu_server0).map(|(a, b)| a - b);
    let cpu_self = net::self_cpu_seconds() - cpu_self0;
    out.insert("phase_s".into(), json!(round3(phase_s)));
    out.insert("server_cpus".into(), json!(cpu_server.map(|c| round3(c / phase_s))));
    out.insert("client_cpus".into(), json!(round3(cpu_self / phase_s)));
    let (cpu_server, cpu_self) = (cpu_server.map(round3), round3(cpu_self));
    let _ = stop_tx.send(true);
    let mut recs = join_all(handles).await;
    for task in h2_tasks {
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(streams)) => recs.extend(streams),
            _ => eprintln!("hub-load: an HTTP/2 connection's task did not end"),
        }
    }

    let received: u64 = recs.iter().map(|r| r.received).sum();
    let mut lat: Vec<u32> = Vec::with_capacity(received as usize);
    for r in &mut recs {
        lat.append(&mut r.lat);
    }
    out.insert("published".into(), json!(published));
    out.insert("publish_errors".into(), json!(publish_errors));
    if let Some(e) = first_error {
        out.insert("publish_error".into(), json!(e));
    }
    out.insert("publish_s".into(), json!(round3(publish_s)));
    out.insert("publish_rate".into(), json!(round3(pubs.sent as f64 / publish_s.max(1e-9))));
    out.insert("posts_sent".into(), json!(pubs.sent));
    out.insert("expected".into(), json!(expected));
    out.insert("received".into(), json!(received));
    out.insert("missing".into(), json!(expected.saturating_sub(received)));
    out.insert("drain_s".into(), json!(round3(drain_s)));
    merge(&mut out, latency_summary(&mut lat));
    insert_latency(&mut out, "post", &latency_summary(&mut rtt));
    merge(&mut out, tally(&recs));
    insert_memory(&mut out, [rss_before, rss_idle, rss_end], n);
    out.insert("server_cpu_s".into(), json!(cpu_server));
    out.insert("client_cpu_s".into(), json!(cpu_self));
    Value::Object(out)
}

async fn broadcast(cfg: Arc<Cfg>, n_lp: usize, n_sse: usize) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("mode".into(), json!("broadcast"));
    out.insert("longpoll".into(), json!(n_lp));
    out.insert("sse".into(), json!(n_sse));
    out.insert("channel".into(), json!(cfg.channel));
    let rss_before = rss(&cfg);
    let last = match channel_info(&cfg).await {
        Ok((_, last)) => last,
        Err(e) => {
            out.insert("error".into(), json!(format!("GET /hub/: {e}")));
            return Value::Object(out);
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(n_lp + n_sse);
    // Interleaved, so both kinds connect over the same period.
    for i in 0..n_lp.max(n_sse) {
        if i < n_lp {
            handles.push(tokio::spawn(longpoll_subscriber(cfg.clone(), 2 * i, sem.clone(), stop_rx.clone(), last)));
        }
        if i < n_sse {
            handles.push(tokio::spawn(sse_subscriber(cfg.clone(), 2 * i + 1, sem.clone(), stop_rx.clone(), None)));
        }
    }
    let want = n_lp + n_sse;
    let ready = wait_ready(&cfg, want).await;
    out.insert("connect_s".into(), json!(round3(t0.elapsed().as_secs_f64())));
    let (server_subs, _) = match ready {
        Ok(x) => x,
        Err(e) => {
            out.insert("error".into(), json!(format!("not every client got connected: {e}")));
            return Value::Object(out);
        }
    };
    tokio::time::sleep(cfg.settle).await;
    let rss_idle = rss(&cfg);
    // Re-check after settling: a long-poll answered in the meantime would be missing.
    let server_subs_now = channel_info(&cfg).await.map(|(s, _)| s).unwrap_or(0);
    let connected = READY.load(Relaxed);
    out.insert("connected".into(), json!(connected));
    out.insert("server_subscribers".into(), json!(server_subs));
    out.insert("server_subscribers_before_post".into(), json!(server_subs_now));

    let cpu_server0 = server_cpu(&cfg);
    let sent = now_us();
    let mut publisher = Publisher { conn: None };
    let body = payload(0, sent, cfg.size);
    match publisher.post(&cfg, &body).await {
        Ok((200, _)) => {}
        Ok((status, answer)) => {
            out.insert("error".into(), json!(format!("POST answered {status}: {}", String::from_utf8_lossy(&answer))));
        }
        Err(e) => {
            out.insert("error".into(), json!(format!("POST: {e}")));
        }
    }
    let post_ms = (now_us() - sent) as f64 / 1000.0;
    let t_drain = Instant::now();
    while RECEIVED.load(Relaxed) < connected as u64 && t_drain.elapsed() < cfg.drain {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rss_end = rss(&cfg);
    let cpu_server = server_cpu(&cfg).zip(cpu_server0).map(|(a, b)| round3(a - b));
    let _ = stop_tx.send(true);
    let mut recs = join_all(handles).await;

    let mut all = Vec::new();
    let mut by_kind: HashMap<&str, Vec<u32>> = HashMap::new();
    for r in &mut recs {
        by_kind.entry(r.kind.name()).or_default().extend_from_slice(&r.lat);
        all.append(&mut r.lat);
    }
    let received = all.len();
    out.insert("post_ms".into(), json!(round3(post_ms)));
    out.insert("expected".into(), json!(connected));
    out.insert("received".into(), json!(received));
    out.insert("missing".into(), json!(connected.saturating_sub(received)));
    let summary = latency_summary(&mut all);
    out.insert("time_to_last_ms".into(), summary["max_ms"].clone());
    merge(&mut out, summary);
    for kind in ["longpoll", "sse"] {
        let mut l = by_kind.remove(kind).unwrap_or_default();
        insert_latency(&mut out, kind, &latency_summary(&mut l));
        out.insert(format!("{kind}_received"), json!(l.len()));
    }
    merge(&mut out, tally(&recs));
    insert_memory(&mut out, [rss_before, rss_idle, rss_end], want);
    out.insert("server_cpu_s".into(), json!(cpu_server));
    Value::Object(out)
}
