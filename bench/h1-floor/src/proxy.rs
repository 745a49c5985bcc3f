//! The proxy floors for bench/proxy's pooled scenario: a reverse proxy that does
//! nothing but what every HTTP/1.1 proxy with a keep-alive upstream pool must do on
//! tokio, so that what the kernel and the runtime cost alone can be measured beside
//! wharf and nginx.
//!
//! For each request: parse it with httparse, take an idle upstream connection from one
//! pool shared by every thread (or open one), write the request without its hop-by-hop
//! fields and with `X-Forwarded-For` (what nginx's configuration in bench/proxy sends),
//! read the response head and its `Content-Length` body, and write both to the client
//! without the hop-by-hop fields. Then the upstream connection goes back to the pool.
//!
//! - `proxy-bytes`: the fields are copied from one head to the other as bytes.
//! - `proxy-http`: as wharf's services are called: the client's head becomes an
//!   `http::Request` and the upstream's an `http::Response` (header maps whose values
//!   share one copy of their head), and each is encoded from its map.
//!
//! Nothing else: no request bodies, no chunked responses, no limits, no timeouts, no
//! retries, no `Via` or `Forwarded`, no logging. Not a proxy to deploy.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use http::{HeaderValue, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{encode_fields, encode_head, header_map, line, request, Answer, Shared};

/// The fields RFC 9110 §7.6.1 makes hop-by-hop (and `Proxy-Connection`), which the
/// floors never pass on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.len() == name.len() && h.as_bytes().eq_ignore_ascii_case(name))
}

#[derive(Clone, Copy)]
pub enum Mode {
    Bytes,
    Http,
}

/// Idle upstream connections, one list for every thread.
pub struct Pool {
    upstream: SocketAddr,
    idle: Mutex<Vec<Upstream>>,
}

struct Upstream {
    stream: TcpStream,
    buf: BytesMut,
}

impl Pool {
    pub fn new(upstream: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            upstream,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn take(&self) -> io::Result<Upstream> {
        let idle = self.idle.lock().expect("pool").pop();
        match idle {
            Some(up) => Ok(up),
            None => {
                let stream = TcpStream::connect(self.upstream).await?;
                stream.set_nodelay(true)?;
                Ok(Upstream {
                    stream,
                    buf: BytesMut::with_capacity(4096),
                })
            }
        }
    }

    fn give(&self, up: Upstream) {
        self.idle.lock().expect("pool").push(up);
    }
}

/// One client connection's proxying: its requests go to the pool's upstream.
pub struct Proxy {
    pool: Arc<Pool>,
    mode: Mode,
    /// The client's address, as `X-Forwarded-For` gives it.
    forwarded_for: HeaderValue,
    /// The upstream request being written.
    head: Vec<u8>,
}

impl Proxy {
    pub fn new(peer: SocketAddr, pool: Arc<Pool>, mode: Mode) -> Self {
        Self {
            pool,
            mode,
            forwarded_for: HeaderValue::from_str(&peer.ip().to_string()).expect("an address"),
            head: Vec::with_capacity(1024),
        }
    }
}

impl Answer for Proxy {
    async fn answer(
        &mut self,
        req: &httparse::Request<'_, '_>,
        head: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<bool> {
        match self.mode {
            Mode::Bytes => request_bytes(req, &self.forwarded_for, &mut self.head),
            Mode::Http => {
                let Some(mut r) = request(req, head, is_hop_by_hop) else {
                    return Ok(false);
                };
                r.headers_mut()
                    .append("x-forwarded-for", self.forwarded_for.clone());
                encode_request(&r, &mut self.head);
            }
        }
        let mut up = self.pool.take().await?;
        up.stream.write_all(&self.head).await?;
        self.head.clear();
        if exchange(&mut up, self.mode, out).await? {
            self.pool.give(up);
        }
        Ok(true)
    }
}

fn request_bytes(req: &httparse::Request, forwarded_for: &HeaderValue, out: &mut Vec<u8>) {
    out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.path.unwrap_or("/").as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for f in req.headers.iter() {
        if !is_hop_by_hop(f.name.as_bytes()) {
            line(out, f.name, f.value);
        }
    }
    line(out, "x-forwarded-for", forwarded_for.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn encode_request(req: &http::Request<()>, out: &mut Vec<u8>) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    encode_fields(req.headers(), out);
}

/// Reads one response from `up` and appends it to `out`: whether the connection may
/// be used again.
async fn exchange(up: &mut Upstream, mode: Mode, out: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        if up.stream.read_buf(&mut up.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut fields);
        let len = match res.parse(&up.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(io::ErrorKind::InvalidData.into()),
        };
        let Some(length) = content_length(res.headers) else {
            return Err(io::ErrorKind::InvalidData.into());
        };
        if up.buf.len() < len + length {
            continue; // parsed again once the whole body is here
        }
        let close = res.headers.iter().any(|f| {
            f.name.eq_ignore_ascii_case("connection") && f.value.eq_ignore_ascii_case(b"close")
        });
        match mode {
            Mode::Bytes => response_bytes(&res, &up.buf[..len], out),
            Mode::Http => {
                let Some(r) = response(&res, &up.buf[..len]) else {
                    return Err(io::ErrorKind::InvalidData.into());
                };
                encode_head(r.status(), r.headers(), out);
            }
        }
        out.extend_from_slice(&up.buf[len..len + length]);
        up.buf.advance(len + length);
        return Ok(!close && up.buf.is_empty());
    }
}

fn content_length(fields: &[httparse::Header]) -> Option<usize> {
    let f = fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-length"))?;
    std::str::from_utf8(f.value).ok()?.parse().ok()
}

/// The status line as it came, then the fields but the hop-by-hop ones.
fn response_bytes(res: &httparse::Response, parsed: &[u8], out: &mut Vec<u8>) {
    let status_line = parsed.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    out.extend_from_slice(&parsed[..status_line]);
    for f in res.headers.iter() {
        if !is_hop_by_hop(f.name.as_bytes()) {
            line(out, f.name, f.value);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The parsed response head as an `http::Response`, its field values slices of one
/// copy of `parsed`, without the hop-by-hop fields.
fn response(res: &httparse::Response, parsed: &[u8]) -> Option<Response<()>> {
    let head = Shared::new(parsed);
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(res.code?).ok()?;
    *response.headers_mut() = header_map(res.headers, &head, is_hop_by_hop)?;
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::is_hop_by_hop;

    #[test]
    fn hop_by_hop_names_in_any_case() {
        assert!(is_hop_by_hop(b"Connection"));
        assert!(is_hop_by_hop(b"keep-alive"));
        assert!(!is_hop_by_hop(b"Content-Length"));
        assert!(!is_hop_by_hop(b"te-x"));
    }
}
