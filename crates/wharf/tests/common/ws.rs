//! A WebSocket client for tests, on raw TCP: the handshake, masked frames out, the
//! server's frames in.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;

use super::{read_response, RawResponse, Wharf};

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A frame as the server sent it.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A client connection after its handshake.
pub struct Ws {
    pub s: TcpStream,
    pub r: BufReader<TcpStream>,
}

pub fn handshake(
    w: &Wharf,
    path: &str,
    extra: &[(&str, &str)],
) -> (TcpStream, BufReader<TcpStream>, RawResponse) {
    let mut s = w.tcp();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let res = read_response(&mut r, false).expect("a handshake response");
    (s, r, res)
}

pub fn connect(w: &Wharf, extra: &[(&str, &str)]) -> (Ws, RawResponse) {
    connect_to(w, "/ws", extra)
}

/// A WebSocket on `path`, which must accept.
pub fn connect_to(w: &Wharf, path: &str, extra: &[(&str, &str)]) -> (Ws, RawResponse) {
    let (s, r, res) = handshake(w, path, extra);
    assert_eq!(res.status, 101, "{res:?}");
    (Ws { s, r }, res)
}

/// A masked client frame.
pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut v = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    match payload.len() {
        n @ 0..=125 => v.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

impl Ws {
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.s.write_all(&frame(fin, 0, opcode, payload)).unwrap();
    }

    /// The next frame, or `None` at the end of the stream.
    pub fn recv(&mut self) -> Option<Frame> {
        let mut head = [0u8; 2];
        self.r.read_exact(&mut head).ok()?;
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                self.r.read_exact(&mut b).ok()?;
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.r.read_exact(&mut b).ok()?;
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        self.r.read_exact(&mut payload).ok()?;
        Some(Frame {
            fin: head[0] & 0x80 != 0,
            rsv1: head[0] & 0x40 != 0,
            opcode: head[0] & 0x0F,
            payload,
        })
    }

    /// Reads frames up to the server's close and answers it, as clients do; the
    /// code, then whether the server closed the TCP connection after it.
    pub fn close_code(&mut self) -> (Option<u16>, bool) {
        loop {
            match self.recv() {
                Some(f) if f.opcode == 8 => {
                    // Fails harmlessly when the server closed first.
                    let _ = self.s.write_all(&frame(true, 0, 8, &f.payload));
                    let eof = matches!(self.r.read(&mut [0u8; 1]), Ok(0));
                    return (f.close_code(), eof);
                }
                Some(_) => continue,
                None => return (None, true),
            }
        }
    }
}
