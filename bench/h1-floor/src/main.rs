//! A floor for bench/floor: an HTTP/1.1 server that does nothing but what every server
//! must do to answer `GET` with `If-None-Match` by a 304 on tokio, so that what the
//! kernel and the runtime cost alone can be measured beside wharf and nginx.
//!
//! - `bytes`: each request is parsed with httparse, its `If-None-Match` compared with
//!   one constant ETag, and a constant head written: no date, no file, no map.
//! - `http`: as wharf's services are called: the head becomes an `http::Request` (a
//!   `HeaderMap` whose values share one copy of the head), an async function returns an
//!   `http::Response` with the five fields of wharf's 304, and that is encoded.
//!
//! Responses to pipelined requests are written together; nothing else is done (no
//! limits, no timeouts, no logging). Not a server to deploy.
//!
//! `proxy-bytes` and `proxy-http` are the proxy floors of bench/proxy (see `proxy`).

mod proxy;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, DATE, ETAG, EXPIRES, IF_NONE_MATCH, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The one ETag the floor knows; any other validator gets a 200 with no body.
const TAG: &str = "\"59d9d3bdb5993f44\"";
const FIELDS: [(HeaderName, &str); 5] = [
    (DATE, "Tue, 01 Dec 2026 04:01:28 GMT"),
    (ETAG, TAG),
    (LAST_MODIFIED, "Mon, 30 Nov 2026 09:48:32 GMT"),
    (CACHE_CONTROL, "max-age=3600"),
    (EXPIRES, "Tue, 01 Dec 2026 05:01:28 GMT"),
];

#[derive(Clone, Copy)]
enum Mode {
    Bytes,
    Http,
    Proxy(proxy::Mode),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, addr, upstream) = match args.as_slice() {
        [_, m, a] if m == "bytes" => (Mode::Bytes, a.clone(), None),
        [_, m, a] if m == "http" => (Mode::Http, a.clone(), None),
        [_, m, a, u] if m == "proxy-bytes" => (Mode::Proxy(proxy::Mode::Bytes), a.clone(), Some(u)),
        [_, m, a, u] if m == "proxy-http" => (Mode::Proxy(proxy::Mode::Http), a.clone(), Some(u)),
        _ => {
            eprintln!(
                "usage: h1-floor bytes|http ADDR | h1-floor proxy-bytes|proxy-http ADDR UPSTREAM"
            );
            std::process::exit(2);
        }
    };
    let pool =
        upstream.map(|u| proxy::Pool::new(u.parse().expect("UPSTREAM: an address and port")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        loop {
            let Ok((socket, peer)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let pool = pool.clone();
            tokio::spawn(async move {
                let _ = match (mode, pool) {
                    (Mode::Proxy(m), Some(pool)) => {
                        connection(socket, proxy::Proxy::new(peer, pool, m)).await
                    }
                    _ => {
                        let http = matches!(mode, Mode::Http);
                        connection(socket, Conditional { http }).await
                    }
                };
            });
        }
    });
}

/// What a floor does with each complete request on a connection.
trait Answer {
    /// Appends the answer to `req` (parsed from `head`) to `out`; `false` closes the
    /// connection.
    async fn answer(
        &mut self,
        req: &httparse::Request<'_, '_>,
        head: &[u8],
        out: &mut Vec<u8>,
    ) -> std::io::Result<bool>;
}

/// Reads requests from `socket` until it closes or sends one httparse refuses,
/// answers each with `answer`, and writes the answers to one read's requests together.
async fn connection(mut socket: TcpStream, mut answer: impl Answer) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    loop {
        if socket.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut fields);
            let len = match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return Ok(()),
            };
            if !answer.answer(&req, &buf[..len], &mut out).await? {
                return Ok(());
            }
            buf.advance(len);
        }
        socket.write_all(&out).await?;
        out.clear();
    }
}

/// Answers conditional GETs: with a constant head, or through the `http` types.
struct Conditional {
    http: bool,
}

impl Answer for Conditional {
    async fn answer(
        &mut self,
        req: &httparse::Request<'_, '_>,
        head: &[u8],
        out: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        if !self.http {
            constant(req, out);
            return Ok(true);
        }
        let Some(request) = request(req, head, |_| false) else {
            return Ok(false);
        };
        let res = respond(request).await;
        encode_head(res.status(), res.headers(), out);
        Ok(true)
    }
}

fn constant(req: &httparse::Request, out: &mut Vec<u8>) {
    let fresh = req
        .headers
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case("if-none-match") && f.value == TAG.as_bytes());
    out.extend_from_slice(if fresh {
        b"HTTP/1.1 304 Not Modified\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n"
    });
    for (name, value) in &FIELDS {
        line(out, name.as_str(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// One copy of the bytes httparse parsed, which the parsed parts are slices of.
struct Shared<'a> {
    parsed: &'a [u8],
    copy: Bytes,
}

impl<'a> Shared<'a> {
    fn new(parsed: &'a [u8]) -> Self {
        Self {
            parsed,
            copy: Bytes::copy_from_slice(parsed),
        }
    }

    /// `part`, a slice of `parsed`, as the same slice of the copy.
    fn share(&self, part: &[u8]) -> Bytes {
        let at = part.as_ptr() as usize - self.parsed.as_ptr() as usize;
        self.copy.slice(at..at + part.len())
    }
}

/// The fields whose names `skip` does not match, as a `HeaderMap` whose values share
/// `head`'s copy, as wharf's engine makes them.
fn header_map(
    fields: &[httparse::Header],
    head: &Shared,
    skip: fn(&[u8]) -> bool,
) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields.iter().filter(|f| !skip(f.name.as_bytes())) {
        let name = HeaderName::from_bytes(f.name.as_bytes()).ok()?;
        map.append(
            name,
            HeaderValue::from_maybe_shared(head.share(f.value)).ok()?,
        );
    }
    Some(map)
}

/// The parsed head as an `http::Request`, its target and field values slices of one
/// copy of `parsed` (the bytes httparse parsed), without the fields `skip` matches.
fn request(req: &httparse::Request, parsed: &[u8], skip: fn(&[u8]) -> bool) -> Option<Request<()>> {
    let head = Shared::new(parsed);
    let mut request = Request::new(());
    *request.method_mut() = Method::from_bytes(req.method?.as_bytes()).ok()?;
    *request.uri_mut() = Uri::from_maybe_shared(head.share(req.path?.as_bytes())).ok()?;
    *request.headers_mut() = header_map(req.headers, &head, skip)?;
    Some(request)
}

async fn respond(req: Request<()>) -> Response<()> {
    let fresh = req
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .any(|v| v == TAG);
    let mut res = Response::new(());
    if fresh {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
    } else {
        res.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    for (name, value) in FIELDS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}

/// A status line and `fields`, as an HTTP/1.1 response head.
fn encode_head(status: StatusCode, fields: &HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    encode_fields(fields, out);
}

/// `fields` as field lines, and the empty line that ends a head.
fn encode_fields(fields: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in fields {
        line(out, name.as_str(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
