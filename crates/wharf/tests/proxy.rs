//! `wharf proxy`: a real wharf and scripted upstreams behind it, real clients in
//! front (reqwest over every protocol, raw TCP for what clients do not send).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{raw, Builder, Proto, Wharf, PATIENCE};

/// What a scripted upstream does with one request.
enum Reply {
    /// Writes these bytes and keeps the connection for the next request.
    Bytes(Vec<u8>),
    /// Writes these bytes and closes the connection.
    Close(Vec<u8>),
    /// Writes the first bytes, waits until the test sends on the channel (or
    /// `PATIENCE` passes), then writes the last ones.
    Hold(Vec<u8>, Arc<Mutex<mpsc::Receiver<()>>>, Vec<u8>),
    /// A 200 with this many zero bytes, written in pieces.
    Stream(usize),
}

/// A request as a scripted upstream saw it.
#[derive(Clone, Debug)]
struct Seen {
    /// The request line and fields, lowercased names, as received.
    head: String,
    /// Body bytes received (by Content-Length or chunked).
    body_len: usize,
    /// Whether the body arrived whole.
    complete: bool,
    /// The trailer section of a chunked body, a line per field.
    trailers: String,
}

impl Seen {
    fn field(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// An HTTP/1.1 upstream on 127.0.0.1 that answers each request with `script`.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    /// Connections that have ended.
    closed: Arc<AtomicUsize>,
}

impl Upstream {
    fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Upstream {
        Upstream::start_on("127.0.0.1:0", script)
    }

    /// [`Upstream::start`] on `addr`.
    fn start_on(addr: &str, script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (s, c, d) = (seen.clone(), connections.clone(), closed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                c.fetch_add(1, Ordering::SeqCst);
                let (s, d, script) = (s.clone(), d.clone(), script.clone());
                std::thread::spawn(move || {
                    serve_connection(stream, &s, &*script);
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            addr,
            seen,
            connections,
            closed,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_connection(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    script: &(dyn Fn(&Seen) -> Reply + Sync),
) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(line.trim_end());
            head.push('\n');
        }
        let mut req = Seen {
            head,
            body_len: 0,
            complete: true,
            trailers: String::new(),
        };
        let length = req
            .field("content-length")
            .first()
            .map(|v| v.parse::<usize>().unwrap());
        let chunked = req
            .field("transfer-encoding")
            .iter()
            .any(|v| v.contains("chunked"));
        req.complete = read_body(&mut r, length, chunked, &mut req);
        seen.lock().unwrap().push(req.clone());
        if !req.complete {
            return;
        }
        match script(&req) {
            Reply::Bytes(b) => {
                if w.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::Close(b) => {
                let _ = w.write_all(&b);
                return;
            }
            Reply::Hold(first, rx, last) => {
                let _ = w.write_all(&first);
                let _ = rx.lock().unwrap().recv_timeout(PATIENCE);
                let _ = w.write_all(&last);
            }
            Reply::Stream(n) => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n");
                let _ = w.write_all(head.as_bytes());
                let piece = vec![0u8; 64 << 10];
                for start in (0..n).step_by(piece.len()) {
                    if w.write_all(&piece[..piece.len().min(n - start)]).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Reads a request body into `seen`; false when the connection ended first.
fn read_body(r: &mut impl BufRead, length: Option<usize>, chunked: bool, seen: &mut Seen) -> bool {
    let got = &mut seen.body_len;
    const BUF: usize = 64 << 10;
    let mut buf = vec![0u8; BUF];
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return false;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).unwrap();
            if n == 0 {
                // The trailer section, to its empty line.
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return false;
                    }
                    if line == "\r\n" {
                        return true;
                    }
                    seen.trailers.push_str(line.trim_end());
                    seen.trailers.push('\n');
                }
            }
            let mut left = n + 2;
            while left > 0 {
                let k = match r.read(&mut buf[..left.min(BUF)]) {
                    Ok(0) | Err(_) => return false,
                    Ok(k) => k,
                };
                left -= k;
            }
            *got += n;
        }
    }
    let mut left = length.unwrap_or(0);
    while left > 0 {
        match r.read(&mut buf[..left.min(BUF)]) {
            Ok(0) | Err(_) => return false,
            Ok(k) => {
                left -= k;
                *got += k;
            }
        }
    }
    true
}

/// A 200 response with `body`.
fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `wharf proxy --explain` (over `proto`) in front of `to`, with `toml` as its
/// configuration file when not empty.
fn proxy(proto: Proto, to: &[String], toml: &str) -> Wharf {
    proxy_with(Builder::new().proto(proto), to, toml)
}

/// [`proxy`] on one thread (one event loop, one runtime worker), for the tests of
/// connection reuse: the thread that serves a request decides which idle upstream
/// connections it takes first, and these tests' clients open a connection per
/// request, which wharf hands to its event loops in turn.
fn one_thread_proxy(proto: Proto, to: &[String], toml: &str) -> Wharf {
    let b = Builder::new().proto(proto).env("TOKIO_WORKER_THREADS", "1");
    proxy_with(b, to, toml)
}

fn proxy_with(b: Builder, to: &[String], toml: &str) -> Wharf {
    let mut args: Vec<String> = to
        .iter()
        .flat_map(|u| ["--to".to_owned(), u.clone()])
        .collect();
    if !toml.is_empty() {
        let path = b.path().join("proxy.toml");
        std::fs::write(&path, toml).unwrap();
        args.extend(["--config".to_owned(), path.display().to_string()]);
    }
    args.push("--explain".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    b.proxy(&args).start()
}

fn explain(res: &reqwest::blocking::Response) -> String {
    res.headers()
        .get("wharf-explain")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

const ALL: [Proto; 5] = [Proto::H1, Proto::H2c, Proto::H1Tls, Proto::H2Tls, Proto::H3];

#[test]
fn files_of_an_upstream_wharf_over_every_protocol() {
    let origin = Builder::new().start();
    let direct = origin.get("/hello.txt", &[]);
    let etag = direct.headers()["etag"].to_str().unwrap().to_owned();
    for proto in ALL {
        let p = one_thread_proxy(proto, &[origin.url("")], "");
        let res = p.get("/hello.txt", &[]);
        assert_eq!(res.status(), 200, "{proto:?}");
        assert_eq!(
            res.headers()["etag"],
            etag.as_str(),
            "{proto:?}: the origin's"
        );
        assert_eq!(res.headers()["via"], "1.1 wharf", "{proto:?}");
        assert!(
            explain(&res).contains("new connection"),
            "{proto:?}: {}",
            explain(&res)
        );
        assert_eq!(res.text().unwrap(), "hello, world\n");
        let again = p.get("/digits.txt", &[("range", "bytes=0-3")]);
        assert_eq!(again.status(), 206, "{proto:?}");
        assert!(
            explain(&again).contains("reused connection"),
            "{proto:?}: {}",
            explain(&again)
        );
        assert_eq!(again.text().unwrap(), "0123");
        let not_modified = p.get("/hello.txt", &[("if-none-match", &etag)]);
        assert_eq!(not_modified.status(), 304, "{proto:?}");
        let head = p.request("HEAD", "/hello.txt", &[]);
        assert_eq!(head.headers()["content-length"], "13", "{proto:?}");
        assert_eq!(head.bytes().unwrap().len(), 0);
        assert_eq!(p.get("/missing", &[]).status(), 404);
    }
}

/// Waits (bounded) until `n` of the upstream's connections have ended.
fn wait_closed(up: &Upstream, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while up.closed.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "the upstream's connection never ended"
        );
        std::thread::yield_now();
    }
}

#[test]
fn upstream_connections_are_reused_only_after_a_whole_exchange() {
    // RFC 9112 §9.3: a connection persists unless either side says close; §6.3: the
    // body's end is where its framing says.
    let up = Upstream::start(|req| {
        match req.head.split(' ').nth(1).unwrap() {
        "/chunked" => Reply::Bytes(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n".to_vec(),
        ),
        "/close" => Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye".to_vec(),
        ),
        "/junk" => Reply::Bytes(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA".to_vec()),
        "/gone" => Reply::Close(ok("last")),
        _ => Reply::Bytes(ok("fine")),
    }
    });
    let p = one_thread_proxy(Proto::H1, &[up.url()], "[proxy]\nretries = 0\n");
    let connections = || up.connections.load(Ordering::SeqCst);
    assert_eq!(p.get("/chunked", &[]).text().unwrap(), "hello world");
    assert_eq!(p.get("/", &[]).text().unwrap(), "fine");
    assert_eq!(
        connections(),
        1,
        "a chunked body read to its end leaves the connection usable"
    );
    assert_eq!(p.get("/close", &[]).text().unwrap(), "bye");
    assert_eq!(p.get("/", &[]).text().unwrap(), "fine");
    assert_eq!(connections(), 2, "connection: close is honoured");
    assert_eq!(p.get("/junk", &[]).text().unwrap(), "ok");
    assert_eq!(p.get("/", &[]).text().unwrap(), "fine");
    assert_eq!(
        connections(),
        3,
        "bytes after a response mean the connection is not trusted"
    );
    // An idle connection the upstream closed is noticed before it is used: with no
    // retries allowed, the next request still succeeds on a new connection.
    assert_eq!(p.get("/gone", &[]).text().unwrap(), "last");
    wait_closed(&up, 3);
    let res = p.get("/", &[]);
    assert_eq!(res.status(), 200, "{}", explain(&res));
    assert!(
        explain(&res).contains("new connection"),
        "{}",
        explain(&res)
    );
    assert_eq!(connections(), 4);
}

#[test]
fn an_upstream_answering_before_the_upload_ends_is_heard() {
    // RFC 9110 §15.5.14 / RFC 9112 §9.5: a server may answer and close before it has
    // read the request body; the proxy passes the answer on instead of a 502.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let _ = s.write_all(
                b"HTTP/1.1 413 Content Too Large\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbig!",
            );
        }
    });
    let p = proxy(Proto::H1, &[url], "[proxy]\nretries = 0\n");
    let mut c = p.tcp();
    c.write_all(b"POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 8388608\r\n\r\n")
        .unwrap();
    c.write_all(&[b'x'; 65536]).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.ends_with("big!"), "{text}");
}

#[test]
fn hop_by_hop_fields_go_and_forwarding_fields_are_set() {
    let up = Upstream::start(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nconnection: x-up\r\nx-up: 1\r\nkeep-alive: timeout=5\r\nx-kept: 1\r\ncontent-length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let p = proxy(Proto::H1, &[up.url()], "");
    let res = raw(
        &p,
        b"GET /x?q=1 HTTP/1.1\r\nhost: a.test\r\nconnection: x-secret\r\nx-secret: s\r\nte: trailers\r\n\
          x-forwarded-for: 6.6.6.6\r\nforwarded: for=6.6.6.6\r\nx-forwarded-host: evil.test\r\n\r\n",
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-kept"), Some("1"));
    assert_eq!(
        res.header("x-up"),
        None,
        "named in the upstream's Connection"
    );
    assert_eq!(res.header("keep-alive"), None);
    assert_eq!(res.header("via"), Some("1.1 wharf"));
    let seen = &up.seen()[0];
    assert!(
        seen.head.starts_with("GET /x?q=1 HTTP/1.1"),
        "{}",
        seen.head
    );
    assert_eq!(seen.field("host"), ["a.test"], "the client's Host, kept");
    assert!(
        seen.field("x-secret").is_empty(),
        "named in the client's Connection"
    );
    assert!(seen.field("te").is_empty(), "hop-by-hop");
    assert_eq!(
        seen.field("x-forwarded-for"),
        ["127.0.0.1"],
        "the client's words dropped"
    );
    assert_eq!(
        seen.field("forwarded"),
        ["for=127.0.0.1;host=a.test;proto=http"]
    );
    assert_eq!(seen.field("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.field("x-forwarded-host"), ["a.test"]);
    assert_eq!(seen.field("via"), ["1.1 wharf"]);
}

#[test]
fn requests_go_upstream_with_their_scheme_and_without_a_body_they_lack() {
    // RFC 9112 §6.3: a request without Content-Length or Transfer-Encoding has no
    // content. A GET that ended with its head goes upstream without one, whichever
    // protocol carried it (HTTP/2 says so with END_STREAM, HTTP/3 with the stream's
    // FIN), and says whether it came encrypted.
    let up = Upstream::start(|_| Reply::Bytes(ok("ok")));
    for proto in ALL {
        let p = proxy(proto, &[up.url()], "");
        assert_eq!(p.get("/x", &[]).text().unwrap(), "ok", "{proto:?}");
        let seen = up.seen().pop().unwrap();
        assert!(
            seen.field("transfer-encoding").is_empty() && seen.field("content-length").is_empty(),
            "{proto:?}: {}",
            seen.head
        );
        assert_eq!(seen.body_len, 0, "{proto:?}");
        let scheme = if proto.tls() { "https" } else { "http" };
        assert_eq!(seen.field("x-forwarded-proto"), [scheme], "{proto:?}");
    }
}

/// Sends `method /up` over HTTP/3 with `fields` and `body` (sent as it is, whatever
/// the fields say); the response's status, or the stream's error.
fn h3_send(p: &Wharf, fields: &[(&str, &str)], body: &'static str) -> Result<u16, String> {
    h3_send_with_trailers(p, fields, body, &[])
}

/// [`h3_send`], with `trailers` after the body when there are any.
fn h3_send_with_trailers(
    p: &Wharf,
    fields: &[(&str, &str)],
    body: &'static str,
    trailers: &[(&'static str, &'static str)],
) -> Result<u16, String> {
    let trailers = (!trailers.is_empty()).then(|| {
        trailers
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect::<http::HeaderMap>()
    });
    let mut req = http::Request::post(p.url("/up"));
    for (name, value) in fields {
        req = req.header(*name, *value);
    }
    let req = req.body(bytes::Bytes::from(body)).unwrap();
    let roots = std::fs::read(p.root_cert()).unwrap();
    common::within(async {
        let client = wharf_load::Client::new(&roots, "127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = client.connect(p.addr, "localhost").await.unwrap();
        let sent = match conn.start_with_trailers(req, trailers).await {
            Ok(mut res) => loop {
                match res.chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break Ok(res.head.status().as_u16()),
                    Err(e) => break Err(e.to_string()),
                }
            },
            Err(e) => Err(e.to_string()),
        };
        conn.close();
        sent
    })
}

/// A response whose body waits (a slow upstream; events) has its head sent over
/// HTTP/3 at once, not held back for the body's first bytes.
#[test]
fn an_http3_head_goes_out_before_a_body_that_waits() {
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n".to_vec();
    let up = Upstream::start(move |_| Reply::Hold(head.clone(), held.clone(), b"body".to_vec()));
    let p = proxy(Proto::H3, &[up.url()], "");
    let roots = std::fs::read(p.root_cert()).unwrap();
    common::within(async {
        let client = wharf_load::Client::new(&roots, "127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = client.connect(p.addr, "localhost").await.unwrap();
        let req = http::Request::get(p.url("/x"))
            .body(bytes::Bytes::new())
            .unwrap();
        // (Returns with the head: before the upstream is let go of its body.)
        let res = conn.start(req).await.unwrap();
        assert_eq!(res.head.status(), 200);
        release.send(()).unwrap();
        assert_eq!(res.fetch().await.unwrap().body, "body");
    });
}

#[test]
fn http3_requests_are_checked_before_they_go_upstream() {
    // RFC 9114 §4.1.2: DATA that does not add up to the Content-Length makes the
    // request malformed. Bytes past it would reach an HTTP/1.1 upstream as a request
    // of its own. §4.2: connection-specific fields make it malformed too.
    let up = Upstream::start(|_| Reply::Bytes(ok("ok")));
    let p = proxy(Proto::H3, &[up.url()], "");
    let smuggled = "xGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n";
    // Each a stream error (H3_MESSAGE_ERROR), not a response.
    let longer = h3_send(&p, &[("content-length", "1")], smuggled);
    assert!(
        longer.is_err(),
        "a body longer than its Content-Length: {longer:?}"
    );
    let shorter = h3_send(&p, &[("content-length", "10")], "abc");
    assert!(
        shorter.is_err(),
        "a body shorter than its Content-Length: {shorter:?}"
    );
    for field in [
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("te", "gzip"),
    ] {
        assert!(
            h3_send(&p, &[field], "").is_err(),
            "{field:?}: a stream error"
        );
    }
    assert_eq!(h3_send(&p, &[("content-length", "3")], "abc"), Ok(200));
    let seen = up.seen();
    assert!(
        seen.iter().all(|s| !s.head.contains("/smuggled")),
        "{seen:?}"
    );
    let whole: Vec<usize> = seen
        .iter()
        .filter(|s| s.complete)
        .map(|s| s.body_len)
        .collect();
    assert_eq!(
        whole,
        [3],
        "only the well-formed request arrived whole: {seen:?}"
    );
}

#[test]
fn http3_request_trailers_reach_the_upstream() {
    // RFC 9114 §4.1: a request may end with a trailer section. Through the proxy it
    // ends the HTTP/1.1 upstream request's chunked body (RFC 9112 §7.1.2). A
    // connection-specific field there makes the request malformed (§4.2).
    let up = Upstream::start(|_| Reply::Bytes(ok("ok")));
    let p = proxy(Proto::H3, &[up.url()], "");
    let sent = h3_send_with_trailers(&p, &[], "abc", &[("x-checksum", "42")]);
    assert_eq!(sent, Ok(200));
    let bad = h3_send_with_trailers(&p, &[], "abc", &[("connection", "close")]);
    assert!(
        bad.is_err(),
        "a connection-specific field in the trailers: a stream error, got {bad:?}"
    );
    let seen = up.seen();
    let whole: Vec<(usize, &str)> = seen
        .iter()
        .filter(|s| s.complete)
        .map(|s| (s.body_len, s.trailers.as_str()))
        .collect();
    assert_eq!(whole, [(3, "x-checksum: 42\n")], "{seen:?}");
}

#[test]
fn trusted_proxies_are_extended_and_host_can_be_the_upstreams() {
    let up = Upstream::start(|_| Reply::Bytes(ok("ok")));
    let toml = "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\nhost = \"upstream\"\n";
    let p = proxy(Proto::H1, &[up.url()], toml);
    raw(
        &p,
        b"GET / HTTP/1.1\r\nhost: a.test\r\nx-forwarded-for: 192.0.2.9\r\nforwarded: for=192.0.2.9\r\n\r\n",
    );
    let seen = &up.seen()[0];
    assert_eq!(seen.field("host"), [up.addr.to_string()]);
    assert_eq!(seen.field("x-forwarded-for"), ["192.0.2.9, 127.0.0.1"]);
    assert_eq!(
        seen.field("forwarded"),
        ["for=192.0.2.9", "for=127.0.0.1;host=a.test;proto=http"]
    );
}

#[test]
fn an_unreachable_upstream_is_skipped_and_alone_gets_502() {
    // Bound but not listening: connections are refused, and no other test can take
    // the port meanwhile (as it could once a closed listener's port is free again).
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    let up = Upstream::start(|_| Reply::Bytes(ok("alive")));
    let p = proxy(Proto::H1, &[dead.clone(), up.url()], "");
    for _ in 0..4 {
        let res = p.get("/", &[]);
        assert_eq!(res.status(), 200, "retried on the other upstream");
        assert_eq!(res.text().unwrap(), "alive");
    }
    let alone = proxy(Proto::H1, &[dead], "[proxy]\nretries = 0\n");
    let res = alone.get("/", &[]);
    assert_eq!(res.status(), 502);
    assert!(
        explain(&res).contains("cannot connect"),
        "{}",
        explain(&res)
    );
}

#[test]
fn broken_upstream_responses_get_502_and_nothing_else_is_disturbed() {
    let up = Upstream::start(|req| match req.head.split(' ').nth(1).unwrap() {
        "/garbage" => Reply::Close(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()),
        "/huge-head" => Reply::Close(
            format!(
                "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
                "a".repeat(1 << 20)
            )
            .into_bytes(),
        ),
        "/closed" => Reply::Close(Vec::new()),
        "/cut" => {
            Reply::Close(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly this".to_vec())
        }
        _ => Reply::Bytes(ok("fine")),
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy]\nretries = 0\n");
    for (path, why) in [
        ("/garbage", "malformed"),
        ("/huge-head", "malformed"),
        ("/closed", "closed before a complete response"),
    ] {
        let res = p.get(path, &[]);
        assert_eq!(res.status(), 502, "{path}");
        assert!(explain(&res).contains(why), "{path}: {}", explain(&res));
        assert_eq!(p.get("/", &[]).text().unwrap(), "fine", "after {path}");
    }
    // A response cut short reaches the client as an incomplete message, never as a
    // complete shorter one.
    let res = p.get("/cut", &[]);
    assert_eq!(res.status(), 200);
    assert!(res.bytes().is_err(), "the body must fail, not end early");
    let mut c = p.tcp();
    c.write_all(b"GET /cut HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-length: 1000"), "{head}");
    assert!(body.len() < 1000, "closed after what arrived");
    assert_eq!(p.get("/", &[]).text().unwrap(), "fine");
}

#[test]
fn slow_upstreams_get_504_and_stalled_bodies_are_cut() {
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let up = Upstream::start(move |req| match req.head.split(' ').nth(1).unwrap() {
        "/slow" => Reply::Hold(Vec::new(), held.clone(), ok("held")),
        "/stall" => Reply::Hold(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nstart".to_vec(),
            held.clone(),
            Vec::new(),
        ),
        _ => Reply::Bytes(ok("fine")),
    });
    let toml = "[proxy]\nresponse_timeout = \"500ms\"\nbody_timeout = \"500ms\"\nretries = 0\n";
    let p = proxy(Proto::H1, &[up.url()], toml);
    let start = Instant::now();
    let res = p.get("/slow", &[]);
    assert_eq!(res.status(), 504);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        explain(&res).contains("no response within"),
        "{}",
        explain(&res)
    );
    let start = Instant::now();
    let res = p.get("/stall", &[]);
    assert_eq!(res.status(), 200);
    assert!(res.bytes().is_err(), "a stalled body is cut, not ended");
    assert!(start.elapsed() < Duration::from_secs(5));
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert_eq!(p.get("/", &[]).text().unwrap(), "fine");
}

#[test]
fn big_bodies_stream_through_in_bounded_memory() {
    const SIZE: usize = 256 << 20;
    let up = Upstream::start(|req| match req.head.split(' ').next().unwrap() {
        "GET" => Reply::Stream(SIZE),
        _ => Reply::Bytes(ok(&req.body_len.to_string())),
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy]\nmax_body = 1073741824\n");
    let mut c = p.tcp();
    c.write_all(b"GET /big HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    let mut left = SIZE;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = r.read(&mut buf[..left.min(1 << 20)]).unwrap();
        assert!(n > 0, "{left} bytes missing");
        left -= n;
    }
    let head = format!("POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: {SIZE}\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    for _ in 0..SIZE / buf.len() {
        c.write_all(&buf).unwrap();
    }
    let mut answer = vec![0u8; 256];
    let n = r.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.ends_with(&SIZE.to_string()), "{answer}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).unwrap();
    let peak_kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        peak_kib < 64 << 10,
        "peak RSS {peak_kib} KiB for 256 MiB each way"
    );
}

#[test]
fn beyond_max_connections_and_max_pending_requests_get_503() {
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let up = Upstream::start(move |req| match req.head.split(' ').nth(1).unwrap() {
        "/slow" => Reply::Hold(Vec::new(), held.clone(), ok("held")),
        _ => Reply::Bytes(ok("fine")),
    });
    let toml = "[proxy]\nmax_connections = 1\nmax_pending = 0\nretries = 0\n";
    let p = proxy(Proto::H1, &[up.url()], toml);
    let url = p.url("/slow");
    let first = std::thread::spawn(move || common::client().get(url).send().unwrap().status());
    // The first request holds the only connection once the upstream has seen it.
    let deadline = Instant::now() + PATIENCE;
    while up.seen().is_empty() {
        assert!(Instant::now() < deadline, "the first request never arrived");
        std::thread::yield_now();
    }
    let res = p.get("/", &[]);
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    release.send(()).unwrap();
    assert_eq!(first.join().unwrap(), 200);
    assert_eq!(
        p.get("/", &[]).text().unwrap(),
        "fine",
        "the connection is free again"
    );
}

#[test]
fn request_bodies_stream_with_a_limit() {
    let up = Upstream::start(|req| Reply::Bytes(ok(&req.body_len.to_string())));
    let p = proxy(Proto::H1, &[up.url()], "[proxy]\nmax_body = 100000\n");
    let client = common::client();
    let res = client
        .post(p.url("/up"))
        .body(vec![7u8; 100_000])
        .send()
        .unwrap();
    assert_eq!(res.text().unwrap(), "100000");
    let before = up.connections.load(Ordering::SeqCst);
    let res = client
        .post(p.url("/up"))
        .body(vec![7u8; 100_001])
        .send()
        .unwrap();
    assert_eq!(res.status(), 413, "by Content-Length, before any upstream");
    assert_eq!(up.connections.load(Ordering::SeqCst), before);
    // Chunked: the limit is found while streaming. The proxy may answer (and close)
    // before the whole body is written, so it is written from another thread.
    let mut c = p.tcp();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let head = b"POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
        let _ = w.write_all(head);
        let chunk = format!("{:x}\r\n{}\r\n", 10_000, "x".repeat(10_000));
        for _ in 0..20 {
            let _ = w.write_all(chunk.as_bytes());
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let mut status = [0u8; 12];
    c.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 413");
    writer.join().unwrap();
}

#[test]
fn expect_100_continue_is_answered_by_the_proxy_and_not_forwarded() {
    // RFC 9110 §10.1.1: the client waits for the 100 before sending its body; wharf
    // sends it once the body is asked for, and the upstream gets the body without
    // `Expect` (the expectation was met, hop by hop).
    let up = Upstream::start(|_| Reply::Bytes(ok("stored")));
    let p = proxy(Proto::H1, &[up.url()], "");
    let mut s = p.tcp();
    s.write_all(
        b"PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let interim = common::read_response(&mut r, false).expect("a 100");
    assert_eq!(interim.status, 100);
    s.write_all(b"hello").unwrap();
    let fin = common::read_response(&mut r, false).expect("the response");
    assert_eq!((fin.status, &fin.body[..]), (200, &b"stored"[..]));
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].complete && seen[0].body_len == 5, "{seen:?}");
    assert!(seen[0].field("expect").is_empty(), "{}", seen[0].head);
}

#[test]
fn a_client_that_vanishes_mid_upload_leaves_no_connection_in_the_pool() {
    let up = Upstream::start(|_| Reply::Bytes(ok("ok")));
    let p = proxy(Proto::H1, &[up.url()], "");
    let mut c = p.tcp();
    c.write_all(b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 1000000\r\n\r\n")
        .unwrap();
    c.write_all(&[1u8; 10_000]).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while up.connections.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the upstream"
        );
        std::thread::yield_now();
    }
    drop(c);
    while up.closed.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream connection was kept open"
        );
        std::thread::yield_now();
    }
    // Closed before the head went out, or with the upload cut: never a whole request.
    assert!(up.seen().iter().all(|s| !s.complete), "{:?}", up.seen());
    let res = p.get("/", &[]);
    assert_eq!(res.status(), 200);
    assert!(
        explain(&res).contains("new connection"),
        "{}",
        explain(&res)
    );
}

#[test]
fn smuggling_attempts_never_reach_an_upstream() {
    let up = Upstream::start(|_| Reply::Bytes(ok("ok")));
    let p = proxy(Proto::H1, &[up.url()], "");
    for attempt in [
        &b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ] {
        let res = raw(&p, attempt);
        assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(attempt));
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 0);
}

/// wharf serving the fixture site, with `[[upstream]]` and `[[site.proxy]]` tables
/// (`toml`) and explanations on.
fn site_with_routes(toml: &str) -> Wharf {
    Builder::new()
        .config(&format!(
            "{toml}\n[[site]]\nroot = \"site\"\ndefault = true\nexplain = true\n\
             [[site.proxy]]\npath = \"/api/\"\nupstream = \"api\"\n"
        ))
        .start()
}

/// Which upstream (by the body it answers) served each of `n` GETs of `path`.
fn served_by(w: &Wharf, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let res = w.get(path, headers);
            assert_eq!(res.status(), 200, "{}", explain(&res));
            res.text().unwrap()
        })
        .collect()
}

#[test]
fn site_routes_send_a_prefix_to_a_weighted_group() {
    let a = Upstream::start(|_| Reply::Bytes(ok("a")));
    let b = Upstream::start(|_| Reply::Bytes(ok("b")));
    let toml = format!(
        "[[upstream]]\nname = \"api\"\nto = [\"{}\", \"{}\"]\nweights = [2, 1]\n",
        a.url(),
        b.url()
    );
    let w = site_with_routes(&toml);
    assert_eq!(w.get("/hello.txt", &[]).text().unwrap(), "hello, world\n");
    assert_eq!(
        served_by(&w, "/api/x", &[], 6),
        ["a", "b", "a", "a", "b", "a"]
    );
    assert_eq!(
        a.seen()[0].head.lines().next().unwrap(),
        "GET /api/x HTTP/1.1"
    );
    let res = w.get("/api", &[]);
    assert_eq!(res.status(), 404, "/api is not under /api/: a file");
}

#[test]
fn failing_members_are_ejected_then_503_with_retry_after() {
    let dead = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (one, two) = (dead(), dead());
    let toml = format!(
        "[proxy]\nretries = 0\n[[upstream]]\nname = \"api\"\nto = [\"{one}\", \"{two}\"]\n\
         passive_fails = 2\npassive_eject = \"60s\"\n"
    );
    let w = site_with_routes(&toml);
    for _ in 0..4 {
        assert_eq!(w.get("/api/", &[]).status(), 502);
    }
    w.wait_for_stderr_lines("upstream ejected", 2);
    let res = w.get("/api/", &[]);
    assert_eq!(res.status(), 503);
    let after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..=60).contains(&after), "Retry-After: {after}");
    assert!(
        explain(&res).contains("no healthy upstream in group api"),
        "{}",
        explain(&res)
    );
    assert_eq!(
        w.get("/hello.txt", &[]).status(),
        200,
        "files are not disturbed"
    );
}

#[test]
fn active_health_checks_take_a_member_out_and_bring_it_back() {
    let sick = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s = sick.clone();
    let a = Upstream::start(move |req| {
        if req.head.starts_with("GET /healthz") && s.load(Ordering::SeqCst) {
            Reply::Bytes(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n".to_vec(),
            )
        } else {
            Reply::Bytes(ok("a"))
        }
    });
    let b = Upstream::start(|_| Reply::Bytes(ok("b")));
    let toml = format!(
        "[[upstream]]\nname = \"api\"\nto = [\"{}\", \"{}\"]\n\
         [upstream.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\npasses = 1\nfails = 1\n",
        a.url(),
        b.url()
    );
    let w = site_with_routes(&toml);
    w.wait_for_stderr("upstream failed its health check");
    assert_eq!(served_by(&w, "/api/", &[], 4), ["b", "b", "b", "b"]);
    sick.store(false, Ordering::SeqCst);
    w.wait_for_stderr("upstream healthy again");
    let both = served_by(&w, "/api/", &[], 4);
    assert!(
        both.contains(&"a".to_owned()) && both.contains(&"b".to_owned()),
        "{both:?}"
    );
    let checks = a
        .seen()
        .iter()
        .filter(|s| s.head.starts_with("GET /healthz"))
        .count();
    assert!(checks >= 2);
    let check = a
        .seen()
        .into_iter()
        .find(|s| s.head.starts_with("GET /healthz"))
        .unwrap();
    assert_eq!(
        check.field("host"),
        [a.addr.to_string()],
        "checks name the member"
    );
}

#[test]
fn sticky_sessions_follow_a_signed_cookie_and_ignore_a_forged_one() {
    let a = Upstream::start(|_| Reply::Bytes(ok("a")));
    let b = Upstream::start(|_| Reply::Bytes(ok("b")));
    let toml = format!(
        "[proxy]\nsticky_key = \"test key\"\n[[upstream]]\nname = \"api\"\n\
         to = [\"{}\", \"{}\"]\nbalance = \"sticky\"\n",
        a.url(),
        b.url()
    );
    let w = site_with_routes(&toml);
    let first = w.get("/api/", &[]);
    let set = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("wharf_upstream=") && set.contains("HttpOnly"),
        "{set}"
    );
    let who = first.text().unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();
    for _ in 0..6 {
        let res = w.get("/api/", &[("cookie", &cookie)]);
        assert!(!res.headers().contains_key("set-cookie"), "already pinned");
        assert!(explain(&res).contains("sticky cookie"), "{}", explain(&res));
        assert_eq!(res.text().unwrap(), who);
    }
    // The MAC's last hex digit changed (to another digit whatever it was).
    let flipped = if cookie.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{flipped}", &cookie[..cookie.len() - 1]);
    let res = w.get("/api/", &[("cookie", &forged)]);
    assert!(explain(&res).contains("new session"), "{}", explain(&res));
    assert!(res.headers().contains_key("set-cookie"), "a fresh cookie");
}

#[test]
fn consistent_hashing_keeps_a_key_on_one_member() {
    let a = Upstream::start(|_| Reply::Bytes(ok("a")));
    let b = Upstream::start(|_| Reply::Bytes(ok("b")));
    let toml = format!(
        "[[upstream]]\nname = \"api\"\nto = [\"{}\", \"{}\"]\nbalance = \"hash\"\nhash_on = \"header:x-user\"\n",
        a.url(),
        b.url()
    );
    let w = site_with_routes(&toml);
    let mut members = std::collections::HashSet::new();
    for user in 0..16 {
        let user = user.to_string();
        let got = served_by(&w, "/api/", &[("x-user", &user)], 3);
        assert!(got.iter().all(|g| *g == got[0]), "user {user}: {got:?}");
        members.insert(got[0].clone());
    }
    assert_eq!(members.len(), 2, "16 users over both members");
}

#[test]
fn websockets_pass_through_from_http1_and_http2_clients() {
    let origin = Builder::new().arg("--ws-echo").arg("/ws").start();
    let p = proxy(Proto::H1, &[origin.url("")], "");
    let (mut ws, res) = common::ws::connect_to(&p, "/ws", &[]);
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the origin's answer to the client's key"
    );
    assert_eq!(res.header("via"), Some("1.1 wharf"));
    ws.send(true, 1, b"through the proxy");
    let echo = ws.recv().expect("the echo");
    assert_eq!(
        (echo.opcode, &echo.payload[..]),
        (1, &b"through the proxy"[..])
    );

    // RFC 8441: an HTTP/2 client's extended CONNECT reaches the HTTP/1.1 origin.
    let p2 = proxy(Proto::H2c, &[origin.url("")], "");
    common::within(async {
        let tcp = tokio::net::TcpStream::connect(p2.addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let get = http::Request::get(format!("http://{}/hello.txt", p2.addr))
            .body(())
            .unwrap();
        let (res, _) = client.send_request(get, true).unwrap();
        assert_eq!(res.await.unwrap().status(), 200);
        let mut req = http::Request::builder()
            .method("CONNECT")
            .uri(format!("http://{}/ws", p2.addr))
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(h2::ext::Protocol::from("websocket"));
        let (res, mut send) = client.send_request(req, false).unwrap();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.headers());
        assert!(res.headers().get("sec-websocket-accept").is_none());
        let mut recv = res.into_body();
        send.send_data(common::ws::frame(true, 0, 1, b"over h2").into(), false)
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 2 + 7 {
            let data = recv.data().await.unwrap().unwrap();
            let _ = recv.flow_control().release_capacity(data.len());
            got.extend_from_slice(&data);
        }
        assert_eq!(&got[..], &[&[0x81u8, 7][..], b"over h2"].concat()[..]);
    });
}

#[test]
fn http2_and_tls_upstreams() {
    let origin = Builder::new().start();
    let p = proxy(Proto::H1, &[format!("h2c://{}", origin.addr)], "");
    for _ in 0..3 {
        let res = p.get("/hello.txt", &[]);
        assert_eq!(res.status(), 200, "{}", explain(&res));
        assert_eq!(res.text().unwrap(), "hello, world\n");
    }
    assert_eq!(
        origin
            .wait_for_lines("\"GET /hello.txt HTTP/2.0\"", 3)
            .len(),
        3,
        "h2c:// speaks HTTP/2 to the upstream"
    );

    // https://: the upstream's certificate verified against a configured CA, HTTP/2
    // by ALPN, and refused without that CA.
    let secure = Builder::new().proto(Proto::H1Tls).start();
    let (url, ca) = tls_upstream(&secure);
    let p = proxy(
        Proto::H1,
        std::slice::from_ref(&url),
        &format!("[proxy]\n{ca}"),
    );
    let res = p.get("/hello.txt", &[]);
    assert_eq!(res.status(), 200, "{}", explain(&res));
    assert_eq!(res.text().unwrap(), "hello, world\n");
    secure.wait_for_output("\"GET /hello.txt HTTP/2.0\"");
    let untrusted = proxy(Proto::H1, &[url], "[proxy]\nretries = 0\n");
    let res = untrusted.get("/hello.txt", &[]);
    assert_eq!(res.status(), 502);
    assert!(explain(&res).contains("certificate"), "{}", explain(&res));
}

#[test]
fn tls_upstreams_get_the_configured_client_certificate() {
    // Mutual TLS: an upstream that requires a client certificate from its CA refuses
    // the proxy without one and serves it with `client_cert` and `client_key`.
    let b = Builder::new();
    let (chain, key) = common::issue(
        &b.path().join("data"),
        &b.path().join("certs"),
        &["proxy"],
        true,
    );
    let secure = b
        .config("[[site]]\nroot = \"site\"\ndefault = true\n[site.tls]\nclient_auth = \"required\"\nclient_ca = \"data/ca/root.pem\"\n")
        .proto(Proto::H1Tls)
        .start();
    let (url, ca) = tls_upstream(&secure);
    let trusting = format!("[proxy]\nretries = 0\n{ca}");
    let without = proxy(Proto::H1, std::slice::from_ref(&url), &trusting);
    let res = without.get("/hello.txt", &[]);
    assert_eq!(res.status(), 502, "{}", explain(&res));
    let with = format!(
        "{trusting}client_cert = {:?}\nclient_key = {:?}\n",
        chain.display().to_string(),
        key.display().to_string()
    );
    let p = proxy(Proto::H1, &[url], &with);
    let res = p.get("/hello.txt", &[]);
    assert_eq!(res.status(), 200, "{}", explain(&res));
    assert_eq!(res.text().unwrap(), "hello, world\n");
    secure.wait_for_output("client=\"CN=proxy");
}

/// An HTTPS upstream's URL, and the `ca = ...` line of `[proxy]` that trusts its CA.
fn tls_upstream(secure: &Wharf) -> (String, String) {
    let url = format!("https://localhost:{}", secure.addr.port());
    let ca = format!("ca = {:?}\n", secure.root_cert().display().to_string());
    (url, ca)
}

/// Serves GETs of `path` until one is answered by `want` (bounded by `PATIENCE`).
fn until_served_by(w: &Wharf, path: &str, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let res = w.get(path, &[]);
        if res.status() == 200 && res.text().unwrap() == want {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never served by {want}");
        std::thread::yield_now();
    }
}

#[test]
fn members_discovered_from_a_file_follow_its_changes() {
    let a = Upstream::start(|_| Reply::Bytes(ok("a")));
    let b = Upstream::start(|_| Reply::Bytes(ok("b")));
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("api.json");
    std::fs::write(&list, format!("[\"{}\"]", a.url())).unwrap();
    let toml = format!(
        "[[upstream]]\nname = \"api\"\n[upstream.discovery]\nfile = {:?}\ninterval = \"50ms\"\n",
        list.display().to_string()
    );
    let w = site_with_routes(&toml);
    until_served_by(&w, "/api/", "a");
    std::fs::write(&list, format!("[\"{}\"]", b.url())).unwrap();
    w.wait_for_stderr("upstream group changed");
    until_served_by(&w, "/api/", "b");
    assert_eq!(served_by(&w, "/api/", &[], 3), ["b", "b", "b"]);
    // A broken list keeps the last good one, and says so.
    std::fs::write(&list, "[not json").unwrap();
    w.wait_for_stderr("discovery failed; keeping the last known members");
    assert_eq!(served_by(&w, "/api/", &[], 3), ["b", "b", "b"]);
}

/// A site whose group `api` follows the Redis set `services:api`, read every
/// `interval`: served by upstream `a` while the set lists it, then by `b` once the
/// set lists `b` alone (the upstreams are returned to keep them running).
fn following_a_redis_set(redis: &common::redis::Redis, interval: &str) -> (Wharf, [Upstream; 2]) {
    let a = Upstream::start(|_| Reply::Bytes(ok("a")));
    let b = Upstream::start(|_| Reply::Bytes(ok("b")));
    assert_eq!(redis.cmd(&["SADD", "services:api", &a.url()]), ":1");
    let toml = format!(
        "[[upstream]]\nname = \"api\"\n[upstream.discovery]\nredis = \"{}\"\nkey = \"services:api\"\ninterval = \"{interval}\"\n",
        redis.url()
    );
    let w = site_with_routes(&toml);
    until_served_by(&w, "/api/", "a");
    redis.cmd(&["SADD", "services:api", &b.url()]);
    redis.cmd(&["SREM", "services:api", &a.url()]);
    until_served_by(&w, "/api/", "b");
    assert_eq!(served_by(&w, "/api/", &[], 3), ["b", "b", "b"]);
    (w, [a, b])
}

#[test]
fn members_discovered_in_redis_follow_the_set() {
    let mut redis = common::redis::Redis::start();
    let (w, _upstreams) = following_a_redis_set(&redis, "50ms");
    // The registry gone: the last known members keep serving.
    redis.stop();
    w.wait_for_stderr("discovery failed; keeping the last known members");
    assert_eq!(served_by(&w, "/api/", &[], 3), ["b", "b", "b"]);
}

#[test]
fn members_discovered_in_redis_follow_keyspace_notifications_at_once() {
    let redis = common::redis::Redis::start();
    assert_eq!(
        redis.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Kgs"]),
        "+OK"
    );
    // Polling once an hour: only a notification can bring the change in time.
    following_a_redis_set(&redis, "1h");
}

#[test]
fn members_found_in_dns_follow_the_records_on_their_ttl() {
    let a = Upstream::start(|_| Reply::Bytes(ok("a")));
    let port = a.addr.port();
    // The same port on another loopback address: a second member of one name.
    let _b = Upstream::start_on(&format!("127.0.0.2:{port}"), |_| Reply::Bytes(ok("b")));
    let dns = common::dns::Dns::start(1);
    dns.set_addresses("api.test", &["127.0.0.1"]);
    let toml = format!(
        "[[upstream]]\nname = \"api\"\n[upstream.discovery]\ndns = \"http://api.test:{port}\"\nresolver = \"{}\"\ninterval = \"1h\"\n",
        dns.resolver()
    );
    let w = site_with_routes(&toml);
    until_served_by(&w, "/api/", "a");
    let res = w.get("/api/", &[]);
    assert!(
        res.headers()["wharf-explain"]
            .to_str()
            .unwrap()
            .contains(&format!("http://api.test:{port} (127.0.0.1:{port})")),
        "the name kept, the address resolved"
    );
    // A TTL of 1 s, polling once an hour: the records are asked for again on their TTL.
    dns.set_addresses("api.test", &["127.0.0.1", "127.0.0.2"]);
    w.wait_for_stderr("upstream group changed");
    until_served_by(&w, "/api/", "b");
    let mut both = served_by(&w, "/api/", &[], 4);
    both.sort();
    assert_eq!(
        both,
        ["a", "a", "b", "b"],
        "round robin over the two addresses"
    );
    // The name gone: the last known members stay.
    dns.set_addresses("api.test", &[]);
    w.wait_for_stderr("discovery failed; keeping the last known members");
    assert_eq!(served_by(&w, "/api/", &[], 2).len(), 2);
    assert!(dns.questions() >= 3);
}

#[test]
fn srv_records_give_ports_weights_and_priorities() {
    let a = Upstream::start(|_| Reply::Bytes(ok("a")));
    let b = Upstream::start(|_| Reply::Bytes(ok("b")));
    let c = Upstream::start(|_| Reply::Bytes(ok("c")));
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dns = common::dns::Dns::start(1);
    for host in ["a.test", "b.test", "c.test", "gone.test"] {
        dns.set_addresses(host, &["127.0.0.1"]);
    }
    let port = |u: &Upstream| u.addr.port();
    dns.set_srv(
        "_api._tcp.test",
        &[
            (10, 3, port(&a), "a.test."),
            (10, 1, port(&b), "b.test."),
            (20, 1, port(&c), "c.test."),
        ],
    );
    let toml = format!(
        // An interval shorter than the shortest wait between lookups (1 s) is fine.
        "[[upstream]]\nname = \"api\"\n[upstream.discovery]\nsrv = \"_api._tcp.test\"\nresolver = \"{}\"\ninterval = \"500ms\"\n",
        dns.resolver()
    );
    let w = site_with_routes(&toml);
    until_served_by(&w, "/api/", "a");
    let mut seen = served_by(&w, "/api/", &[], 8);
    seen.sort();
    assert_eq!(
        seen,
        ["a", "a", "a", "a", "a", "a", "b", "b"],
        "weights 3:1 at priority 10; priority 20 unused"
    );
    // Priority 10 now points at a port where nothing listens: requests fail over to 20.
    dns.set_srv(
        "_api._tcp.test",
        &[(10, 1, refused, "gone.test."), (20, 1, port(&c), "c.test.")],
    );
    until_served_by(&w, "/api/", "c");
    assert_eq!(served_by(&w, "/api/", &[], 3), ["c", "c", "c"]);
}

/// A response with `fields` (one `name: value` per line) and `body`.
fn with_fields(fields: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\n{fields}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn cache_status(res: &reqwest::blocking::Response) -> String {
    res.headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn the_cache_flag_turns_the_shared_cache_on_without_a_config_file() {
    // `wharf proxy --to URL --cache`: the zero-config form, like `[proxy.cache]`.
    let up =
        Upstream::start(|_| Reply::Bytes(with_fields("cache-control: max-age=60\r\n", "kept")));
    let b = Builder::new();
    let to = up.url();
    let p = b.proxy(&["--to", &to, "--cache"]).start();
    let first = p.get("/x", &[]);
    assert_eq!(
        cache_status(&first),
        "wharf; fwd=uri-miss; fwd-status=200; stored"
    );
    let hit = p.get("/x", &[]);
    assert!(
        cache_status(&hit).starts_with("wharf; hit; ttl="),
        "{}",
        cache_status(&hit)
    );
    assert_eq!(hit.text().unwrap(), "kept");
    assert_eq!(up.seen().len(), 1, "the second answer came from the cache");
}

#[test]
fn the_shared_cache_keeps_what_rfc_9111_allows() {
    let up = Upstream::start(|req| {
        let path = req.head.split(' ').nth(1).unwrap().to_owned();
        match path.as_str() {
            "/fresh" => Reply::Bytes(with_fields("cache-control: max-age=60\r\netag: \"v1\"\r\n", "fresh")),
            "/private" => Reply::Bytes(with_fields("cache-control: private, max-age=60\r\n", "mine")),
            "/revalidate" if req.field("if-none-match") == ["\"r1\""] => Reply::Bytes(
                b"HTTP/1.1 304 Not Modified\r\netag: \"r1\"\r\ncache-control: max-age=0\r\n\r\n".to_vec(),
            ),
            "/revalidate" => Reply::Bytes(with_fields("cache-control: max-age=0\r\netag: \"r1\"\r\n", "kept")),
            "/vary" => {
                let coding = req.field("accept-encoding").join(",");
                Reply::Bytes(with_fields("cache-control: max-age=60\r\nvary: Accept-Encoding\r\n", &coding))
            }
            "/cut" => Reply::Close(b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 1000\r\n\r\nonly this".to_vec()),
            _ => Reply::Bytes(ok("other")),
        }
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy.cache]\n");
    let seen = |path: &str| {
        up.seen()
            .iter()
            .filter(|s| s.head.starts_with(&format!("GET {path} ")))
            .count()
    };

    let first = p.get("/fresh", &[]);
    assert_eq!(
        cache_status(&first),
        "wharf; fwd=uri-miss; fwd-status=200; stored"
    );
    assert_eq!(first.text().unwrap(), "fresh");
    let hit = p.get("/fresh", &[]);
    assert!(
        cache_status(&hit).starts_with("wharf; hit; ttl="),
        "{}",
        cache_status(&hit)
    );
    assert!(hit.headers().contains_key("age"), "RFC 9111 §5.1");
    assert_eq!(hit.text().unwrap(), "fresh");
    let head = p.request("HEAD", "/fresh", &[]);
    assert_eq!(
        head.headers()["content-length"],
        "5",
        "HEAD from the stored GET"
    );
    assert_eq!(
        p.get("/fresh", &[("if-none-match", "\"v1\"")]).status(),
        304
    );
    assert_eq!(seen("/fresh"), 1, "one request upstream for all of them");

    for _ in 0..2 {
        let res = p.get("/private", &[]);
        assert!(
            explain(&res).contains("not stored: Cache-Control: private"),
            "{}",
            explain(&res)
        );
    }
    assert_eq!(seen("/private"), 2);

    assert_eq!(p.get("/revalidate", &[]).text().unwrap(), "kept");
    let again = p.get("/revalidate", &[]);
    assert_eq!(
        cache_status(&again),
        "wharf; fwd=stale; fwd-status=304",
        "RFC 9111 §4.3"
    );
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().unwrap(), "kept", "the stored body, freshened");
    assert_eq!(seen("/revalidate"), 2);

    let gzip = [("accept-encoding", "gzip")];
    assert_eq!(p.get("/vary", &gzip).text().unwrap(), "gzip");
    assert!(
        cache_status(&p.get("/vary", &[("accept-encoding", "GZIP")])).contains("hit"),
        "normalised"
    );
    let br = p.get("/vary", &[("accept-encoding", "br")]);
    assert!(
        cache_status(&br).contains("fwd=vary-miss"),
        "{}",
        cache_status(&br)
    );
    assert_eq!(br.text().unwrap(), "br");

    assert!(p.get("/cut", &[]).bytes().is_err());
    assert!(p.get("/cut", &[]).bytes().is_err());
    assert_eq!(seen("/cut"), 2, "a fill cut short stores nothing");

    let res = p.get("/fresh", &[("cache-control", "no-cache")]);
    assert!(
        cache_status(&res).contains("fwd=request"),
        "RFC 9111 §5.2.1.4: {}",
        cache_status(&res)
    );
    let post = common::client()
        .post(p.url("/fresh"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(post.status(), 200);
    let after = p.get("/fresh", &[]);
    assert!(
        cache_status(&after).contains("fwd=uri-miss"),
        "RFC 9111 §4.4: invalidated by the POST"
    );

    let none = p.get("/never", &[("cache-control", "only-if-cached")]);
    assert_eq!(none.status(), 504, "RFC 9111 §5.2.1.7");
}

#[test]
fn misses_for_one_target_collapse_into_one_upstream_request() {
    const CLIENTS: usize = 10;
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let up = Upstream::start(move |req| match req.head.split(' ').nth(1).unwrap() {
        "/cold" => Reply::Hold(
            Vec::new(),
            held.clone(),
            with_fields("cache-control: max-age=60\r\n", "cold"),
        ),
        // Not storable: the head first, the body only once released.
        _ => Reply::Hold(
            b"HTTP/1.1 200 OK\r\ncache-control: private\r\ncontent-length: 4\r\n\r\n".to_vec(),
            held.clone(),
            b"mine".to_vec(),
        ),
    });
    let toml = "[proxy.cache]\n[log]\nlevel = \"info,wharf::proxy=debug\"\n";
    let p = Arc::new(proxy(Proto::H1, &[up.url()], toml));
    let seen = |path: &str| {
        up.seen()
            .iter()
            .filter(|s| s.head.starts_with(&format!("GET {path} ")))
            .count()
    };
    let get_all = |path: &'static str| -> Vec<std::thread::JoinHandle<(String, String)>> {
        (0..CLIENTS)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let res = p.get(path, &[]);
                    let status = cache_status(&res);
                    (status, res.text().unwrap())
                })
            })
            .collect()
    };
    let clients = get_all("/cold");
    p.wait_for_stderr_lines("collapsed: waiting", CLIENTS - 1);
    // The leader's request may still be on its way to the upstream.
    let deadline = Instant::now() + PATIENCE;
    while seen("/cold") == 0 {
        assert!(
            Instant::now() < deadline,
            "the leader never reached the upstream"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        seen("/cold"),
        1,
        "one request upstream while the others wait"
    );
    release.send(()).unwrap();
    let answers: Vec<(String, String)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(answers.iter().all(|(_, body)| body == "cold"));
    let collapsed = answers
        .iter()
        .filter(|(s, _)| s.contains("collapsed"))
        .count();
    assert_eq!(collapsed, CLIENTS - 1, "{answers:?}");
    assert_eq!(seen("/cold"), 1);

    // A response that turns out not storable lets the waiters go at once (they go
    // upstream themselves) while its own body is still on its way.
    let clients = get_all("/private");
    let deadline = Instant::now() + PATIENCE;
    while seen("/private") < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "waiters were held: {}",
            seen("/private")
        );
        std::thread::yield_now();
    }
    for _ in 0..CLIENTS {
        release.send(()).unwrap();
    }
    for c in clients {
        assert_eq!(c.join().unwrap().1, "mine");
    }
}

#[test]
fn stale_if_error_serves_the_stored_response_when_the_upstream_fails() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = failing.clone();
    let up = Upstream::start(move |_| {
        if f.load(Ordering::SeqCst) {
            Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec())
        } else {
            Reply::Bytes(with_fields(
                "cache-control: max-age=0, stale-if-error=60\r\netag: \"s1\"\r\n",
                "saved",
            ))
        }
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy.cache]\n");
    assert_eq!(p.get("/page", &[]).text().unwrap(), "saved");
    failing.store(true, Ordering::SeqCst);
    let res = p.get("/page", &[]);
    assert_eq!(
        res.status(),
        200,
        "RFC 5861 §4: the stale response, not the 503"
    );
    assert_eq!(cache_status(&res), "wharf; fwd=stale; fwd-status=503");
    assert!(
        explain(&res).contains("stale-if-error"),
        "{}",
        explain(&res)
    );
    assert_eq!(res.text().unwrap(), "saved");
    let other = p.get("/other", &[]);
    assert_eq!(
        other.status(),
        503,
        "nothing stored for /other: the upstream's answer"
    );
}

#[test]
fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let up = Upstream::start(move |_| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        let reply = with_fields(
            "cache-control: max-age=0, stale-while-revalidate=60\r\n",
            &format!("v{n}"),
        );
        if n == 1 {
            Reply::Bytes(reply)
        } else {
            Reply::Hold(Vec::new(), held.clone(), reply)
        }
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy.cache]\n");
    assert_eq!(p.get("/page", &[]).text().unwrap(), "v1");
    // Stale, within the window: answered from the store while the upstream is held.
    let res = p.get("/page", &[]);
    assert!(
        cache_status(&res).starts_with("wharf; hit; ttl=-")
            || cache_status(&res) == "wharf; hit; ttl=0",
        "{}",
        cache_status(&res)
    );
    assert!(
        explain(&res).contains("served while revalidating"),
        "{}",
        explain(&res)
    );
    assert_eq!(res.text().unwrap(), "v1");
    let deadline = Instant::now() + PATIENCE;
    while up.seen().len() < 2 {
        assert!(Instant::now() < deadline, "no background revalidation");
        std::thread::yield_now();
    }
    assert_eq!(
        p.get("/page", &[]).text().unwrap(),
        "v1",
        "one refresh at a time"
    );
    assert_eq!(up.seen().len(), 2);
    release.send(()).unwrap();
    // Once the refresh is stored, the store answers with it (and refreshes again).
    loop {
        let body = p.get("/page", &[]).text().unwrap();
        if body == "v2" {
            break;
        }
        assert_eq!(body, "v1");
        assert!(Instant::now() < deadline, "the refresh was never stored");
        std::thread::yield_now();
    }
    for _ in 0..4 {
        let _ = release.send(());
    }
}

#[test]
fn purges_by_target_and_tag_hard_and_soft_from_allowed_addresses_only() {
    let up = Upstream::start(|req| {
        let path = req.head.split(' ').nth(1).unwrap().to_owned();
        let fields = match path.as_str() {
            "/a" if !req.field("if-none-match").is_empty() => return Reply::Bytes(
                b"HTTP/1.1 304 Not Modified\r\netag: \"a1\"\r\ncache-control: max-age=60\r\n\r\n"
                    .to_vec(),
            ),
            "/a" => "etag: \"a1\"\r\ncache-tag: t1, shared\r\n",
            "/b" => "surrogate-key: t2 shared\r\n",
            _ => "",
        };
        let fields = format!("cache-control: max-age=60\r\n{fields}");
        Reply::Bytes(with_fields(&fields, &path))
    });
    let p = proxy(
        Proto::H1,
        &[up.url()],
        "[proxy.cache]\npurge_from = [\"127.0.0.2\"]\n",
    );
    let seen = |path: &str| {
        up.seen()
            .iter()
            .filter(|s| s.head.starts_with(&format!("GET {path} ")))
            .count()
    };
    for path in ["/a", "/b", "/c"] {
        let res = p.get(path, &[]);
        assert!(cache_status(&res).contains("stored"), "{path}");
        assert!(
            !res.headers().contains_key("cache-tag")
                && !res.headers().contains_key("surrogate-key"),
            "tags are the cache's, not the client's"
        );
    }
    let allowed = reqwest::blocking::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let purge = |path: &str, headers: &[(&str, &str)]| {
        let mut req = allowed.request(reqwest::Method::from_bytes(b"PURGE").unwrap(), p.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().unwrap()
    };

    let denied = p.request("PURGE", "/a", &[]);
    assert_eq!(denied.status(), 403, "127.0.0.1 is not in purge_from");
    assert!(explain(&denied).contains("not allowed from 127.0.0.1"));
    assert!(cache_status(&p.get("/a", &[])).contains("hit"));

    let res = purge("/a", &[]);
    assert_eq!(res.status(), 200);
    assert!(res.text().unwrap().contains("purged 1 stored responses"));
    let refetched = p.get("/a", &[]);
    assert!(cache_status(&refetched).contains("fwd=uri-miss"));
    // Read to its end, so that it is stored again before the purge by tag: the
    // response's head reaches the client before its body is through the proxy.
    assert_eq!(refetched.text().unwrap(), "/a");
    assert_eq!(seen("/a"), 2);

    let res = purge("/", &[("cache-tag", "shared")]);
    assert_eq!(res.status(), 200);
    assert!(
        res.text().unwrap().contains("purged 2"),
        "/a and /b, tagged shared"
    );
    assert!(cache_status(&p.get("/b", &[])).contains("fwd=uri-miss"));
    assert!(
        cache_status(&p.get("/c", &[])).contains("hit"),
        "untagged, kept"
    );
    assert_eq!(purge("/nothing", &[]).status(), 404);

    // Soft: /a turns stale; the next request revalidates (304) instead of refetching.
    assert!(cache_status(&p.get("/a", &[])).contains("stored"));
    let res = purge("/", &[("surrogate-key", "t1"), ("wharf-purge", "soft")]);
    assert!(res.text().unwrap().contains("marked stale 1"));
    let again = p.get("/a", &[]);
    assert_eq!(cache_status(&again), "wharf; fwd=stale; fwd-status=304");
    assert_eq!(again.text().unwrap(), "/a", "the stored body, revalidated");
    assert!(
        cache_status(&p.get("/a", &[])).contains("hit"),
        "fresh again"
    );
    let revalidations = up
        .seen()
        .iter()
        .filter(|s| s.head.starts_with("GET /a ") && !s.field("if-none-match").is_empty())
        .count();
    assert_eq!(revalidations, 1);
}

#[test]
fn ranges_and_conditions_are_answered_from_a_stored_response() {
    const MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    let up = Upstream::start(|_| {
        Reply::Bytes(with_fields(
            &format!(
                "cache-control: max-age=60\r\netag: \"r1\"\r\nlast-modified: {MODIFIED}\r\ncontent-type: text/plain\r\n"
            ),
            "0123456789",
        ))
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy.cache]\n");
    assert_eq!(p.get("/r", &[]).text().unwrap(), "0123456789");

    let one = p.get("/r", &[("range", "bytes=2-4")]);
    assert_eq!(one.status(), 206, "RFC 9110 §14.2");
    assert_eq!(one.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(one.text().unwrap(), "234");

    let two = p.get("/r", &[("range", "bytes=0-0,-2")]);
    assert_eq!(two.status(), 206);
    let ct = two.headers()["content-type"].to_str().unwrap().to_owned();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let body = two.text().unwrap();
    assert!(
        body.contains("Content-Range: bytes 0-0/10\r\n\r\n0\r\n"),
        "{body}"
    );
    assert!(
        body.contains("Content-Range: bytes 8-9/10\r\n\r\n89\r\n"),
        "{body}"
    );
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));

    let none = p.get("/r", &[("range", "bytes=20-")]);
    assert_eq!(none.status(), 416);
    assert_eq!(none.headers()["content-range"], "bytes */10");

    let same = p.get("/r", &[("range", "bytes=9-"), ("if-range", "\"r1\"")]);
    assert_eq!(same.text().unwrap(), "9", "If-Range matches");
    let changed = p.get("/r", &[("range", "bytes=9-"), ("if-range", "\"r0\"")]);
    assert_eq!(
        changed.status(),
        200,
        "RFC 9110 §13.1.5: the whole response"
    );

    let ims = p.get("/r", &[("if-modified-since", MODIFIED)]);
    assert_eq!(ims.status(), 304, "RFC 9111 §4.3.2");
    let older = p.get(
        "/r",
        &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")],
    );
    assert_eq!(older.status(), 200);
    assert_eq!(up.seen().len(), 1, "all answered from the store");
}

#[test]
fn key_additions_keep_responses_apart() {
    let up = Upstream::start(|req| {
        let cookie = req.field("cookie").join(";");
        Reply::Bytes(with_fields("cache-control: max-age=60\r\n", &cookie))
    });
    let p = proxy(
        Proto::H1,
        &[up.url()],
        "[proxy.cache]\nkey = [\"cookie:lang\"]\n",
    );
    let en = [("cookie", "lang=en; other=1")];
    assert_eq!(p.get("/k", &en).text().unwrap(), "lang=en; other=1");
    let fr = p.get("/k", &[("cookie", "lang=fr")]);
    assert!(
        cache_status(&fr).contains("fwd=vary-miss"),
        "{}",
        cache_status(&fr)
    );
    assert_eq!(fr.text().unwrap(), "lang=fr");
    let again = p.get("/k", &[("cookie", "other=2; lang=en")]);
    assert!(cache_status(&again).contains("hit"), "the same lang");
    assert_eq!(again.text().unwrap(), "lang=en; other=1");
    assert_eq!(up.seen().len(), 2);
}

#[test]
fn early_hints_are_passed_on_as_they_arrive() {
    const EARLY: &[u8] =
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n";
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let up = Upstream::start(move |req| match req.head.split(' ').nth(1).unwrap() {
        "/held" => Reply::Hold(EARLY.to_vec(), held.clone(), ok("page")),
        _ => Reply::Bytes([EARLY, &ok("page")].concat()),
    });
    let p = proxy(Proto::H1, &[up.url()], "[http]\nearly_hints_http1 = true\n");

    // HTTP/1.1: the 103 arrives while the upstream still holds its final response.
    let mut s = p.tcp();
    s.write_all(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let early = common::read_response(&mut r, false).expect("a 103");
    assert_eq!(early.status, 103);
    assert_eq!(
        early.header("link"),
        Some("</style.css>; rel=preload; as=style")
    );
    release.send(()).unwrap();
    let fin = common::read_response(&mut r, false).expect("the response");
    assert_eq!((fin.status, &fin.body[..]), (200, &b"page"[..]));

    // HTTP/2 (h2c, curl): the 103 with its Link, then the 200.
    let (_, err) = common::curl(&[
        "-v",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        &p.url("/now"),
    ]);
    let heads: Vec<String> = err
        .lines()
        .filter_map(|l| l.strip_prefix("< "))
        .map(|l| l.trim_end().to_ascii_lowercase())
        .collect();
    let at = |line: &str| heads.iter().position(|l| l == line);
    let (early, fin) = (
        at("http/2 103").expect("a 103"),
        at("http/2 200").expect("a 200"),
    );
    assert!(early < fin, "{heads:?}");
    assert!(
        heads[early..fin]
            .iter()
            .any(|l| l.starts_with("link: </style.css>")),
        "{heads:?}"
    );
}

#[test]
fn targeted_fields_must_understand_and_a_304_for_another_representation() {
    let plain = Arc::new(AtomicUsize::new(0));
    let n = plain.clone();
    let up = Upstream::start(move |req| {
        let path = req.head.split(' ').nth(1).unwrap().to_owned();
        match path.as_str() {
            "/surrogate" => Reply::Bytes(with_fields(
                "cache-control: no-store\r\nsurrogate-control: max-age=60\r\n",
                "s",
            )),
            "/cdn" => Reply::Bytes(with_fields(
                "cache-control: max-age=60\r\ncdn-cache-control: no-store\r\n",
                "c",
            )),
            "/unknown" => Reply::Bytes(
                b"HTTP/1.1 599 Whatever\r\ncache-control: max-age=60, must-understand\r\ncontent-length: 1\r\n\r\nu"
                    .to_vec(),
            ),
            _ if !req.field("if-none-match").is_empty() => Reply::Bytes(
                b"HTTP/1.1 304 Not Modified\r\netag: \"b2\"\r\ncache-control: max-age=0\r\n\r\n".to_vec(),
            ),
            _ if n.fetch_add(1, Ordering::SeqCst) == 0 => {
                Reply::Bytes(with_fields("cache-control: max-age=0\r\netag: \"a1\"\r\n", "old"))
            }
            _ => Reply::Bytes(with_fields("cache-control: max-age=0\r\netag: \"b2\"\r\n", "new")),
        }
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy.cache]\n");
    let seen = |path: &str| {
        up.seen()
            .iter()
            .filter(|s| s.head.starts_with(&format!("GET {path} ")))
            .count()
    };
    for _ in 0..2 {
        let res = p.get("/surrogate", &[]);
        assert!(
            !res.headers().contains_key("surrogate-control"),
            "this cache's policy"
        );
        assert_eq!(
            res.headers()["cache-control"],
            "no-store",
            "the client's stays"
        );
    }
    assert_eq!(
        seen("/surrogate"),
        1,
        "RFC 9213 §2.1: Surrogate-Control decides"
    );
    for _ in 0..2 {
        assert_eq!(p.get("/cdn", &[]).text().unwrap(), "c");
    }
    assert_eq!(seen("/cdn"), 2, "CDN-Cache-Control: no-store");
    for _ in 0..2 {
        assert_eq!(p.get("/unknown", &[]).status(), 599);
    }
    assert_eq!(
        seen("/unknown"),
        2,
        "RFC 9111 §5.2.2.3: must-understand, unknown status"
    );

    assert_eq!(p.get("/changed", &[]).text().unwrap(), "old");
    let res = p.get("/changed", &[]);
    assert_eq!(
        res.status(),
        200,
        "never the upstream's 304 to an unconditional request"
    );
    assert_eq!(res.text().unwrap(), "new");
    let heads: Vec<Vec<String>> = up
        .seen()
        .iter()
        .filter(|s| s.head.starts_with("GET /changed "))
        .map(|s| s.field("if-none-match"))
        .collect();
    assert_eq!(
        heads,
        [vec![], vec!["\"a1\"".to_owned()], vec![]],
        "RFC 9111 §4.3.4: revalidated, then asked again without validators"
    );
}

#[test]
fn collapsed_requests_stream_the_response_as_it_arrives() {
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let up = Upstream::start(move |_| {
        Reply::Hold(
            b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 12\r\n\r\nfirst-"
                .to_vec(),
            held.clone(),
            b"second".to_vec(),
        )
    });
    let p = proxy(Proto::H1, &[up.url()], "[proxy.cache]\n");
    // Each client reads the head and the first half while the upstream holds the rest.
    let first_half = |s: TcpStream| {
        let mut r = BufReader::new(s);
        r.get_mut()
            .write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert!(r.read_line(&mut head).unwrap() > 0, "closed: {head}");
        }
        let mut half = [0u8; 6];
        r.read_exact(&mut half).unwrap();
        assert_eq!(&half, b"first-");
        (head.to_ascii_lowercase(), r)
    };
    let (leader_head, leader) = first_half(p.tcp());
    assert!(leader_head.contains("cache-status: wharf; fwd=uri-miss; fwd-status=200; stored"));
    assert!(leader_head.contains("content-length: 12"), "{leader_head}");
    let waiters: Vec<_> = (0..3).map(|_| first_half(p.tcp())).collect();
    for (head, _) in &waiters {
        assert!(head.contains("collapsed"), "{head}");
    }
    assert_eq!(
        up.seen().len(),
        1,
        "one request upstream, four clients streaming"
    );
    release.send(()).unwrap();
    for (_, mut r) in std::iter::once((leader_head, leader)).chain(waiters) {
        let mut rest = [0u8; 6];
        r.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"second");
    }
    let hit = p.get("/stream", &[("host", "t")]);
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    assert_eq!(hit.text().unwrap(), "first-second");
}

#[test]
fn the_disk_tier_survives_kill_9_and_never_serves_a_damaged_file() {
    let up = Upstream::start(|req| {
        let path = req.head.split(' ').nth(1).unwrap().to_owned();
        Reply::Bytes(with_fields("cache-control: max-age=600\r\n", &path))
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[proxy.cache]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let files = || -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "entry"))
            .collect();
        found.sort();
        found
    };
    // The key has the host: the same name across the restart (the port changes).
    let host = [("host", "site.test")];
    let p = proxy(Proto::H1, &[up.url()], &toml);
    for path in ["/a", "/b", "/c"] {
        assert!(cache_status(&p.get(path, &host)).contains("stored"));
    }
    // Written in the background: wait (bounded) until all three are on disk.
    let deadline = Instant::now() + PATIENCE;
    while files().len() < 3 {
        assert!(Instant::now() < deadline, "files: {:?}", files());
        std::thread::yield_now();
    }
    drop(p); // SIGKILL

    // What a crash or a failing disk could leave: a write never renamed into place,
    // a file cut short, and one that is not a cache file at all.
    std::fs::write(dir.path().join("tmp/leftover.entry.1"), "half").unwrap();
    let cut = files()[0].clone();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    std::fs::write(dir.path().join("junk.entry"), "not a cache file").unwrap();

    let p = proxy(Proto::H1, &[up.url()], &toml);
    p.wait_for_stderr("cache file damaged: removed");
    let mut hits = 0;
    for path in ["/a", "/b", "/c"] {
        let res = p.get(path, &host);
        hits += usize::from(cache_status(&res).contains("hit"));
        assert_eq!(res.text().unwrap(), path, "never a damaged body");
    }
    assert_eq!(hits, 2, "the two whole files answer after the restart");
    assert_eq!(up.seen().len(), 4, "the cut one asked again");
    assert!(!dir.path().join("junk.entry").exists());
    assert!(!dir.path().join("tmp/leftover.entry.1").exists());

    let before = files().len();
    assert_eq!(p.request("PURGE", "/a", &host).status(), 200);
    assert_eq!(files().len(), before - 1, "a purge removes the file too");
}

#[test]
fn configured_grace_applies_where_responses_name_none() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = failing.clone();
    let up = Upstream::start(move |req| {
        let path = req.head.split(' ').nth(1).unwrap().to_owned();
        let fields = match path.as_str() {
            "/strict" => "cache-control: max-age=0, must-revalidate\r\n",
            _ => "cache-control: max-age=0\r\n",
        };
        if f.load(Ordering::SeqCst) {
            Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec())
        } else {
            Reply::Bytes(with_fields(fields, "kept"))
        }
    });
    let p = proxy(
        Proto::H1,
        &[up.url()],
        "[proxy.cache]\nstale_if_error = \"1h\"\n",
    );
    for path in ["/page", "/strict"] {
        assert!(cache_status(&p.get(path, &[])).contains("stored"));
    }
    failing.store(true, Ordering::SeqCst);
    let res = p.get("/page", &[]);
    assert_eq!(
        res.status(),
        200,
        "RFC 5861 §4, with the configured stale-if-error"
    );
    assert_eq!(cache_status(&res), "wharf; fwd=stale; fwd-status=503");
    assert_eq!(
        p.get("/strict", &[]).status(),
        503,
        "RFC 9111 §4.2.4: must-revalidate forbids serving it stale"
    );

    // The configured stale-while-revalidate: a stale response answers at once.
    failing.store(false, Ordering::SeqCst);
    let p = proxy(
        Proto::H1,
        &[up.url()],
        "[proxy.cache]\nstale_while_revalidate = \"1h\"\n",
    );
    assert!(cache_status(&p.get("/page", &[])).contains("stored"));
    let res = p.get("/page", &[]);
    assert!(cache_status(&res).contains("hit"), "{}", cache_status(&res));
    assert_eq!(res.text().unwrap(), "kept");
}
